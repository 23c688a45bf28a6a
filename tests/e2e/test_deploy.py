"""composekit deploy on a scaffolded app, real engine: happy path and every kind of undo."""

from __future__ import annotations

import getpass
import json
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from composekit.compose import ComposeProject
from composekit.deploy import read_history
from composekit.errors import ExitCode
from composekit.images import POSTGRES_IMAGE, PYTHON_IMAGE
from tests.apps import App, fingerprint, migration, release, wait_for_query, web_image
from tests.helpers import Running, run_cli, start_cli

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


# a service that writes to the database all the time (a queue worker, a cron)
WORKER = """
services:
  worker:
    image: ${POSTGRES_IMAGE}
    environment: {PGPASSWORD: "${POSTGRES_PASSWORD}"}
    stop_signal: SIGKILL
    entrypoint: ["sh", "-c", "while :; do psql -h db -U app -d app -qc 'INSERT INTO beats DEFAULT VALUES' || true; sleep 0.2; done"]
    depends_on:
      db: {condition: service_healthy}
"""


def wait_until(check: Callable[[], bool], limit: float = 30) -> None:
    deadline = time.monotonic() + limit
    while not check():
        assert time.monotonic() < deadline, "never happened"
        time.sleep(0.2)


def deploy(where: App | Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``composekit deploy`` for an app (or a checkout of one)."""
    project = where.dir if isinstance(where, App) else where
    return run_cli("-C", str(project), "deploy", "--timeout", "60", *args)


def test_migrator_deploys_and_undoes_every_kind_of_failure(make_app) -> None:  # type: ignore[no-untyped-def]
    app = make_app("migrator")
    plan = deploy(app, "--dry-run")
    assert plan.returncode == 0 and "5. migrate: docker compose run --rm migrator" in plan.stdout
    assert app.project.ps() == []  # a dry run changes nothing

    r = deploy(app)
    assert r.returncode == 0, r.stderr
    assert (
        "<th>bio</th>" in app.page() and app.psql("SELECT version FROM schema_migrations") == "0001"
    )
    # deploy ran the web's healthcheck itself; Docker's own status catches up at its next interval
    deadline = time.monotonic() + 20
    while True:
        st = json.loads(run_cli("-C", str(app.dir), "status", "--json").stdout)
        health = {s["service"]: s["health"] for s in st["services"]}
        if health["web"] != "starting" or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert health == {"db": "healthy", "web": "healthy", "proxy": None}  # the proxy has no check
    assert (st["ledger_version"], st["pending"], st["last_deploy"]["ok"]) == ("0001", [], True)
    assert st["last_backup"]["label"] == "pre-deploy"
    app.psql(
        "INSERT INTO users (email, name) VALUES ('new@example.com', 'Written between deploys')"
    )
    good = fingerprint(app)
    image = web_image(app)

    # 1. migration 2 of 3 fails: the one applied before it is reverted; the old web keeps serving
    migration(
        app,
        "0002_orders.sql",
        "CREATE TABLE orders (id int);\nINSERT INTO orders VALUES (1);",
        "DROP TABLE orders;",
    )
    migration(
        app,
        "0003_broken.sql",
        "ALTER TABLE users ADD COLUMN x int NOT NUL;",
        "ALTER TABLE users DROP COLUMN x;",
    )
    migration(app, "0004_z.sql", "CREATE TABLE z (id int);", "DROP TABLE z;")
    r = deploy(app)  # lint reads the SQL with PostgreSQL's parser: refused before any change
    assert r.returncode == ExitCode.VERIFY, r.stderr
    assert (
        "lint: 1 error(s) in the pending migrations; the first: 0003_broken.sql:2 syntax-error"
        in r.stderr
    )
    assert "fix: fix the SQL at that line" in r.stderr and "--allow-lint" not in r.stderr
    assert fingerprint(app) == good and web_image(app) == image
    r = deploy(app, "--allow-lint")  # and if it runs anyway, the server's error is undone
    assert r.returncode == ExitCode.DEPLOY_UNDONE, r.stderr
    assert "deploy failed at migrate" in r.stderr and "0003_broken.sql:2" in r.stderr
    assert "every completed step was undone" in r.stderr and "Traceback" not in r.stderr
    assert fingerprint(app) == good and web_image(app) == image
    assert "Written between deploys" in app.page()

    # 2. migrations apply but a verify check fails: back to where it was
    (app.dir / "migrations" / "0003_broken.sql").write_text(
        "-- migrate:up\nALTER TABLE users ADD COLUMN x int NULL;\n-- migrate:down\nALTER TABLE users DROP COLUMN x;\n"
    )
    (app.dir / "verify").mkdir()
    (app.dir / "verify" / "no_orders_yet.sql").write_text("SELECT count(*) = 0 FROM orders;\n")
    r = deploy(app)
    assert r.returncode == ExitCode.DEPLOY_UNDONE and "check no_orders_yet.sql failed" in r.stderr
    assert fingerprint(app) == good and web_image(app) == image

    # 3. the new web never becomes healthy: previous web back, migrations undone
    (app.dir / "verify" / "no_orders_yet.sql").unlink()
    app_py = app.dir / "app" / "app.py"
    app_py.write_text(
        app_py.read_text().replace(
            "def main() -> None:\n", "def main() -> None:\n    raise SystemExit('broken release')\n"
        )
    )
    r = deploy(app)
    assert r.returncode == ExitCode.DEPLOY_UNDONE and "deploy failed at web" in r.stderr
    assert "serving again" in r.stderr and "reverted 0004, 0003, 0002" in r.stderr
    assert fingerprint(app) == good and web_image(app) == image
    assert "Written between deploys" in app.page()

    history = json.loads(run_cli("-C", str(app.dir), "history", "--json").stdout)["deploys"]
    assert [h["ok"] for h in history] == [True, False, False, False, False]
    assert [h["ledger_after"] for h in history] == [["0001"]] * 5
    failed = [next(s["name"] for s in h["steps"] if s["status"] == "failed") for h in history[1:]]
    assert failed == ["lock", "migrate", "verify", "web"]  # lock: lint refused it
    # where the last one spent its time, and its undo, newest first after the failure
    shown = run_cli("-C", str(app.dir), "history", "show", "--last")
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert "FAILED at web" in lines[0] and lines[1].startswith("ledger 0001 → 0001")
    labels = [ln.split("█")[0].strip() for ln in lines[2:-2]]
    assert labels.index("web") < labels.index("undo web") < labels.index("undo migrate")
    assert "undone — reverted" in next(ln for ln in lines if ln.strip().startswith("undo migrate"))
    assert run_cli("-C", str(app.dir), "history", "show", "9").returncode == ExitCode.USAGE


def test_two_deploys_from_two_checkouts_never_interleave(make_app, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    app = make_app("migrator")
    assert deploy(app).returncode == 0
    migration(
        app, "0002_slow.sql", "CREATE TABLE slow (id int);\nSELECT pg_sleep(6);", "DROP TABLE slow;"
    )
    other = tmp_path / "ci-runner-2" / app.dir.name  # another machine's checkout, same project
    shutil.copytree(app.dir, other, ignore=shutil.ignore_patterns(".composekit"))
    first = start_cli("-C", str(app.dir), "deploy", "--timeout", "60")
    wait_for_query(app, "pg_sleep(6)", first)

    refused = deploy(other)
    assert refused.returncode == ExitCode.MIGRATION, refused.stderr
    assert "the deploy lock is held by pid" in refused.stderr
    assert f"composekit deploy {getpass.getuser()}@{socket.gethostname()}" in refused.stderr
    assert "Traceback" not in refused.stderr

    waiting = start_cli("-C", str(other), "deploy", "--timeout", "60", "--lock-wait", "120")
    assert first.wait(timeout=120) == 0
    _, err = waiting.communicate(timeout=120)
    assert waiting.returncode == 0, err
    assert "waiting for the deploy lock held by pid" in err
    lock = next(
        s for s in read_history(other)[-1].steps if s.name == "lock"
    )  # it read the ledger only once the first deploy had finished
    assert lock.detail == "ledger at 0002; pending: none"
    assert (
        app.psql("SELECT string_agg(version, ',' ORDER BY version) FROM schema_migrations")
        == "0001,0002"
    )


def test_the_deploy_lock_dies_with_its_holder(make_app) -> None:  # type: ignore[no-untyped-def]
    app = make_app("migrator")
    app.project.up(["db"], wait=True)
    holder = hold_deploy_lock(app)
    refused = deploy(app)
    assert (
        refused.returncode == ExitCode.MIGRATION and "the deploy lock is held by" in refused.stderr
    )
    holder.kill()  # SIGKILL: no cleanup code runs; PostgreSQL ends the session and its lock
    holder.wait()
    assert deploy(app, "--lock-wait", "20").returncode == 0

    # a restore never runs under a deploy either
    holder = hold_deploy_lock(app)
    r = run_cli("-C", str(app.dir), "restore", "--latest", "--yes")
    holder.kill()
    holder.wait()
    assert r.returncode == ExitCode.MIGRATION and "the deploy lock is held by" in r.stderr
    assert "swapping" not in r.stderr
    # …and with --lock-wait it waits for the lock, then restores
    assert run_cli("-C", str(app.dir), "backup", "--label", "now").returncode == 0
    holder = hold_deploy_lock(app)
    waiting = Running("-C", str(app.dir), "restore", "--latest", "--yes", "--lock-wait", "60")
    waiting.wait_for("waiting for the deploy lock held by pid")
    holder.kill()
    holder.wait()
    code, err = waiting.finish()
    assert code == 0 and "swapping" in err, err

    # an applied migration edited afterwards: refused before anything is built or backed up
    applied = app.dir / "migrations" / "0001_add_profile.sql"
    applied.write_text(applied.read_text().replace("bio", "biography"))
    backups = sorted((app.dir / "backups").iterdir())
    r = deploy(app)
    assert r.returncode == ExitCode.VERIFY, r.stderr
    assert "edited 0001: 0001_add_profile.sql changed after it was applied" in r.stderr
    assert "git checkout" in r.stderr and "Traceback" not in r.stderr
    assert sorted((app.dir / "backups").iterdir()) == backups


def hold_deploy_lock(app: App) -> subprocess.Popen[str]:
    """Another process holding the deploy lock (as a deploy on another machine would)."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_DEPLOY_LOCK, str(app.dir)], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    return holder


HOLD_DEPLOY_LOCK = """
import sys, time
from contextlib import ExitStack
from pathlib import Path
from composekit.dbtarget import DbTarget
from composekit.config import load_settings
from composekit.deploy import take_deploy_lock
stack = ExitStack()
take_deploy_lock(DbTarget.from_settings(load_settings(Path(sys.argv[1]))), stack, 0, print)
print("held", flush=True)
time.sleep(600)
"""


def test_app_startup_deploy_migrates_as_the_web_starts(make_app) -> None:  # type: ignore[no-untyped-def]
    app = make_app("app-startup")
    r = deploy(app)
    assert r.returncode == 0, r.stderr
    assert (
        app.psql("SELECT version FROM schema_migrations") == "0001" and "<th>bio</th>" in app.page()
    )
    good = fingerprint(app)
    image = web_image(app)
    migration(app, "0002_orders.sql", "CREATE TABLE orders (id int);", "DROP TABLE orders;")
    migration(app, "0003_broken.sql", "SELECT 1/0;", "SELECT 1;")
    r = deploy(app)
    assert r.returncode == ExitCode.DEPLOY_UNDONE and "deploy failed at web" in r.stderr
    assert fingerprint(app) == good and web_image(app) == image
    assert "<th>bio</th>" in app.page()

    # 0002 ships; a rollback to the web before it meets a ledger it has no file for: that old
    # web refuses to start (missing migration), the gate catches it, the new web comes back
    (app.dir / "migrations" / "0003_broken.sql").unlink()
    assert deploy(app).returncode == 0
    shipped, now = fingerprint(app), web_image(app)
    r = run_cli("-C", str(app.dir), "rollback", "--timeout", "60")
    assert r.returncode == ExitCode.DEPLOY_UNDONE, r.stderr
    assert "missing migration 0002" in r.stderr or "missing 0002" in r.stderr, r.stderr
    assert web_image(app) == now and fingerprint(app) == shipped
    assert app.psql("SELECT max(version) FROM schema_migrations") == "0002"


def test_ctrl_c_during_migrate_undoes_and_exits_130(make_app) -> None:  # type: ignore[no-untyped-def]
    import signal

    app = make_app("migrator")
    assert deploy(app).returncode == 0
    good = fingerprint(app)
    image = web_image(app)
    migration(app, "0002_fast.sql", "CREATE TABLE fast (id int);", "DROP TABLE fast;")
    migration(
        app,
        "0003_slow.sql",
        "CREATE TABLE slow (id int);\nSELECT pg_sleep(60);",
        "DROP TABLE slow;",
    )
    p = start_cli("-C", str(app.dir), "deploy", "--timeout", "60")
    wait_for_query(app, "pg_sleep(60)", p)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=120)
    assert p.returncode == ExitCode.INTERRUPTED, err
    assert "interrupted" in err and "every completed step was undone" in err
    assert fingerprint(app) == good and web_image(app) == image
    assert [s for s in app.project.ps() if s.service == "migrator"] == []


