""" "Undone" is a claim composekit checks: the schema and ledger must be as before the migrations;
a project's own migrator (an opaque command, no ledger) is undone by a restore, and always runs."""

from __future__ import annotations

import json
import re
import subprocess
import time

import pytest

from composekit.errors import ExitCode
from tests.apps import App, fingerprint, migration, release, web_image
from tests.helpers import run_cli

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

OPAQUE = (
    '["python", "-c", "import os, psycopg; c = psycopg.connect(os.environ[\'DATABASE_URL\'], '
    "autocommit=True); c.execute('ALTER TABLE users ADD COLUMN IF NOT EXISTS nickname text')\"]"
)


def deploy(app: App, *args: str) -> tuple[int, str]:
    r = run_cli("-C", str(app.dir), "deploy", "--timeout", "120", *args)
    return r.returncode, r.stderr


def columns(app: App) -> str:
    return app.psql(
        "SELECT string_agg(column_name, ',' ORDER BY ordinal_position) FROM "
        "information_schema.columns WHERE table_name = 'users'"
    )


def test_a_down_section_that_leaves_something_behind_is_caught_and_the_backup_restored(
    make_app,
) -> None:  # type: ignore[no-untyped-def]
    app = make_app("migrator")
    assert deploy(app)[0] == 0
    good, image = fingerprint(app), web_image(app)
    # its down section forgets the table: "reverted" would be a lie
    migration(
        app,
        "0002_audit.sql",
        "CREATE TABLE audit (id int);\nCREATE INDEX audit_id ON audit (id);",
        "DROP INDEX audit_id;",
    )
    (app.dir / "verify").mkdir()
    (app.dir / "verify" / "fails.sql").write_text("SELECT false;\n")
    release(app, 2)  # a new image too
    code, err = deploy(app)
    assert code == ExitCode.DEPLOY_UNDONE, err
    assert "after the down sections the schema or ledger differs" in err and "audit" in err
    assert "schema and ledger as before" in err
    assert fingerprint(app) == good and web_image(app) == image
    assert "removed the image it built" in err  # a failed deploy leaves no dangling image
    built = re.search(r"removed the image it built \((\w+)\)", err)
    assert built is not None
    gone = subprocess.run(["docker", "image", "inspect", built.group(1)], capture_output=True)
    assert gone.returncode != 0

    # a down section that fails outright: the pre-deploy backup is restored instead
    leaves_behind = (app.dir / "migrations" / "0002_audit.sql").read_text()
    migration(
        app,
        "0002_audit.sql",
        "CREATE TABLE audit (id int);\nCREATE INDEX audit_id ON audit (id);",
        "DROP TABLE audit_typo;",
    )
    code, err = deploy(app)
    assert code == ExitCode.DEPLOY_UNDONE, err
    assert "down sections failed; restoring the pre-deploy backup instead" in err
    assert 'table "audit_typo" does not exist' in err and "schema and ledger as before" in err
    assert fingerprint(app) == good and web_image(app) == image
    (app.dir / "migrations" / "0002_audit.sql").write_text(leaves_behind)

    # and with no backup to fall back on, an undo that does not bring it back is exit 8
    code, err = deploy(app, "--no-backup")
    assert code == ExitCode.UNDO_FAILED, err
    assert "the undo did not bring the database back" in err and "audit" in err


def test_an_opaque_migrator_always_runs_and_its_undo_is_a_restore(make_app) -> None:  # type: ignore[no-untyped-def]
    app = make_app("migrator")
    assert deploy(app)[0] == 0
    good, image = fingerprint(app), web_image(app)
    compose = app.dir / "compose.yaml"
    compose.write_text(
        compose.read_text().replace(
            'command: ["composekit", "migrate", "up", "--dir", "/app/migrations"]',
            f"command: {OPAQUE}",
        )
    )
    plan = run_cli("-C", str(app.dir), "deploy", "--dry-run").stdout
    assert "migrate: docker compose run --rm migrator" in plan

    (app.dir / "verify").mkdir()
    (app.dir / "verify" / "fails.sql").write_text("SELECT false;\n")
    code, err = deploy(app)
    assert code == ExitCode.DEPLOY_UNDONE, err  # nothing of composekit's pending: it ran anyway
    assert "the project's own command" in err and "restored" in err
    assert "nickname" not in columns(app) and fingerprint(app) == good and web_image(app) == image

    code, err = deploy(app, "--no-backup")
    assert code == ExitCode.USAGE and "its undo is a restore" in err, err

    (app.dir / "verify" / "fails.sql").unlink()
    code, err = deploy(app)
    assert code == 0, err
    assert "nickname" in columns(app)
    record = json.loads(run_cli("-C", str(app.dir), "history", "--json").stdout)["deploys"][-1]
    assert [s["status"] for s in record["steps"] if s["name"] == "migrate"] == ["ok"]


