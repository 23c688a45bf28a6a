"""backup / restore on the real engine with the postgres stand-in, through the real CLI."""

from __future__ import annotations

import hashlib
import json
import stat
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from composekit.compose import ComposeProject
from composekit.errors import DockerError, ExitCode
from composekit.images import POSTGRES_IMAGE, PYTHON_IMAGE
from tests.apps import database_state
from tests.helpers import on_a_terminal, run_cli

pytestmark = pytest.mark.e2e
PASSWORD = "Backup-Secret-pw-42"

COMPOSE = f"""
services:
  db:
    image: {POSTGRES_IMAGE}
    environment:
      POSTGRES_USER: app
      POSTGRES_PASSWORD: {PASSWORD}
      POSTGRES_DB: appdb
    volumes: [pgdata:/var/lib/postgresql/data]
    healthcheck:
      test: ["CMD-SHELL", "pg_isready -h 127.0.0.1 -U app"]
      interval: 1s
      retries: 30
  web:
    image: {PYTHON_IMAGE}
    command: ["python3", "-m", "http.server", "8000"]
    stop_signal: SIGINT
    depends_on:
      db: {{condition: service_healthy}}
volumes:
  pgdata:
"""

SEED = """
CREATE TABLE users (id serial PRIMARY KEY, email text NOT NULL);
CREATE TABLE orders (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, user_id int REFERENCES users, total numeric);
CREATE SEQUENCE invoice_no START 1000;
CREATE VIEW big_orders AS SELECT * FROM orders WHERE total > 100;
CREATE FUNCTION order_count(u int) RETURNS bigint LANGUAGE sql AS $$ SELECT count(*) FROM orders WHERE user_id = u $$;
INSERT INTO users (email) SELECT 'u' || g || '@example.com' FROM generate_series(1, 50) g;
INSERT INTO orders (user_id, total) SELECT 1 + g % 50, g * 3.5 FROM generate_series(1, 500) g;
SELECT nextval('invoice_no'), nextval('invoice_no');
CREATE TABLE schema_migrations (version varchar(255) PRIMARY KEY);
INSERT INTO schema_migrations VALUES ('0001'), ('0002');
"""


def psql(project: ComposeProject, sql: str) -> str:
    return project.exec(
        "db",
        ["psql", "-X", "-q", "-tA", "-v", "ON_ERROR_STOP=1", "-U", "app", "-d", "appdb", "-c", sql],
    ).stdout.strip()


def fingerprint(project: ComposeProject) -> dict[str, str]:
    return database_state(project, "app", "appdb")


@pytest.fixture
def seeded(compose_factory: Callable[..., ComposeProject]) -> ComposeProject:
    project = compose_factory(COMPOSE)
    (project.project_dir / "composekit.toml").write_text(
        f'project_name = "{project.project_name}"\n'
    )
    project.up(wait=True, wait_timeout=60)
    psql(project, SEED)
    return project


