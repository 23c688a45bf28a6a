"""Rehearsal speed: `composekit rehearse` vs doing its two main jobs by hand, same project, same run.

A scaffolded project (migrator layout) with a table of ROWS rows, one verified backup, and two
pending migrations (CREATE INDEX CONCURRENTLY, ADD COLUMN). Per round, alternating order:
  by hand:    createdb + `pg_restore` of the backup (restore time)
              + `psql` applying the two up sections to that copy (migration time), then dropdb
  composekit: `composekit rehearse` — also builds the image (cached), verifies the backup, checks
              the free space, runs the engine in the app's container measuring
              every lock, runs the down sections and compares the schema, drops the copy
Goal (issue #13): rehearse ≤ restore + migration time + 10 %.

Run: .venv/bin/python bench/rehearse.py [--rows 3000000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))
from _util import report, scaffolded_app  # noqa: E402

from composekit.doctor import doctor  # noqa: E402

EXE = Path(sys.executable).parent / "composekit"
UPS = [
    "CREATE INDEX CONCURRENTLY IF NOT EXISTS big_n ON big (n);",
    "ALTER TABLE big ADD COLUMN IF NOT EXISTS note text;",
]
DOWNS = ["DROP INDEX IF EXISTS big_n;", "ALTER TABLE big DROP COLUMN IF EXISTS note;"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=3_000_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--keep", action="store_true", help="leave the project (to profile by hand)")
    args = ap.parse_args()
    if not doctor(ROOT, fix=True).ok:
        sys.exit("docker test bed not ready: run scripts/bootstrap.sh")
    work, name, app, project, port = scaffolded_app("rehearse")
    dc = project.compose_argv()
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "cwd": app}

    def psql(sql: str, db: str = "app") -> None:
        subprocess.run(dc + ["exec", "-T", "db", "psql", "-X", "-q", "-v", "ON_ERROR_STOP=1",
                             "-U", "app", "-d", db, "-c", sql], check=True, **quiet)  # fmt: skip

    try:
        subprocess.run([str(EXE), "deploy"], check=True, **quiet)
        psql("CREATE TABLE big (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, n int); "
             f"INSERT INTO big (n) SELECT (random() * 1e9)::int FROM generate_series(1, {args.rows}) g")  # fmt: skip
        subprocess.run([str(EXE), "backup"], check=True, **quiet)
        backup = sorted((app / "backups").glob("*.dump"))[-1]
        for i, (up, down) in enumerate(zip(UPS, DOWNS, strict=True), 2):
            (app / "migrations" / f"{i:04d}_bench.sql").write_text(
                f"-- migrate:up\n{up}\n-- migrate:down\n{down}\n"
            )
        by_hand, restores, migrates, ours = [], [], [], []

        def manual() -> None:
            t0 = time.perf_counter()
            psql("CREATE DATABASE bench_copy", db="postgres")
            with open(backup, "rb") as inp:
                subprocess.run(dc + ["exec", "-T", "db", "pg_restore", "-U", "app", "-d",
                                     "bench_copy"], stdin=inp, check=True, **quiet)  # fmt: skip
            t1 = time.perf_counter()
            for up in UPS:
                psql(up, db="bench_copy")
            t2 = time.perf_counter()
            psql("DROP DATABASE bench_copy WITH (FORCE)", db="postgres")
            restores.append(t1 - t0)
            migrates.append(t2 - t1)
            by_hand.append(t2 - t0)

        def composekit() -> None:
            t0 = time.perf_counter()
            subprocess.run([str(EXE), "rehearse"], check=True, **quiet)
            ours.append(time.perf_counter() - t0)

        for r in range(args.rounds):
            for job in (manual, composekit) if r % 2 == 0 else (composekit, manual):
                job()
        print(f"{args.rows:,} rows, backup {backup.stat().st_size / 1e6:.0f} MB, "
              f"{args.rounds} rounds (median, min)")  # fmt: skip
        report(
            "rehearse vs restore + migrations by hand",
            [
                ("by hand: restore + migrations", by_hand),
                ("  of which restore", restores),
                ("  of which migrations", migrates),
                ("composekit rehearse", ours),
            ],  # fmt: skip
            "by hand: restore + migrations",
        )
        ratio = statistics.median(ours) / statistics.median(by_hand)
        print(f"\ncomposekit rehearse / (restore + migrations): {ratio:.2f}x (goal <= 1.10x)")
    finally:
        if args.keep:
            print(f"kept: {app}")
        else:
            project.down(volumes=True)
            project.remove_images(f"{name}-app")
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
