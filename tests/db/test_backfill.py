"""Batched backfills (``-- composekit:backfill``) against a real PostgreSQL, through the real CLI."""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from pathlib import Path

import psycopg
import pytest

from composekit.errors import ExitCode
from tests.db.test_migrate import UP, cli, execute, mig_dir, query
from tests.helpers import Running

ROWS = 1_000_000
WRITER_LIMIT_S = 0.2  # the bar: every statement of the app's writer under 200 ms

TABLE = (
    "CREATE TABLE items (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, name text NOT NULL, "
    "n int NOT NULL DEFAULT 0);"
)
ADD_LABEL = "ALTER TABLE items ADD COLUMN label text;"


class Writer:
    """An app writing single rows as fast as it can. Its statements may wait at most 200 ms for a
    row lock (``lock_timeout``): every wait longer than that is counted (``blocked``) — a measure
    of the locks the backfill holds that a busy machine's CPU stalls cannot blur. Each
    statement's wall time is kept too (``longest``), for the report."""

    def __init__(self, db_url: str, rows: int) -> None:
        self.url, self.rows = db_url, rows
        self.longest = 0.0
        self.statements = 0
        self.blocked = 0
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Writer:
        self._t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._t.join(timeout=30)

    def _run(self) -> None:
        rnd = random.Random(7)
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f"SET lock_timeout = '{int(WRITER_LIMIT_S * 1000)}ms'")
            while not self._stop.is_set():
                key = rnd.randint(1, self.rows)
                t0 = time.perf_counter()
                try:
                    conn.execute("UPDATE items SET name = 'written' WHERE id = %s", [key])
                except psycopg.errors.LockNotAvailable:
                    self.blocked += 1
                    continue
                except psycopg.Error as exc:
                    self.errors.append(str(exc))
                    return
                self.longest = max(self.longest, time.perf_counter() - t0)
                self.statements += 1
                time.sleep(0.002)


class Vacuums:
    """What autovacuum does to a DDL after so many updates, over and over while the block runs:
    a session holds SHARE UPDATE EXCLUSIVE on items (as a VACUUM does) for 0.6 s, 50 ms apart.
    Writers pass it by; an ALTER TABLE must wait — and the writers would queue behind the ALTER."""

    def __init__(self, db_url: str) -> None:
        self.url = db_url
        self.count = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Vacuums:
        self._t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._t.join(timeout=60)

    def _run(self) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            while not self._stop.wait(0.05):
                with conn.transaction():
                    conn.execute("LOCK items IN SHARE UPDATE EXCLUSIVE MODE")
                    conn.execute("SELECT pg_sleep(0.6)")
                self.count += 1


def items(db_url: str, rows: int) -> None:
    execute(db_url, TABLE)
    execute(db_url, f"INSERT INTO items (name) SELECT 'item' FROM generate_series(1, {rows})")
    execute(db_url, "VACUUM ANALYZE items")


def ledger_row(db_url: str, version: str) -> tuple[bool, str | None] | None:
    if not query(db_url, "SELECT to_regclass('schema_migrations') IS NOT NULL")[0][0]:
        return None
    rows = query(
        db_url, f"SELECT dirty, resume_at FROM schema_migrations WHERE version = '{version}'"
    )
    return (rows[0][0], rows[0][1]) if rows else None


