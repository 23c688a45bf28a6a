"""ComposeProject against the real engine, and doctor without a daemon."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from composekit.compose import ComposeProject, ServiceState
from composekit.errors import ConfigError, ExitCode
from composekit.images import PYTHON_IMAGE
from tests.helpers import run_cli

pytestmark = pytest.mark.e2e

TWO = f"""
services:
  web:
    image: {PYTHON_IMAGE}
    command: ["python3", "-m", "http.server", "8000"]
    healthcheck:
      test: ["CMD", "python3", "-c", "import urllib.request as u; u.urlopen('http://127.0.0.1:8000/')"]
      interval: 1s
      retries: 20
  job:
    image: {PYTHON_IMAGE}
    profiles: [tools]
    command: ["python3", "-c", "print('job ran'); raise SystemExit(3)"]
"""


def test_up_exec_ps_run_logs_down(compose_factory: Callable[..., ComposeProject]) -> None:
    project = compose_factory(TWO)
    assert project.services() == ["job", "web"]
    project.up(wait=True, wait_timeout=60)
    [web] = project.ps()
    assert (web.service, web.state, web.health) == ("web", "running", "healthy")
    assert project.image_of("web") == web.image_id and web.image_id.startswith("sha256:")
    out = project.exec("web", ["python3", "-c", "import os; print(os.getcwd())"])
    assert out.stdout.strip() == "/"
    lines: list[str] = []
    job = project.run("job", on_line=lines.append)
    assert job.returncode == 3 and "job ran" in lines
    assert [s.service for s in project.ps()] == ["web"]  # run --rm left nothing behind
    project.down(volumes=True)
    assert project.ps() == []


def test_ps_by_labels_lists_what_docker_compose_ps_lists(
    compose_factory: Callable[..., ComposeProject],
) -> None:
    """``ps`` asks the engine by Compose's labels (0.01 s) instead of ``docker compose ps`` (0.06
    s): the same containers, with a stopped one, a one-off left behind and a second replica."""
    project = compose_factory(TWO.replace("  job:", "  idle:\n    image: " + PYTHON_IMAGE
                                          + "\n    command: ['sleep', '600']\n  job:"))  # fmt: skip
    project.up(["web", "idle"], wait=True, wait_timeout=60)
    project.up(["web"], scales={"web": 2}, wait=True, wait_timeout=60)
    project.stop(["idle"])
    subprocess.run(project.compose_argv("run", "-d", "job"), check=True, capture_output=True)

    def compose_ps(*args: str) -> set[str]:
        out = subprocess.run(
            project.compose_argv("ps", "--quiet", "--no-trunc", *args),
            check=True, capture_output=True, text=True,
        ).stdout  # fmt: skip
        return set(out.split())

    def listed(states: list[ServiceState]) -> set[str]:
        return {s.name for s in states}

    def names(container_ids: set[str]) -> set[str]:
        if not container_ids:
            return set()
        out = subprocess.run(
            ["docker", "inspect", "--format", "{{.Name}}", *container_ids],
            check=True, capture_output=True, text=True,
        ).stdout  # fmt: skip
        return {n.lstrip("/") for n in out.split()}

    for args, call in (
        (("--all",), lambda: project.ps()),
        ((), lambda: project.ps(all=False)),
        (("--all", "web"), lambda: project.ps(["web"])),
        (("--all", "web", "idle"), lambda: project.ps(["web", "idle"])),
        (("idle",), lambda: project.ps(["idle"], all=False)),
    ):
        assert listed(call()) == names(compose_ps(*args)), args
    assert len(project.ps(["web"])) == 2 and [s.state for s in project.ps(["idle"])] == ["exited"]
    assert "job" in {s.service for s in project.ps()}  # a one-off left behind is seen (leftovers)


def test_broken_compose_file_is_a_config_error(
    compose_factory: Callable[..., ComposeProject],
) -> None:
    project = compose_factory("services:\n  web:\n    image: [unclosed\n")
    with pytest.raises(ConfigError, match="compose file is invalid") as e:
        project.config()
    assert e.value.exit_code == ExitCode.CONFIG


def test_missing_service_names_the_service(compose_factory: Callable[..., ComposeProject]) -> None:
    project = compose_factory(TWO)
    with pytest.raises(ConfigError, match="service 'migrator' is not in compose.yaml"):
        project.require_services("web", "migrator")


def test_missing_compose_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="compose file not found"):
        ComposeProject(project_dir=tmp_path)


def test_doctor_without_a_daemon_explains_each_problem(tmp_path: Path, docker_engine: None) -> None:
    r = run_cli("doctor", env={"DOCKER_HOST": f"unix://{tmp_path}/no-daemon.sock"})
    assert r.returncode == ExitCode.DOCKER
    lines = r.stdout.splitlines()
    assert any(
        ln.startswith("FAIL  docker engine: the Docker engine is not running — fix: ")
        for ln in lines
    )
    assert any(ln.startswith("FAIL  offline images:") for ln in lines)
    assert "Traceback" not in r.stderr


def test_doctor_fix_is_idempotent(docker_engine: None) -> None:
    r = run_cli("doctor", "--fix", "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    import json

    report = json.loads(r.stdout)
    assert report["ok"] is True
    assert "docker build" not in r.stderr and "debootstrap" not in r.stderr  # nothing rebuilt
    assert {c["name"] for c in report["checks"]} == {
        "docker engine",
        "docker compose",
        "offline images",
        "disk space",
    }


def test_compose_argv_is_the_one_python_on_whales_builds(tmp_path: Path) -> None:
    """exec/run/config build their own `docker compose` argv (to skip importing python-on-whales);
    it must stay the one python-on-whales uses for the structured calls."""
    (tmp_path / "compose.yaml").write_text(TWO)
    (tmp_path / "compose.prod.yaml").write_text("services: {}\n")
    (tmp_path / ".env").write_text("A=1\n")
    for kwargs in (
        {},
        {"project_name": "shop", "env_file": ".env", "profiles": ["tools"]},
    ):
        p = ComposeProject(["compose.yaml", "compose.prod.yaml"], project_dir=tmp_path, **kwargs)
        ours = p.compose_argv("exec", "-T", "web")
        theirs = [str(a) for a in p.client.client_config.docker_compose_cmd]
        assert ours == theirs + ["exec", "-T", "web"]
