from pathlib import Path

import pytest

from composekit.errors import ConfigError
from composekit.migrations.source import load_source, version_key
from composekit.migrations.writer import new_migration, next_version


def write(d: Path, files: dict[str, str | bytes]) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    for name, body in files.items():
        (d / name).write_bytes(body if isinstance(body, bytes) else body.encode())
    return d


def test_versions_sort_numerically_and_notes_ignored_files(tmp_path: Path) -> None:
    up = "-- migrate:up\nSELECT 1;\n"
    d = write(
        tmp_path, {"10_b.sql": up, "9_a.sql": up, "20260101120000_c.sql": up, "README.md": "hi"}
    )
    src = load_source(d)
    assert [m.version for m in src.migrations] == ["9", "10", "20260101120000"]
    assert src.ignored == ["README.md"] and src.format == "native"
    assert version_key("1.10") > version_key("1.9")


def test_duplicate_versions_are_config_errors(tmp_path: Path) -> None:
    up = "-- migrate:up\nSELECT 1;\n"
    with pytest.raises(
        ConfigError,
        match=r"duplicate migration version .*(001_a.sql and 1_b.sql|1_b.sql and 001_a.sql)",
    ):
        load_source(write(tmp_path / "a", {"001_a.sql": up, "1_b.sql": up}))


