"""Secrets in what Docker says, private state files, unusable paths — on the real engine."""

from __future__ import annotations

import json
import stat

import pytest

from composekit.errors import ExitCode
from tests.helpers import run_cli

pytestmark = [pytest.mark.e2e]


def test_docker_echoing_a_password_from_the_env_file_is_masked(compose_factory) -> None:  # type: ignore[no-untyped-def]
    project = compose_factory(
        """
        services:
          db:
            image: composekit/postgres:15
            environment:
              POSTGRES_PASSWORD: ${POSTGRES_PASSWORD}
          web:
            image: composekit/python:3.11
            ports:
              - "${POSTGRES_PASSWORD}:8000"
        """,
        files={".env": "POSTGRES_PASSWORD=Zq9-secret-from-dotenv\n"},
    )
    for args in (("status",), ("status", "--json"), ("--debug", "backup")):
        r = run_cli("-C", str(project.project_dir), *args)
        assert r.returncode == ExitCode.CONFIG, r.stderr
        assert "invalid hostPort: ***" in r.stdout + r.stderr
        assert "Zq9-secret-from-dotenv" not in r.stdout + r.stderr


@pytest.mark.slow
def test_state_files_are_private_and_a_bad_backups_dir_is_one_line(make_app) -> None:  # type: ignore[no-untyped-def]
    app = make_app("migrator")
    r = run_cli("-C", str(app.dir), "--debug", "deploy", "--timeout", "120")
    assert r.returncode == 0, r.stderr
    state = app.dir / ".composekit"
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    assert stat.S_IMODE((state / "history.jsonl").stat().st_mode) == 0o600
    password = next(
        ln.split("=", 1)[1]
        for ln in (app.dir / ".env").read_text().splitlines()
        if ln.startswith("POSTGRES_PASSWORD=")
    )
    said = r.stdout + r.stderr
    for args in (("status", "--json"), ("history", "--json"), ("--debug", "status")):
        shown = run_cli("-C", str(app.dir), *args)
        assert shown.returncode == 0, shown.stderr
        said += shown.stdout + shown.stderr
    # a release that dies printing its DATABASE_URL: the log tail in the error is masked
    app_py = app.dir / "app" / "app.py"
    app_py.write_text(
        app_py.read_text().replace(
            "def main() -> None:\n",
            "def main() -> None:\n    raise SystemExit('cannot start with ' + DATABASE_URL)\n",
        )
    )
    failed = run_cli("-C", str(app.dir), "--debug", "deploy", "--timeout", "120", "--json")
    assert failed.returncode == ExitCode.DEPLOY_UNDONE, failed.stderr
    said += failed.stdout + failed.stderr
    assert "cannot start with postgresql://app:***@db:5432/app" in failed.stderr
    assert "postgresql://app:***@db" in json.loads(failed.stdout)["message"]
    assert password not in said + (state / "history.jsonl").read_text()
    for backup in (app.dir / "backups").iterdir():
        assert stat.S_IMODE(backup.stat().st_mode) == 0o600, backup

    (app.dir / "composekit.toml").write_text(
        (app.dir / "composekit.toml").read_text() + '\n[backups]\ndir = "not-a-dir"\n'
    )
    (app.dir / "not-a-dir").write_text("a file\n")
    for args in (("backup",), ("backup", "--json")):
        r = run_cli("-C", str(app.dir), *args)
        assert r.returncode == ExitCode.CONFIG, r.stderr
        out = r.stdout + r.stderr
        assert "not-a-dir" in out and "Traceback" not in out and "unexpected" not in out
        if "--json" in args:
            assert json.loads(r.stdout)["exit_code"] == ExitCode.CONFIG

    st = json.loads(run_cli("-C", str(app.dir), "status", "--json").stdout)
    assert st["pending"] == [] and st["ledger_version"] == "0001"
    app.project.stop(["db"])
    r = run_cli("-C", str(app.dir), "status", "--json")
    st = json.loads(r.stdout)
    assert st["pending"] is None and st["problems"], st  # unknown, not "none"


@pytest.mark.slow
def test_deploy_and_its_undo_on_a_sql_ascii_database(make_app) -> None:  # type: ignore[no-untyped-def]
    app = make_app("migrator")
    compose = app.dir / "compose.yaml"
    compose.write_text(  # what initdb without a locale makes, as older images do
        compose.read_text().replace(
            "      POSTGRES_DB: ${POSTGRES_DB:-app}\n",
            "      POSTGRES_DB: ${POSTGRES_DB:-app}\n"
            '      POSTGRES_INITDB_ARGS: "--encoding=SQL_ASCII --locale=C"\n',
            1,
        )
    )
    r = run_cli("-C", str(app.dir), "deploy", "--timeout", "120")
    assert r.returncode == 0, r.stderr
    assert (
        app.psql("SELECT pg_encoding_to_char(encoding) FROM pg_database WHERE datname = 'app'")
        == "SQL_ASCII"
    )
    st = run_cli("-C", str(app.dir), "status", "--json")
    assert st.returncode == 0 and json.loads(st.stdout)["ledger_version"] == "0001", st.stderr
    (app.dir / "migrations" / "0002_city.sql").write_text(
        "-- migrate:up\nALTER TABLE users ADD COLUMN city text DEFAULT 'Zürich';\n"
        "-- migrate:down\nALTER TABLE users DROP COLUMN city;\n"
    )
    (app.dir / "verify").mkdir()
    (app.dir / "verify" / "fails.sql").write_text("SELECT false;\n")
    r = run_cli("-C", str(app.dir), "deploy", "--timeout", "120")
    assert r.returncode == ExitCode.DEPLOY_UNDONE and "reverted 0002" in r.stderr, r.stderr
    (app.dir / "verify" / "fails.sql").unlink()
    r = run_cli("-C", str(app.dir), "deploy", "--timeout", "120")
    assert r.returncode == 0, r.stderr
    assert "<th>city</th>" in app.page()
    assert app.psql("SELECT DISTINCT city FROM users") == "Zürich"


def test_status_fails_on_a_compose_file_without_the_db_service(compose_factory) -> None:  # type: ignore[no-untyped-def]
    project = compose_factory(
        """
        services:
          web:
            image: composekit/python:3.11
        """,
        files={"migrations/0001_x.sql": "-- migrate:up\nSELECT 1;\n"},
    )
    r = run_cli("-C", str(project.project_dir), "status")
    assert r.returncode == ExitCode.CONFIG and "service 'db' is not in" in r.stderr, r.stderr
