"""Lint speed: `composekit lint` vs `squawk` (squawk-cli's Rust binary) on the same 500 migration
files, side by side in the same run, alternating, median of 5 rounds each; plus composekit's
in-process time (the CLI's figure minus Python start-up).

Each file: a table, an index built CONCURRENTLY, a nullable column, a NOT VALID foreign key and its
VALIDATE — realistic DDL that both tools parse fully.

Run: .venv/bin/python bench/lint.py   (installs squawk-cli into the cache with pip if missing)
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from composekit.images import cache_dir  # noqa: E402
from composekit.lint import LintConfig, lint_paths  # noqa: E402

N, ROUNDS = 500, 5
EXE = Path(sys.executable).parent / "composekit"


def squawk() -> Path | None:
    target = cache_dir() / "squawk"
    binary = next(iter(target.glob("**/bin/squawk")), None) or next(
        iter(target.glob("**/squawk")), None
    )
    if binary is None:
        r = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--target", str(target),
                            "squawk-cli"], capture_output=True, text=True)  # fmt: skip
        if r.returncode != 0:
            print(f"squawk-cli did not install: {r.stderr.strip()[-200:]}")
            return None
        binary = next(iter(target.glob("**/bin/squawk")), None)
    return binary


def write(d: Path) -> list[Path]:
    files = []
    for i in range(1, N + 1):
        p = d / f"{i:04d}_step.sql"
        p.write_text(
            "-- migrate:up\n"
            f"CREATE TABLE IF NOT EXISTS t{i} (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, "
            "note text, at timestamptz NOT NULL DEFAULT now());\n"
            f"ALTER TABLE t{i} ADD COLUMN IF NOT EXISTS owner bigint;\n"
            f"ALTER TABLE t{i} ADD CONSTRAINT t{i}_owner FOREIGN KEY (owner) REFERENCES t1 (id) NOT VALID;\n"
            f"ALTER TABLE t{i} VALIDATE CONSTRAINT t{i}_owner;\n"
            "-- migrate:down\n"
            f"DROP TABLE IF EXISTS t{i};\n"
        )
        files.append(p)
    return files


def timed(argv: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="ck-bench-lint-"))
    try:
        d = work / "migrations"
        d.mkdir()
        files = write(d)
        sq = squawk()
        ck_t, sq_t, inproc = [], [], []
        for r in range(ROUNDS):
            order = ["ck", "sq"] if r % 2 == 0 else ["sq", "ck"]
            for who in order:
                if who == "ck":
                    ck_t.append(timed([str(EXE), "lint", str(d)]))
                elif sq is not None:
                    sq_t.append(timed([str(sq), *map(str, files)]))
            t0 = time.perf_counter()
            report = lint_paths([d], "auto", LintConfig())
            inproc.append(time.perf_counter() - t0)
        print(f"{N} migration files, median of {ROUNDS} rounds (min in brackets)")
        print(
            f"  composekit lint (CLI process)   {statistics.median(ck_t):.3f}s [{min(ck_t):.3f}s]"
        )
        print(f"  composekit lint (in-process)    {statistics.median(inproc):.3f}s [{min(inproc):.3f}s]"
              f"  ({len(report.findings)} findings)")  # fmt: skip
        if sq_t:
            print(
                f"  squawk                          {statistics.median(sq_t):.3f}s [{min(sq_t):.3f}s]"
            )
            print(
                f"  composekit / squawk: {statistics.median(ck_t) / statistics.median(sq_t):.2f}x"
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
