"""Databases whose encoding is not UTF8, through the real CLI.

psycopg 3 returns ``bytes`` for text when the client encoding is SQL_ASCII (what ``initdb``
without a locale makes), which broke the ledger and ``migrate status``; composekit now asks for
a UTF8 client encoding on every connection, so PostgreSQL converts (LATIN1) or passes the
UTF-8 bytes of the migration files through unchanged (SQL_ASCII).
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from composekit.errors import ExitCode
from tests.db.test_migrate import UP
from tests.helpers import run_cli
from tests.pgcluster import PgCluster

MIGRATIONS = {
    "0001_cities.sql": UP.format(
        up="CREATE TABLE cities (id int PRIMARY KEY, name text NOT NULL);",
        down="DROP TABLE cities;",
    ),
    "0002_cafes.sql": UP.format(
        up="CREATE TABLE cafes (id int PRIMARY KEY, label text NOT NULL);",
        down="DROP TABLE cafes;",
    ),
    "0003_seed.sql": UP.format(
        up="INSERT INTO cities VALUES (1, 'Zürich');\nINSERT INTO cafes VALUES (1, 'café');",
        down="DELETE FROM cafes;\nDELETE FROM cities;",
    ),
}
VERSIONS = ["0001", "0002", "0003"]


@pytest.fixture(params=["SQL_ASCII", "LATIN1"])
def encoded_db(request: pytest.FixtureRequest, pg_cluster: PgCluster) -> Iterator[str]:
    """A fresh database in a non-UTF8 encoding (dropped afterwards); yields its URL."""
    name = "enc_" + uuid.uuid4().hex[:12]
    pg_cluster.admin(
        f"CREATE DATABASE \"{name}\" ENCODING '{request.param}' TEMPLATE template0 "
        "LC_COLLATE 'C' LC_CTYPE 'C'"
    )
    try:
        yield pg_cluster.url(name)
    finally:
        pg_cluster.admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def cli(db_url: str, d: Path, *args: str) -> subprocess.CompletedProcess[str]:
    r = run_cli(*args, "--dir", str(d), env={"DATABASE_URL": db_url}, timeout=120)
    assert "Traceback" not in r.stderr, r.stderr
    return r


def query(db_url: str, sql: str) -> list[tuple]:  # type: ignore[type-arg]
    """Rows read through a UTF8 client connection, whatever the database's encoding."""
    with psycopg.connect(db_url, autocommit=True, client_encoding="UTF8") as conn:
        return conn.execute(sql).fetchall()  # type: ignore[arg-type]


def ledger(db_url: str) -> list[str]:
    return [r[0] for r in query(db_url, "SELECT version FROM schema_migrations ORDER BY version")]


def tables(db_url: str) -> set[str]:
    rows = query(db_url, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    return {r[0] for r in rows}


def seeded(db_url: str) -> list[tuple]:  # type: ignore[type-arg]
    return query(
        db_url, "SELECT c.name, f.label FROM cities c JOIN cafes f ON f.id = c.id ORDER BY c.id"
    )


def test_migrate_round_trip_on_non_utf8_database(encoded_db: str, tmp_path: Path) -> None:
    d = tmp_path / "migrations"
    d.mkdir()
    for fname, body in MIGRATIONS.items():
        (d / fname).write_bytes(body.encode("utf-8"))

    r = cli(encoded_db, d, "migrate", "up")
    assert r.returncode == 0, r.stderr
    assert ledger(encoded_db) == VERSIONS
    assert seeded(encoded_db) == [("Zürich", "café")]

    r = cli(encoded_db, d, "migrate", "status")
    assert r.returncode == 0, r.stderr
    assert all(v in r.stdout for v in VERSIONS), r.stdout

    r = cli(encoded_db, d, "migrate", "status", "--json")
    assert r.returncode == 0, r.stderr
    st = json.loads(r.stdout)
    assert st["pending"] == [] and not st["problems"], st
    assert [a["version"] for a in st["applied"]] == VERSIONS, st

    r = cli(encoded_db, d, "migrate", "up")
    assert r.returncode == 0, r.stderr
    assert "up to date" in r.stdout + r.stderr

    r = cli(encoded_db, d, "migrate", "down", "--target", "0")
    assert r.returncode == 0, r.stderr
    assert ledger(encoded_db) == [] and tables(encoded_db) == {"schema_migrations"}

    r = cli(encoded_db, d, "migrate", "up")
    assert r.returncode == 0, r.stderr
    assert ledger(encoded_db) == VERSIONS
    assert seeded(encoded_db) == [("Zürich", "café")]


@pytest.mark.parametrize("encoded_db", ["LATIN1"], indirect=True)
def test_character_latin1_cannot_hold_is_a_located_migration_error(
    encoded_db: str, tmp_path: Path
) -> None:
    d = tmp_path / "migrations"
    d.mkdir()
    (d / "0001_t.sql").write_text(UP.format(up="CREATE TABLE t (id int);", down="DROP TABLE t;"))
    (d / "0002_price.sql").write_text(
        UP.format(
            up="CREATE TABLE p (s text);\nINSERT INTO p VALUES ('5 €');", down="DROP TABLE p;"
        ),
        encoding="utf-8",
    )
    r = cli(encoded_db, d, "migrate", "up")
    assert r.returncode == ExitCode.MIGRATION, r.stderr
    assert (
        '0002_price.sql:3: character with byte sequence 0xe2 0x82 0xac in encoding "UTF8" has no equivalent in encoding "LATIN1"'
        in r.stderr
    ), r.stderr
    assert "unexpected" not in r.stderr, r.stderr
    assert ledger(encoded_db) == ["0001"] and tables(encoded_db) == {"schema_migrations", "t"}
