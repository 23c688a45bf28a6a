"""Shared fixtures: a real host PostgreSQL cluster, a real Docker engine, real Compose projects.

Nothing here skips: if the engine or PostgreSQL cannot be started, the tests that need them fail
with the reason.
"""

from __future__ import annotations

import fcntl
import sys
import tempfile
import textwrap
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.apps import make_app  # noqa: F401 - a fixture, shared by the layout and deploy tests
from tests.pgcluster import PgCluster, start_cluster

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    """A throwaway PostgreSQL 15 cluster on 127.0.0.1 with scram password auth."""
    try:
        cluster = start_cluster(durable=False)
    except FileNotFoundError as exc:
        pytest.fail(f"PostgreSQL server binaries not found: {exc}; run scripts/bootstrap.sh")
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def db_url(pg_cluster: PgCluster) -> Iterator[str]:
    """A fresh, empty database for one test; dropped afterwards."""
    name = "t_" + uuid.uuid4().hex[:12]
    pg_cluster.admin(f'CREATE DATABASE "{name}"')
    try:
        yield pg_cluster.url(name)
    finally:
        pg_cluster.admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(autouse=True)
def no_leftover_processes() -> Iterator[None]:
    """A test that fails half-way must not leave a background composekit running."""
    from tests.helpers import Running

    yield
    while Running.started:
        run = Running.started.pop()
        if run.p.poll() is None:
            run.p.kill()
            run.p.wait(timeout=30)


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


# -- tests that change the engine itself -------------------------------------------------------

LOCKS = Path(tempfile.gettempdir()) / "composekit-tests"


@contextmanager
def engine(exclusive: bool) -> Iterator[None]:
    """A readers-writer lock over the Docker engine, across pytest-xdist's worker processes.

    Every end-to-end test holds it shared; a test that changes the engine itself (``docker swarm
    init``/``leave``: the engine's networks and cluster agent) holds it exclusively, so no other
    test's Compose project runs while it does. The turnstile makes a waiting writer stop new
    readers (flock alone would let the other worker's next test start before it)."""
    LOCKS.mkdir(exist_ok=True)
    with open(LOCKS / "turnstile", "a+") as turnstile, open(LOCKS / "engine", "a+") as held:
        fcntl.flock(turnstile, fcntl.LOCK_EX)
        if not exclusive:
            fcntl.flock(turnstile, fcntl.LOCK_UN)
        fcntl.flock(held, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(held, fcntl.LOCK_UN)
            if exclusive:
                fcntl.flock(turnstile, fcntl.LOCK_UN)


@pytest.fixture(autouse=True)
def shares_the_engine(request: pytest.FixtureRequest) -> Iterator[None]:
    """End-to-end tests share the engine; one that has it to itself (the ``swarm`` fixture,
    which holds it exclusively for its module) takes nothing more."""
    if request.node.get_closest_marker("e2e") is None or "swarm" in request.fixturenames:
        yield
        return
    with engine(exclusive=False):
        yield
