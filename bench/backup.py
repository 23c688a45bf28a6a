"""Backup/restore speed: composekit vs the raw commands, side by side in one run.

A `pgbench -i -s SCALE` database (scale 50 ≈ 750 MB) in the postgres stand-in container, then per
round, alternating order:
  backup:  raw `docker compose exec -T db pg_dump -Fc > file`   vs  `composekit backup`
           (composekit also hashes, runs pg_restore --list and writes a manifest)
  restore: raw `createdb` + `pg_restore` into a fresh database    vs  `composekit restore --yes --no-snapshot`
           (composekit also verifies first, checks the ledger and swaps names)
  seed way: plain `pg_dump > backup.sql` and `psql < backup.sql` (size and time)

Run: .venv/bin/python bench/backup.py [--scale 50] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
from _util import report  # noqa: E402

from composekit.compose import ComposeProject  # noqa: E402
from composekit.doctor import doctor  # noqa: E402
from composekit.images import POSTGRES_IMAGE  # noqa: E402

EXE = Path(sys.executable).parent / "composekit"
COMPOSE = f"""
services:
  db:
    image: {POSTGRES_IMAGE}
    environment: {{POSTGRES_USER: app, POSTGRES_PASSWORD: bench-pw, POSTGRES_DB: appdb}}
    # autovacuum off: its passes over each freshly loaded 5M-row table otherwise land in
    # whichever timed run comes next, on a machine of 2 cores
    command: ["postgres", "-c", "autovacuum=off"]
    volumes: [pgdata:/var/lib/postgresql/data]
    healthcheck:
      test: ["CMD-SHELL", "pg_isready -h 127.0.0.1 -U app"]
      interval: 1s
      retries: 60
volumes:
  pgdata:
