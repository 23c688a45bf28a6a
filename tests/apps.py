"""Scaffolded example apps on the real engine (used by the layout and deploy tests)."""

from __future__ import annotations

import re
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from composekit.compose import ComposeProject
from composekit.dbtarget import normalize_schema
from composekit.images import HAPROXY_IMAGE, POSTGRES_IMAGE, PYTHON_IMAGE
from composekit.scaffold import scaffold
from tests.helpers import Running


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
    def __init__(self, root: Path, layout: str) -> None:
        self.name = "ck" + uuid.uuid4().hex[:10]
        self.dir = root / self.name
        scaffold(self.dir, layout, ci="github", name=self.name)
        self.ports = free_ports(1)  # the proxy's: the only published port
        port_spec = str(self.ports[0])
        with open(self.dir / ".env", "a") as env:  # the stand-ins instead of the official images
            env.write(
                f"POSTGRES_IMAGE={POSTGRES_IMAGE}\nPYTHON_IMAGE={PYTHON_IMAGE}\n"
                f"PROXY_IMAGE={HAPROXY_IMAGE}\nWEB_PORT={port_spec}\n"
            )
        self.project = ComposeProject(project_dir=self.dir, project_name=self.name, env_file=".env")

    def page(self, port: int | None = None) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{port or self.ports[0]}/", timeout=5) as r:
            return str(r.read().decode())

    def up(self, wait_timeout: int, scales: dict[str, int] | None = None) -> None:
        """A bare ``docker compose up --build --wait``, then the first page through the proxy:
        ``--wait`` waits for the webs' healthchecks, not for the proxy (it has none), whose
        servers start unresolved (init-addr none) and come up with its first DNS answer and
        check, a second or so later (a deploy probes through the proxy before it returns)."""
        self.project.up(build=True, wait=True, wait_timeout=wait_timeout, scales=scales)
        self.page_soon(limit=15)

    def page_soon(self, limit: float = 30) -> str:
        """The page, once the web answers again (e.g. after a restore started it again)."""
        deadline = time.monotonic() + limit
        while True:
            try:
                return self.page()
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.3)

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

    def make(layout: str) -> App:
        app = App(tmp_path, layout)
        apps.append(app)
        return app

    yield make
    failures = []
    for app in apps:  # every app, even when one fails to go
        try:
            app.close()
        except Exception as exc:  # cleanup must not hide the test's own result
            failures.append(f"{app.name}: {exc}")
    assert not failures, f"cleanup failed: {failures}"


# -- what deploy tests look at -----------------------------------------------------------------


def fingerprint(app: App) -> dict[str, str]:
    """The app's database as a deploy must leave it after an undo (see :func:`database_state`)."""
    return database_state(app.project, "app", "app")


def database_state(project: ComposeProject, user: str, database: str) -> dict[str, str]:
    """One database's state, for "identical" in every test: per-table content checksums (the
    ledger included), every sequence's position, and the whole schema (normalized
    ``pg_dump --schema-only``: columns, types, indexes, constraints, functions, views)."""

    def sql(q: str) -> str:
        return project.exec(
            "db",
            ["psql", "-X", "-tA", "-v", "ON_ERROR_STOP=1", "-U", user, "-d", database, "-c", q],
        ).stdout.strip()

    out = {}
    for t in sql("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1").split():
        out[t] = sql(
            f"SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM {t} t"
        )
    out["sequences"] = sql(
        "SELECT string_agg(sequencename || '=' || coalesce(last_value::text, '-'), ',' "
        "ORDER BY sequencename) FROM pg_sequences WHERE schemaname = 'public'"
    )
    dump = project.exec(
        "db", ["pg_dump", "--schema-only", "--no-owner", "-U", user, "-d", database]
    ).stdout
    out["schema"] = normalize_schema(dump)
    return out


def leftovers(app: App) -> list[str]:
    """What an interrupted run must not leave: one-off containers, scratch databases, partial files."""
    found = [f"container {s.name}" for s in app.project.ps() if s.service == "migrator"]
    found += [
        f"database {d}"
        for d in app.psql("SELECT datname FROM pg_database WHERE datname LIKE '%__ck_%'").split()
    ]
    backups = app.dir / "backups"
    found += [f"file {p.name}" for p in backups.glob(".*partial")] if backups.is_dir() else []
    return found


def web_image(app: App) -> str:
    return next(s.image_id for s in app.project.ps() if s.service == "web")


def migration(app: App, name: str, up: str, down: str) -> None:
    (app.dir / "migrations" / name).write_text(f"-- migrate:up\n{up}\n-- migrate:down\n{down}\n")


