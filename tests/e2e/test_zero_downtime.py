"""Zero-downtime web rollout behind the proxy, real engine: visitors requesting the site all the
time (≥ 20 requests/s, every answer checked) see no failed request during a deploy, a rollback,
a roll forward, a deploy that fails (migration, or a web that never gets healthy), a scale-out,
or a deploy stopped by SIGTERM half-way."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request

import pytest

from composekit.errors import ExitCode
from tests.apps import SLOW_S, App, Traffic, fingerprint, migration, release, slow_endpoint
from tests.helpers import Running, run_cli

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def deploy(app: App, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli("-C", str(app.dir), "deploy", "--timeout", "60", *args)


def web_containers(app: App) -> list[tuple[str, str, str]]:
    """(name, state, image) of every web container."""
    return sorted((s.name, s.state, s.image_id) for s in app.project.ps(["web"]))


def docker_health(app: App) -> list[str | None]:
    return [s.health for s in app.project.ps(["web"])]


def test_deploy_rollback_and_failed_deploys_drop_no_request(make_app) -> None:  # type: ignore[no-untyped-def]
    app = make_app("migrator")
    slow_endpoint(app)
    release(app, 1)
    assert deploy(app).returncode == 0
    before = web_containers(app)

    # a new image and a migration; a 2 s request in flight at the switch finishes (on the old)
    release(app, 2)
    migration(app, "0002_nick.sql", "ALTER TABLE users ADD COLUMN nick text;",
              "ALTER TABLE users DROP COLUMN nick;")  # fmt: skip
    with Traffic(app.ports[0], slow=True) as traffic:
        r = deploy(app)
    assert r.returncode == 0, r.stderr
    traffic.assert_clean()
    # the switch came after every visit the old release answered started, and before the first
    # one the new answered started: a slow request started before the one and still running
    # after the other was in flight at the switch
    old_t, new_t = traffic.last_start("Users r1"), traffic.first_start("Users r2")
    assert old_t is not None and new_t is not None, "the new release never served"
    across = [a for a in traffic.slow if a.started < old_t and a.ended > new_t]
    assert across, "no slow request was in flight at the switch"
    assert all(a.status == 200 and "Users r1" in a.body for a in across)
    assert all(a.ended - a.started >= SLOW_S for a in across)
    after = web_containers(app)
    assert len(after) == 1 and after[0][1] == "running" and after[0] not in before
    assert docker_health(app) == ["healthy"]  # Docker agrees with composekit when deploy returns
    assert (
        app.psql("SELECT count(*) FROM information_schema.columns WHERE column_name = 'nick'")
        == "1"
    )

    # rollback, then roll forward
    with Traffic(app.ports[0]) as traffic:
        back = run_cli("-C", str(app.dir), "rollback", "--timeout", "60")
        assert back.returncode == 0, back.stderr
        assert "Users r1" in app.page()
        forward = run_cli("-C", str(app.dir), "rollback", "--timeout", "60")
        assert forward.returncode == 0, forward.stderr
    traffic.assert_clean()
    assert "Users r2" in app.page() and len(web_containers(app)) == 1

    # a failing migration: the old web never stops, the database is as it was
    serving, db = web_containers(app), fingerprint(app)
    release(app, 3)
    migration(app, "0003_bad.sql", "ALTER TABLE nope ADD COLUMN x int;", "SELECT 1;")
    with Traffic(app.ports[0]) as traffic:
        r = deploy(app)
    assert r.returncode == ExitCode.DEPLOY_UNDONE, r.stderr
    traffic.assert_clean()
    assert web_containers(app) == serving and fingerprint(app) == db
    (app.dir / "migrations" / "0003_bad.sql").unlink()

    # a new web that crashes as it starts, then one that runs but never gets healthy
    app_py = app.dir / "app" / "app.py"
    good = app_py.read_text()
    for broken, timeout in (
        ('sys.exit("boom: cannot start")', "60"),
        ("Handler.do_GET = lambda self: self._send(500, 'broken')", "15"),
    ):
        app_py.write_text(
            good.replace("def main() -> None:\n", f"def main() -> None:\n    {broken}\n")
        )
        with Traffic(app.ports[0]) as traffic:
            r = run_cli("-C", str(app.dir), "deploy", "--timeout", timeout)
        assert r.returncode == ExitCode.DEPLOY_UNDONE, r.stderr
        traffic.assert_clean()
        assert web_containers(app) == serving, "the new containers must be removed"
        assert "Users r3" not in app.page()
    assert "boom" in r.stderr or "healthy" in r.stderr


def test_scale_sigterm_and_maintenance_behind_the_proxy(make_app) -> None:  # type: ignore[no-untyped-def]
    app = make_app("app-startup")
    release(app, 1)
    assert deploy(app).returncode == 0

    # three new beside one old, then exactly three; a later deploy keeps three
    release(app, 2)
    with Traffic(app.ports[0]) as traffic:
        r = deploy(app, "--scale", "web=3")
    assert r.returncode == 0, r.stderr
    traffic.assert_clean()
    assert [st for _, st, _ in web_containers(app)] == ["running"] * 3
    assert len({img for _, _, img in web_containers(app)}) == 1
    status = json.loads(run_cli("-C", str(app.dir), "status", "--json").stdout)
    assert sorted(status["proxy"]["serving"]) == [n for n, _, _ in web_containers(app)]
    release(app, 3)
    with Traffic(app.ports[0]) as traffic:
        assert deploy(app).returncode == 0
    traffic.assert_clean()
    assert len(web_containers(app)) == 3 and "Users r3" in app.page()

    # SIGTERM while the new generation starts: one generation serves afterwards, the old one
    serving = web_containers(app)
    release(app, 4)
    with Traffic(app.ports[0]) as traffic:
        run = Running("-C", str(app.dir), "deploy", "--timeout", "60")
        run.wait_for("new web container(s) beside")
        run.signal_group(signal.SIGTERM)
        code, err = run.finish()
    assert code == 128 + signal.SIGTERM, err
    traffic.assert_clean()
    assert web_containers(app) == serving and "Users r3" in app.page()

    # --maintenance: the proxy answers 503 with Retry-After while the web is off
    codes: list[tuple[int, str | None]] = []
    run = Running("-C", str(app.dir), "deploy", "--timeout", "60", "--maintenance")
    run.wait_for("maintenance: ok")
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{app.ports[0]}/", timeout=5)
    except urllib.error.HTTPError as exc:
        codes.append((exc.code, exc.headers.get("Retry-After")))
    code, err = run.finish()
    assert code == 0, err
    assert codes == [(503, "30")]
    assert "Users r4" in app.page()


def test_a_deploy_killed_while_the_old_web_drains_is_switched_back_by_recover(make_app) -> None:  # type: ignore[no-untyped-def]
    app = make_app("migrator")
    slow_endpoint(app, seconds=20)  # a request the drain waits for
    release(app, 1)
    assert deploy(app).returncode == 0
    before, db = web_containers(app), fingerprint(app)
    release(app, 2)
    migration(app, "0002_nick.sql", "ALTER TABLE users ADD COLUMN nick text;",
              "ALTER TABLE users DROP COLUMN nick;")  # fmt: skip

    long: list[int] = []
    t = threading.Thread(
        target=lambda: long.append(
            urllib.request.urlopen(f"http://127.0.0.1:{app.ports[0]}/slow", timeout=60).status
        )
    )
    with Traffic(app.ports[0]) as traffic:
        t.start()
        run = Running("-C", str(app.dir), "deploy", "--timeout", "60")
        deadline = time.monotonic() + 60
        while "Users r2" not in app.page():  # switched: now it waits for the slow request
            assert time.monotonic() < deadline and run.p.poll() is None, "".join(run.lines)
            time.sleep(0.1)
        run.p.send_signal(signal.SIGKILL)
        run.finish()
        assert len(web_containers(app)) == 2  # both generations: the kill left them
        r = run_cli("-C", str(app.dir), "recover")
        assert r.returncode == 0, r.stderr
        t.join()
    traffic.assert_clean()
    assert long == [200]  # the request in flight at the switch finished on the old web
    assert web_containers(app) == before and "Users r1" in app.page()
    assert fingerprint(app) == db  # 0002 reverted
    status = json.loads(run_cli("-C", str(app.dir), "status", "--json").stdout)
    assert status["proxy"]["serving"] == [before[0][0]] and not status["proxy"]["draining"]


def test_a_web_that_cannot_run_twice_is_refused_before_anything_changes(make_app) -> None:  # type: ignore[no-untyped-def]
    app = make_app("migrator")
    compose = app.dir / "compose.yaml"
    good = compose.read_text()
    cases = [
        (
            good.replace('    expose:\n      - "8000"\n', "    container_name: shop-web\n", 1),
            "web sets container_name 'shop-web'",
        ),
        (
            good.replace('    expose:\n      - "8000"\n', '    ports:\n      - "8001:8000"\n', 1),
            "web publishes host port 8001",
        ),
        (
            good.replace('      - "127.0.0.1::9999"\n', ""),
            "proxy does not publish HAProxy's runtime API",
        ),
    ]
    for text, message in cases:
        assert text != good
        compose.write_text(text)
        r = deploy(app)
        assert r.returncode == ExitCode.CONFIG, r.stderr
        assert message in r.stderr and "fix:" in r.stderr, r.stderr
        assert app.project.ps() == []  # nothing started, nothing built