def test_a_deploy_with_nothing_to_do_replaces_a_web_failing_its_healthcheck(make_app) -> None:  # type: ignore[no-untyped-def]
    app = make_app("migrator")
    assert deploy(app)[0] == 0
    [sick] = [s.name for s in app.project.ps() if s.service == "web"]
    # off its network, the web cannot reach the database (nor the proxy it): /healthz fails, but
    # Docker calls it "unhealthy" only after 30 failed checks in a row (a minute)
    subprocess.run(["docker", "network", "disconnect", f"{app.project.name}_default", sick],
                   check=True, capture_output=True)  # fmt: skip
    deadline = time.monotonic() + 60
    while not any(s.check_failing for s in app.project.ps(["web"])):
        assert time.monotonic() < deadline, "the web's healthcheck never failed"
        time.sleep(0.5)
    r = run_cli("-C", str(app.dir), "deploy", "--timeout", "120", "--json")
    assert r.returncode == 0, r.stderr
    web = next(s for s in json.loads(r.stdout)["steps"] if s["name"] == "web")
    assert "unchanged" not in web["detail"] and f"replaced {sick}" in web["detail"], web
    assert sick not in [s.name for s in app.project.ps() if s.service == "web"]
    assert "<th>" in app.page_soon()  # served again, by a web on its network


def test_a_deploy_with_nothing_to_do_leaves_the_web_alone_and_json_says_so(make_app) -> None:  # type: ignore[no-untyped-def]
    app = make_app("migrator")
    assert deploy(app)[0] == 0
    container = [s.name for s in app.project.ps() if s.service == "web"]
    started = app.project.exec("web", ["cat", "/proc/1/stat"]).stdout.split()[21]  # start time
    r = run_cli("-C", str(app.dir), "deploy", "--timeout", "120", "--json")
    assert r.returncode == 0, r.stderr
    record = json.loads(r.stdout)
    web = next(s for s in record["steps"] if s["name"] == "web")
    assert record["ok"] and "unchanged" in web["detail"]
    assert [s["status"] for s in record["steps"] if s["name"] == "migrate"] == ["skipped"]
    assert [s.name for s in app.project.ps() if s.service == "web"] == container
    assert app.project.exec("web", ["cat", "/proc/1/stat"]).stdout.split()[21] == started
    build = next(s for s in record["steps"] if s["name"].startswith("build"))
    assert "build skipped" in build["detail"]  # same context, Dockerfile, args, base image

    # a changed file in the build context: built and rolled out (a skip must never hide it)
    (app.dir / "backups" / "unrelated.txt").write_text("in .dockerignore: no build for it\n")
    app_py = app.dir / "app" / "app.py"
    app_py.write_text(app_py.read_text() + "\n# r2\n")
    image = web_image(app)
    r = run_cli("-C", str(app.dir), "deploy", "--timeout", "120", "--json")
    assert r.returncode == 0, r.stderr
    build = next(s for s in json.loads(r.stdout)["steps"] if s["name"].startswith("build"))
    assert "skipped" not in build["detail"].split(";")[0] and web_image(app) != image

    # --env adds the overlay (the staging web gets APP_ENV); an unknown one is a usage error
    r = run_cli("-C", str(app.dir), "deploy", "--timeout", "120", "--env", "staging")
    assert r.returncode == 0, r.stderr
    env = app.project.exec("web", ["printenv", "APP_ENV"], check=False).stdout.strip()
    assert env == "staging"
    r = run_cli("-C", str(app.dir), "deploy", "--env", "nope")
    assert r.returncode == ExitCode.USAGE and "unknown environment 'nope'" in r.stderr
