"""Scaffolded example apps on the real engine (used by the layout and deploy tests)."""

from __future__ import annotations

import socket
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from composekit.compose import ComposeProject
from composekit.images import POSTGRES_IMAGE, PYTHON_IMAGE
from composekit.scaffold import scaffold


def free_ports(n: int) -> list[int]:
    """n consecutive free ports (for a published range with --scale)."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = int(s.getsockname()[1])
        ok = True
        for p in range(base, base + n):
            with socket.socket() as t:
                try:
                    t.bind(("127.0.0.1", p))
                except OSError:
                    ok = False
                    break
        if ok:
            return list(range(base, base + n))
    raise RuntimeError("no free port range")


class App:
    def __init__(self, root: Path, layout: str, ports: int = 1) -> None:
        self.name = "ck" + uuid.uuid4().hex[:10]
        self.dir = root / self.name
        scaffold(self.dir, layout, ci="github", name=self.name)
        self.ports = free_ports(ports)
        port_spec = str(self.ports[0]) if ports == 1 else f"{self.ports[0]}-{self.ports[-1]}"
        with open(self.dir / ".env", "a") as env:  # the stand-ins instead of the official images
            env.write(
                f"POSTGRES_IMAGE={POSTGRES_IMAGE}\nPYTHON_IMAGE={PYTHON_IMAGE}\nWEB_PORT={port_spec}\n"
            )
        self.project = ComposeProject(project_dir=self.dir, project_name=self.name, env_file=".env")

    def page(self, port: int | None = None) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{port or self.ports[0]}/", timeout=5) as r:
            return str(r.read().decode())

    def psql(self, sql: str) -> str:
        return self.project.exec(
            "db", ["psql", "-X", "-tA", "-U", "app", "-d", "app", "-c", sql]
        ).stdout.strip()

    def close(self) -> None:
        self.project.down(volumes=True, timeout=3)
        self.project.remove_images(f"{self.name}-app")  # :latest and the ones kept for rollback


@pytest.fixture
def make_app(tmp_path: Path, docker_engine: None) -> Iterator[object]:
    apps: list[App] = []

    def make(layout: str, ports: int = 1) -> App:
        app = App(tmp_path, layout, ports)
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.close()
