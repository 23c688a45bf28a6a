"""``composekit deploy --engine swarm`` on a real one-node swarm (this engine, ``docker swarm
init`` by the fixture and left afterwards): the scaffolded migrator project as a stack, visitors
requesting the site through the stack's proxy the whole time."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from composekit.errors import ExitCode
from composekit.swarm import SwarmStack
from tests.apps import App, Traffic, fingerprint, migration, release, wait_for_query
from tests.conftest import engine
from tests.helpers import Running, run_cli

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def docker(*args: str, check: bool = True) -> str:
    return subprocess.run(
        ["docker", *args], capture_output=True, text=True, check=check, timeout=120
    ).stdout.strip()


@pytest.fixture(scope="module")
def swarm(docker_engine: None) -> Iterator[None]:
    """A one-node swarm on this engine for the module's tests; the engine leaves it afterwards
    (unless it was in one before). In both CI runs of the stop that added these tests, a Compose
    deploy in another test file running beside them failed (once its web's health wait: 503 for
    120 s), never alone; so while the swarm exists no other end-to-end test runs (see
    ``tests/conftest.py``'s ``engine``)."""
    with engine(exclusive=True):  # no other test's project runs beside a swarm init or leave
        before = docker("info", "--format", "{{.Swarm.LocalNodeState}}")
        if before != "active":
            docker("swarm", "init", "--advertise-addr", "127.0.0.1")
        try:
            yield
        finally:
            if before != "active":
                docker("swarm", "leave", "--force")


class SwarmApp(App):
    """A scaffolded app deployed as a stack: its project is the :class:`SwarmStack`."""

    def __init__(self, root: Path) -> None:
        super().__init__(root, "migrator")
        self.stack = SwarmStack(project_dir=self.dir, project_name=self.name, env_file=".env")
        self.project = self.stack

    def deploy(self, *args: str, timeout: str = "90") -> subprocess.CompletedProcess[str]:
        return run_cli(
            "-C", str(self.dir), "deploy", "--engine", "swarm", "--timeout", timeout, *args
        )

    def web(self) -> tuple[str | None, list[str]]:
        """The web service's image and the IDs of its running task containers."""
        tasks = sorted(s.name for s in self.project.ps(["web"], all=False))
        return self.stack.spec_image("web"), tasks

    def close(self) -> None:
        docker("stack", "rm", self.name, check=False)
        deadline = time.monotonic() + 60
        while docker("ps", "-aq", "--filter", f"label=com.docker.stack.namespace={self.name}"):
            assert time.monotonic() < deadline, "the stack's containers did not go"
            time.sleep(0.5)
        while self.name in docker("network", "ls", "--format", "{{.Name}}"):
            assert time.monotonic() < deadline, "the stack's network did not go"
            time.sleep(0.5)
        docker("volume", "rm", f"{self.name}_pgdata", check=False)
        self.project.remove_images(f"{self.name}-app")


@pytest.fixture
def swarm_app(swarm: None, tmp_path: Path) -> Iterator[SwarmApp]:
    app = SwarmApp(tmp_path)
    try:
        yield app
    finally:
        app.close()


def test_an_engine_outside_a_swarm_is_refused_in_one_line(make_app) -> None:
    # before the module's swarm fixture: this engine is in no swarm
    assert docker("info", "--format", "{{.Swarm.LocalNodeState}}") != "active"
    app = make_app("migrator")
    r = run_cli("-C", str(app.dir), "deploy", "--engine", "swarm")
    assert r.returncode == ExitCode.DOCKER, r.stderr
    assert "not in a swarm" in r.stderr and "docker swarm init" in r.stderr
    assert "Traceback" not in r.stderr
    assert len([ln for ln in r.stderr.splitlines() if ln.startswith("error")]) == 1
    assert app.project.ps() == []  # nothing started
    bad = run_cli("-C", str(app.dir), "deploy", "--engine", "kubernetes")
    assert bad.returncode == ExitCode.USAGE and "compose, swarm" in bad.stderr


def test_a_release_rolls_through_the_stack_and_failures_undo_it(swarm_app: SwarmApp) -> None:
    app = swarm_app
    release(app, 1)
    first = app.deploy()
    assert first.returncode == 0, first.stderr
    assert "Users r1" in app.page_soon()
    assert (
        app.psql("SELECT string_agg(version, ',' ORDER BY version) FROM schema_migrations")
        == "0001"
    )
    image1, tasks1 = app.web()
    assert image1 is not None and ":ck-" in image1  # a release tag, not :latest

    # a new image and a migration, visitors all along: applied once, by the job; none fails
    release(app, 2)
    migration(app, "0002_nick.sql", "ALTER TABLE users ADD COLUMN nick text;",
              "ALTER TABLE users DROP COLUMN nick;")  # fmt: skip
    with Traffic(app.ports[0]) as traffic:
        r = app.deploy()
    assert r.returncode == 0, r.stderr
    traffic.assert_clean()
    assert traffic.first_start("Users r2") is not None, "the new release never served"
    assert "migrator | … applied 0002_nick" in r.stderr  # the job's own output, streamed
    assert app.psql("SELECT count(*) FROM schema_migrations WHERE version = '0002'") == "1"
    assert (
        app.psql("SELECT count(*) FROM information_schema.columns WHERE column_name = 'nick'")
        == "1"
    )
    image2, tasks2 = app.web()
    assert image2 != image1 and len(tasks2) == 1 and tasks2 != tasks1
    assert not docker(
        "service", "ls", "-q", "--filter", f"label=com.composekit.job={app.name}_migrator"
    )
    history = json.loads(run_cli("-C", str(app.dir), "history", "--json").stdout)["deploys"]
    assert history[-1]["web_before"] == image1 and history[-1]["web_after"] == image2

    # a failing migration: the web is untouched, the database identical, exit 7
    serving, db = app.web(), fingerprint(app)
    release(app, 3)
    migration(app, "0003_bad.sql", "ALTER TABLE nope ADD COLUMN x int;", "SELECT 1;")
    with Traffic(app.ports[0]) as traffic:
        r = app.deploy()
    assert r.returncode == ExitCode.DEPLOY_UNDONE, r.stderr
    assert "0003" in r.stderr and "nope" in r.stderr
    traffic.assert_clean()
    assert app.web() == serving and fingerprint(app) == db
    (app.dir / "migrations" / "0003_bad.sql").unlink()

    # a web that never gets healthy, with a migration: the swarm rolls the web back, the
    # migration is undone, exit 7; visitors never notice
    migration(app, "0003_tag.sql", "ALTER TABLE users ADD COLUMN tag text;",
              "ALTER TABLE users DROP COLUMN tag;")  # fmt: skip
    app_py = app.dir / "app" / "app.py"
    good = app_py.read_text()
    app_py.write_text(good.replace(
        "def main() -> None:\n",
        "def main() -> None:\n    Handler.do_GET = lambda self: self._send(500, 'broken')\n",
    ))  # fmt: skip
    with Traffic(app.ports[0]) as traffic:
        r = app.deploy(timeout="20")
    assert r.returncode == ExitCode.DEPLOY_UNDONE, r.stderr
    assert "rollback" in r.stderr
    traffic.assert_clean()
    assert app.web()[0] == serving[0] and fingerprint(app) == db
    assert "Users r2" in app.page()

    # one that crashes as it starts: swarm's own failure_action rolls it back
    app_py.write_text(
        good.replace(
            "def main() -> None:\n", 'def main() -> None:\n    sys.exit("boom: cannot start")\n'
        )
    )
    with Traffic(app.ports[0]) as traffic:
        r = app.deploy(timeout="60")
    assert r.returncode == ExitCode.DEPLOY_UNDONE, r.stderr
    assert "boom" in r.stderr, r.stderr
    traffic.assert_clean()
    assert app.web()[0] == serving[0] and fingerprint(app) == db


def test_swarm_refusals_change_nothing(swarm_app: SwarmApp, tmp_path: Path) -> None:
    app = swarm_app
    toml = app.dir / "composekit.toml"
    toml.write_text(toml.read_text().replace('layout = "migrator"', 'layout = "app-startup"'))
    r = app.deploy()
    assert r.returncode == ExitCode.CONFIG, r.stderr
    assert "migrator layout" in r.stderr and "Traceback" not in r.stderr
    assert (
        docker("service", "ls", "-q", "--filter", f"label=com.docker.stack.namespace={app.name}")
        == ""
    )


def test_status_rollback_and_restore_work_on_the_stack(swarm_app: SwarmApp) -> None:
    app = swarm_app
    toml = app.dir / "composekit.toml"
    toml.write_text(toml.read_text() + '\n[deploy]\nengine = "swarm"\n')  # every command
    cli = lambda *a: run_cli("-C", str(app.dir), *a)  # noqa: E731
    release(app, 1)
    assert cli("deploy").returncode == 0
    image1, _ = app.web()
    release(app, 2)
    migration(app, "0002_nick.sql", "ALTER TABLE users ADD COLUMN nick text;",
              "ALTER TABLE users DROP COLUMN nick;")  # fmt: skip
    r = cli("deploy", "--json")
    assert r.returncode == 0, r.stderr
    backup = Path(json.loads(r.stdout)["backup"]).name  # taken before 0002
    image2, _ = app.web()

    status = json.loads(cli("status", "--json").stdout)
    assert status["problems"] == [] and status["ledger_version"] == "0002"
    running = {(s["service"], s["state"], s["health"]) for s in status["services"]}
    assert running == {("db", "running", "healthy"), ("web", "running", "healthy"),
                       ("proxy", "running", None)}  # fmt: skip

    # rollback to the release before, then forward again, visitors all along
    listed = json.loads(cli("rollback", "--list", "--json").stdout)["images"]
    assert [i["ref"] for i in listed if i["running"]] == [image2]
    with Traffic(app.ports[0]) as traffic:
        back = cli("rollback")
        assert back.returncode == 0, back.stderr
        assert app.web()[0] == image1 and "Users r1" in app.page()
        forward = cli("rollback")
        assert forward.returncode == 0, forward.stderr
    traffic.assert_clean()
    assert app.web()[0] == image2 and "Users r2" in app.page()

    # restore the backup from before 0002: a safety snapshot first, the web stopped and back
    r = cli("restore", backup, "--yes")
    assert r.returncode == 0, r.stderr
    assert (
        app.psql("SELECT string_agg(version, ',' ORDER BY version) FROM schema_migrations")
        == "0001"
    )
    assert (
        app.psql("SELECT count(*) FROM information_schema.columns WHERE column_name = 'nick'")
        == "0"
    )
    assert "Users r2" in app.page_soon()
    assert len(app.web()[1]) == 1  # the web's task count as before
    assert any(
        p.name.endswith("pre-restore-snapshot.dump") for p in (app.dir / "backups").iterdir()
    )


def test_sigterm_while_the_job_migrates_leaves_the_stack_as_it_was(swarm_app: SwarmApp) -> None:
    app = swarm_app
    release(app, 1)
    assert app.deploy().returncode == 0
    serving, db = app.web(), fingerprint(app)
    release(app, 2)
    migration(app, "0002_slow.sql", "SELECT pg_sleep(20);\nALTER TABLE users ADD COLUMN z int;",
              "ALTER TABLE users DROP COLUMN z;")  # fmt: skip
    with Traffic(app.ports[0]) as traffic:
        run = Running("-C", str(app.dir), "deploy", "--engine", "swarm", "--timeout", "90")
        wait_for_query(app, "pg_sleep", run)  # the job is applying 0002
        run.signal_group(signal.SIGTERM)  # a CI runner cancelling the job
        code, err = run.finish()
    assert code == 128 + signal.SIGTERM, err
    assert "undone" in err
    traffic.assert_clean()
    assert app.web() == serving and fingerprint(app) == db
    assert not docker(
        "service", "ls", "-q", "--filter", f"label=com.composekit.job={app.name}_migrator"
    )
    assert not docker("ps", "-aq", "--filter", f"label=com.composekit.job={app.name}_migrator")
    # the job's session is gone with it: nothing of 0002 commits later
    time.sleep(1)
    assert app.psql("SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pg_sleep%' "
                    "AND pid <> pg_backend_pid()") == "0"  # fmt: skip
    assert app.deploy().returncode == 0  # and the next deploy applies it
    assert (
        app.psql("SELECT count(*) FROM information_schema.columns WHERE column_name = 'z'") == "1"
    )


def test_a_deploy_killed_mid_rollout_is_undone_by_recover(swarm_app: SwarmApp) -> None:
    app = swarm_app
    release(app, 1)
    assert app.deploy().returncode == 0
    (image, _), db = app.web(), fingerprint(app)
    release(app, 2)
    migration(app, "0002_nick.sql", "ALTER TABLE users ADD COLUMN nick text;",
              "ALTER TABLE users DROP COLUMN nick;")  # fmt: skip
    run = Running("-C", str(app.dir), "deploy", "--engine", "swarm", "--timeout", "90")
    run.wait_for("web: docker stack deploy")
    deadline = time.monotonic() + 30
    while app.web()[0] == image:  # swarm has the new release: the update is under way
        assert time.monotonic() < deadline, "".join(run.lines)
        time.sleep(0.1)
    run.p.send_signal(signal.SIGKILL)
    run.finish()
    status = json.loads(run_cli("-C", str(app.dir), "status", "--json",
                                env={"COMPOSEKIT_ENGINE": "swarm"}).stdout)  # fmt: skip
    assert any("interrupted" in p for p in status["problems"])
    r = run_cli("-C", str(app.dir), "recover", env={"COMPOSEKIT_ENGINE": "swarm"})
    assert r.returncode == 0, r.stderr
    assert "back on" in r.stdout + r.stderr
    assert app.web()[0] == image and fingerprint(app) == db
    assert "Users r1" in app.page_soon()
