"""The stack file composekit writes from a resolved compose configuration, and the proxy
configuration it gives a stack (no engine needed: the swarm e2e tests deploy them)."""

from __future__ import annotations

from pathlib import Path

import pytest

from composekit.config import load_settings
from composekit.errors import ConfigError
from composekit.swarm import proxy_config, stack_service, web_endpoint

RESOLVED = {  # as `docker compose config --format json` gives a scaffolded web
    "build": {"context": "/app", "args": {"PYTHON_IMAGE": "python:3.12-slim"}},
    "image": "shop-app:latest",
    "restart": "unless-stopped",
    "expose": ["8000"],
    "depends_on": {"db": {"condition": "service_healthy", "required": True, "restart": True}},
    "environment": {"DATABASE_URL": "postgresql://app:pw@db:5432/app", "EMPTY": None},
    "healthcheck": {
        "test": ["CMD", "python", "-c", 'urlopen("http://127.0.0.1:8000/healthz", timeout=3)'],
        "interval": "2s",
        "start_interval": "1s",
    },
    "ports": [{"mode": "ingress", "target": 8000, "published": "8080", "protocol": "tcp", "host_ip": "0.0.0.0"}],
    "volumes": [
        {"type": "bind", "source": "/srv/init", "target": "/init", "read_only": True,
         "bind": {"create_host_path": True}},
        {"type": "volume", "source": "data", "target": "/data", "volume": {}},
    ],
    "networks": {"default": None},
    "profiles": ["tools"],
}  # fmt: skip


def test_a_resolved_service_becomes_what_the_stack_loader_accepts() -> None:
    svc = stack_service(RESOLVED)
    assert set(svc) == {"image", "environment", "healthcheck", "ports", "volumes"}
    assert svc["environment"] == {"DATABASE_URL": "postgresql://app:pw@db:5432/app"}  # no null
    assert svc["healthcheck"] == {"test": RESOLVED["healthcheck"]["test"], "interval": "2s"}
    assert svc["ports"] == [
        {"mode": "ingress", "target": 8000, "published": 8080, "protocol": "tcp"}
    ]
    assert svc["volumes"] == [
        {"type": "bind", "source": "/srv/init", "target": "/init", "read_only": True},
        {"type": "volume", "source": "data", "target": "/data"},
    ]


def test_the_web_endpoint_comes_from_its_healthcheck_else_its_ports() -> None:
    assert web_endpoint("web", RESOLVED) == (8000, "/healthz")
    assert web_endpoint("web", {"expose": ["3000/tcp"]}) == (3000, None)
    curl = {"healthcheck": {"test": ["CMD-SHELL", "curl -fsS http://localhost:9000/up || exit 1"]}}
    assert web_endpoint("web", curl) == (9000, "/up")
    with pytest.raises(ConfigError, match="which port web listens on"):
        web_endpoint("web", {"image": "x"})


def test_the_stack_proxy_finds_every_healthy_task_by_dns_and_retries_only_gets() -> None:
    cfg = proxy_config("shop", "web", 8000, "/healthz", 8080)
    assert "server-template task 1-16 tasks.web:8000" in cfg
    assert "option httpchk GET /healthz" in cfg and "bind :8080" in cfg
    assert "retry-on all-retryable-errors" in cfg and "disable-l7-retry if !METH_GET" in cfg
    assert "httpchk" not in proxy_config("shop", "web", 8000, None, 8080)  # a TCP check then


def test_engine_setting(tmp_path: Path) -> None:
    assert load_settings(tmp_path, env={}).engine == "compose"
    (tmp_path / "composekit.toml").write_text('[deploy]\nengine = "swarm"\n')
    assert load_settings(tmp_path, env={}).engine == "swarm"
    assert load_settings(tmp_path, env={"COMPOSEKIT_ENGINE": "compose"}).engine == "compose"
    (tmp_path / "composekit.toml").write_text('[deploy]\nengine = "k8s"\n')
    with pytest.raises(ConfigError, match="compose, swarm"):
        load_settings(tmp_path, env={})