def ck(
    project: ComposeProject, *args: str, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    return run_cli("-C", str(project.project_dir), *args, input=input)


def test_round_trip_restores_exactly_and_keeps_a_snapshot(seeded: ComposeProject) -> None:
    project = seeded
    r = ck(project, "backup", "--label", "before upgrade", "--json")
    assert r.returncode == 0, r.stderr
    b = json.loads(r.stdout)
    dump = Path(b["path"])
    backups = project.project_dir / "backups"
    assert stat.S_IMODE(backups.stat().st_mode) == 0o700
    assert stat.S_IMODE(dump.stat().st_mode) == 0o600
    manifest = dump.with_name(dump.name + ".json")
    assert stat.S_IMODE(manifest.stat().st_mode) == 0o600
    assert (b["ledger_version"], b["database"], b["label"], b["verified"]) == (
        "0002",
        "appdb",
        "before upgrade",
        True,
    )
    assert b["server_version"].startswith("15.") and b["compose_project"] == project.project_name
    before = fingerprint(project)

    # what a failed deploy might leave: a new table, an altered one, changed rows, a ledger entry
    psql(
        project,
        "CREATE TABLE extra (id int); ALTER TABLE users ADD COLUMN nickname text; "
        "DELETE FROM orders WHERE id < 10; INSERT INTO schema_migrations VALUES ('0003')",
    )
    changed = fingerprint(project)
    assert changed != before

    r = ck(project, "restore", "--latest")  # no terminal, no --yes
    assert r.returncode == ExitCode.USAGE and "without --yes" in r.stderr
    assert fingerprint(project) == changed  # untouched

    r = ck(project, "restore", "--latest", "--yes", "--json")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert fingerprint(project) == before  # extra gone, users back, rows back, ledger back
    assert psql(project, "SELECT order_count(2)") == "10"
    assert report["ledger_version"] == "0002" and report["stopped_and_restarted"] == ["web"]
    assert project.health("web") == "running"

    listed = json.loads(ck(project, "backup", "list", "--json").stdout)["backups"]
    snap = [x for x in listed if x["label"] == "pre-restore-snapshot"]
    assert len(snap) == 1 and snap[0]["verified"] and snap[0]["ledger_version"] == "0003"
    assert report["snapshot"]["path"] == snap[0]["path"]
    # the snapshot really holds the failed state
    r = ck(project, "restore", Path(snap[0]["path"]).name, "--yes", "--no-snapshot")
    assert r.returncode == 0, r.stderr
    assert fingerprint(project) == changed

    for f in [*backups.iterdir()]:
        assert PASSWORD not in f.read_bytes().decode("latin-1") or f.suffix == ".dump"
    assert PASSWORD not in r.stdout + r.stderr


def test_corrupt_or_truncated_dump_is_refused_before_anything_changes(
    seeded: ComposeProject,
) -> None:
    project = seeded
    b = json.loads(ck(project, "backup", "--json").stdout)
    dump = Path(b["path"])
    psql(project, "INSERT INTO schema_migrations VALUES ('0009')")
    state = fingerprint(project)

    data = bytearray(dump.read_bytes())
    data[len(data) // 2] ^= 0xFF
    dump.write_bytes(bytes(data))
    r = ck(project, "restore", dump.name, "--yes")
    assert r.returncode == ExitCode.VERIFY and "is corrupt: sha256" in r.stderr
    assert "Traceback" not in r.stderr

    truncated = project.project_dir / "truncated.dump"
    truncated.write_bytes(bytes(data[: len(data) // 3]))
    r = ck(project, "restore", str(truncated), "--yes", "--foreign")
    assert r.returncode == ExitCode.VERIFY and "not a valid pg_dump archive" in r.stderr
    assert fingerprint(project) == state
    assert not [p for p in (project.project_dir / "backups").iterdir() if "snapshot" in p.name]

    project.stop(["db"])  # database down: one clear line, Docker's exit code
    r = ck(project, "backup")
    assert r.returncode == ExitCode.DOCKER and "the db service is not running" in r.stderr
    assert "docker compose up -d --wait db" in r.stderr and "Traceback" not in r.stderr


def test_backup_behind_a_lock_times_out_without_a_partial_file(seeded: ComposeProject) -> None:
    project = seeded
    holder = subprocess.Popen(
        project.compose_argv(
            "exec",
            "-T",
            "db",
            "psql",
            "-U",
            "app",
            "-d",
            "appdb",
            "-c",
            "BEGIN; LOCK TABLE orders IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(60);",
        ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while (
            psql(
                project,
                "SELECT count(*) FROM pg_locks WHERE mode = 'AccessExclusiveLock' AND relation = 'orders'::regclass",
            )
            != "1"
        ):
            assert time.monotonic() < deadline, "the lock holder never took its lock"
            time.sleep(0.2)
        r = ck(project, "backup", "--lock-wait-timeout", "1")
        assert r.returncode == ExitCode.DOCKER
        assert "waited 1s for a table lock" in r.stderr and "no backup file was written" in r.stderr
        assert list((project.project_dir / "backups").iterdir()) == []
    finally:
        psql(
            project,
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(60)%' AND pid <> pg_backend_pid()",
        )
        holder.wait(timeout=30)


def test_plain_sql_dump_from_the_old_shell_script_restores(seeded: ComposeProject) -> None:
    project = seeded
    plain = project.project_dir / "backup.sql"
    with open(plain, "wb") as out:  # exactly what the seed script did
        subprocess.run(
            project.compose_argv("exec", "-T", "db", "pg_dump", "-U", "app", "appdb"),
            stdout=out,
            check=True,
        )
    before = fingerprint(project)
    psql(
        project,
        "DROP VIEW big_orders; DELETE FROM users WHERE id > 40 AND id NOT IN (SELECT user_id FROM orders)",
    )
    r = ck(project, "restore", str(plain), "--yes")  # no manifest: where is it from?
    assert r.returncode == ExitCode.VERIFY and "has no manifest" in r.stderr
    assert "--foreign" in r.stderr and fingerprint(project) != before
    r = ck(project, "restore", str(plain), "--yes", "--foreign")
    assert r.returncode == 0, r.stderr
    assert fingerprint(project) == before


def test_restore_knows_where_a_backup_came_from_and_keeps_what_the_database_held(
    seeded: ComposeProject, compose_factory: Callable[..., ComposeProject]
) -> None:
    project = seeded
    psql(
        project,
        "CREATE ROLE reporting; CREATE TABLE reports (id int); ALTER TABLE reports OWNER TO reporting; "
        "ALTER DATABASE appdb SET search_path TO 'app_schema', public; "
        "ALTER DATABASE appdb SET work_mem TO '8MB'; "
        "COMMENT ON DATABASE appdb IS 'the shop''s data'; "
        "REVOKE CONNECT ON DATABASE appdb FROM PUBLIC; GRANT CONNECT ON DATABASE appdb TO reporting",
    )
    props = (
        "SELECT (SELECT setconfig FROM pg_db_role_setting WHERE setdatabase = d.oid AND setrole = 0), "
        "shobj_description(d.oid, 'pg_database'), "
        "ARRAY(SELECT a::text FROM unnest(datacl) a ORDER BY 1) FROM pg_database d "
        "WHERE datname = 'appdb'"
    )
    owner = "SELECT tableowner FROM pg_tables WHERE tablename = 'reports'"
    held = psql(project, props)
    assert "work_mem=8MB" in held and "reporting=c/app" in held
    r = ck(project, "backup", "--label", "mine", "--json")
    assert r.returncode == 0, r.stderr
    mine = Path(json.loads(r.stdout)["path"]).name

    # what a bad day does: ownership, settings, comment, ACL all changed
    psql(
        project,
        "ALTER TABLE reports OWNER TO app; ALTER DATABASE appdb RESET ALL; "
        "COMMENT ON DATABASE appdb IS NULL; GRANT CONNECT ON DATABASE appdb TO PUBLIC",
    )
    assert psql(project, props) != held
    r = ck(project, "restore", "--latest", "--yes")
    assert r.returncode == 0, r.stderr
    assert psql(project, props) == held and psql(project, owner) == "reporting"

    # --latest means the newest backup of this project and database, never the safety snapshot
    # the restore just took: the same command twice restores the same backup
    r = ck(project, "restore", "--latest", "--yes", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["restored"]["path"].endswith(mine)

    # a backup of another project is refused (exit 6, naming where it came from) unless --foreign
    other = compose_factory(COMPOSE, subdir="other")
    (other.project_dir / "composekit.toml").write_text(f'project_name = "{other.project_name}"\n')
    other.up(wait=True, wait_timeout=60)
    psql(other, "CREATE TABLE theirs (id int)")
    r = ck(other, "backup", "--json")
    assert r.returncode == 0, r.stderr
    theirs = Path(json.loads(r.stdout)["path"])
    state = fingerprint(project)
    r = ck(project, "restore", str(theirs), "--yes")
    assert r.returncode == ExitCode.VERIFY, r.stderr
    assert f"is a backup of database appdb of project {other.project_name}" in r.stderr
    assert "--foreign" in r.stderr and fingerprint(project) == state
    databases = "SELECT string_agg(datname, ',' ORDER BY datname) FROM pg_database"
    assert psql(project, databases) == "appdb,postgres,template0,template1"  # no scratch copy
    r = ck(project, "restore", str(theirs), "--yes", "--foreign")
    assert r.returncode == 0, r.stderr
    tables = "SELECT string_agg(tablename, ',') FROM pg_tables WHERE schemaname = 'public'"
    assert psql(project, tables) == "theirs"


def test_a_backup_is_published_only_once_pg_restore_lists_it(seeded: ComposeProject) -> None:
    project = seeded
    backups = project.project_dir / "backups"
    r = ck(project, "backup", "--json")
    assert r.returncode == 0, r.stderr
    b = json.loads(r.stdout)
    dump = Path(b["path"])
    # what the manifest says was verified, checked independently: the bytes and the listing
    assert b["sha256"] == hashlib.sha256(dump.read_bytes()).hexdigest()
    with open(dump, "rb") as f:
        listing = subprocess.run(
            project.compose_argv("exec", "-T", "db", "pg_restore", "--list"),
            stdin=f,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    entries = [ln for ln in listing.splitlines() if ln and not ln.startswith(";")]
    assert b["verified"] is True and b["toc_entries"] == len(entries) > 10

    # --keep N keeps the N newest of this kind
    for label in ("second", "third"):
        assert ck(project, "backup", "--label", label, "--keep", "2").returncode == 0
    labels = [
        x["label"] for x in json.loads(ck(project, "backup", "list", "--json").stdout)["backups"]
    ]
    assert labels == ["third", "second"]
    published = sorted(p.name for p in backups.iterdir())

    # a pg_restore that cannot read the archive: the backup fails and nothing is published
    project.exec(
        "db",
        [
            "sh",
            "-c",
            "cd /usr/lib/postgresql/15/bin && mv pg_restore pg_restore.real && "
            "printf '#!/bin/sh\\necho pg_restore: error: input file is damaged >&2\\nexit 1\\n' > pg_restore && "
            "chmod +x pg_restore",
        ],
    )
    r = ck(project, "backup", "--label", "never")
    assert r.returncode == ExitCode.VERIFY, r.stderr
    assert "is not a valid pg_dump archive: pg_restore: error: input file is damaged" in r.stderr
    assert sorted(p.name for p in backups.iterdir()) == published  # no dump, manifest or partial


# a function an index uses, reading a table without its schema: pg_dump's empty search_path makes
# the restore of this (valid, listable) archive fail at CREATE INDEX, after the tables loaded
UNRESTORABLE = """
CREATE FUNCTION user_weight(u int) RETURNS bigint LANGUAGE plpgsql IMMUTABLE
  AS $$ BEGIN RETURN (SELECT count(*) FROM orders WHERE user_id = u); END $$;
CREATE INDEX users_weight ON users (user_weight(id));
"""


def test_a_restore_that_fails_to_load_leaves_the_live_database_and_no_scratch_copy(
    seeded: ComposeProject,
) -> None:
    project = seeded
    psql(project, UNRESTORABLE)
    assert ck(project, "backup").returncode == 0
    psql(
        project, "DELETE FROM orders WHERE id > 250; INSERT INTO schema_migrations VALUES ('0003')"
    )
    state = fingerprint(project)
    r = ck(project, "restore", "--latest", "--yes")
    assert r.returncode == ExitCode.VERIFY, r.stderr
    assert "the live database appdb was not touched" in r.stderr and "Traceback" not in r.stderr
    # the server's own words, not pg_restore's last line (the statement, or a caret under it)
    [error] = [ln for ln in r.stderr.splitlines() if ln.startswith("error: ")]
    assert 'failed: ERROR: relation "orders" does not exist;' in error, r.stderr
    assert fingerprint(project) == state
    databases = psql(project, "SELECT string_agg(datname, ',' ORDER BY datname) FROM pg_database")
    assert databases == "appdb,postgres,template0,template1"  # the scratch copy is gone
    assert project.health("web") == "running"


def test_the_safety_snapshot_is_taken_after_the_writers_stopped(
    compose_factory: Callable[..., ComposeProject],
) -> None:
    # the web writes one last row as it stops (as an app flushes its queue on SIGTERM)
    writer = COMPOSE.replace(
        f"""  web:
    image: {PYTHON_IMAGE}
    command: ["python3", "-m", "http.server", "8000"]
    stop_signal: SIGINT
""",
        f"""  web:
    image: {POSTGRES_IMAGE}
    environment: {{PGPASSWORD: {PASSWORD}}}
    stop_signal: SIGTERM
    entrypoint:
      - sh
      - -c
      - trap 'psql -h db -U app -d appdb -qc "INSERT INTO goodbyes DEFAULT VALUES"; exit 0' TERM;
        while :; do sleep 1 & wait $$!; done
""",
    )
    project = compose_factory(writer)
    (project.project_dir / "composekit.toml").write_text(
        f'project_name = "{project.project_name}"\n'
    )
    project.up(wait=True, wait_timeout=60)
    psql(project, SEED + "CREATE TABLE goodbyes (id serial, at timestamptz DEFAULT now());")
    assert ck(project, "backup").returncode == 0

    r = ck(project, "restore", "--latest", "--yes", "--json")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["stopped_and_restarted"] == ["web"]
    # the web is back before the replaced copy is dropped (whose forced checkpoint writes out the
    # whole restored copy), and the drop still happens
    err = r.stderr
    assert err.index("starting web again") < err.index("dropping the replaced copy"), err
    assert psql(project, "SELECT count(*) FROM pg_database WHERE datname LIKE '%__ck_%'") == "0"
    assert psql(project, "SELECT count(*) FROM goodbyes") == "0"  # the backup's state
    # the snapshot holds the row the web wrote as it stopped for the swap
    snapshot = Path(report["snapshot"]["path"]).name
    r = ck(project, "restore", snapshot, "--yes", "--no-snapshot")
    assert r.returncode == 0, r.stderr
    assert psql(project, "SELECT count(*) FROM goodbyes") == "1"


def test_restore_refuses_what_does_not_fit_and_keeps_its_options(seeded: ComposeProject) -> None:
    project = seeded
    backups = project.project_dir / "backups"
    psql(
        project,
        "CREATE ROLE reporting; CREATE TABLE reports (id int); ALTER TABLE reports OWNER TO reporting",
    )
    r = ck(project, "backup", "--json")
    assert r.returncode == 0, r.stderr
    b = json.loads(r.stdout)
    # the manifest names the cluster it came from
    assert b["system_identifier"] == psql(
        project, "SELECT system_identifier FROM pg_control_system()"
    )
    dump = Path(b["path"])
    manifest = dump.with_name(dump.name + ".json")
    original = manifest.read_text()
    psql(project, "INSERT INTO schema_migrations VALUES ('0003')")
    state = fingerprint(project)

    def with_manifest(**changes: str) -> subprocess.CompletedProcess[str]:
        manifest.write_text(json.dumps({**json.loads(original), **changes}))
        return ck(project, "restore", dump.name, "--yes")

    # another database, another cluster, a ledger the dump does not hold: refused, nothing changed
    r = with_manifest(database="otherdb")
    assert r.returncode == ExitCode.VERIFY and "is a backup of database otherdb" in r.stderr
    r = with_manifest(system_identifier="7000000000000000001")
    assert r.returncode == ExitCode.VERIFY and "was taken from another cluster" in r.stderr
    r = with_manifest(ledger_version="0009")
    assert r.returncode == ExitCode.VERIFY, r.stderr
    assert "restored ledger version 0002 differs from the manifest's 0009" in r.stderr
    assert fingerprint(project) == state
    assert not [p for p in backups.iterdir() if "snapshot" in p.name]
    manifest.write_text(original)

    # an owner role that is gone: its objects go to the app user, with a note
    psql(project, "ALTER TABLE reports OWNER TO app; DROP ROLE reporting")
    r = ck(project, "restore", dump.name, "--yes", "--no-snapshot")
    assert r.returncode == 0, r.stderr
    assert "objects owned by reporting (no such role here) now belong to app" in r.stderr
    assert psql(project, "SELECT tableowner FROM pg_tables WHERE tablename = 'reports'") == "app"
    assert not [p for p in backups.iterdir() if "snapshot" in p.name]  # --no-snapshot: none

    # with a snapshot: --latest skips it, --latest --snapshot takes it
    psql(project, "INSERT INTO schema_migrations VALUES ('0003')")
    assert ck(project, "restore", dump.name, "--yes").returncode == 0
    r = ck(project, "restore", "--latest", "--yes", "--no-snapshot", "--json")
    assert json.loads(r.stdout)["restored"]["path"] == str(dump)
    r = ck(project, "restore", "--latest", "--snapshot", "--yes", "--no-snapshot", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["restored"]["label"] == "pre-restore-snapshot"
    assert psql(project, "SELECT max(version) FROM schema_migrations") == "0003"

    # retention never removes a dump it did not write (no manifest)
    hand = backups / "from-the-old-script.dump"
    hand.write_bytes(dump.read_bytes())
    for _ in range(2):
        assert ck(project, "backup", "--keep", "1").returncode == 0
    assert hand.is_file()


def test_on_a_terminal_restore_asks_first(seeded: ComposeProject) -> None:
    """With a terminal and no --yes, restore asks; "n" changes nothing (exit 2), "y" restores."""

    project = seeded
    assert ck(project, "backup").returncode == 0
    psql(project, "INSERT INTO schema_migrations VALUES ('0003')")
    state = fingerprint(project)

    def answer(reply: bytes) -> tuple[int, str]:
        return on_a_terminal("-C", str(project.project_dir), "restore", "--latest", answer=reply)

    code, out = answer(b"n")
    assert "Replace database appdb with" in out and "a safety snapshot is taken first" in out
    assert code == ExitCode.USAGE and "cancelled; nothing was changed" in out, out
    assert fingerprint(project) == state
    code, out = answer(b"y")
    assert code == 0, out
    assert psql(project, "SELECT max(version) FROM schema_migrations") == "0002"


def test_backup_and_restore_as_a_library(seeded: ComposeProject) -> None:
    """README's library entry points, called in-process as a script would."""
    from composekit.backup import take_backup
    from composekit.config import load_settings
    from composekit.dbtarget import DbTarget
    from composekit.restore import restore_backup

    project = seeded
    settings = load_settings(project.project_dir)
    target = DbTarget.from_settings(settings)
    said: list[str] = []
    b = take_backup(target, settings.backups_path, label="from a script", progress=said.append)
    assert b.verified and b.toc_entries > 10 and b.database == "appdb"
    assert any("backup verified" in s for s in said)
    before = fingerprint(project)
    psql(project, "DELETE FROM orders; INSERT INTO schema_migrations VALUES ('0003')")
    report = restore_backup(target, settings.backups_path, b.path.name, stop_services=["web"])
    assert report.ledger_version == "0002" and report.snapshot is not None
    assert report.stopped == ["web"] and fingerprint(project) == before


def test_a_restore_names_its_phases_from_its_own_session(seeded: ComposeProject) -> None:
    """The restore's watch reads pg_restore's query from a psql session of its own: the schema
    (too quick to be seen, often), then the data, then the index build."""
    from composekit.config import load_settings
    from composekit.dbtarget import DbTarget
    from composekit.progress import PHASE, metering
    from composekit.restore import LoadWatch

    project = seeded
    psql(
        project,
        "CREATE TABLE events (id bigint, tag text); "
        "INSERT INTO events SELECT g, md5(g::text) FROM generate_series(1, 400000) g; "
        "CREATE INDEX events_tag ON events (tag)",
    )
    r = ck(project, "backup", "--json")
    assert r.returncode == 0, r.stderr
    dump = Path(json.loads(r.stdout)["path"])
    target = DbTarget.from_settings(load_settings(project.project_dir))
    target.psql("CREATE DATABASE watched", database="postgres")
    shown: list[str] = []  # what a meter is told, looking every 0.05 s
    with (
        open(dump, "rb") as archive,
        LoadWatch(target, "watched") as watch,
        metering(lambda what, done, total: shown.append(what), "restoring", 2, lambda: 1,
                 every=0.05, phase=watch.look, phase_every=0.05),
    ):  # fmt: skip
        target.project.exec_from_file(
            "db", ["pg_restore", "--exit-on-error", "-U", "app", "-d", "watched"], archive,
            timeout=300,
        )  # fmt: skip
    assert "data" in watch.seen and set(watch.seen[: watch.seen.index("data")]) <= {"schema"}
    assert "indexes" in watch.seen[watch.seen.index("data") :], watch.seen
    assert f"restoring{PHASE}data" in shown, shown  # the meter is told what the watch saw
    count = "SELECT count(*) FROM events"
    assert target.psql(count, database="watched") == "400000" == target.psql(count)


def test_backup_and_restore_show_how_far_they_are_on_a_terminal_in_ci_logs_and_as_json(
    seeded: ComposeProject,
) -> None:
    """The archive offset pg_restore has read is the progress: a redrawn line on a terminal, plain
    lines elsewhere, JSON events with --json — each ending at 100 %."""

    project = seeded
    psql(
        project,
        "INSERT INTO orders (user_id, total) SELECT 1 + g % 50, g FROM generate_series(1, 50000) g",
    )
    plain = ck(project, "backup")  # the first: its total is guessed from the database's size
    assert plain.returncode == 0 and "… backing up appdb: 100.0% (" in plain.stderr, plain.stderr
    done = ck(project, "backup", "--json")  # then from the last backup's size
    b = json.loads(done.stdout)
    name = Path(b["path"]).name
    size = b["size"]
    events = [json.loads(ln) for ln in done.stderr.splitlines() if ln.startswith('{"event"')]
    assert events[-1] == {
        "event": "progress", "what": "backing up appdb", "done": size, "total": size,
        "percent": 100.0, "eta_s": 0.0,
    }, events  # fmt: skip

    r = ck(project, "restore", name, "--yes", "--no-snapshot")  # not a terminal: plain lines
    assert r.returncode == 0, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith(f"… restoring {name}: ")]
    assert lines and lines[-1].startswith(f"… restoring {name}: 100.0% (") and "\r" not in r.stderr

    r = ck(project, "restore", name, "--yes", "--no-snapshot", "--json")
    assert r.returncode == 0, r.stderr
    events = [json.loads(ln) for ln in r.stderr.splitlines() if ln.startswith('{"event"')]
    assert events and events[-1] == {
        "event": "progress", "what": f"restoring {name}", "done": size, "total": size,
        "percent": 100.0, "eta_s": 0.0,
    }  # fmt: skip
    assert json.loads(r.stdout)["restored"]["path"] == b["path"]  # stdout stays the report

    code, text = on_a_terminal(
        "-C", str(project.project_dir), "restore", name, "--yes", "--no-snapshot"
    )
    assert code == 0, text
    assert f"\r… restoring {name}: " in text and f"{name}: 100.0% (" in text, text


def test_the_ledger_read_over_a_session_is_the_one_a_psql_of_its_own_reads(
    seeded: ComposeProject,
) -> None:
    """A deploy's lock step reads the ledger over a psql session started beside the lock's: the
    same rows as a psql of its own; none without a ledger table; and the same rows again when the
    server ended that session while the deploy waited for the lock (another deploy's undo
    replaced the database)."""
    from contextlib import closing

    from composekit.config import load_settings
    from composekit.dbtarget import DbTarget
    from composekit.deploy.steps import ledger_over

    target = DbTarget.from_settings(load_settings(seeded.project_dir))
    plain = target.ledger_rows()
    assert plain is not None and [r.version for r in plain] == ["0001", "0002"]
    with closing(target.session("ledger reader", target.database)) as reader:
        assert ledger_over(target, reader) == plain
        target.psql(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = 'ledger reader'",
            database="postgres",
        )
        time.sleep(0.5)
        with pytest.raises(DockerError):  # the session is gone …
            target.ledger_rows(via=reader)
        assert ledger_over(target, reader) == plain  # … and a psql of its own reads it
    with closing(target.session("ledger reader", "postgres")) as elsewhere:
        assert target.ledger_rows(via=elsewhere) is None