def wait_for_query(
    app: App, needle: str, proc: subprocess.Popen[str] | Running, limit: float = 90
) -> None:
    """Block until a session runs a query containing ``needle`` (``proc`` must still be running;
    a :class:`Running` one's output ends the failure message)."""
    p = proc.p if isinstance(proc, Running) else proc
    deadline = time.monotonic() + limit
    q = f"SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%{needle}%' AND pid <> pg_backend_pid()"
    while app.psql(q) == "0":
        said = "".join(proc.lines[-15:]) if isinstance(proc, Running) else ""
        assert time.monotonic() < deadline and p.poll() is None, f"{needle} never started\n{said}"
        time.sleep(0.3)


def release(app: App, n: int) -> None:
    """Change what the web shows, so the next deploy builds a new image."""
    app_py = app.dir / "app" / "app.py"
    app_py.write_text(re.sub(r"<h1>Users[^<]*</h1>", f"<h1>Users r{n}</h1>", app_py.read_text()))


SLOW_S = 2.0


def slow_endpoint(app: App, seconds: float = SLOW_S) -> None:
    """Give the app a ``/slow`` page that answers after ``seconds`` with the release's heading (so
    a test can tell which release served it)."""
    app_py = app.dir / "app" / "app.py"
    text = app_py.read_text()
    marker = "    def do_GET(self) -> None:  # noqa: N802\n"
    assert marker in text
    app_py.write_text(
        text.replace(
            marker,
            marker
            + '        if self.path == "/slow":\n'
            + f"            __import__('time').sleep({seconds})\n"
            + '            return self._send(200, "<h1>Users</h1>")\n',
        )
    )


@dataclass
class Answer:
    started: float
    ended: float
    status: int  # 0: no HTTP answer
    body: str
    error: str = ""


class Traffic:
    """Visitors: six threads, a sixth of a period apart, each requesting ``path`` every 0.15 s — a
    request started every 25 ms (40 requests/s) while answers take up to 0.15 s; a thread whose
    answer took longer sends its next request at once (so a slow machine thins the traffic out
    far less than a request-sleep loop did, and never queues a burst). Plus, with ``slow=True``,
    a ``/slow`` request started every 0.5 s. Every answer is kept and checked by the test
    (status 200, which release)."""

    THREADS = 6
    EVERY_S = 0.15  # per thread

    def __init__(self, port: int, slow: bool = False) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.answers: list[Answer] = []
        self.slow: list[Answer] = []
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._visit, args=("/", self.answers, i / self.THREADS))
            for i in range(self.THREADS)
        ]
        if slow:
            self._threads.append(threading.Thread(target=self._slow_visits))

    def _get(self, path: str) -> Answer:
        t0 = time.monotonic()
        try:
            with urllib.request.urlopen(self.url + path, timeout=15) as r:
                return Answer(t0, time.monotonic(), r.status, r.read().decode())
        except urllib.error.HTTPError as exc:
            return Answer(t0, time.monotonic(), exc.code, "", f"HTTP {exc.code}")
        except OSError as exc:
            return Answer(t0, time.monotonic(), 0, "", repr(exc))

    def _visit(self, path: str, into: list[Answer], phase: float) -> None:
        due = time.monotonic() + phase * self.EVERY_S
        while not self._stop.wait(max(0.0, due - time.monotonic())):
            into.append(self._get(path))
            due = max(due + self.EVERY_S, time.monotonic())

    def _slow_visits(self) -> None:
        pending: list[threading.Thread] = []
        while not self._stop.wait(0.5):
            t = threading.Thread(target=lambda: self.slow.append(self._get("/slow")))
            t.start()
            pending.append(t)
        for t in pending:
            t.join()

    def __enter__(self) -> Traffic:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join()

    def assert_clean(self) -> None:
        """Every answer was a 200, and there were enough of them for that to mean something."""
        failed = self.failed()
        assert not failed, f"{len(failed)} failed request(s): {failed[:3]}"
        assert self.rate() >= 20, f"only {self.rate():.0f} requests/s"

    def failed(self) -> list[Answer]:
        return [a for a in [*self.answers, *self.slow] if a.status != 200]

    def rate(self) -> float:
        """Answered requests per second, over the span from the first start to the last end."""
        if len(self.answers) < 2:
            return 0.0
        span = max(a.ended for a in self.answers) - min(a.started for a in self.answers)
        return len(self.answers) / span

    def first_start(self, needle: str) -> float | None:
        """When the first request answered with ``needle`` (e.g. a release's heading) started."""
        return min((a.started for a in self.answers if needle in a.body), default=None)

    def last_start(self, needle: str) -> float | None:
        """When the last request answered with ``needle`` started."""
        return max((a.started for a in self.answers if needle in a.body), default=None)
