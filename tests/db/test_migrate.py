"""The migration engine against a real PostgreSQL 15 (host cluster), through the real CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import psycopg
import pytest

from composekit import migrations
from composekit.db import lock_key
from composekit.errors import ExitCode
from tests.helpers import run_cli, start_cli
from tests.pgcluster import PgCluster

UP = "-- migrate:up\n{up}\n-- migrate:down\n{down}\n"


def mig_dir(tmp_path: Path, files: dict[str, str | bytes], name: str = "migrations") -> Path:
    d = tmp_path / name
    d.mkdir(exist_ok=True)
    for fname, body in files.items():
        (d / fname).write_bytes(body if isinstance(body, bytes) else body.encode())
    return d


def five(tmp_path: Path, broken: int | None = None) -> Path:
    files = {}
    for i in range(1, 6):
        up = f"CREATE TABLE t{i} (id int);\nINSERT INTO t{i} VALUES ({i});"
        if i == broken:
            up = f"CREATE TABLE t{i} (id int);\n\nINSERT INTO t{i} VALUES ({i};"  # syntax error: line 4 of the file
        files[f"000{i}_t{i}.sql"] = UP.format(up=up, down=f"DROP TABLE t{i};")
    return mig_dir(tmp_path, files)


def cli(db_url: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, env={"DATABASE_URL": db_url}, timeout=timeout)


def query(db_url: str, sql: str) -> list[tuple]:  # type: ignore[type-arg]
    with psycopg.connect(db_url, autocommit=True) as conn:
        return conn.execute(sql).fetchall()  # type: ignore[arg-type]


def execute(db_url: str, sql: str) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(sql)  # type: ignore[arg-type]


def ledger(db_url: str) -> list[str]:
    return [r[0] for r in query(db_url, "SELECT version FROM schema_migrations ORDER BY version")]


def tables(db_url: str) -> set[str]:
    return {
        r[0] for r in query(db_url, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    }


# -- behaviour ---------------------------------------------------------------------------------------


def test_syntax_error_in_third_of_five(db_url: str, tmp_path: Path) -> None:
    d = five(tmp_path, broken=3)
    r = cli(db_url, "migrate", "up", "--dir", str(d))
    assert r.returncode == ExitCode.MIGRATION
    assert "0003_t3.sql:4: syntax error at or near" in r.stderr
    assert "SQLSTATE 42601" in r.stderr and "0001_t1, 0002_t2" in r.stderr
    assert "Traceback" not in r.stderr
    assert ledger(db_url) == ["0001", "0002"]
    assert tables(db_url) == {"schema_migrations", "t1", "t2"}  # t3 rolled back with its ledger row


def test_runtime_error_is_located_to_its_line(db_url: str, tmp_path: Path) -> None:
    body = "CREATE TABLE u (id int PRIMARY KEY);\nINSERT INTO u VALUES (1);\n\nINSERT INTO u VALUES (1);"
    d = mig_dir(tmp_path, {"1_u.sql": UP.format(up=body, down="DROP TABLE u;")})
    r = cli(db_url, "migrate", "up", "--dir", str(d))
    assert r.returncode == ExitCode.MIGRATION
    assert "1_u.sql:5: duplicate key value violates unique constraint" in r.stderr
    assert "Key (id)=(1) already exists" in r.stderr
    assert tables(db_url) == {"schema_migrations"}


def dump_schema(db_url: str, pg_cluster: PgCluster) -> str:
    """pg_dump --schema-only without the ledger, comments and pg_dump's random \\restrict keys."""
    out = subprocess.run(
        [
            "pg_dump",
            "--schema-only",
            "--no-owner",
            "--exclude-table=schema_migrations",
            "-d",
            db_url,
        ],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PGPASSWORD": pg_cluster.password},
    ).stdout
    return "\n".join(
        ln for ln in out.splitlines() if not ln.startswith(("--", "\\restrict", "\\unrestrict"))
    )


def test_up_down_up_leaves_identical_schema(
    db_url: str, tmp_path: Path, pg_cluster: PgCluster
) -> None:
    d = mig_dir(
        tmp_path,
        {
            "0001_users.sql": UP.format(
                up="CREATE TYPE mood AS ENUM ('ok', 'meh');\n"
                "CREATE TABLE users (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, email text NOT NULL, m mood);",
                down="DROP TABLE users;\nDROP TYPE mood;",
            ),
            "0002_fn.sql": UP.format(
                up="CREATE FUNCTION lower_email() RETURNS trigger LANGUAGE plpgsql AS $$\n"
                "BEGIN NEW.email := lower(NEW.email); RETURN NEW; END;\n$$;\n"
                "CREATE TRIGGER t BEFORE INSERT ON users FOR EACH ROW EXECUTE FUNCTION lower_email();",
                down="DROP TRIGGER t ON users;\nDROP FUNCTION lower_email();",
            ),
            "0003_idx.sql": UP.format(
                up="CREATE INDEX CONCURRENTLY users_email ON users (email);",
                down="DROP INDEX CONCURRENTLY users_email;",
            ),
            "0004_view.sql": UP.format(
                up="CREATE VIEW v_users AS SELECT id, email FROM users;", down="DROP VIEW v_users;"
            ),
        },
    )

    def schema() -> str:
        return dump_schema(db_url, pg_cluster)

    assert cli(db_url, "migrate", "up", "--dir", str(d)).returncode == 0
    first = schema()
    assert "users_email" in first and "lower_email" in first
    r = cli(db_url, "migrate", "down", "--target", "0", "--dir", str(d))
    assert r.returncode == 0, r.stderr
    assert ledger(db_url) == [] and tables(db_url) == {"schema_migrations"}
    assert cli(db_url, "migrate", "up", "--dir", str(d)).returncode == 0
    assert schema() == first


def test_ten_processes_apply_each_migration_exactly_once(db_url: str, tmp_path: Path) -> None:
    files = {"0001_log.sql": UP.format(up="CREATE TABLE log (v text);", down="DROP TABLE log;")}
    for i in range(2, 7):
        files[f"000{i}_m.sql"] = UP.format(
            up=f"CREATE TABLE m{i} (id int);\nINSERT INTO log VALUES ('{i}');\nSELECT pg_sleep(0.2);",
            down=f"DROP TABLE m{i};",
        )
    d = mig_dir(tmp_path, files)
    procs = [
        start_cli("migrate", "up", "--dir", str(d), env={"DATABASE_URL": db_url}) for _ in range(10)
    ]
    results = [(p.wait(timeout=120), p.communicate()[1]) for p in procs]
    assert [rc for rc, _ in results] == [0] * 10, results
    assert ledger(db_url) == ["0001", "0002", "0003", "0004", "0005", "0006"]
    assert sorted(r[0] for r in query(db_url, "SELECT v FROM log")) == ["2", "3", "4", "5", "6"]
    waiters = [err for _, err in results if "waiting for the migration lock held by pid" in err]
    assert waiters, "with 10 at once, some must have waited and said for whom"


def _wait_for_query(db_url: str, needle: str, timeout: float = 20, waiting: bool = False) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        cond = " AND wait_event_type = 'Lock'" if waiting else ""
        rows = query(
            db_url,
            f"SELECT pid FROM pg_stat_activity WHERE query LIKE '%{needle}%' AND pid <> pg_backend_pid(){cond}",
        )
        if rows:
            return int(rows[0][0])
        time.sleep(0.1)
    raise AssertionError(f"no session ran {needle!r} within {timeout}s")