def rollback(app: App, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli("-C", str(app.dir), "rollback", "--timeout", "60", *args)


def test_rollback_returns_to_a_kept_web_image_and_leaves_the_database_alone(make_app) -> None:  # type: ignore[no-untyped-def]
    app = make_app("migrator")
    with open(app.dir / "composekit.toml", "a") as f:
        f.write("\n[web]\nkeep_images = 1\n")
    images = []
    for n in (1, 2, 3):
        release(app, n)
        assert deploy(app).returncode == 0
        images.append(web_image(app))
    kept = json.loads(rollback(app, "--list", "--json").stdout)["images"]
    assert [k["image_id"] for k in kept] == [images[1]]  # v1's tag was pruned (keep_images = 1)
    app.psql("INSERT INTO users (email, name) VALUES ('late@example.com', 'Written after r3')")
    data = fingerprint(app)

    r = rollback(app)
    assert r.returncode == 0, r.stderr
    assert web_image(app) == images[1] and "<h1>Users r2</h1>" in app.page()
    assert fingerprint(app) == data and "Written after r3" in app.page()
    kept = json.loads(rollback(app, "--list", "--json").stdout)["images"]
    assert [(k["image_id"], k["running"]) for k in kept] == [(images[2], False)]

    assert rollback(app).returncode == 0  # and forward again
    assert web_image(app) == images[2] and "<h1>Users r3</h1>" in app.page()

    # a kept image that no longer starts: the web it replaced comes back, exit 7
    subprocess.run(
        ["docker", "tag", "composekit/postgres:15", f"{app.name}-app:ck-29990101T000000-broken"],
        check=True,
    )
    r = rollback(app, "ck-29990101T000000-broken")
    assert r.returncode == ExitCode.DEPLOY_UNDONE, r.stderr
    assert "rollback failed at web" in r.stderr and "serving again" in r.stderr
    assert web_image(app) == images[2] and "<h1>Users r3</h1>" in app.page()
    assert rollback(app, "nope").returncode == ExitCode.USAGE

    history = json.loads(run_cli("-C", str(app.dir), "history", "--json").stdout)["deploys"]
    assert [(h["kind"], h["ok"]) for h in history] == [("deploy", True)] * 3 + [
        ("rollback", True),
        ("rollback", True),
        ("rollback", False),
        ("rollback", False),  # "nope": refused before anything changed, still on record
    ]


def test_restore_undo_reports_rows_and_maintenance_keeps_the_web_off(make_app) -> None:  # type: ignore[no-untyped-def]
    app = make_app("migrator")
    assert deploy(app).returncode == 0
    image = web_image(app)
    users = int(app.psql("SELECT count(*) FROM users"))
    # no down section, and a verify check that fails after it committed: undo = restore the backup
    (app.dir / "migrations" / "0002_audit.sql").write_text(
        "-- migrate:up\nCREATE TABLE audit (id int);\nSELECT pg_sleep(4);\n"
    )
    (app.dir / "verify").mkdir()
    (app.dir / "verify" / "always_fails.sql").write_text("SELECT false;\n")

    # 1. the old web keeps serving during the window: a write lands, the restore loses it and says so
    p = start_cli("-C", str(app.dir), "deploy", "--timeout", "60")
    wait_for_query(app, "pg_sleep(4)", p)
    app.psql(
        "INSERT INTO users (email, name) VALUES ('window@example.com', 'Written in the window')"
    )
    _, err = p.communicate(timeout=120)
    assert p.returncode == ExitCode.DEPLOY_UNDONE, err
    assert f"public.users {users + 1} → {users}" in err and "public.audit 0 → absent" in err
    assert "restored" in err and "the failed state is in the snapshot" in err
    assert app.psql("SELECT count(*) FROM users WHERE name = 'Written in the window'") == "0"
    snapshots = [
        b
        for b in json.loads(run_cli("-C", str(app.dir), "backup", "list", "--json").stdout)[
            "backups"
        ]
        if b["label"] == "pre-restore-snapshot"
    ]
    assert len(snapshots) == 1  # where that write can be recovered from

    # 2. --maintenance with [deploy] maintenance = web + a worker that writes all the time: both
    # are off for the window, so no write can land; both come back after, the database as it was
    (app.dir / "compose.override.yaml").write_text(
        WORKER
    )  # read beside compose.yaml, as by Compose
    app.project = ComposeProject(project_dir=app.dir, project_name=app.name, env_file=".env")
    with open(app.dir / "composekit.toml", "a") as toml:
        toml.write('\n[deploy]\nmaintenance = ["web", "worker"]\n')
    app.psql("CREATE TABLE beats (at timestamptz DEFAULT clock_timestamp())")
    app.project.up(["worker"], wait=True, wait_timeout=60)
    beats = "SELECT count(*) || ' up to ' || max(at) FROM beats"
    wait_until(lambda: app.psql("SELECT count(*) FROM beats") != "0")
    good = {k: v for k, v in fingerprint(app).items() if k != "beats"}
    p = start_cli("-C", str(app.dir), "deploy", "--timeout", "60", "--maintenance")
    wait_for_query(app, "pg_sleep(4)", p)
    with pytest.raises(OSError):
        app.page()  # nothing listens while the migrations run
    during = app.psql(beats)
    time.sleep(1.5)
    assert app.psql(beats) == during  # the worker is stopped too
    _, err = p.communicate(timeout=120)
    assert p.returncode == ExitCode.DEPLOY_UNDONE, err
    assert "public.users" not in err and "started web, worker again" in err
    assert web_image(app) == image and "<th>bio</th>" in app.page()
    assert {s.service for s in app.project.ps(all=False)} == {"db", "proxy", "web", "worker"}
    assert {k: v for k, v in fingerprint(app).items() if k != "beats"} == good
    # restored with its writers off: every row written until they stopped is there
    until = during.split(" up to ")[1]
    assert (
        app.psql(f"SELECT count(*) || ' up to ' || max(at) FROM beats WHERE at <= '{until}'")
        == during
    )

    # and a good --maintenance deploy ends with the new web serving
    (app.dir / "verify" / "always_fails.sql").unlink()
    r = deploy(app, "--maintenance")
    assert r.returncode == 0, r.stderr
    assert app.psql("SELECT count(*) FROM audit") == "0" and "<th>bio</th>" in app.page()


def test_init_scripts_deploy_ships_the_web_and_refuses_changed_scripts(make_app) -> None:  # type: ignore[no-untyped-def]
    app = make_app("init-scripts")
    r = deploy(app)
    assert r.returncode == 0, r.stderr
    assert "recorded 2 init script(s) for this database" in r.stderr
    assert "<th>bio</th>" in app.page()  # created by init-scripts/002 on the empty volume

    release(app, 2)  # a code-only release deploys as usual
    r = deploy(app)
    assert r.returncode == 0 and "2 init script(s) unchanged" in r.stderr, r.stderr
    assert "<h1>Users r2</h1>" in app.page()
    image = web_image(app)

    # a schema change written into an init script would silently never reach this database
    (app.dir / "init-scripts" / "003_city.sql").write_text(
        "ALTER TABLE users ADD COLUMN city text;\n"
    )
    release(app, 3)
    r = deploy(app)
    assert r.returncode == ExitCode.VERIFY, r.stderr
    assert (
        "init-scripts changed since this database was initialised: 003_city.sql (new)" in r.stderr
    )
    assert "make it a migration" in r.stderr and "Traceback" not in r.stderr
    assert web_image(app) == image and "<h1>Users r2</h1>" in app.page()  # nothing changed

    (app.dir / "init-scripts" / "003_city.sql").unlink()
    (app.dir / "migrations" / "0001_city.sql").write_text(
        "-- migrate:up\nALTER TABLE users ADD COLUMN city text;\n"
    )
    r = deploy(app)
    assert r.returncode == ExitCode.CONFIG and "never runs migrations" in r.stderr, r.stderr


def test_verify_compares_the_schema_with_the_expected_file(make_app) -> None:  # type: ignore[no-untyped-def]
    app = make_app("migrator")
    assert deploy(app).returncode == 0
    w = run_cli("-C", str(app.dir), "schema", "--write")
    assert w.returncode == 0 and "expected_schema" in w.stdout, w.stderr
    schema = (app.dir / "schema.sql").read_text()
    assert "bio text" in schema and "\\restrict" not in schema and "--" not in schema
    with open(app.dir / "composekit.toml", "a") as f:
        f.write('\n[deploy]\nexpected_schema = "schema.sql"\n')
    good = fingerprint(app)

    release(app, 2)  # same schema: passes
    r = deploy(app)
    assert r.returncode == 0 and "schema equals schema.sql" in r.stderr, r.stderr

    migration(
        app,
        "0002_city.sql",
        "ALTER TABLE users ADD COLUMN city text;",
        "ALTER TABLE users DROP COLUMN city;",
    )
    r = deploy(app)  # the migration is not in schema.sql: verify fails, all undone
    assert r.returncode == ExitCode.DEPLOY_UNDONE, r.stderr
    assert "the database schema differs from schema.sql in" in r.stderr
    assert "+    city text" in r.stderr  # the differing lines are shown
    assert "composekit schema --write" in r.stderr and fingerprint(app) == good

    (app.dir / "schema.sql").unlink()
    r = deploy(app)
    assert r.returncode == ExitCode.CONFIG and "schema.sql does not exist" in r.stderr


def test_timeout_is_one_deadline_for_the_whole_deploy(make_app) -> None:  # type: ignore[no-untyped-def]
    app = make_app("migrator")
    assert deploy(app).returncode == 0
    image = web_image(app)
    # a slow migration, then a web that runs but never passes its healthcheck
    migration(app, "0002_slow.sql", "SELECT pg_sleep(3);", "SELECT 1;")
    app_py = app.dir / "app" / "app.py"
    app_py.write_text(
        app_py.read_text().replace(
            'return self._send(200, "ok\\n")', 'return self._send(503, "never ready\\n")'
        )
    )
    t0 = time.monotonic()
    r = run_cli("-C", str(app.dir), "deploy", "--timeout", "10")
    elapsed = time.monotonic() - t0
    assert r.returncode == ExitCode.DEPLOY_UNDONE, r.stderr
    assert "within the --timeout of 10s" in r.stderr
    record = json.loads(run_cli("-C", str(app.dir), "history", "--json").stdout)["deploys"][-1]
    forward = sum(s["seconds"] for s in record["steps"])
    # every step before the failure and the failed web step together: the 10 s, not 10 s each
    # (the migration alone takes 3 s, so a per-phase timeout would spend over 13 s here)
    assert forward <= 10.8, record["steps"]
    assert elapsed < 10 + 15, elapsed  # and then the undo: the previous web back, 0002 reverted
    assert web_image(app) == image and "<th>bio</th>" in app.page()
    assert app.psql("SELECT string_agg(version, ',') FROM schema_migrations") == "0001"


def test_a_failing_build_changes_nothing_and_the_health_url_gates_the_release(make_app) -> None:  # type: ignore[no-untyped-def]
    app = make_app("migrator")
    assert deploy(app).returncode == 0
    migration(app, "0002_notes.sql", "CREATE TABLE notes (id int);", "DROP TABLE notes;")
    good, image = fingerprint(app), web_image(app)
    backups = list((app.dir / "backups").glob("*.dump"))

    # 1. the build fails (it runs beside the backup): one line naming it, undone, nothing migrated;
    # the backup it took is kept
    dockerfile = app.dir / "Dockerfile"
    working = dockerfile.read_text()
    dockerfile.write_text(working.replace("COPY app/ app/", "RUN exit 3\nCOPY app/ app/"))
    r = deploy(app)
    assert r.returncode == ExitCode.DEPLOY_UNDONE, r.stderr
    assert "deploy failed at build+backup: docker compose build failed" in r.stderr
    assert "exit code: 3" in r.stderr and "Traceback" not in r.stderr
    assert fingerprint(app) == good and web_image(app) == image
    assert len(list((app.dir / "backups").glob("*.dump"))) == len(backups) + 1
    dockerfile.write_text(working)

    # 2. the new web is healthy by its own check, but the release URL never answers 200: undone
    release(app, 2)
    toml = app.dir / "composekit.toml"
    settings = toml.read_text()
    url = f"http://127.0.0.1:{app.ports[0]}"
    toml.write_text(
        settings.replace("[services]", f'[web]\nhealth_url = "{url}/ready"\n\n[services]')
    )
    r = run_cli("-C", str(app.dir), "deploy", "--timeout", "30")
    assert r.returncode == ExitCode.DEPLOY_UNDONE, r.stderr
    assert f"{url}/ready (through proxy, on {app.name}-web-" in r.stderr  # each new one, alone
    assert "answered 404 for 5s: the URL is wrong" in r.stderr
    assert fingerprint(app) == good and web_image(app) == image and "Users r2" not in app.page()

    # 3. a URL that answers: the release goes out
    toml.write_text(
        settings.replace("[services]", f'[web]\nhealth_url = "{url}/healthz"\n\n[services]')
    )
    r = deploy(app)
    assert r.returncode == 0, r.stderr
    assert "Users r2" in app.page() and app.psql("SELECT count(*) FROM notes") == "0"


def test_bad_input_is_refused_before_anything_changes(make_app) -> None:  # type: ignore[no-untyped-def]
    """Preflight and the lock step refuse (their own exit code, one line, nothing touched): a
    removed or out-of-order migration, a duplicate version, a missing service, a broken overlay.
    Then --backup always, rollback --dry-run, and rollback while another run holds the lock."""
    app = make_app("migrator")
    assert deploy(app).returncode == 0
    good, image = fingerprint(app), web_image(app)
    mig = app.dir / "migrations"
    applied = (mig / "0001_add_profile.sql").read_text()
    toml = app.dir / "composekit.toml"
    settings = toml.read_text()

    def refused(code: int, needle: str, *args: str) -> None:
        before = sorted((app.dir / "backups").iterdir())
        r = deploy(app, *args)
        assert r.returncode == code and needle in r.stderr, r.stderr
        assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) < 12
        assert fingerprint(app) == good and web_image(app) == image
        assert sorted((app.dir / "backups").iterdir()) == before

    (mig / "0001_add_profile.sql").unlink()
    refused(ExitCode.VERIFY, "missing 0001")
    (mig / "0001_add_profile.sql").write_text(applied)
    (mig / "0000_early.sql").write_text("-- migrate:up\nCREATE TABLE early (id int);\n")
    refused(ExitCode.VERIFY, "out-of-order 0000")
    (mig / "0000_early.sql").unlink()
    (mig / "1_again.sql").write_text("-- migrate:up\nSELECT 1;\n")
    refused(ExitCode.CONFIG, "duplicate migration version")
    (mig / "1_again.sql").unlink()
    toml.write_text(settings.replace('migrator = "migrator"', 'migrator = "nope"'))
    refused(ExitCode.CONFIG, "service 'nope' is not in")
    toml.write_text(settings)
    staging = app.dir / "compose.staging.yaml"
    overlay = staging.read_text()
    staging.write_text("services: [\n")
    refused(ExitCode.CONFIG, "compose.staging.yaml", "--env", "staging")
    staging.write_text(overlay)

    # --backup always: a verified backup even with nothing pending
    before = len(list((app.dir / "backups").glob("*.dump")))
    r = deploy(app, "--backup", "always")
    assert r.returncode == 0, r.stderr
    assert len(list((app.dir / "backups").glob("*.dump"))) == before + 1

    # rollback: --dry-run changes nothing; under another run's lock it is refused
    release(app, 2)
    assert deploy(app).returncode == 0
    now = web_image(app)
    r = run_cli("-C", str(app.dir), "rollback", "--dry-run")
    assert r.returncode == 0 and "web back to the newest kept image" in r.stdout, r.stderr
    assert web_image(app) == now
    holder = hold_deploy_lock(app)
    try:
        r = run_cli("-C", str(app.dir), "rollback")
        assert r.returncode == ExitCode.MIGRATION and "the deploy lock is held by" in r.stderr
    finally:
        holder.kill()
        holder.wait()
    assert web_image(app) == now


def test_a_database_that_will_not_start_is_exit_4(make_app) -> None:  # type: ignore[no-untyped-def]
    app = make_app("migrator")
    env = app.dir / ".env"
    env.write_text(
        env.read_text().replace(
            f"POSTGRES_IMAGE={POSTGRES_IMAGE}", f"POSTGRES_IMAGE={PYTHON_IMAGE}"
        )
    )
    r = deploy(app)
    assert r.returncode == ExitCode.DOCKER, r.stderr
    assert r.stderr.count("error: ") == 1 and "the db service did not start" in r.stderr, r.stderr
    assert "docker compose logs db" in r.stderr
    assert "Traceback" not in r.stderr
    assert not (app.dir / "backups").exists() or not list((app.dir / "backups").iterdir())
    assert "web" not in [s.service for s in app.project.ps(all=False)]  # no web was started
