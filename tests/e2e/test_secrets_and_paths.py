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
    r = run_cli("-C", str(app.dir), "deploy", "--timeout", "120")
    assert r.returncode == 0, r.stderr
    state = app.dir / ".composekit"
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    assert stat.S_IMODE((state / "history.jsonl").stat().st_mode) == 0o600
    assert "Zq9" not in (state / "history.jsonl").read_text()
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