def no_composekit_backend(db_url: str, limit: float = 30) -> None:
    """Until the killed client's server sessions are gone (its open batch rolled back)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        left = query(
            db_url,
            "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'composekit%'",
        )[0][0]
        if left == 0:
            return
        time.sleep(0.1)
    raise AssertionError("the killed composekit's sessions are still there")


BACKFILL = (
    "-- composekit:backfill batch=2000 pause=0 not-null=label\n"
    # no WHERE, and n = n + 1: a row updated twice (or never) would show after a resume
    "UPDATE items SET label = 'item ' || id, n = n + 1;"
)


@pytest.mark.slow
def test_backfill_of_a_million_rows_blocks_no_writer_and_resumes_after_sigkill(
    db_url: str, tmp_path: Path
) -> None:
    items(db_url, ROWS)
    # the bar can fail: one plain UPDATE of the table holds every row lock to its commit
    with Writer(db_url, ROWS) as plain:
        time.sleep(0.3)
        execute(db_url, "UPDATE items SET n = n")
        time.sleep(0.3)
    assert plain.blocked > 0, "the writer never waited behind a whole-table UPDATE"

    d = mig_dir(
        tmp_path,
        {
            "0001_label.sql": UP.format(up=ADD_LABEL, down="ALTER TABLE items DROP COLUMN label;"),
            "0002_fill_label.sql": UP.format(
                up=BACKFILL, down="ALTER TABLE items ALTER COLUMN label DROP NOT NULL;"
            ),
        },
    )
    env = {"DATABASE_URL": db_url}
    with Writer(db_url, ROWS) as writer:
        first = Running("migrate", "up", "--dir", str(d), env=env)
        deadline = time.monotonic() + 120
        while True:  # kill it part-way through, between or inside a batch
            row = ledger_row(db_url, "0002")
            if row and row[1] is not None and int(row[1]) >= ROWS // 4:
                break
            assert time.monotonic() < deadline and first.p.poll() is None, first.lines
            time.sleep(0.05)
        os.kill(first.p.pid, signal.SIGKILL)
        first.p.wait()
        no_composekit_backend(db_url)

        dirty, stopped = ledger_row(db_url, "0002") or (False, None)
        assert dirty and stopped is not None and ROWS // 4 <= int(stopped) < ROWS
        # exactly the batches up to the recorded key committed, and nothing after it
        done, after = query(
            db_url,
            f"SELECT count(*) FILTER (WHERE id <= {stopped} AND n = 1 AND label IS NOT NULL), "
            f"count(*) FILTER (WHERE id > {stopped} AND n = 0 AND label IS NULL) FROM items",
        )[0]
        assert (done, after) == (int(stopped), ROWS - int(stopped))

        status = cli(db_url, "migrate", "status", "--dir", str(d))
        assert f"stopped after key {stopped}" in status.stdout + status.stderr

        # as autovacuum would after so many updates: a lock the NOT NULL's ALTERs must wait
        # for, held again and again — the writer must not queue behind a waiting ALTER
        with Vacuums(db_url):
            again = cli(db_url, "migrate", "up", "--dir", str(d), timeout=300)
        assert again.returncode == 0, again.stderr
        assert f"resuming after id {stopped}" in again.stderr
        assert "rows/s" in again.stderr and "is NOT NULL" in again.stderr
    assert writer.errors == [] and writer.statements > 100
    print(
        f"writer: {writer.statements} statements, longest {writer.longest * 1000:.0f} ms, {writer.blocked} over 200 ms; behind a plain UPDATE: {plain.blocked} over 200 ms"
    )
    assert writer.blocked == 0, f"{writer.blocked} writes waited over 200 ms for a row lock"

    # every row updated exactly once, the column NOT NULL, no helper check left, ledger clean
    assert query(db_url, "SELECT count(*) FROM items WHERE n = 1 AND label = 'item ' || id") == [
        (ROWS,)
    ]
    assert query(
        db_url,
        "SELECT attnotnull FROM pg_attribute WHERE attrelid = 'items'::regclass AND attname = 'label'",
    ) == [(True,)]
    assert query(
        db_url,
        "SELECT count(*) FROM pg_constraint WHERE conrelid = 'items'::regclass AND contype = 'c'",
    ) == [(0,)]
    assert ledger_row(db_url, "0002") == (False, None)


def test_backfill_with_a_where_and_an_alias_updates_only_its_rows(
    db_url: str, tmp_path: Path
) -> None:
    items(db_url, 25)
    execute(db_url, ADD_LABEL + "UPDATE items SET label = 'kept' WHERE id % 5 = 0;")
    d = mig_dir(
        tmp_path,
        {
            "0001_fill.sql": UP.format(
                up="-- composekit:backfill batch=4 pause=1ms not-null=label\n"
                "UPDATE items AS i SET label = 'filled ' || i.id, n = n + 1 WHERE i.label IS NULL",
                down="-- nothing to undo",
            )
        },
    )
    r = cli(db_url, "migrate", "up", "--dir", str(d))
    assert r.returncode == 0, r.stderr
    assert "25 rows to go in batches of 4 by id" in r.stderr and "20 rows updated" in r.stderr
    assert query(db_url, "SELECT count(*) FROM items WHERE label = 'kept' AND n = 0") == [(5,)]
    assert query(db_url, "SELECT count(*) FROM items WHERE label = 'filled ' || id AND n = 1") == [
        (20,)
    ]


def test_backfill_not_null_refused_names_the_nulls_and_runs_again_once_fixed(
    db_url: str, tmp_path: Path
) -> None:
    items(db_url, 10)
    execute(db_url, ADD_LABEL)
    d = mig_dir(
        tmp_path,
        {
            "0001_fill.sql": UP.format(
                # rows 1..3 are left NULL by the WHERE: the column cannot become NOT NULL
                up="-- composekit:backfill batch=3 pause=0 not-null=label\n"
                "UPDATE items SET label = 'x' WHERE id > 3",
                down="",
            )
        },
    )
    r = cli(db_url, "migrate", "up", "--dir", str(d))
    assert r.returncode == ExitCode.MIGRATION and "Traceback" not in r.stderr
    assert "cannot make items.label NOT NULL: 3 rows still have NULL there" in r.stderr
    assert ledger_row(db_url, "0001") == (True, None)  # the next run sweeps the table again
    assert query(
        db_url,
        "SELECT attnotnull FROM pg_attribute WHERE attrelid = 'items'::regclass AND attname = 'label'",
    ) == [(False,)]

    execute(db_url, "UPDATE items SET label = 'by hand' WHERE id <= 3")
    r = cli(db_url, "migrate", "up", "--dir", str(d))
    assert r.returncode == 0, r.stderr
    assert "starting: 10 rows to go" in r.stderr and ledger_row(db_url, "0001") == (False, None)
    assert query(
        db_url,
        "SELECT attnotnull FROM pg_attribute WHERE attrelid = 'items'::regclass AND attname = 'label'",
    ) == [(True,)]


@pytest.mark.parametrize(
    "setup, header, update, message",
    [
        (
            "CREATE TABLE k (a int, b int, v text, PRIMARY KEY (a, b));",
            "-- composekit:backfill",
            "UPDATE k SET v = 'x'",
            "table k has a primary key of 2 columns, so the backfill has no key to batch by",
        ),
        (
            "CREATE TABLE k (a int PRIMARY KEY, v text);",
            "-- composekit:backfill key=nope",
            "UPDATE k SET v = 'x'",
            "key=nope names no column of the UPDATE's table",
        ),
        (
            "CREATE TABLE k (a int PRIMARY KEY, v text);",
            "-- composekit:backfill batch=0",
            "UPDATE k SET v = 'x'",
            "batch=0 is not a positive whole number",
        ),
        (
            "CREATE TABLE k (a int PRIMARY KEY, v text);",
            "-- composekit:backfill",
            "UPDATE k SET v = 'x'; DELETE FROM k WHERE a = 1",
            "a backfill migration holds exactly one UPDATE statement (found 2 statements)",
        ),
    ],
)
def test_bad_backfills_are_config_errors_that_change_nothing(
    db_url: str, tmp_path: Path, setup: str, header: str, update: str, message: str
) -> None:
    execute(db_url, setup + "INSERT INTO k SELECT 1" + (", 1" if "a, b" in setup else ""))
    d = mig_dir(tmp_path, {"0001_fill.sql": UP.format(up=f"{header}\n{update}", down="")})
    r = cli(db_url, "migrate", "up", "--dir", str(d))
    assert r.returncode == ExitCode.CONFIG and message in r.stderr, r.stderr
    assert "Traceback" not in r.stderr
    assert query(db_url, "SELECT count(*) FROM k WHERE v IS NOT NULL") == [(0,)]
    ledger = query(db_url, "SELECT to_regclass('schema_migrations') IS NOT NULL")[0][0]
    assert not ledger or query(db_url, "SELECT count(*) FROM schema_migrations") == [(0,)]