"""


def timed(fn) -> float:  # type: ignore[no-untyped-def]
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    if not doctor(ROOT, fix=True).ok:
        sys.exit("docker test bed not ready: run scripts/bootstrap.sh")
    work = Path(tempfile.mkdtemp(prefix="ck-bench-backup-"))
    (work / "compose.yaml").write_text(COMPOSE)
    name = "ckbench" + uuid.uuid4().hex[:6]
    (work / "composekit.toml").write_text(f'project_name = "{name}"\n')
    project = ComposeProject(project_dir=work, project_name=name)
    exec_argv = project.compose_argv("exec", "-T", "db")
    try:
        project.up(wait=True)
        print(f"pgbench -i -s {args.scale} …", flush=True)
        subprocess.run(
            exec_argv + ["pgbench", "-q", "-i", "-s", str(args.scale), "-U", "app", "appdb"],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        size = project.exec(
            "db",
            [
                "psql",
                "-tAXU",
                "app",
                "-d",
                "appdb",
                "-c",
                "SELECT pg_size_pretty(pg_database_size('appdb'))",
            ],
        ).stdout.strip()
        raw_b, ck_b, raw_r, ck_r, raw_d = [], [], [], [], []
        raw_file = work / "raw.dump"

        def raw_backup() -> None:
            with open(raw_file, "wb") as out:
                subprocess.run(
                    exec_argv + ["pg_dump", "-Fc", "-U", "app", "-d", "appdb"],
                    stdout=out,
                    check=True,
                )

        def ck_backup() -> None:
            subprocess.run(
                [str(EXE), "-C", str(work), "backup", "--keep", "1"],
                check=True,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )

        def raw_restore() -> None:
            subprocess.run(
                exec_argv + ["dropdb", "-U", "app", "--if-exists", "rawcopy"], check=True
            )
            subprocess.run(exec_argv + ["createdb", "-U", "app", "rawcopy"], check=True)
            with open(raw_file, "rb") as inp:
                subprocess.run(
                    exec_argv + ["pg_restore", "--exit-on-error", "-U", "app", "-d", "rawcopy"],
                    stdin=inp,
                    check=True,
                )

        def ck_restore() -> None:
            subprocess.run(
                [str(EXE), "-C", str(work), "restore", "--latest", "--yes", "--no-snapshot"],
                check=True,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )

        def checkpoint() -> None:
            subprocess.run(
                exec_argv + ["psql", "-qX", "-U", "app", "-d", "appdb", "-c", "CHECKPOINT"],
                check=True,
            )

        def raw_durable() -> None:  # where composekit's restore ends: PostgreSQL 15's DROP
            raw_restore()  # DATABASE (of the replaced copy) forces a checkpoint
            checkpoint()

        for r in range(args.rounds):
            pairs = [(raw_b, raw_backup), (ck_b, ck_backup)]
            for bucket, fn in pairs if r % 2 == 0 else pairs[::-1]:
                checkpoint()  # nothing dirty: no run pays to flush the one before it
                bucket.append(timed(fn))
            pairs = [(raw_r, raw_restore), (ck_r, ck_restore), (raw_d, raw_durable)]
            for bucket, fn in pairs if r % 2 == 0 else pairs[::-1]:
                checkpoint()
                bucket.append(timed(fn))

        # the same, in-process, with the progress meter and without it (its cost: a thread that
        # reads a file offset every 0.25 s, and for restore a phase query every 3 s)
        from composekit.backup import take_backup
        from composekit.config import load_settings
        from composekit.dbtarget import DbTarget
        from composekit.progress import no_meter
        from composekit.render import Output
        from composekit.restore import restore_backup

        settings = load_settings(work)
        target = DbTarget.from_settings(settings, project)
        shown = Output()  # not a terminal here: a plain line every 10 s and one at 100 %
        with_b, without_b, with_r, without_r = [], [], [], []
        newest: list[str] = []

        def backup_with(meter: object) -> None:
            b = take_backup(target, settings.backups_path, keep=2, meter=meter)  # type: ignore[arg-type]
            newest[:] = [b.path.name]

        def restore_with(meter: object) -> None:
            restore_backup(target, settings.backups_path, newest[0], snapshot=False,
                           meter=meter)  # type: ignore[arg-type]  # fmt: skip

        for r in range(args.rounds):
            pairs = [(with_b, shown.meter), (without_b, no_meter)]
            for bucket, meter in pairs if r % 2 == 0 else pairs[::-1]:
                bucket.append(timed(lambda meter=meter: backup_with(meter)))
            pairs = [(with_r, shown.meter), (without_r, no_meter)]
            for bucket, meter in pairs if r % 2 == 0 else pairs[::-1]:
                bucket.append(timed(lambda meter=meter: restore_with(meter)))

        plain = work / "backup.sql"
        with open(plain, "wb") as out:
            t_plain_dump = timed(
                lambda: subprocess.run(
                    exec_argv + ["pg_dump", "-U", "app", "appdb"], stdout=out, check=True
                )
            )
        subprocess.run(exec_argv + ["createdb", "-U", "app", "plaincopy"], check=True)
        with open(plain, "rb") as inp:
            t_plain_load = timed(
                lambda: subprocess.run(
                    exec_argv
                    + ["psql", "-q", "-v", "ON_ERROR_STOP=1", "-U", "app", "-d", "plaincopy"],
                    stdin=inp,
                    check=True,
                    stdout=subprocess.DEVNULL,
                )
            )
        report(
            f"backup of a pgbench -s {args.scale} database ({size}), {args.rounds} rounds",
            [("raw pg_dump -Fc via compose exec (baseline)", raw_b), ("composekit backup", ck_b)],
            baseline="raw pg_dump -Fc via compose exec (baseline)",
        )
        report(
            "restore",
            [
                ("raw createdb + pg_restore (baseline)", raw_r),
                ("composekit restore --no-snapshot", ck_r),
                ("raw createdb + pg_restore + CHECKPOINT (durable)", raw_d),
            ],
            baseline="raw createdb + pg_restore (baseline)",
        )
        print(
            f"\nseed way (plain SQL): dump {t_plain_dump:.2f}s, {plain.stat().st_size / 1e6:.0f} MB; "
            f"psql < backup.sql {t_plain_load:.2f}s; custom-format dump {raw_file.stat().st_size / 1e6:.0f} MB"
        )
        report(
            "progress meter on vs off (in-process take_backup / restore_backup)",
            [
                ("backup, no meter (baseline)", without_b),
                ("backup, meter", with_b),
                ("restore, no meter", without_r),
                ("restore, meter", with_r),
            ],  # fmt: skip
            baseline="backup, no meter (baseline)",
        )
        print(
            f"meter on/off: backup {statistics.median(with_b) / statistics.median(without_b):.2f}x, "
            f"restore {statistics.median(with_r) / statistics.median(without_r):.2f}x "
            "(goal: no difference within noise)"
        )
        print(
            f"ratios: backup {statistics.median(ck_b) / statistics.median(raw_b):.2f}x, "
            f"restore {statistics.median(ck_r) / statistics.median(raw_r):.2f}x (goal <= 1.05x)"
        )
    finally:
        project.down(volumes=True)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
