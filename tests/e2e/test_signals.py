"""A CI runner cancelling a job: SIGTERM (to the whole process group) at each step of a deploy,
at each phase of a restore, during a backup. The promise: the database as it was, the old web
serving, nothing left behind, exit 128 + 15."""

from __future__ import annotations

import json
import signal
import subprocess
import time
import urllib.error
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.apps import App, fingerprint, leftovers, migration, release, wait_for_query, web_image
from tests.helpers import Running, run_cli

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SIGTERM_EXIT = 128 + signal.SIGTERM


def hold_lock_on_users(app: App, seconds: int) -> subprocess.Popen[bytes]:
    """Another session holding ACCESS EXCLUSIVE on users for a while: pg_dump waits for it."""
    argv = app.project.compose_argv("exec", "-T", "db", "psql", "-U", "app", "-d", "app", "-c")
    return subprocess.Popen(
        [*argv, f"BEGIN; LOCK users; SELECT pg_sleep({seconds}); COMMIT;"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def test_sigterm_at_each_deploy_step_undoes_everything_and_exits_143(make_app) -> None:  # type: ignore[no-untyped-def]
    app = make_app("migrator")
    assert run_cli("-C", str(app.dir), "deploy", "--timeout", "120").returncode == 0
    good, image = fingerprint(app), web_image(app)
    dockerfile = app.dir / "Dockerfile"
    plain_dockerfile = dockerfile.read_text()
    app_py = app.dir / "app" / "app.py"
    healthy_app = app_py.read_text()

    def slow_build(run: Running) -> None:
        dockerfile.write_text(plain_dockerfile + "RUN sleep 6\n")
        run.wait_for("build+backup:")
        time.sleep(2)

    blockers: list[subprocess.Popen[bytes]] = []

    def slow_backup(run: Running) -> None:
        blockers.append(hold_lock_on_users(app, 6))
        wait_for_query(app, "LOCK users", run)
        run.wait_for("build+backup:")
        wait_for_query(app, "LOCK TABLE public.users", run)  # pg_dump, waiting for it

    def slow_migrate(run: Running) -> None:
        wait_for_query(app, "pg_sleep(30)", run)

    def slow_verify(run: Running) -> None:
        wait_for_query(app, "pg_sleep(7)", run)

    def never_healthy_web(run: Running) -> None:
        run.wait_for("new web container(s) beside")
        time.sleep(2)

    cases: list[tuple[str, Callable[[Running], None]]] = [
        ("build", slow_build),
        ("backup", slow_backup),
        ("migrate", slow_migrate),
        ("verify", slow_verify),
        ("web", never_healthy_web),
    ]
    for n, (step, interrupt) in enumerate(cases, 2):
        sleep = 30 if step == "migrate" else 0
        migration(
            app,
            f"000{n}_t{n}.sql",
            f"CREATE TABLE t{n} (id int); SELECT pg_sleep({sleep});",
            f"DROP TABLE t{n};",
        )
        release(app, n)
        if step == "verify":
            (app.dir / "verify").mkdir(exist_ok=True)
            (app.dir / "verify" / "slow.sql").write_text("SELECT true FROM pg_sleep(7);\n")
        if step == "web":
            app_py.write_text(
                app_py.read_text().replace(
                    'return self._send(200, "ok\\n")', 'return self._send(503, "never\\n")'
                )
            )
        run = Running("-C", str(app.dir), "deploy", "--timeout", "120")
        interrupt(run)
        run.signal_group(signal.SIGTERM)
        code, err = run.finish()
        assert code == SIGTERM_EXIT, f"{step}: {err}"
        assert "interrupted by SIGTERM" in err and "every completed step was undone" in err, err
        assert fingerprint(app) == good, f"{step}: the database changed\n{err}"
        assert web_image(app) == image and "<th>bio</th>" in app.page(), step
        assert leftovers(app) == [], step
        record = json.loads(run_cli("-C", str(app.dir), "history", "--json").stdout)["deploys"][-1]
        failed = [s["name"] for s in record["steps"] if s["status"] == "failed"]
        assert not record["ok"] and step in failed[0], (step, record["steps"])
        # what made this step slow goes; the migration stays pending for the next round
        for blocker in blockers:
            blocker.wait(timeout=60)
        dockerfile.write_text(plain_dockerfile)
        (app.dir / "verify" / "slow.sql").unlink(missing_ok=True)
        app_py.write_text(healthy_app)
        for m in (app.dir / "migrations").glob("*.sql"):
            m.write_text(m.read_text().replace("pg_sleep(30)", "pg_sleep(0)"))

    # and then a deploy goes through: everything that was interrupted applies
    r = run_cli("-C", str(app.dir), "deploy", "--timeout", "120")
    assert r.returncode == 0, r.stderr
    assert app.psql("SELECT count(*) FROM schema_migrations") == "6"


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_at_each_restore_phase_leaves_the_site_up_and_nothing_behind(
    make_app, signum: int
) -> None:  # type: ignore[no-untyped-def]
    app = make_app("migrator")
    assert run_cli("-C", str(app.dir), "deploy", "--timeout", "120").returncode == 0
    app.psql(
        "INSERT INTO users (email, name) SELECT 'u' || g || '@x', 'bulk' FROM generate_series(1, 200000) g"
    )
    b = run_cli("-C", str(app.dir), "backup", "--label", "mine")
    assert b.returncode == 0, b.stderr
    backup = Path(b.stdout.split()[1]).name
    good = fingerprint(app)
    for phase in ("into scratch database", "for the swap", "pre-restore-snapshot"):
        run = Running("-C", str(app.dir), "restore", backup, "--yes")
        run.wait_for(phase)
        if phase == "for the swap":  # the web is stopped: the proxy shows its maintenance page
            with pytest.raises(urllib.error.HTTPError) as page:
                app.page()
            assert page.value.code == 503 and page.value.headers["Retry-After"] == "30"
        run.signal_group(signum)
        code, err = run.finish()
        assert code in (128 + signum, 0), f"{phase}: {err}"  # 0: it was done before the signal
        assert "Traceback" not in err
        assert "<th>bio</th>" in app.page_soon(), f"{phase}: the site is down\n{err}"
        assert leftovers(app) == [], f"{phase}: {err}"
        if code != 0:
            assert fingerprint(app) == good, phase


def test_sigterm_during_backup_leaves_no_partial_file(make_app) -> None:  # type: ignore[no-untyped-def]
    app = make_app("migrator")
    assert run_cli("-C", str(app.dir), "deploy", "--timeout", "120").returncode == 0
    before = sorted((app.dir / "backups").glob("*.dump"))  # the first deploy's pre-deploy one
    blocker = hold_lock_on_users(app, 5)
    run = Running("-C", str(app.dir), "backup")
    wait_for_query(app, "LOCK TABLE public.users", run)
    run.signal_group(signal.SIGTERM)
    code, err = run.finish()
    blocker.wait(timeout=30)
    assert code == SIGTERM_EXIT and "Traceback" not in err, err
    assert leftovers(app) == [] and sorted((app.dir / "backups").glob("*.dump")) == before


def test_a_second_signal_during_the_undo_does_not_stop_it(make_app) -> None:  # type: ignore[no-untyped-def]
    """A CI runner that cancels, then cancels again (or kills the group's children with SIGINT):
    the undo, once begun, finishes; exit 143, the database as it was, the old web serving."""
    app = make_app("migrator")
    first = run_cli("-C", str(app.dir), "deploy", "--timeout", "120")
    assert first.returncode == 0, first.stderr
    good, image = fingerprint(app), web_image(app)
    migration(app, "0002_a.sql", "CREATE TABLE a (id int);", "DROP TABLE a; SELECT pg_sleep(5);")
    migration(app, "0003_slow.sql", "SELECT pg_sleep(30);", "SELECT 1;")
    release(app, 2)
    run = Running("-C", str(app.dir), "deploy", "--timeout", "120")
    wait_for_query(app, "pg_sleep(30)", run)
    run.signal_group(signal.SIGTERM)
    wait_for_query(app, "pg_sleep(5)", run)  # the undo: the down section of 0002, under way
    run.signal_group(signal.SIGTERM)
    run.signal_group(signal.SIGINT)
    code, err = run.finish()
    assert code == SIGTERM_EXIT, err
    assert "Traceback" not in err and "schema and ledger as before" in err
    assert fingerprint(app) == good and web_image(app) == image and leftovers(app) == []
    assert "Users r2" not in app.page_soon()
