"""Migration speed: composekit vs psql applying the same 500 files, side by side in one run.

Each file: a table, an index and a 20-row insert. Baseline: ONE `psql -v ON_ERROR_STOP=1`
session running the same SQL with BEGIN/COMMIT around each file. composekit: the real CLI,
`composekit migrate up` (which also takes the lock, writes a ledger row per migration and checks
drift). Each round uses fresh, empty databases; the two tools alternate to share any drift of the
machine. A throwaway PostgreSQL 15 cluster with default durability (fsync on) is used.

Run: .venv/bin/python bench/migrate.py [--count 500] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from _util import report  # noqa: E402

from tests.pgcluster import start_cluster  # noqa: E402

EXE = Path(sys.executable).parent / "composekit"


def up_sql(i: int) -> str:
    rows = ", ".join(f"({j}, 'row {j} of {i}')" for j in range(1, 21))
    return (
        f"CREATE TABLE t{i} (id int PRIMARY KEY, label text NOT NULL, created timestamptz DEFAULT now());\n"
        f"CREATE INDEX t{i}_label ON t{i} (label);\n"
        f"INSERT INTO t{i} (id, label) VALUES {rows};\n"
    )


def generate(work: Path, count: int) -> tuple[Path, Path]:
    mig = work / "migrations"
    mig.mkdir()
    script = work / "psql_all.sql"
    parts = []
    for i in range(1, count + 1):
        body = up_sql(i)
        (mig / f"{i:04d}_t{i}.sql").write_text(
            f"-- migrate:up\n{body}\n-- migrate:down\nDROP TABLE t{i};\n"
        )
        parts.append(f"BEGIN;\n{body}COMMIT;\n")
    script.write_text("".join(parts))
    return mig, script


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=500)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    cluster = start_cluster(durable=True)
    env = {**os.environ, "PGPASSWORD": cluster.password}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            mig, script = generate(Path(tmp), args.count)
            psql_t: list[float] = []
            ck_t: list[float] = []
            status_t: list[float] = []
            for r in range(args.rounds):
                for tool in ("psql", "composekit") if r % 2 == 0 else ("composekit", "psql"):
                    db = f"bench_{tool}_{r}"
                    cluster.admin(f"CREATE DATABASE {db}")
                    cluster.admin(
                        "CHECKPOINT"
                    )  # every timed run starts with no dirty buffers to flush
                    url = cluster.url(db)
                    t0 = time.perf_counter()
                    if tool == "psql":
                        subprocess.run(
                            [
                                "psql",
                                "-X",
                                "-q",
                                "-v",
                                "ON_ERROR_STOP=1",
                                "-d",
                                url.replace(f":{cluster.password}@", "@"),
                                "-f",
                                str(script),
                            ],
                            check=True,
                            env=env,
                            stdout=subprocess.DEVNULL,
                        )
                        psql_t.append(time.perf_counter() - t0)
                    else:
                        subprocess.run(
                            [str(EXE), "migrate", "up", "--dir", str(mig)],
                            check=True,
                            env={**os.environ, "DATABASE_URL": url},
                            stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL,
                        )
                        ck_t.append(time.perf_counter() - t0)
                        t0 = time.perf_counter()
                        subprocess.run(
                            [str(EXE), "migrate", "status", "--dir", str(mig)],
                            check=True,
                            env={**os.environ, "DATABASE_URL": url},
                            stdout=subprocess.DEVNULL,
                        )
                        status_t.append(time.perf_counter() - t0)
                    cluster.admin(f"DROP DATABASE {db}")
        report(
            f"{args.count} migrations from an empty database, {args.rounds} rounds (fsync on)",
            [
                ("psql, BEGIN/COMMIT per file (baseline)", psql_t),
                ("composekit migrate up", ck_t),
                (f"composekit migrate status ({args.count} applied)", status_t),
            ],
            baseline="psql, BEGIN/COMMIT per file (baseline)",
        )
        print(
            f"\ncomposekit / psql: median {statistics.median(ck_t) / statistics.median(psql_t):.2f}x, "
            f"best {min(ck_t) / min(psql_t):.2f}x (goal <= 0.80x, issue #14; the one before was <= 1.10x)"
        )
    finally:
        cluster.stop()


if __name__ == "__main__":
    main()
