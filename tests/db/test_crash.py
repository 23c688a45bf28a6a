"""Migrations commit without waiting for the WAL flush (one synchronous commit ends the run). The
promise that makes it safe: a server crash mid-run loses at most a suffix of whole migrations,
each with its ledger row — checked with an immediate shutdown of a durable (fsync on) cluster."""

from __future__ import annotations

import time
from pathlib import Path

import psycopg

from tests.db.test_migrate import UP, mig_dir
from tests.helpers import Running
from tests.pgcluster import start_cluster

COUNT = 300


def ledger_and_tables(url: str) -> tuple[set[str], set[str]]:
    with psycopg.connect(url, autocommit=True) as conn:
        has = conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()
        rows = (
            conn.execute("SELECT version FROM schema_migrations").fetchall()
            if has and has[0]
            else []
        )
        tables = conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename LIKE 't%'"
        ).fetchall()
    return {f"t{int(r[0])}" for r in rows}, {r[0] for r in tables}


def test_an_immediate_shutdown_mid_run_leaves_ledger_and_schema_agreeing(tmp_path: Path) -> None:
    cluster = start_cluster(durable=True)
    try:
        cluster.admin("CREATE DATABASE crash")
        url = cluster.url("crash")
        d = mig_dir(
            tmp_path,
            {
                f"{i:04d}_t{i}.sql": UP.format(
                    up=f"CREATE TABLE t{i} (id int PRIMARY KEY, v text);\n"
                    f"INSERT INTO t{i} SELECT g, 'row ' || g FROM generate_series(1, 20) g;",
                    down=f"DROP TABLE t{i};",
                )
                for i in range(1, COUNT + 1)
            },
        )
        run = Running("migrate", "up", "--dir", str(d), env={"DATABASE_URL": url})
        deadline = time.monotonic() + 120
        while len(ledger_and_tables(url)[0]) < COUNT // 5:
            assert time.monotonic() < deadline and run.p.poll() is None, run.lines
            time.sleep(0.02)
        cluster.crash()
        code, err = run.finish(timeout=60)
        assert code != 0 and "Traceback" not in err, err
        cluster.start()

        ledger, tables = ledger_and_tables(url)
        assert ledger == tables, (sorted(ledger ^ tables), err)  # every migration with its row
        assert 0 < len(ledger) < COUNT
        with psycopg.connect(url) as conn:  # and whole: no table without its rows
            for t in sorted(tables)[:20]:
                assert conn.execute(f"SELECT count(*) FROM {t}").fetchone() == (20,)

        again = Running("migrate", "up", "--dir", str(d), env={"DATABASE_URL": url})
        code, err = again.finish(timeout=300)
        assert code == 0, err
        # a run that reported success is on disk, all of it: a crash right after loses nothing
        cluster.crash()
        cluster.start()
        ledger, tables = ledger_and_tables(url)
        assert len(ledger) == COUNT and ledger == tables
    finally:
        cluster.stop()
