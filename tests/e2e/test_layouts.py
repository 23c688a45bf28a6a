"""`composekit init` output, run for real: offline build, up --wait, each layout's migration mechanism."""

from __future__ import annotations

import time
import urllib.request

import pytest

from composekit import flags
from composekit.compose import ComposeProject
from composekit.errors import DockerError
from tests.apps import App
from tests.helpers import run_cli

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def overlays_valid(app: App) -> None:
    for extra in ([], ["compose.staging.yaml"], ["compose.prod.yaml"]):
        ComposeProject(
            ["compose.yaml", *extra], project_dir=app.dir, project_name=app.name, env_file=".env"
        ).config()


def test_migrator_layout(make_app) -> None:  # type: ignore[no-untyped-def]
    app = make_app("migrator")
    overlays_valid(app)
    app.up(wait_timeout=120)
    assert "<th>bio</th>" not in app.page()
    first = app.project.run("migrator")
    assert first.returncode == 0, first.stdout
    assert "applied 1 migration(s); now at 0001" in first.stdout
    again = app.project.run("migrator")
    assert again.returncode == 0 and "database is up to date" in again.stdout
    assert sorted(s.service for s in app.project.ps()) == [
        "db",
        "proxy",
        "web",
    ]  # run --rm left nothing
    page = app.page()
    assert "ada@example.com" in page and "<th>bio</th>" in page
    assert app.psql("SELECT version FROM schema_migrations") == "0001"


def test_app_startup_layout_with_three_replicas(make_app) -> None:  # type: ignore[no-untyped-def]
    app = make_app("app-startup")
    overlays_valid(app)
    app.up(wait_timeout=180, scales={"web": 3})
    states = [s for s in app.project.ps() if s.service == "web"]
    assert len(states) == 3 and all(s.health == "healthy" for s in states)
    assert app.psql("SELECT count(*), min(version) FROM schema_migrations") == "1|0001"
    logs = app.project.logs("web", tail=200)
    assert (
        logs.count("applied 0001_add_profile") == 1
    )  # one replica migrated, the others found it done
    assert logs.count("migrate: database at 0001") == 3
    for _ in range(6):  # through the proxy, the one published port
        assert "<th>bio</th>" in app.page()

    # a feature flag, set with psql in the db container (no URL): every replica agrees per visitor
    r = run_cli("-C", str(app.dir), "flag", "rollout", "beta-banner", "50")
    assert r.returncode == 0 and "beta-banner: new → 50%" in r.stdout, r.stderr
    for visitor in ("ada", "grace", "edsger", "alan"):
        expected = flags.on_for("beta-banner", 50, visitor)
        for _ in range(3):  # round robin over the three replicas
            with urllib.request.urlopen(f"http://127.0.0.1:{app.ports[0]}/?user={visitor}") as p:
                page = p.read().decode()
            assert ("beta-banner: on for you" in page) is expected, (visitor, expected)
    assert "beta-banner: on" not in app.page()  # no key: on only at 100 %


def test_init_scripts_layout_and_a_broken_script(make_app) -> None:  # type: ignore[no-untyped-def]
    app = make_app("init-scripts")
    overlays_valid(app)
    app.up(wait_timeout=120)
    page = app.page()
    assert (
        "grace@example.com" in page and "<th>bio</th>" in page
    )  # 002_add_profile ran as an init script
    assert app.psql("SELECT to_regclass('schema_migrations') IS NULL") == "t"

    broken = make_app("init-scripts")
    (broken.dir / "init-scripts" / "003_broken.sql").write_text(
        "ALTER TABLE users ADD COLUMN oops int NOT NUL;\n"
    )
    with pytest.raises(DockerError):
        broken.project.up(["db"], wait=True, wait_timeout=40)
    # restart: unless-stopped keeps restarting it; it must never become healthy, and every
    # restart must refuse (the init-failed marker), not serve a half-initialised database
    deadline = time.monotonic() + 15
    logs = ""
    while time.monotonic() < deadline and "initialisation failed earlier" not in logs:
        assert broken.project.health("db") != "healthy"
        logs = broken.project.logs("db", tail=200)
        time.sleep(0.5)
    assert "003_broken.sql" in logs and "syntax error" in logs
    assert "initialisation failed earlier" in logs
    assert broken.project.health("db") != "healthy"
