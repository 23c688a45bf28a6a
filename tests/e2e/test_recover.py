"""SIGKILL (or a power cut) leaves a half-done run that no handler could undo: the journal lets
`composekit status` name it, and `composekit recover` — or the next deploy — finish its undo."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest

from composekit.errors import ExitCode
from tests.apps import App, fingerprint, leftovers, migration, release, wait_for_query, web_image
from tests.helpers import Running, run_cli

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def web_images(app: App) -> set[str]:
    return {s.image_id for s in app.project.ps(["web"])}


def migrators(app: App) -> list[str]:
    return [s.name for s in app.project.ps() if s.service == "migrator"]


def status(app: App) -> dict:  # type: ignore[type-arg]
    r = run_cli("-C", str(app.dir), "status", "--json")
    assert r.returncode == 0, r.stderr
    return dict(json.loads(r.stdout))


def test_a_deploy_killed_during_migrate_is_found_and_recovered(make_app) -> None:  # type: ignore[no-untyped-def]
    app = make_app("migrator")
    assert run_cli("-C", str(app.dir), "deploy", "--timeout", "120").returncode == 0
    good, image = fingerprint(app), web_image(app)
    assert status(app)["interrupted"] is None
    migration(
        app,
        "0002_slow.sql",
        "CREATE TABLE slow (id int);\nSELECT pg_sleep(60);",
        "DROP TABLE slow;",
    )
    release(app, 2)

    run = Running("-C", str(app.dir), "deploy", "--timeout", "120")
    wait_for_query(app, "pg_sleep(60)", run)
    run.p.send_signal(signal.SIGKILL)  # no handler runs: nothing is undone
    run.finish()
    assert migrators(app), "the one-off migrator outlives a killed composekit"

    st = status(app)
    assert st["interrupted"] is not None and st["interrupted"]["step"] == "migrate", st
    assert any("composekit recover" in p for p in st["problems"])

    r = run_cli("-C", str(app.dir), "recover")
    assert r.returncode == 0, r.stderr
    assert "finishing its undo first" in r.stderr and "recovered:" in r.stdout
    assert migrators(app) == [] and fingerprint(app) == good
    assert web_image(app) == image and "<th>bio</th>" in app.page()
    assert (
        status(app)["interrupted"] is None
        and not (app.dir / ".composekit" / "journal.json").exists()
    )
    history = json.loads(run_cli("-C", str(app.dir), "history", "--json").stdout)["deploys"]
    assert history[-1]["kind"] == "recover" and "was interrupted" in history[-1]["error"]
    again = run_cli("-C", str(app.dir), "recover")
    assert again.returncode == 0 and "nothing to recover" in again.stdout


def test_the_next_deploy_recovers_a_deploy_killed_during_the_web_step(make_app) -> None:  # type: ignore[no-untyped-def]
    app = make_app("migrator")
    assert run_cli("-C", str(app.dir), "deploy", "--timeout", "120").returncode == 0
    image = web_image(app)
    migration(
        app,
        "0002_city.sql",
        "ALTER TABLE users ADD COLUMN city text;",
        "ALTER TABLE users DROP COLUMN city;",
    )
    app_py = app.dir / "app" / "app.py"
    healthy = app_py.read_text()
    app_py.write_text(
        healthy.replace('return self._send(200, "ok\\n")', 'return self._send(503, "no\\n")')
    )

    run = Running("-C", str(app.dir), "deploy", "--timeout", "120")
    run.wait_for("new web container(s) beside")
    deadline = time.monotonic() + 60
    while web_images(app) == {image}:  # until the new web runs beside (and fails its checks)
        assert time.monotonic() < deadline and run.p.poll() is None, "".join(run.lines)
        time.sleep(0.3)
    run.p.send_signal(signal.SIGKILL)
    run.finish()
    assert app.psql("SELECT count(*) FROM schema_migrations") == "2"  # 0002 stayed applied
    assert web_images(app) - {image}  # and the broken web runs beside the old

    # a deploy from this state: first the killed one is undone, then this one goes through
    app_py.write_text(healthy)
    r = run_cli("-C", str(app.dir), "deploy", "--timeout", "120")
    assert r.returncode == 0, r.stderr
    assert "found an interrupted deploy" in r.stderr and "reverted 0002" in r.stderr, r.stderr
    assert "<th>city</th>" in app.page()
    kinds = [
        h["kind"]
        for h in json.loads(run_cli("-C", str(app.dir), "history", "--json").stdout)["deploys"]
    ]
    assert kinds[-2:] == ["recover", "deploy"]


def test_recover_refuses_while_a_run_holds_the_lock(make_app) -> None:  # type: ignore[no-untyped-def]
    app = make_app("migrator")
    assert run_cli("-C", str(app.dir), "deploy", "--timeout", "120").returncode == 0
    migration(app, "0002_slow.sql", "SELECT pg_sleep(8);", "SELECT 1;")
    run = Running("-C", str(app.dir), "deploy", "--timeout", "120")
    wait_for_query(app, "pg_sleep(8)", run)
    assert status(app)["in_progress"] is not None
    r = run_cli("-C", str(app.dir), "recover")
    assert r.returncode == ExitCode.MIGRATION and "the deploy lock is held by" in r.stderr
    code, err = run.finish()
    assert code == 0, err


def test_a_killed_restore_is_finished_by_the_next_restore(make_app) -> None:  # type: ignore[no-untyped-def]
    """SIGKILL while the web is stopped for the swap: the next restore first starts it again and
    drops the scratch copy, then restores."""
    app = make_app("migrator")
    assert run_cli("-C", str(app.dir), "deploy", "--timeout", "120").returncode == 0
    app.psql(
        "INSERT INTO users (email, name) SELECT 'u' || g || '@x', 'bulk' FROM generate_series(1, 100000) g"
    )
    b = run_cli("-C", str(app.dir), "backup", "--label", "mine", "--json")
    assert b.returncode == 0, b.stderr
    backup = Path(json.loads(b.stdout)["path"]).name
    good = fingerprint(app)

    run = Running("-C", str(app.dir), "restore", backup, "--yes")
    run.wait_for("for the swap")
    run.signal_group(signal.SIGKILL)
    run.finish()
    st = status(app)
    assert st["interrupted"] is not None and "restore" in json.dumps(st["interrupted"]), st

    r = run_cli("-C", str(app.dir), "restore", backup, "--yes")
    assert r.returncode == 0, r.stderr
    assert "finishing its undo first" in r.stderr
    assert leftovers(app) == [] and fingerprint(app) == good
    assert "<th>bio</th>" in app.page_soon() and status(app)["interrupted"] is None


def test_recover_restores_the_backup_when_a_migration_has_no_down_section(make_app) -> None:  # type: ignore[no-untyped-def]
    app = make_app("migrator")
    assert run_cli("-C", str(app.dir), "deploy", "--timeout", "120").returncode == 0
    good = fingerprint(app)
    (app.dir / "migrations" / "0002_oneway.sql").write_text(
        "-- migrate:up\nCREATE TABLE oneway (id int);\n"
    )
    migration(app, "0003_slow.sql", "SELECT pg_sleep(60);", "SELECT 1;")
    run = Running("-C", str(app.dir), "deploy", "--timeout", "120")
    wait_for_query(app, "pg_sleep(60)", run)
    run.p.send_signal(signal.SIGKILL)
    run.finish()
    assert app.psql("SELECT count(*) FROM schema_migrations WHERE version = '0002'") == "1"

    r = run_cli("-C", str(app.dir), "recover")
    assert r.returncode == 0, r.stderr
    assert "restored" in r.stderr + r.stdout
    assert fingerprint(app) == good and leftovers(app) == []


def test_a_killed_rollback_is_finished_by_the_next_rollback(make_app) -> None:  # type: ignore[no-untyped-def]
    app = make_app("migrator")
    assert run_cli("-C", str(app.dir), "deploy", "--timeout", "120").returncode == 0
    first = web_image(app)
    release(app, 2)
    assert run_cli("-C", str(app.dir), "deploy", "--timeout", "120").returncode == 0
    second = web_image(app)
    good = fingerprint(app)

    run = Running("-C", str(app.dir), "rollback", "--timeout", "120")
    run.wait_for("web:")
    run.signal_group(signal.SIGKILL)
    run.finish()
    st = status(app)
    assert st["interrupted"] is not None and "rollback" in json.dumps(st["interrupted"]), st

    r = run_cli("-C", str(app.dir), "rollback", "--timeout", "120")
    assert r.returncode == 0, r.stderr
    assert "finishing its undo first" in r.stderr
    assert web_image(app) == first != second and fingerprint(app) == good
    assert "Users r2" not in app.page_soon() and status(app)["interrupted"] is None
