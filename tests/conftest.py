"""Shared fixtures: a real host PostgreSQL cluster, a real Docker engine, real Compose projects.

Nothing here skips: if the engine or PostgreSQL cannot be started, the tests that need them fail
with the reason.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PG_BIN = Path("/usr/lib/postgresql/15/bin")
PG_PASSWORD = "pw-" + secrets.token_hex(8)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_postgres(argv: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    prefix: list[str] = []
    if os.geteuid() == 0:  # initdb and postgres refuse to run as root
        prefix = ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups"]
    return subprocess.run(prefix + argv, check=True, capture_output=True, text=True, **kw)  # type: ignore[call-overload]


@dataclass
class PgCluster:
    host: str
    port: int
    user: str
    password: str
    datadir: Path

    def url(self, dbname: str = "postgres", password: str | None = None) -> str:
        pw = self.password if password is None else password
        return f"postgresql://{self.user}:{pw}@{self.host}:{self.port}/{dbname}"

    def admin(self, sql: str, dbname: str = "postgres") -> None:
        import psycopg

        with psycopg.connect(self.url(dbname), autocommit=True) as conn:
            conn.execute(sql)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    """A throwaway PostgreSQL 15 cluster on 127.0.0.1 with scram password auth."""
    if not (PG_BIN / "initdb").exists():
        pytest.fail(f"PostgreSQL server binaries not found in {PG_BIN}: run scripts/bootstrap.sh")
    base = Path(tempfile.mkdtemp(prefix="composekit-pg-"))
    shutil.chown(base, "postgres", "postgres")
    datadir = base / "data"
    pwfile = base / "pw"
    pwfile.write_text(PG_PASSWORD)
    shutil.chown(pwfile, "postgres", "postgres")
    _as_postgres(
        [
            str(PG_BIN / "initdb"),
            "-D",
            str(datadir),
            "-U",
            "postgres",
            f"--pwfile={pwfile}",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "--no-sync",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
        ]
    )
    port = _free_port()
    opts = f"-c listen_addresses=127.0.0.1 -p {port} -k {base} -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
    _as_postgres(
        [
            str(PG_BIN / "pg_ctl"),
            "-D",
            str(datadir),
            "-o",
            opts,
            "-l",
            str(base / "log"),
            "-w",
            "start",
        ]
    )
    cluster = PgCluster("127.0.0.1", port, "postgres", PG_PASSWORD, datadir)
    try:
        yield cluster
    finally:
        subprocess.run(
            (
                ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups"]
                if os.geteuid() == 0
                else []
            )
            + [str(PG_BIN / "pg_ctl"), "-D", str(datadir), "-m", "immediate", "-w", "stop"],
            capture_output=True,
        )
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def db_url(pg_cluster: PgCluster) -> Iterator[str]:
    """A fresh, empty database for one test; dropped afterwards."""
    name = "t_" + uuid.uuid4().hex[:12]
    pg_cluster.admin(f'CREATE DATABASE "{name}"')
    try:
        yield pg_cluster.url(name)
    finally:
        pg_cluster.admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# -- Docker ------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def docker_engine() -> None:
    """A running engine, Compose plugin and the offline images — or a loud failure."""
    from composekit.doctor import doctor

    report = doctor(ROOT, fix=True)
    if not report.ok:
        problems = "; ".join(f"{c.name}: {c.detail} ({c.fix})" for c in report.checks if not c.ok)
        pytest.fail(f"Docker test bed is not available: {problems}")


@pytest.fixture
def compose_factory(docker_engine: None, tmp_path: Path) -> Iterator[Callable[..., object]]:
    """Write a compose file into a temp dir and return a ComposeProject with a unique project
    name; every project made is taken down with its volumes afterwards."""
    from composekit.compose import ComposeProject

    made: list[ComposeProject] = []

    def make(
        compose_yaml: str, files: dict[str, str] | None = None, subdir: str = "proj"
    ) -> ComposeProject:
        d = tmp_path / subdir
        d.mkdir(parents=True, exist_ok=True)
        (d / "compose.yaml").write_text(textwrap.dedent(compose_yaml))
        for rel, content in (files or {}).items():
            p = d / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(textwrap.dedent(content))
            if rel.endswith(".sh"):
                p.chmod(0o755)
        project = ComposeProject(project_name="ckt" + uuid.uuid4().hex[:10], project_dir=d)
        made.append(project)
        return project

    yield make
    for project in made:
        try:
            project.down(volumes=True, timeout=2)
        except Exception as exc:  # cleanup must not hide the test's own result
            print(f"cleanup of {project.project_name} failed: {exc}", file=sys.stderr)