def test_unparseable_name_and_missing_up_marker(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot parse migration file name 'add_users.sql'"):
        load_source(write(tmp_path / "a", {"add_users.sql": "SELECT 1;"}))
    with pytest.raises(ConfigError, match="has no '-- migrate:up' line"):
        load_source(write(tmp_path / "b", {"1_x.sql": "SELECT 1;"}))


def test_sections_lines_and_crlf_bom_checksum(tmp_path: Path) -> None:
    text = "-- migrate:up\nCREATE TABLE a (id int);\n\n-- migrate:down\nDROP TABLE a;\n"
    a = load_source(write(tmp_path / "a", {"1_a.sql": text})).migrations[0]
    b = load_source(
        write(tmp_path / "b", {"1_a.sql": b"\xef\xbb\xbf" + text.replace("\n", "\r\n").encode()})
    ).migrations[0]
    assert a.checksum == b.checksum
    assert a.up.first_line == 2 and a.down is not None and a.down.first_line == 5
    assert [s.line for s in a.up.statements()] == [2]


def test_dollar_quotes_comments_and_strings_survive_splitting(tmp_path: Path) -> None:
    text = (
        "-- migrate:up\n"
        "-- a comment; with a semicolon\n"
        "CREATE FUNCTION f() RETURNS text LANGUAGE plpgsql AS $body$\nBEGIN\n  RETURN 'a;b';\nEND\n$body$;\n"
        "INSERT INTO t VALUES ('x;y'); /* c; */ SELECT 1;\n"
    )
    m = load_source(write(tmp_path, {"1_f.sql": text})).migrations[0]
    stmts = m.up.statements()
    assert (
        len(stmts) == 3
        and stmts[0].sql.startswith("CREATE FUNCTION")
        and stmts[0].sql.endswith("$body$")
    )
    assert [s.line for s in stmts] == [3, 8, 8]
    assert m.transactional


@pytest.mark.parametrize(
    "sql, transactional",
    [
        ("CREATE INDEX CONCURRENTLY i ON t (a);", False),
        ("DROP INDEX CONCURRENTLY IF EXISTS i;", False),
        ("REINDEX INDEX CONCURRENTLY i;", False),
        ("VACUUM ANALYZE t;", False),
        ("ALTER SYSTEM SET work_mem = '8MB';", False),
        ("BEGIN; CREATE TABLE x (); COMMIT;", False),
        ("REFRESH MATERIALIZED VIEW CONCURRENTLY mv;", True),
        ("SELECT 'CREATE INDEX CONCURRENTLY';", True),
        ("-- VACUUM later\nCREATE TABLE v (id int);", True),
        ("CREATE FUNCTION g() RETURNS void LANGUAGE plpgsql AS $$ BEGIN COMMIT; END $$;", True),
    ],
)
def test_non_transactional_detection(tmp_path: Path, sql: str, transactional: bool) -> None:
    m = load_source(write(tmp_path, {"1_x.sql": f"-- migrate:up\n{sql}\n"})).migrations[0]
    assert m.transactional is transactional, m.reason


def test_directives(tmp_path: Path) -> None:
    d = write(
        tmp_path,
        {
            "1_a.sql": "-- migrate:up transaction:false\nSELECT 1;\n",
            "2_b.sql": "-- composekit:no-transaction\n-- migrate:up\nSELECT 1;\n",
        },
    )
    assert [m.transactional for m in load_source(d).migrations] == [False, False]


def test_golang_migrate_and_flyway_layouts(tmp_path: Path) -> None:
    g = load_source(
        write(
            tmp_path / "g",
            {
                "1_a.up.sql": "CREATE TABLE a ();",
                "1_a.down.sql": "DROP TABLE a;",
                "2_b.up.sql": "SELECT 1;",
            },
        )
    )
    assert g.format == "golang-migrate" and [m.down is not None for m in g.migrations] == [
        True,
        False,
    ]
    f = load_source(
        write(
            tmp_path / "f",
            {
                "V1__a.sql": "SELECT 1;",
                "V1.10__c.sql": "SELECT 1;",
                "V1.9__b.sql": "SELECT 1;",
                "U1__a.sql": "SELECT 2;",
            },
        )
    )
    assert f.format == "flyway" and [m.version for m in f.migrations] == ["1", "1.9", "1.10"]
    assert f.migrations[0].down is not None


def test_next_version_keeps_padding_or_uses_timestamps(tmp_path: Path) -> None:
    assert next_version(["0001", "0002"]) == "0003"
    assert len(next_version(["20240101000000"])) == 14
    assert next_version(["29990101000000"]) == "29990101000001"  # never lower than what exists
    paths = new_migration(tmp_path / "m", "Add users: email index!")
    assert [p.name for p in paths] == ["0001_add_users_email_index.sql"]
    assert "-- migrate:up" in paths[0].read_text()
    assert [p.name for p in new_migration(tmp_path / "m", "second")] == ["0002_second.sql"]


def test_every_duplicate_group_is_listed(tmp_path: Path) -> None:
    up = "-- migrate:up\nSELECT 1;\n"
    files = {"001_a.sql": up, "1_b.sql": up, "2_c.sql": up, "002_d.sql": up, "3_e.sql": up}
    with pytest.raises(ConfigError) as err:
        load_source(write(tmp_path / "a", files))
    assert err.value.message == (
        "duplicate migration versions 001: 001_a.sql and 1_b.sql have the same number; "
        "002: 002_d.sql and 2_c.sql have the same number"
    )
    golang = {
        f"{v}_x{i}.up.sql": "SELECT 1;"
        for i, v in enumerate(["1", "1", "2", "2", "3", "3", "4", "4"])
    }
    with pytest.raises(ConfigError) as err:
        load_source(write(tmp_path / "b", golang))
    assert err.value.message.endswith("; and 1 more (below)") and len(err.value.details) == 4
    assert err.value.details[3] == "4: 4_x6.up.sql, 4_x7.up.sql"


def test_pop_directories_apply_as_they_are(tmp_path: Path) -> None:
    """gobuffalo/pop (and Ory's fork): one file per dialect, `.postgres.` preferred over the
    generic one, other databases' files and fizz skipped, `.autocommit.` = no transaction."""
    d = write(
        tmp_path / "pop",
        {
            "20200101000001_users.up.sql": "CREATE TABLE users (id serial); -- generic",
            "20200101000001_users.down.sql": "DROP TABLE users;",
            "20200101000001_users.postgres.up.sql": "CREATE TABLE users (id bigserial);",
            "20200101000001_users.postgres.down.sql": "DROP TABLE users;",
            "20200101000001_users.mysql.up.sql": "CREATE TABLE users (id int AUTO_INCREMENT);",
            "20200101000001_users.sqlite3.up.sql": "CREATE TABLE users (id integer);",
            "20200101000001_users.cockroach.up.sql": "CREATE TABLE users (id int);",
            "20200101000002_users_idx.postgres.autocommit.up.sql": "CREATE INDEX u_id ON users (id);",
            "20200101000002_users_idx.postgres.down.sql": "",
            "20200101000003_email.up.sql": "ALTER TABLE users ADD COLUMN email text;",
            "20200101000003_email.down.sql": "-- no-op: the column stays\n",
            "20200101000004_seed.up.fizz": 'sql("SELECT 1")',
        },
    )
    src = load_source(d)
    assert src.format == "golang-migrate"
    assert [(m.version, m.name, m.up.path.name, m.transactional) for m in src.migrations] == [
        ("20200101000001", "users", "20200101000001_users.postgres.up.sql", True),
        (
            "20200101000002",
            "users_idx",
            "20200101000002_users_idx.postgres.autocommit.up.sql",
            False,
        ),
        ("20200101000003", "email", "20200101000003_email.up.sql", True),
    ]
    assert [m.down_is_noop for m in src.migrations] == [False, True, True]
    assert sorted(i.split(" ")[0] for i in src.ignored) == [
        "20200101000001_users.cockroach.up.sql",
        "20200101000001_users.mysql.up.sql",
        "20200101000001_users.sqlite3.up.sql",
        "20200101000004_seed.up.fizz",
    ]
