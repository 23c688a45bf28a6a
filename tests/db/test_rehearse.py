"""The engine's half of a rehearsal on a real PostgreSQL: each migration's locks (mode, how long),
rewrites, rows touched and INVALID indexes, measured on a copy of a 1M-row table; the down check;
and no rehearsal anywhere but on a throwaway copy."""

from __future__ import annotations

import json

import pytest
from psycopg.conninfo import make_conninfo

from composekit.errors import ExitCode
from tests.db.test_migrate import UP, cli, execute, mig_dir, query

ROWS = 1_000_000
REHEARSAL_LINE = "composekit-rehearsal: "


def report_of(stdout: str) -> dict:  # type: ignore[type-arg]
    line = next(ln for ln in stdout.splitlines() if ln.startswith(REHEARSAL_LINE))
    return json.loads(line[len(REHEARSAL_LINE) :])  # type: ignore[no-any-return]


@pytest.fixture
def copy_url(db_url: str) -> str:
    execute(db_url, "DROP DATABASE IF EXISTS composekit_rehearse_t WITH (FORCE)")
    execute(db_url, "CREATE DATABASE composekit_rehearse_t")
    url = make_conninfo(db_url, dbname="composekit_rehearse_t")
    yield url  # type: ignore[misc]
    execute(db_url, "DROP DATABASE IF EXISTS composekit_rehearse_t WITH (FORCE)")


@pytest.mark.slow
def test_each_migrations_locks_rewrites_and_rows_are_measured(copy_url: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    execute(
        copy_url,
        "CREATE TABLE big (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, n int, m int)",
    )
    execute(copy_url, f"INSERT INTO big (n, m) SELECT g, g FROM generate_series(1, {ROWS}) g")
    # not analyzed, as a restored copy is not: the rows come from the insert's statistics
    d = mig_dir(
        tmp_path,
        {
            "0001_rewrite.sql": UP.format(
                up="ALTER TABLE big ADD COLUMN seen timestamptz DEFAULT clock_timestamp();",
                down="ALTER TABLE big DROP COLUMN seen;",
            ),
            "0002_index.sql": UP.format(
                up="CREATE INDEX big_n ON big (n);", down="DROP INDEX big_n;"
            ),
            "0003_concurrently.sql": UP.format(
                up="CREATE INDEX CONCURRENTLY big_m ON big (m);", down="DROP INDEX big_m;"
            ),
            "0004_fast_default.sql": UP.format(  # now() is stable: PostgreSQL ≥ 11 does not rewrite
                up="ALTER TABLE big ADD COLUMN at timestamptz DEFAULT now();",
                down="ALTER TABLE big DROP COLUMN at;",
            ),
            "0005_touch.sql": UP.format(
                up="UPDATE big SET n = n + 1 WHERE id <= 1000;",
                down="UPDATE big SET n = n - 1 WHERE id <= 1000;",
            ),
        },
    )
    r = cli(copy_url, "migrate", "rehearse", "--database", "composekit_rehearse_t", "--dir", str(d))
    assert r.returncode == 0, r.stderr
    rep = {m["version"]: m for m in report_of(r.stdout)["migrations"]}

    def lock(v: str, mode: str) -> dict | None:  # type: ignore[type-arg]
        return next(
            (lk for lk in rep[v]["locks"] if lk["relation"] == "public.big" and lk["mode"] == mode),
            None,
        )

    rewrite = lock("0001", "AccessExclusiveLock")
    assert rewrite and rewrite["ms"] >= 100 and rewrite["blocks"] == "reads and writes", rep["0001"]
    assert rewrite["rows"] >= ROWS * 0.9
    assert rep["0001"]["rewrites"] == ["public.big", "public.big_pkey"]  # the table and its index
    assert rep["0001"]["blocked_ms"] == rewrite["ms"]

    share = lock("0002", "ShareLock")
    assert share and share["ms"] >= 50 and share["blocks"] == "writes", rep["0002"]
    assert lock("0002", "AccessExclusiveLock") is None and rep["0002"]["rewrites"] == []

    assert lock("0003", "ShareUpdateExclusiveLock"), rep["0003"]
    assert rep["0003"]["blocked_ms"] == 0 and rep["0003"]["invalid_indexes"] == []

    assert rep["0004"]["rewrites"] == [] and rep["0004"]["blocked_ms"] < rewrite["ms"] / 2
    assert rep["0005"]["rows_touched"] == 1000 and rep["0001"]["rows_touched"] == 0

    assert report_of(r.stdout)["downs_restore_schema"] is True
    assert report_of(r.stdout)["ledger_after"] == "0005"


def test_a_failing_migration_is_reported_and_downs_that_do_not_restore_are_named(
    copy_url: str,
    tmp_path,  # type: ignore[no-untyped-def]
) -> None:
    execute(copy_url, "CREATE TABLE t (id int PRIMARY KEY)")
    d = mig_dir(
        tmp_path,
        {"0001_a.sql": UP.format(up="ALTER TABLE t ADD COLUMN a int;", down="SELECT 1;")},
    )
    r = cli(copy_url, "migrate", "rehearse", "--database", "composekit_rehearse_t", "--dir", str(d))
    rep = report_of(r.stdout)
    assert r.returncode == 0 and rep["downs_restore_schema"] is False, r.stderr
    assert "schema differs" in rep["down_notes"][0]

    execute(copy_url, "DROP TABLE schema_migrations; ALTER TABLE t DROP COLUMN a")  # a fresh copy
    (d / "0002_b.sql").write_text(UP.format(up="ALTER TABLE nope ADD COLUMN b int;", down=""))
    r = cli(copy_url, "migrate", "rehearse", "--database", "composekit_rehearse_t", "--dir", str(d))
    rep = report_of(r.stdout)
    assert [m["error"] != "" for m in rep["migrations"]] == [False, True]
    assert 'relation "nope" does not exist' in rep["migrations"][1]["error"]
    assert rep["downs_restore_schema"] is None


def test_rehearsing_on_a_database_that_is_not_a_throwaway_copy_is_refused(
    db_url: str,
    tmp_path,  # type: ignore[no-untyped-def]
) -> None:
    d = mig_dir(
        tmp_path, {"0001_a.sql": UP.format(up="CREATE TABLE a (id int);", down="DROP TABLE a;")}
    )
    db = query(db_url, "SELECT current_database()")[0][0]
    r = cli(db_url, "migrate", "rehearse", "--database", db, "--dir", str(d))
    assert r.returncode == ExitCode.USAGE and "it is not a throwaway copy" in r.stderr, r.stderr
    assert query(db_url, "SELECT to_regclass('a') IS NULL") == [(True,)]