def _wait_gone(db_url: str, pid: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not query(db_url, f"SELECT 1 FROM pg_stat_activity WHERE pid = {pid}"):
            return
        time.sleep(0.1)
    raise AssertionError(f"backend {pid} still alive after the client was killed")


def test_kill9_during_transactional_migration_then_rerun(db_url: str, tmp_path: Path) -> None:
    slow = "SELECT pg_sleep(CASE WHEN current_setting('ck.slow', true) = 'on' THEN 60 ELSE 0 END)"
    d = mig_dir(
        tmp_path,
        {
            "1_a.sql": UP.format(up="CREATE TABLE a (id int);", down="DROP TABLE a;"),
            "2_b.sql": UP.format(up=f"CREATE TABLE b (id int);\n{slow};", down="DROP TABLE b;"),
            "3_c.sql": UP.format(up="CREATE TABLE c (id int);", down="DROP TABLE c;"),
        },
    )
    p = start_cli(
        "migrate", "up", "--dir", str(d), env={"DATABASE_URL": db_url, "PGOPTIONS": "-c ck.slow=on"}
    )
    pid = _wait_for_query(db_url, "pg_sleep(CASE")
    p.send_signal(signal.SIGKILL)
    p.wait()
    _wait_gone(db_url, pid)  # client_connection_check_interval ends the orphaned query
    assert ledger(db_url) == ["1"] and "b" not in tables(db_url)
    r = cli(db_url, "migrate", "up", "--dir", str(d))
    assert r.returncode == 0, r.stderr
    assert ledger(db_url) == ["1", "2", "3"] and {"a", "b", "c"} <= tables(db_url)


def test_kill9_during_create_index_concurrently_then_repair(db_url: str, tmp_path: Path) -> None:
    d = mig_dir(
        tmp_path,
        {
            "1_items.sql": UP.format(
                up="CREATE TABLE items (id int, name text);\nINSERT INTO items SELECT g, 'n' || g FROM generate_series(1, 1000) g;",
                down="DROP TABLE items;",
            ),
            "2_idx.sql": UP.format(
                up="CREATE INDEX CONCURRENTLY items_name ON items (name);",
                down="DROP INDEX CONCURRENTLY items_name;",
            ),
        },
    )
    assert cli(db_url, "migrate", "up", "--target", "1", "--dir", str(d)).returncode == 0
    blocker = psycopg.connect(db_url)  # an open writing transaction makes CONCURRENTLY wait
    blocker.execute("INSERT INTO items VALUES (0, 'zero')")
    p = start_cli(
        "migrate", "up", "--dir", str(d), "--lock-timeout", "120", env={"DATABASE_URL": db_url}
    )
    try:
        backend = _wait_for_query(db_url, "CREATE INDEX CONCURRENTLY", waiting=True)
        p.send_signal(signal.SIGKILL)
        p.wait()
        _wait_gone(db_url, backend)
    finally:
        blocker.commit()
        blocker.close()
    invalid = "SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE NOT i.indisvalid"
    assert query(db_url, invalid) == [("items_name",)]

    st = json.loads(cli(db_url, "migrate", "status", "--json", "--dir", str(d)).stdout)
    assert [(p["kind"], p["version"]) for p in st["problems"]] == [("dirty", "2")]
    r = cli(db_url, "migrate", "up", "--dir", str(d))
    assert (
        r.returncode == ExitCode.MIGRATION
        and "migration 2 is dirty" in r.stderr
        and "repair" in r.stderr
    )
    r = cli(db_url, "migrate", "repair", "--dir", str(d))
    assert r.returncode == 0 and "dropped INVALID index public.items_name left by 2" in r.stdout
    r = cli(db_url, "migrate", "up", "--dir", str(d))
    assert r.returncode == 0, r.stderr
    assert query(db_url, invalid) == []
    assert query(db_url, "SELECT count(*) FROM pg_indexes WHERE indexname = 'items_name'") == [(1,)]
    assert ledger(db_url) == ["1", "2"]


def test_lock_timeout_retries_name_the_blocker_then_succeed(db_url: str, tmp_path: Path) -> None:
    d = mig_dir(
        tmp_path,
        {
            "1_a.sql": UP.format(up="CREATE TABLE a (id int);", down="DROP TABLE a;"),
            "2_b.sql": UP.format(
                up="ALTER TABLE a ADD COLUMN note text;", down="ALTER TABLE a DROP COLUMN note;"
            ),
        },
    )
    assert cli(db_url, "migrate", "up", "--target", "1", "--dir", str(d)).returncode == 0
    blocker = psycopg.connect(db_url + "?application_name=report-job")
    blocker.execute("LOCK TABLE a IN ACCESS SHARE MODE")  # an open read transaction
    blocker_pid = blocker.info.backend_pid
    p = start_cli(
        "migrate", "up", "--dir", str(d), "--lock-timeout", "0.8", env={"DATABASE_URL": db_url}
    )
    seen = []
    assert p.stderr is not None
    for line in p.stderr:  # the blocker goes only once the first lock timeout was reported
        seen.append(line)
        if "retry 1/3" in line:
            break
    blocker.commit()
    blocker.close()
    out, rest = p.communicate(timeout=60)
    err = "".join(seen) + rest
    assert p.returncode == 0, err
    assert f"lock timeout waiting for pid {blocker_pid} (report-job" in err
    assert "retry 1/3" in err
    assert ledger(db_url) == ["1", "2"]


def test_lock_timeout_gives_up_after_retries(db_url: str, tmp_path: Path) -> None:
    d = mig_dir(tmp_path, {"1_a.sql": UP.format(up="CREATE TABLE a (id int);", down="")})
    assert cli(db_url, "migrate", "up", "--dir", str(d)).returncode == 0
    (d / "2_b.sql").write_text(UP.format(up="ALTER TABLE a ADD COLUMN x int;", down=""))
    with psycopg.connect(db_url + "?application_name=stuck-report") as blocker:
        blocker.execute("LOCK TABLE a IN ACCESS SHARE MODE")
        r = run_cli(
            "migrate",
            "up",
            "--dir",
            str(d),
            "--lock-timeout",
            "0.2",
            env={"DATABASE_URL": db_url, "COMPOSEKIT_LOCK_RETRIES": "1"},
        )
    assert r.returncode == ExitCode.MIGRATION
    assert "gave up after 2 tries" in r.stderr and "stuck-report" in r.stderr
    assert ledger(db_url) == ["1"]


def test_migration_lock_waiter_names_the_holder_and_gives_up(db_url: str, tmp_path: Path) -> None:
    d = five(tmp_path)
    with psycopg.connect(db_url + "?application_name=other-deployer", autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", [lock_key("schema_migrations")])
        r = cli(db_url, "migrate", "up", "--dir", str(d), "--lock-wait", "1")
        assert r.returncode == ExitCode.MIGRATION
        assert f"lock held by pid {holder.info.backend_pid}, other-deployer" in r.stderr
        assert "pg_terminate_backend" in r.stderr
    assert "t1" not in tables(db_url)


@pytest.mark.parametrize("layout", ["native-crlf-bom", "golang-migrate", "flyway"])
def test_formats_and_encodings_apply(db_url: str, tmp_path: Path, layout: str) -> None:
    fn = "CREATE FUNCTION add1(i int) RETURNS int LANGUAGE plpgsql AS $fn$\nBEGIN\n  RETURN i + 1; -- ;\nEND\n$fn$;"
    files: dict[str, str | bytes]
    if layout == "native-crlf-bom":
        files = {
            "1_fn.sql": b"\xef\xbb\xbf"
            + UP.format(up=fn, down="DROP FUNCTION add1(int);").replace("\n", "\r\n").encode(),
            "2_t.sql": UP.format(up="CREATE TABLE t (s text DEFAULT 'a;b');", down="DROP TABLE t;"),
        }
    elif layout == "golang-migrate":
        files = {
            "1_fn.up.sql": fn,
            "1_fn.down.sql": "DROP FUNCTION add1(int);",
            "2_t.up.sql": "CREATE TABLE t (s text);",
            "2_t.down.sql": "DROP TABLE t;",
        }
    else:
        files = {
            "V1__fn.sql": fn,
            "U1__fn.sql": "DROP FUNCTION add1(int);",
            "V1.1__t.sql": "CREATE TABLE t (s text);",
            "U1.1__t.sql": "DROP TABLE t;",
        }
    d = mig_dir(tmp_path, files)
    r = cli(db_url, "migrate", "up", "--dir", str(d))
    assert r.returncode == 0, r.stderr
    assert query(db_url, "SELECT add1(41)") == [(42,)]
    assert "t" in tables(db_url)
    assert cli(db_url, "migrate", "down", "--target", "0", "--dir", str(d)).returncode == 0
    assert tables(db_url) == {"schema_migrations"}


def test_no_password_in_any_output(pg_cluster: PgCluster, db_url: str, tmp_path: Path) -> None:
    d = five(tmp_path, broken=2)
    wrong = pg_cluster.url(db_url.rsplit("/", 1)[1], password="Wr0ng-Passw0rd-xyz")
    r = cli(wrong, "migrate", "status", "--dir", str(d))
    assert r.returncode == ExitCode.CONFIG
    assert (
        "the database refused the login at postgres@127.0.0.1" in r.stderr
        and "DATABASE_URL" in r.stderr
    )
    r_json = cli(wrong, "migrate", "up", "--dir", str(d), "--json")
    assert json.loads(r_json.stdout)["exit_code"] == ExitCode.CONFIG
    r2 = cli(wrong, "--debug", "migrate", "up", "--dir", str(d))  # the traceback path
    assert r2.returncode == ExitCode.CONFIG and "Traceback" in r2.stderr, r2.stderr
    r3 = cli(db_url, "migrate", "status", "--json", "--dir", str(d))
    assert r3.returncode == 0 and json.loads(r3.stdout)["pending"], r3.stderr
    r4 = run_cli(
        "migrate",
        "up",
        "--dir",
        str(d),
        "--database-url",
        "postgresql://postgres:Wr0ng-Passw0rd-xyz@127.0.0.1:1/x",
    )
    assert r4.returncode == ExitCode.CONFIG and "cannot reach the database" in r4.stderr
    # libpq's reason, not its tab-indented afterthought ("Is the server running…?": the hint's job)
    [line] = [ln for ln in r4.stderr.splitlines() if ln.startswith("error: ")]
    assert line.endswith("@127.0.0.1:1/x: Connection refused") and "\t" not in r4.stderr, line
    for res in (r, r_json, r2, r3, r4):
        for secret in ("Wr0ng-Passw0rd-xyz", pg_cluster.password):
            assert secret not in res.stdout + res.stderr


def test_edited_applied_migration_blocks_up_and_verify(db_url: str, tmp_path: Path) -> None:
    d = five(tmp_path)
    assert cli(db_url, "migrate", "up", "--target", "0003", "--dir", str(d)).returncode == 0
    f = d / "0002_t2.sql"
    f.write_text(f.read_text().replace("VALUES (2)", "VALUES (22)"))
    r = cli(db_url, "migrate", "up", "--dir", str(d))
    assert r.returncode == ExitCode.VERIFY
    assert (
        "edited migration 0002: 0002_t2.sql changed after it was applied; nothing was applied"
        in r.stderr
    )
    assert ledger(db_url) == ["0001", "0002", "0003"]
    r = cli(db_url, "migrate", "verify", "--dir", str(d))
    assert r.returncode == ExitCode.VERIFY and "edited 0002" in r.stderr
    f.unlink()
    r = cli(db_url, "migrate", "verify", "--dir", str(d))
    assert r.returncode == ExitCode.VERIFY and "missing 0002" in r.stderr and "--forget" in r.stderr


def test_out_of_order_is_refused_unless_allowed(db_url: str, tmp_path: Path) -> None:
    d = five(tmp_path)
    late = (d / "0002_t2.sql").read_text()
    (d / "0002_t2.sql").unlink()
    assert cli(db_url, "migrate", "up", "--dir", str(d)).returncode == 0
    (d / "0002_t2.sql").write_text(late)
    r = cli(db_url, "migrate", "up", "--dir", str(d))
    assert r.returncode == ExitCode.VERIFY and "out-of-order migration 0002" in r.stderr
    r = cli(db_url, "migrate", "up", "--dir", str(d), "--allow-out-of-order")
    assert r.returncode == 0 and ledger(db_url) == ["0001", "0002", "0003", "0004", "0005"]


def test_down_without_down_section_changes_nothing(db_url: str, tmp_path: Path) -> None:
    d = mig_dir(
        tmp_path,
        {
            "1_a.sql": UP.format(up="CREATE TABLE a ();", down="DROP TABLE a;"),
            "2_b.sql": "-- migrate:up\nCREATE TABLE b ();\n",
        },
    )
    assert cli(db_url, "migrate", "up", "--dir", str(d)).returncode == 0
    r = cli(db_url, "migrate", "down", "--target", "0", "--dir", str(d))
    assert (
        r.returncode == ExitCode.MIGRATION
        and "cannot revert 2_b.sql: it has no down section" in r.stderr
    )
    assert ledger(db_url) == ["1", "2"]


def test_atomic_rolls_back_the_whole_run(db_url: str, tmp_path: Path) -> None:
    d = five(tmp_path, broken=4)
    r = cli(db_url, "migrate", "up", "--atomic", "--dir", str(d))
    assert (
        r.returncode == ExitCode.MIGRATION
        and "0004_t4.sql:4" in r.stderr
        and "--atomic" in r.stderr
    )
    assert ledger(db_url) == [] and tables(db_url) == {"schema_migrations"}


def test_adopts_existing_version_only_ledger_and_baseline(db_url: str, tmp_path: Path) -> None:
    execute(
        db_url,
        "CREATE TABLE schema_migrations (version varchar(255) PRIMARY KEY); "
        "INSERT INTO schema_migrations VALUES ('0001'); CREATE TABLE t1 (id int)",
    )
    d = five(tmp_path)
    st = json.loads(cli(db_url, "migrate", "status", "--json", "--dir", str(d)).stdout)
    assert st["current_version"] == "0001" and len(st["pending"]) == 4 and st["problems"] == []
    r = cli(db_url, "migrate", "baseline", "0002", "--dir", str(d))
    assert r.returncode == 0 and ledger(db_url) == ["0001", "0002"]
    execute(db_url, "CREATE TABLE t2 (id int)")
    assert cli(db_url, "migrate", "up", "--dir", str(d)).returncode == 0
    cols = {
        r[0]
        for r in query(
            db_url,
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'schema_migrations'",
        )
    }
    assert {
        "version",
        "name",
        "checksum",
        "duration_ms",
        "applied_by",
        "applied_at",
        "dirty",
    } <= cols
    assert ledger(db_url) == ["0001", "0002", "0003", "0004", "0005"]


def test_plan_and_dry_run_change_nothing(db_url: str, tmp_path: Path) -> None:
    d = mig_dir(
        tmp_path,
        {
            "1_a.sql": UP.format(up="CREATE TABLE a (id int);", down="DROP TABLE a;"),
            "2_i.sql": UP.format(
                up="CREATE INDEX CONCURRENTLY ai ON a (id);", down="DROP INDEX ai;"
            ),
        },
    )
    plan = json.loads(cli(db_url, "migrate", "plan", "--json", "--dir", str(d)).stdout)["plan"]
    assert [(s["version"], s["transactional"]) for s in plan] == [("1", True), ("2", False)]
    assert plan[1]["sql"] == "CREATE INDEX CONCURRENTLY ai ON a (id);"
    r = cli(db_url, "migrate", "up", "--dry-run", "--dir", str(d))
    assert r.returncode == 0 and "WITHOUT a transaction" in r.stdout
    assert tables(db_url) == set()  # not even the ledger


def test_library_api(db_url: str, tmp_path: Path) -> None:
    d = five(tmp_path)
    assert migrations.is_up_to_date(db_url, d) is False
    seen: list[str] = []
    result = migrations.upgrade(db_url, d, progress=seen.append)
    assert [a.version for a in result.done] == ["0001", "0002", "0003", "0004", "0005"]
    assert any(s.startswith("applied 0003_t3") for s in seen)
    assert migrations.is_up_to_date(db_url, d) is True
    assert migrations.status(db_url, d).current == "0005"
    assert migrations.upgrade(db_url, d).done == []


def test_new_then_up(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    r = run_cli("migrate", "new", "create widgets", cwd=tmp_path)
    assert r.returncode == 0 and "0001_create_widgets.sql" in r.stdout
    f = tmp_path / "migrations" / "0001_create_widgets.sql"
    f.write_text(
        f.read_text().replace("-- migrate:up\n", "-- migrate:up\nCREATE TABLE widgets ();\n")
    )
    r = run_cli("migrate", "up", env={"DATABASE_URL": db_url}, cwd=tmp_path)
    assert r.returncode == 0 and "widgets" in tables(db_url)


GOLANG_LEDGER = (
    "CREATE TABLE schema_migrations (version bigint NOT NULL PRIMARY KEY, dirty boolean NOT NULL); "
    "INSERT INTO schema_migrations VALUES (2, false)"
)


def _assert_golang_ledger_refused(db_url: str, r: subprocess.CompletedProcess[str]) -> None:
    """One error naming golang-migrate with its fix, exit 3, and the database as it was."""
    assert r.returncode == ExitCode.CONFIG, (r.args, r.returncode, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr
    assert [ln for ln in r.stderr.splitlines() if ln.startswith("error:")] == [
        "error: schema_migrations looks like golang-migrate's ledger "
        "(one row holding the latest version)"
    ], r.stderr
    assert "fix: rename it, then `composekit migrate baseline <that version>`" in r.stderr
    assert query(db_url, "SELECT version, dirty FROM schema_migrations") == [(2, False)]
    cols = query(
        db_url,
        "SELECT column_name FROM information_schema.columns "
        "WHERE table_name = 'schema_migrations' ORDER BY ordinal_position",
    )
    assert cols == [("version",), ("dirty",)]  # no ledger column added
    assert tables(db_url) == {"schema_migrations"}  # no migration ran


def test_golang_migrate_ledger_is_refused_with_the_fix(db_url: str, tmp_path: Path) -> None:
    execute(db_url, GOLANG_LEDGER)
    d = five(tmp_path)
    for args in (
        ["up"],
        ["up", "--allow-out-of-order"],
        ["down"],
        ["baseline", "0002"],
        ["repair"],
    ):
        _assert_golang_ledger_refused(db_url, cli(db_url, "migrate", *args, "--dir", str(d)))


def test_golang_migrate_ledger_is_refused_by_read_only_verbs(db_url: str, tmp_path: Path) -> None:
    execute(db_url, GOLANG_LEDGER)
    d = five(tmp_path)
    for verb in ("status", "verify", "plan"):
        _assert_golang_ledger_refused(db_url, cli(db_url, "migrate", verb, "--dir", str(d)))


def test_repair_forget_removes_a_missing_migrations_ledger_row(db_url: str, tmp_path: Path) -> None:
    d = five(tmp_path)
    assert cli(db_url, "migrate", "up", "--dir", str(d)).returncode == 0
    (d / "0003_t3.sql").unlink()
    r = cli(db_url, "migrate", "verify", "--dir", str(d))
    assert r.returncode == ExitCode.VERIFY
    assert "missing 0003" in r.stderr and "repair --forget" in r.stderr
    assert "Traceback" not in r.stderr

    r = cli(db_url, "migrate", "repair", "--forget", "0003", "--dir", str(d))
    assert r.returncode == 0, r.stderr
    assert "forgot ledger entry 0003" in r.stdout
    assert ledger(db_url) == ["0001", "0002", "0004", "0005"]
    assert "t3" in tables(db_url)  # forgetting touches the ledger only, not the schema
    r = cli(db_url, "migrate", "verify", "--dir", str(d))
    assert r.returncode == 0, r.stderr
    assert "ok: 4 applied migrations match their files; 0 pending" in r.stdout

    for version in ("0003", "0009"):  # already forgotten; never applied
        r = cli(db_url, "migrate", "repair", "--forget", version, "--dir", str(d))
        assert r.returncode == ExitCode.USAGE, (version, r.stderr)
        assert f"error: {version} is not in schema_migrations" in r.stderr
        assert "Traceback" not in r.stderr
        assert ledger(db_url) == ["0001", "0002", "0004", "0005"]


def test_down_steps_reverts_exactly_n_newest(db_url: str, tmp_path: Path) -> None:
    d = five(tmp_path)
    assert cli(db_url, "migrate", "up", "--dir", str(d)).returncode == 0
    r = cli(db_url, "migrate", "down", "--steps", "2", "--dir", str(d))
    assert r.returncode == 0, r.stderr
    assert "reverted 2 migration(s); now at 0003" in r.stdout
    assert ledger(db_url) == ["0001", "0002", "0003"]
    assert tables(db_url) == {"schema_migrations", "t1", "t2", "t3"}
    r = cli(db_url, "migrate", "down", "--steps", "1", "--dir", str(d))
    assert r.returncode == 0, r.stderr
    assert "reverted 1 migration(s); now at 0002" in r.stdout
    assert ledger(db_url) == ["0001", "0002"]
    assert tables(db_url) == {"schema_migrations", "t1", "t2"}
    r = cli(db_url, "migrate", "down", "--dir", str(d))  # no --steps/--target: the newest one
    assert r.returncode == 0, r.stderr
    assert "reverted 1 migration(s); now at 0001" in r.stdout
    assert ledger(db_url) == ["0001"]
    assert tables(db_url) == {"schema_migrations", "t1"}


def test_editing_a_down_section_is_not_drift(db_url: str, tmp_path: Path) -> None:
    d = five(tmp_path)
    assert cli(db_url, "migrate", "up", "--dir", str(d)).returncode == 0
    f = d / "0005_t5.sql"
    f.write_text(f.read_text().replace("DROP TABLE t5;", "DROP TABLE t5;\nCREATE TABLE marker ();"))
    r = cli(db_url, "migrate", "verify", "--dir", str(d))
    assert r.returncode == 0, r.stderr
    assert "ok: 5 applied migrations match their files" in r.stdout
    assert "edited" not in r.stdout + r.stderr
    r = cli(db_url, "migrate", "up", "--dir", str(d))
    assert r.returncode == 0, r.stderr
    assert "database is up to date" in r.stdout
    assert "edited" not in r.stdout + r.stderr
    assert ledger(db_url) == ["0001", "0002", "0003", "0004", "0005"]
    r = cli(db_url, "migrate", "down", "--dir", str(d))
    assert r.returncode == 0, r.stderr
    assert ledger(db_url) == ["0001", "0002", "0003", "0004"]
    assert tables(db_url) == {"schema_migrations", "t1", "t2", "t3", "t4", "marker"}


def test_repair_forget_with_an_unknown_version_changes_nothing(db_url: str, tmp_path: Path) -> None:
    d = five(tmp_path)
    assert cli(db_url, "migrate", "up", "--dir", str(d)).returncode == 0
    (d / "0003_t3.sql").unlink()
    r = cli(db_url, "migrate", "repair", "--forget", "0003", "--forget", "0009", "--dir", str(d))
    assert r.returncode == ExitCode.USAGE and "0009 is not in schema_migrations" in r.stderr
    assert ledger(db_url) == ["0001", "0002", "0003", "0004", "0005"]


def test_repair_forget_of_a_non_version_is_a_usage_error(db_url: str, tmp_path: Path) -> None:
    d = five(tmp_path)
    assert cli(db_url, "migrate", "up", "--dir", str(d)).returncode == 0
    r = cli(db_url, "migrate", "repair", "--forget", "abc", "--dir", str(d))
    assert r.returncode == ExitCode.USAGE, r.stderr
    assert "abc" in r.stderr and "unexpected" not in r.stderr
    assert ledger(db_url) == ["0001", "0002", "0003", "0004", "0005"]


def test_up_steps_applies_at_most_n(db_url: str, tmp_path: Path) -> None:
    d = five(tmp_path)
    r = cli(db_url, "migrate", "up", "--steps", "2", "--dir", str(d))
    assert r.returncode == 0, r.stderr
    assert r.stdout == "applied 2 migration(s); now at 0002\n"
    assert ledger(db_url) == ["0001", "0002"]
    assert tables(db_url) == {"schema_migrations", "t1", "t2"}
    r = cli(db_url, "migrate", "up", "-n", "2", "--dir", str(d))  # the next two, not from the start
    assert r.returncode == 0, r.stderr
    assert r.stdout == "applied 2 migration(s); now at 0004\n"
    assert ledger(db_url) == ["0001", "0002", "0003", "0004"]
    r = cli(db_url, "migrate", "up", "--steps", "5", "--dir", str(d))  # at most N: one is left
    assert r.returncode == 0, r.stderr
    assert r.stdout == "applied 1 migration(s); now at 0005\n"
    assert ledger(db_url) == ["0001", "0002", "0003", "0004", "0005"]
    r = cli(db_url, "migrate", "up", "--steps", "1", "--dir", str(d))
    assert r.returncode == 0, r.stderr
    assert r.stdout == "database is up to date\n"
    assert tables(db_url) == {"schema_migrations", "t1", "t2", "t3", "t4", "t5"}


def test_plan_down_shows_what_down_would_revert_and_changes_nothing(
    db_url: str, tmp_path: Path
) -> None:
    d = five(tmp_path)
    r = cli(db_url, "migrate", "plan", "--down", "--dir", str(d))
    assert r.returncode == 0, r.stderr
    assert r.stdout == "nothing to do\n"
    assert tables(db_url) == set()  # planning creates no ledger
    (d / "0006_i.sql").write_text(
        UP.format(up="CREATE INDEX t1_id ON t1 (id);", down="DROP INDEX CONCURRENTLY t1_id;")
    )
    assert cli(db_url, "migrate", "up", "--dir", str(d)).returncode == 0
    before = tables(db_url)

    r = cli(db_url, "migrate", "plan", "--down", "--dir", str(d))  # default: the newest one
    assert r.returncode == 0, r.stderr
    assert r.stdout == (
        "-- down 0006_i (0006_i.sql), WITHOUT a transaction (line 4: DROP INDEX CONCURRENTLY t1_id)\n"
        "DROP INDEX CONCURRENTLY t1_id;\n\n"
    )
    r = cli(db_url, "migrate", "plan", "--down", "--steps", "3", "--json", "--dir", str(d))
    assert r.returncode == 0, r.stderr
    plan = json.loads(r.stdout)["plan"]
    assert [(s["version"], s["direction"], s["transactional"], s["sql"]) for s in plan] == [
        ("0006", "down", False, "DROP INDEX CONCURRENTLY t1_id;"),
        ("0005", "down", True, "DROP TABLE t5;"),
        ("0004", "down", True, "DROP TABLE t4;"),
    ]
    assert plan[1]["file"] == str(d / "0005_t5.sql")
    r = cli(db_url, "migrate", "plan", "--down", "--target", "0003", "--dir", str(d))
    assert r.returncode == 0, r.stderr
    heads = [ln for ln in r.stdout.splitlines() if ln.startswith("-- down ")]
    assert heads == [
        "-- down 0006_i (0006_i.sql), WITHOUT a transaction (line 4: DROP INDEX CONCURRENTLY t1_id)",
        "-- down 0005_t5 (0005_t5.sql), in a transaction",
        "-- down 0004_t4 (0004_t4.sql), in a transaction",
    ]
    assert ledger(db_url) == ["0001", "0002", "0003", "0004", "0005", "0006"]
    assert tables(db_url) == before
    assert query(db_url, "SELECT count(*) FROM pg_indexes WHERE indexname = 't1_id'") == [(1,)]
    # and the revert runs it as planned: DROP INDEX CONCURRENTLY would fail inside a transaction
    r = cli(db_url, "migrate", "down", "--dir", str(d))
    assert r.returncode == 0, r.stderr
    assert ledger(db_url) == ["0001", "0002", "0003", "0004", "0005"]
    assert query(db_url, "SELECT count(*) FROM pg_indexes WHERE indexname = 't1_id'") == [(0,)]


def test_down_target_reverts_only_the_versions_above_it(db_url: str, tmp_path: Path) -> None:
    d = five(tmp_path)
    assert cli(db_url, "migrate", "up", "--dir", str(d)).returncode == 0
    r = cli(db_url, "migrate", "down", "--target", "0002", "--dir", str(d))
    assert r.returncode == 0, r.stderr
    assert r.stdout == "reverted 3 migration(s); now at 0002\n"
    reverted = [ln for ln in r.stderr.splitlines() if "reverted" in ln]
    assert [ln.split()[2] for ln in reverted] == ["0005_t5", "0004_t4", "0003_t3"]  # newest first
    assert ledger(db_url) == ["0001", "0002"]
    assert tables(db_url) == {"schema_migrations", "t1", "t2"}
    r = cli(db_url, "migrate", "down", "--target", "2", "--dir", str(d))  # numeric: 2 is 0002
    assert r.returncode == 0, r.stderr
    assert "reverted" not in r.stdout + r.stderr
    assert ledger(db_url) == ["0001", "0002"]
    r = cli(db_url, "migrate", "down", "--target", "0009", "--dir", str(d))
    assert r.returncode == ExitCode.USAGE
    assert f"error: no migration with version 0009 in {d}" in r.stderr
    assert "Traceback" not in r.stderr
    assert ledger(db_url) == ["0001", "0002"]
    assert tables(db_url) == {"schema_migrations", "t1", "t2"}


@pytest.mark.parametrize("layout", ["golang-migrate", "flyway"])
def test_new_writes_the_directorys_own_format(db_url: str, tmp_path: Path, layout: str) -> None:
    if layout == "golang-migrate":
        d = mig_dir(
            tmp_path,
            {
                "0001_a.up.sql": "CREATE TABLE a ();",
                "0001_a.down.sql": "DROP TABLE a;",
                "0002_b.up.sql": "CREATE TABLE b ();",
                "0002_b.down.sql": "DROP TABLE b;",
            },
        )
        up_name, down_name, version = "0003_add_c.up.sql", "0003_add_c.down.sql", "0003"
    else:
        d = mig_dir(
            tmp_path,
            {
                "V1__a.sql": "CREATE TABLE a ();",
                "U1__a.sql": "DROP TABLE a;",
                "V1.1__b.sql": "CREATE TABLE b ();",
                "U1.1__b.sql": "DROP TABLE b;",
            },
        )
        up_name, down_name, version = "V2__add_c.sql", "U2__add_c.sql", "2"
    before = {p.name for p in d.iterdir()}
    r = run_cli("migrate", "new", "add c", "--dir", str(d))
    assert r.returncode == 0, r.stderr
    assert r.stdout == f"created {d / up_name}\ncreated {d / down_name}\n"
    assert {p.name for p in d.iterdir()} == before | {up_name, down_name}  # no native file
    (d / up_name).write_text("CREATE TABLE c (id int);\n")
    (d / down_name).write_text("DROP TABLE c;\n")
    r = cli(db_url, "migrate", "up", "--dir", str(d))
    assert r.returncode == 0, r.stderr
    assert r.stdout == f"applied 3 migration(s); now at {version}\n"
    assert ledger(db_url)[-1] == version
    assert tables(db_url) == {"schema_migrations", "a", "b", "c"}
    r = cli(db_url, "migrate", "down", "--dir", str(d))  # reverted with the new down/undo file
    assert r.returncode == 0, r.stderr
    assert tables(db_url) == {"schema_migrations", "a", "b"}
    assert version not in ledger(db_url) and len(ledger(db_url)) == 2


def test_table_option_keeps_the_ledger_in_that_table(db_url: str, tmp_path: Path) -> None:
    d = five(tmp_path)
    r = cli(db_url, "migrate", "up", "--table", "app_migrations", "--dir", str(d))
    assert r.returncode == 0, r.stderr
    assert "created app_migrations" in r.stderr
    assert tables(db_url) == {
        "app_migrations",
        "t1",
        "t2",
        "t3",
        "t4",
        "t5",
    }  # no schema_migrations
    rows = query(db_url, "SELECT version, name FROM app_migrations ORDER BY version")
    assert rows == [("0001", "t1"), ("0002", "t2"), ("0003", "t3"), ("0004", "t4"), ("0005", "t5")]
    r = cli(db_url, "migrate", "status", "--table", "app_migrations", "--dir", str(d))
    assert r.returncode == 0 and r.stdout.endswith("current: 0005; 0 pending; no drift\n")
    r = cli(db_url, "migrate", "status", "--dir", str(d))  # the default table: nothing applied
    assert r.returncode == 0 and r.stdout.endswith("current: none; 5 pending; no drift\n")
    r = cli(db_url, "migrate", "verify", "--table", "app_migrations", "--dir", str(d))
    assert r.returncode == 0 and "ok: 5 applied migrations match their files; 0 pending" in r.stdout
    r = cli(db_url, "migrate", "down", "--table", "app_migrations", "--steps", "2", "--dir", str(d))
    assert r.returncode == 0 and r.stdout == "reverted 2 migration(s); now at 0003\n", r.stderr
    assert [v for (v,) in query(db_url, "SELECT version FROM app_migrations ORDER BY 1")] == [
        "0001",
        "0002",
        "0003",
    ]
    assert tables(db_url) == {"app_migrations", "t1", "t2", "t3"}

    # a schema-qualified ledger, for a second set of migrations in the same database
    execute(db_url, "CREATE SCHEMA ops")
    other = mig_dir(
        tmp_path, {"1_o.sql": UP.format(up="CREATE TABLE o ();", down="DROP TABLE o;")}, "other"
    )
    r = cli(db_url, "migrate", "up", "--table", "ops.ledger", "--dir", str(other))
    assert r.returncode == 0 and r.stdout == "applied 1 migration(s); now at 1\n", r.stderr
    assert query(db_url, "SELECT version, name FROM ops.ledger") == [("1", "o")]
    r = cli(db_url, "migrate", "status", "--table", "ops.ledger", "--dir", str(other))
    assert r.returncode == 0 and r.stdout.endswith("current: 1; 0 pending; no drift\n"), r.stderr
    r = cli(db_url, "migrate", "up", "--table", "ops.ledger", "--dir", str(other))
    assert r.returncode == 0 and r.stdout == "database is up to date\n", r.stderr
    assert tables(db_url) == {"app_migrations", "t1", "t2", "t3", "o"}
    r = cli(db_url, "migrate", "up", "--table", "a.b.c", "--dir", str(d))
    assert r.returncode == ExitCode.CONFIG
    assert (
        r.stderr == "error: bad ledger table name 'a.b.c'\n  fix: use 'table' or 'schema.table'\n"
    )
    assert tables(db_url) == {"app_migrations", "t1", "t2", "t3", "o"}


def test_format_option_overrides_detection(db_url: str, tmp_path: Path) -> None:
    g = mig_dir(tmp_path, {"1_a.up.sql": "CREATE TABLE a ();", "1_a.down.sql": "DROP TABLE a;"})
    refused = {
        "native": "error: duplicate migration version 1: 1_a.down.sql, 1_a.up.sql\n"
        "  fix: give each a version of its own (`composekit migrate new` picks the next free one)\n",
        "flyway": "error: cannot parse migration file name '1_a.down.sql' (flyway format)\n"
        "  fix: name it V<version>__name.sql (undo: U<version>__name.sql)\n",
        "bogus": "error: unknown migrations format 'bogus'\n"
        "  fix: use one of: auto, native, golang-migrate, flyway\n",
    }
    for fmt, stderr in refused.items():
        r = cli(db_url, "migrate", "up", "--format", fmt, "--dir", str(g))
        assert r.returncode == ExitCode.CONFIG, (fmt, r.stdout, r.stderr)
        assert r.stderr == stderr
        assert tables(db_url) == set()
    r = cli(db_url, "migrate", "up", "--format", "golang-migrate", "--dir", str(g))
    assert r.returncode == 0 and r.stdout == "applied 1 migration(s); now at 1\n", r.stderr
    assert ledger(db_url) == ["1"] and tables(db_url) == {"schema_migrations", "a"}
    # `new` in an empty directory: the forced format, not the native default
    e = tmp_path / "empty"
    r = run_cli("migrate", "new", "first", "--format", "flyway", "--dir", str(e))
    assert r.returncode == 0, r.stderr
    assert r.stdout == f"created {e / 'V1__first.sql'}\ncreated {e / 'U1__first.sql'}\n"
    assert sorted(p.name for p in e.iterdir()) == ["U1__first.sql", "V1__first.sql"]


def test_missing_applied_file_blocks_up(db_url: str, tmp_path: Path) -> None:
    d = five(tmp_path)
    assert cli(db_url, "migrate", "up", "--target", "0003", "--dir", str(d)).returncode == 0
    (d / "0002_t2.sql").unlink()
    r = cli(db_url, "migrate", "up", "--dir", str(d))
    assert r.returncode == ExitCode.VERIFY
    assert r.stderr == (
        f"error: missing migration 0002: applied t2 but no file in {d}; nothing was applied\n"
        "  fix: restore the file; if it was removed on purpose: "
        "`composekit migrate repair --forget VERSION`\n"
    )
    assert r.stdout == ""
    assert ledger(db_url) == ["0001", "0002", "0003"]  # 0004 and 0005 stay pending
    assert tables(db_url) == {"schema_migrations", "t1", "t2", "t3"}


@pytest.mark.parametrize(
    ("files", "stderr"),
    [
        (
            {"001_x.sql": UP.format(up="CREATE TABLE x ();", down="DROP TABLE x;")},
            "error: duplicate migration version 0001: 0001_t1.sql and 001_x.sql have the same number\n"
            "  fix: give each a version of its own (`composekit migrate new` picks the next free one); "
            "versions compare as numbers, so 001 and 1 collide\n",
        ),
        (
            {"abc.sql": UP.format(up="CREATE TABLE x ();", down="DROP TABLE x;")},
            "error: cannot parse migration file name 'abc.sql' (native format)\n"
            "  fix: name it VERSION_name.sql, e.g. 20260101120000_add_users.sql\n",
        ),
        (
            {"0006_x.sql": "CREATE TABLE x ();\n"},
            "error: 0006_x.sql has no '-- migrate:up' line\n"
            "  fix: start the SQL with a line '-- migrate:up' (and optionally '-- migrate:down')\n",
        ),
    ],
    ids=["duplicate-version", "unparseable-name", "no-up-marker"],
)
def test_bad_migration_files_are_config_errors_before_the_database_is_touched(
    db_url: str, tmp_path: Path, files: dict[str, str | bytes], stderr: str
) -> None:
    d = five(tmp_path)
    mig_dir(tmp_path, files)
    r = cli(db_url, "migrate", "up", "--dir", str(d))
    assert r.returncode == ExitCode.CONFIG, (r.stdout, r.stderr)
    assert r.stderr == stderr and r.stdout == ""  # one line and its fix, no traceback
    assert tables(db_url) == set()  # not even the ledger
    for name in files:
        (d / name).rename(tmp_path / name)
    assert cli(db_url, "migrate", "up", "--target", "0002", "--dir", str(d)).returncode == 0
    for name in files:
        (tmp_path / name).rename(d / name)
    for args in (["up"], ["down"], ["baseline", "0004"]):
        r = cli(db_url, "migrate", *args, "--dir", str(d))
        assert r.returncode == ExitCode.CONFIG, (args, r.stdout, r.stderr)
        assert r.stderr == stderr and r.stdout == ""
        assert ledger(db_url) == ["0001", "0002"]
        assert tables(db_url) == {"schema_migrations", "t1", "t2"}


@pytest.mark.parametrize("layout", ["native", "golang-migrate"])
def test_an_empty_down_section_is_a_no_op_that_removes_the_ledger_row(
    db_url: str, tmp_path: Path, layout: str
) -> None:
    """Real projects leave downs empty or comment-only after a data backfill; golang-migrate and
    dbmate run them as no-ops (and such projects test up → down all → up)."""
    if layout == "native":
        d = mig_dir(
            tmp_path,
            {
                "1_users.sql": UP.format(
                    up="CREATE TABLE users (id int, plan text);", down="DROP TABLE users;"
                ),
                "2_backfill.sql": "-- migrate:up\nUPDATE users SET plan = 'free';\n-- migrate:down\n-- no-op\n",
            },
        )
    else:
        d = mig_dir(
            tmp_path,
            {
                "1_users.up.sql": "CREATE TABLE users (id int, plan text);",
                "1_users.down.sql": "DROP TABLE users;",
                "2_backfill.up.sql": "UPDATE users SET plan = 'free';",
                "2_backfill.down.sql": "",
            },
        )
    assert cli(db_url, "migrate", "up", "--dir", str(d)).returncode == 0
    plan = cli(db_url, "migrate", "plan", "--down", "--dir", str(d)).stdout
    assert (
        plan.startswith("-- down 2_backfill (2_backfill.")
        and "no SQL: only its ledger row is removed" in plan
    )
    r = cli(db_url, "migrate", "down", "--target", "0", "--dir", str(d))
    assert r.returncode == 0, r.stderr
    assert "2_backfill: its down section holds no SQL; removing its ledger row only" in r.stderr
    assert "reverted 2 migration(s); now at nothing applied" in r.stdout
    assert ledger(db_url) == [] and "users" not in tables(db_url)
    assert cli(db_url, "migrate", "up", "--dir", str(d)).returncode == 0
    assert ledger(db_url) == ["1", "2"]
    r = cli(db_url, "migrate", "down", "--target", "2", "--dir", str(d))
    assert r.returncode == 0 and "nothing to revert; at 2" in r.stdout


def test_a_down_section_marked_transaction_false_runs_statement_by_statement(
    db_url: str, tmp_path: Path
) -> None:
    """dbmate's `-- migrate:down transaction:false`: a failure keeps what ran before it."""
    d = mig_dir(
        tmp_path,
        {
            "1_a.sql": "-- migrate:up\nCREATE TABLE a (id int);\n"
            "-- migrate:down transaction:false\nCREATE TABLE ran_alone (id int);\nSELECT 1/0;\n",
            "2_b.sql": "-- migrate:up\nCREATE TABLE b (id int);\n"
            "-- migrate:down\nCREATE TABLE in_tx (id int);\nSELECT 1/0;\n",
        },
    )
    assert cli(db_url, "migrate", "up", "--dir", str(d)).returncode == 0
    plan = json.loads(
        cli(db_url, "migrate", "plan", "--down", "--target", "0", "--json", "--dir", str(d)).stdout
    )
    assert [(p["version"], p["transactional"], p["reason"]) for p in plan["plan"]] == [
        ("2", True, ""),
        ("1", False, "directive"),
    ]
    r = cli(db_url, "migrate", "down", "--dir", str(d))  # 2: one transaction, nothing kept
    assert r.returncode == ExitCode.MIGRATION and "in_tx" not in tables(db_url)
    assert ledger(db_url) == ["1", "2"]
    (d / "2_b.sql").write_text(
        "-- migrate:up\nCREATE TABLE b (id int);\n-- migrate:down\nDROP TABLE b;\n"
    )
    assert cli(db_url, "migrate", "down", "--dir", str(d)).returncode == 0
    r = cli(db_url, "migrate", "down", "--dir", str(d))  # 1: statement by statement
    assert r.returncode == ExitCode.MIGRATION and "ran_alone" in tables(db_url)


def test_target_with_steps_and_a_ledger_in_a_missing_schema_are_clear_errors(
    db_url: str, tmp_path: Path
) -> None:
    d = five(tmp_path)
    for verb in (("up",), ("down",), ("plan", "--down")):
        r = cli(db_url, "migrate", *verb, "--target", "0002", "--steps", "1", "--dir", str(d))
        assert r.returncode == ExitCode.USAGE and "--target and --steps both" in r.stderr, r.stderr
    r = cli(db_url, "migrate", "up", "--table", "nosuch.ledger", "--dir", str(d))
    assert r.returncode == ExitCode.CONFIG, r.stderr
    assert "schema nosuch does not exist" in r.stderr and "CREATE SCHEMA nosuch" in r.stderr
    assert "Traceback" not in r.stderr and tables(db_url) == set()


def test_golang_and_pop_directories_go_up_down_all_and_up_again_as_they_are(
    db_url: str, tmp_path: Path, pg_cluster: PgCluster
) -> None:
    d = mig_dir(
        tmp_path,
        {
            "1_users.up.sql": "CREATE TABLE users (id int, plan text);",
            "1_users.down.sql": "DROP TABLE users;",
            "2_backfill.up.sql": "UPDATE users SET plan = 'free' WHERE plan IS NULL;",
            "2_backfill.down.sql": "",  # empty: nothing to undo
            "3_note.up.sql": "COMMENT ON TABLE users IS 'accounts';",
            "3_note.down.sql": "-- no-op: the comment may stay\n",
            "4_idx.postgres.autocommit.up.sql": "CREATE INDEX CONCURRENTLY users_id ON users (id);",
            "4_idx.postgres.down.sql": "DROP INDEX IF EXISTS users_id;",
            "4_idx.mysql.up.sql": "CREATE INDEX users_id ON users (id) ALGORITHM=INPLACE;",
            "4_idx.up.sql": "CREATE INDEX users_id ON users (id); -- generic",
            "4_idx.down.sql": "DROP INDEX users_id;",
        },
    )
    r = cli(db_url, "migrate", "up", "--dir", str(d))
    assert r.returncode == 0, r.stderr
    assert "4_idx: non-transactional (directive), running statement by statement" in r.stderr
    first = dump_schema(db_url, pg_cluster)
    assert "users_id" in first and ledger(db_url) == ["1", "2", "3", "4"]
    r = cli(db_url, "migrate", "down", "--target", "0", "--dir", str(d))
    assert r.returncode == 0, r.stderr
    assert ledger(db_url) == [] and "users" not in tables(db_url)
    assert cli(db_url, "migrate", "up", "--dir", str(d)).returncode == 0
    assert dump_schema(db_url, pg_cluster) == first


@pytest.mark.parametrize("sig", [signal.SIGHUP, signal.SIGINT, signal.SIGTERM])
def test_a_signal_mid_migration_rolls_it_back_and_exits_128_plus_its_number(
    db_url: str, tmp_path: Path, sig: signal.Signals
) -> None:
    """A terminal closing (SIGHUP), Ctrl-C, a CI runner cancelling: the migration under way is
    cancelled and rolled back with its ledger row, those before it stay, exit 128 + n."""
    slow = "SELECT pg_sleep(CASE WHEN current_setting('ck.slow', true) = 'on' THEN 60 ELSE 0 END)"
    d = mig_dir(
        tmp_path,
        {
            "1_a.sql": UP.format(up="CREATE TABLE a (id int);", down="DROP TABLE a;"),
            "2_b.sql": UP.format(up=f"CREATE TABLE b (id int);\n{slow};", down="DROP TABLE b;"),
        },
    )
    p = start_cli(
        "migrate", "up", "--dir", str(d), env={"DATABASE_URL": db_url, "PGOPTIONS": "-c ck.slow=on"}
    )
    pid = _wait_for_query(db_url, "pg_sleep(CASE")
    p.send_signal(sig)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 128 + sig, err
    assert "Traceback" not in err
    _wait_gone(db_url, pid)
    assert ledger(db_url) == ["1"] and "b" not in tables(db_url)


def test_expand_phase_stops_before_the_first_contract_migration(
    db_url: str, tmp_path: Path
) -> None:
    d = mig_dir(
        tmp_path,
        {
            "0001_a.sql": UP.format(up="CREATE TABLE a (id int, old text);", down="DROP TABLE a;"),
            "0002_b.sql": UP.format(
                up="ALTER TABLE a ADD COLUMN new text;", down="ALTER TABLE a DROP COLUMN new;"
            ),
            "0004_d.sql": UP.format(up="CREATE TABLE d (id int);", down="DROP TABLE d;"),
            # marked in the file, before -- migrate:up
            "0005_e.sql": "-- composekit:phase contract\n"
            + UP.format(up="DROP TABLE d;", down="CREATE TABLE d (id int);"),
        },
    )
    (d / "post").mkdir()  # a contract migration by its folder: one version sequence with the rest
    (d / "post" / "0003_drop_old.sql").write_text(
        UP.format(up="ALTER TABLE a DROP COLUMN old;", down="ALTER TABLE a ADD COLUMN old text;")
    )
    source = migrations.load_source(d)
    assert [(m.version, m.contract) for m in source.migrations] == [
        ("0001", False), ("0002", False), ("0003", True), ("0004", False), ("0005", True),
    ]  # fmt: skip
    r = cli(db_url, "migrate", "up", "--dir", str(d), "--phase", "expand")
    assert r.returncode == 0, r.stderr
    assert ledger(db_url) == ["0001", "0002"]  # 0004 waits behind the contract 0003
    r = run_cli("migrate", "up", "--dir", str(d),
                env={"DATABASE_URL": db_url, "COMPOSEKIT_PHASE": "expand"})  # fmt: skip
    assert r.returncode == 0 and "up to date" in r.stdout and ledger(db_url) == ["0001", "0002"]
    r = cli(db_url, "migrate", "up", "--dir", str(d), "--phase", "contract")
    assert r.returncode == 0, r.stderr
    assert ledger(db_url) == ["0001", "0002", "0003", "0004", "0005"]
    assert cli(db_url, "migrate", "up", "--dir", str(d), "--phase", "later").returncode == 2


def test_a_file_statement_timeout_cancels_it_clearly_and_rolls_it_back(
    db_url: str, tmp_path: Path
) -> None:
    d = mig_dir(
        tmp_path,
        {
            "0001_slow.sql": "-- composekit:statement-timeout 500ms\n"
            + UP.format(up="CREATE TABLE s (id int);\nSELECT pg_sleep(3);", down="DROP TABLE s;"),
        },
    )
    r = cli(db_url, "migrate", "up", "--dir", str(d))
    assert r.returncode == ExitCode.MIGRATION and "Traceback" not in r.stderr
    assert "canceling statement due to statement timeout (SQLSTATE 57014)" in r.stderr
    assert "it ran longer than its statement_timeout of 0.5s" in r.stderr
    assert "-- composekit:statement-timeout 10min" in r.stderr  # the fix names the override
    assert "lost the database connection" not in r.stderr
    assert "s" not in tables(db_url) and query(
        db_url, "SELECT count(*) FROM schema_migrations"
    ) == [(0,)]

    (d / "0001_slow.sql").write_text(
        "-- composekit:statement-timeout soon\n" + UP.format(up="SELECT 1;", down="")
    )
    r = cli(db_url, "migrate", "up", "--dir", str(d))
    assert r.returncode == ExitCode.CONFIG and "is not a duration" in r.stderr, r.stderr


def test_a_long_statement_says_how_far_it_is(db_url: str, tmp_path: Path) -> None:
    execute(db_url, "CREATE TABLE big AS SELECT g AS n FROM generate_series(1, 2000000) g")
    d = mig_dir(
        tmp_path,
        {
            "0001_wait.sql": UP.format(up="SELECT pg_sleep(0.6);", down=""),
            "0002_index.sql": UP.format(
                up="CREATE INDEX big_n ON big (n);", down="DROP INDEX big_n;"
            ),
        },
    )
    lines: list[str] = []
    m = migrations.Migrator(db_url, d, progress=lines.append)
    m.long_after, m.long_every = 0.1, 0.1
    m.upgrade()
    assert any(ln.startswith("0001_wait: running for") for ln in lines), lines
    index = [ln for ln in lines if ln.startswith("0002_index: running for")]
    assert any("CREATE INDEX: " in ln for ln in index), index
