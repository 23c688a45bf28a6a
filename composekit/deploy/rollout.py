"""The web rollout behind the proxy: not one request dropped.

1. start the new container(s) beside the old (``up --no-recreate --scale web=old+N``: Compose
   leaves the running ones alone and creates N more from what the image name points at now);
2. gate them: Docker's own healthcheck says ``healthy`` (so ``docker ps`` agrees with composekit
   when the deploy returns), then the proxy's view — the health path requested through the proxy's
   public port, routed to each new container alone by a probe route;
3. switch: over the proxy's runtime API, the new servers ready, then the old ones drain (no
   reload: no connection is touched, and never a moment without a server);
4. drain: wait until the proxy has no request in flight to the old containers;
5. retire: stop and remove the old ones by name (``--scale web=1`` would remove the newest), as the
   last step of the run, so an undo until then only switches back.

Before the switch an undo removes the new containers: the old never stopped serving. After it, the
undo switches back the same way (old serving again, new drained, then removed).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from composekit.compose import ServiceState
from composekit.deploy.health import answers_200, fetch_status
from composekit.deploy.state import DeployState
from composekit.errors import DockerError
from composekit.proxy import Proxy

if TYPE_CHECKING:
    from urllib.request import Request

PROBES_IN_A_ROW = 3


def proxy_of(s: DeployState) -> Proxy:
    proxy = s.proxy
    assert proxy is not None, "a rollout needs the proxy: callers check s.proxy"
    return proxy


def containers(s: DeployState) -> list[ServiceState]:
    return s.project.ps([s.settings.web_service])


def roll_out(s: DeployState, scale: int | None = None, *, release: bool = True) -> str:
    """Start the web from what its image name points at beside the running one, gate, switch,
    drain. The old containers keep running (idle) until :func:`retire`."""
    st, g, proxy = s.settings, s.gen, proxy_of(s)
    web = st.web_service
    t0 = time.monotonic()

    def phase(what: str) -> None:
        s.progress(f"  {what} ({time.monotonic() - t0:.1f}s)")

    proxy.ensure_running(s.deadline)
    now = containers(s)
    running = sorted((c for c in now if c.state == "running"), key=lambda c: c.number)
    g.old, g.new, g.switched, g.retired = [c.name for c in running], [], False, False
    s.checkpoint()  # which containers are the old ones, before any new one exists
    n = scale or s.project.replicas_set(web) or len(running) or 1
    # pin what serves now by name first: the proxy's service-name fallback would otherwise send
    # visitors to a new container as soon as Docker's DNS lists it, before the gate
    proxy.set(g.old or None, maintenance=None if g.old else True)
    if running:
        stale = [c.name for c in now if c.state != "running"]  # `--scale` would start them
        s.project.remove_containers(stale, stop_timeout=0)
        s.progress(f"  starting {n} new {web} container(s) beside the {len(running)} serving")
        s.project.up(
            [web], no_build=True, no_deps=True, no_recreate=True, wait=False,
            scales={web: len(running) + n},
        )  # fmt: skip
    else:  # nothing serves (a first deploy, --maintenance): these become the web
        s.project.up(
            [web], no_build=True, no_deps=True, force_recreate=True, wait=False, scales={web: n}
        )
    g.new = [c.name for c in containers(s) if c.name not in g.old]
    s.checkpoint()
    phase(f"started {', '.join(g.new)}")
    wait_healthy(s, g.new)
    phase("healthy by Docker's healthcheck")
    proxy.set(g.old or None, probes=g.new)
    probe(s, proxy, release=release)
    phase(f"answering through {proxy.service}")
    proxy.set(g.new, drain=g.old, maintenance=False)
    g.switched = True
    s.checkpoint()
    phase(f"{proxy.service} switched to {', '.join(g.new)}")
    drained = drain(s, proxy, g.old)
    return f"{len(g.new)} new {web} container(s) serving; {drained}"


WAIT_REPORT_EVERY = 5.0  # seconds between two lines of a health wait


def wait_healthy(s: DeployState, names: list[str]) -> None:
    """Until Docker calls each of ``names`` healthy (running, without a healthcheck); fails at
    once when one exits, restarts or turns unhealthy."""
    web = s.settings.web_service
    last = ""
    t0 = said = time.monotonic()
    while True:
        states = {c.name: c for c in containers(s) if c.name in names}
        bad = [
            c
            for c in states.values()
            if c.state in ("exited", "dead", "restarting") or c.health == "unhealthy"
        ]
        if len(states) < len(names) or bad:
            c = bad[0] if bad else None
            what = (
                f"{c.name} is {c.state if c.state != 'running' else c.health}"
                + (f" (exit code {c.exit_code})" if c.state in ("exited", "restarting") else "")
                if c
                else "a new container is gone"
            )
            tail = s.project.container_logs(c.name, tail=8) if c else []
            raise DockerError(
                f"the new {web} did not start: {what}: {(tail or ['no output'])[-1]}",
                hint=f"see `docker compose logs {web}`",
                details=tail,
            )
        waiting = [
            c for c in states.values() if (c.health or c.state) not in ("healthy", "running")
        ]
        if not waiting:
            return
        last = f"{waiting[0].name} {waiting[0].health or waiting[0].state}"
        if time.monotonic() - said >= WAIT_REPORT_EVERY:  # a slow start says how it is going
            said = time.monotonic()
            s.progress(
                f"  waiting for Docker to call {len(waiting)} new container(s) healthy: {last} "
                f"after {said - t0:.0f}s"
            )
        if s.deadline.expired:
            raise DockerError(
                f"the new {web} did not become healthy within the --timeout of "
                f"{s.deadline.seconds:g}s ({last})",
                hint=f"see `docker compose logs {web}`",
            )
        time.sleep(min(0.25, s.deadline.remaining()))


def probe(s: DeployState, proxy: Proxy, *, release: bool) -> None:
    """Each new container through the proxy: ``health_url``'s path answers 200 three times in a
    row (as :func:`~composekit.deploy.health.answers_200` judges it), or, with no ``health_url``,
    ``/`` answers anything but a 5xx or a refused connection."""
    url = s.settings.health_url if release else None
    parts = urlsplit(url or "/")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    for name in s.gen.new:
        req = proxy.probe_request(path, name)

        def fetch(req: Request = req) -> str:
            return fetch_status(req, s.deadline.remaining(3) + 0.1)

        where = f" (through {proxy.service}, on {name})"
        if url:
            answers_200(fetch, url, s.deadline, PROBES_IN_A_ROW, where, progress=s.progress)
        else:  # the proxy reaches the app: any answer but a 5xx or an error
            answers_200(
                fetch,
                path,
                s.deadline,
                1,
                where,
                accept=lambda a: a[:1] in ("2", "3", "4"),
                want="below 500",
                progress=s.progress,
            )


def drain(s: DeployState, proxy: Proxy, names: list[str]) -> str:
    """Wait (up to ``[web] drain_timeout``) until the proxy has no request in flight to ``names``."""
    if not names:
        return "nothing to drain"
    t0 = time.monotonic()
    limit = min(s.settings.drain_timeout, s.deadline.remaining())
    while (busy := proxy.in_flight(names)) and time.monotonic() - t0 < limit:
        time.sleep(0.1)
    took = time.monotonic() - t0
    if busy:
        return f"{busy} request(s) still in flight to the old after {took:.1f}s (drain_timeout)"
    return f"old drained in {took:.1f}s"


def retire(s: DeployState) -> str:
    """Stop and remove the old generation (Docker sends SIGTERM: the app ends gracefully)."""
    g, proxy = s.gen, proxy_of(s)
    old = [n for n in g.old or [] if n not in g.new]
    if not old:
        return "no old container to retire"
    s.project.remove_containers(old)
    proxy.set(g.new)  # the drain route goes
    g.old, g.retired = [], True
    s.checkpoint()
    return f"removed {', '.join(old)}"


def switch_back(s: DeployState) -> str:
    """Undo of a rollout: the old serving again (they never stopped), the new drained and removed.
    With no old one alive (a first deploy, --maintenance) the new are removed and nothing serves
    (the caller puts the previous image back)."""
    g, proxy = s.gen, proxy_of(s)
    web = s.settings.web_service
    if g.old is None:
        return ""  # no rollout began: the web was never touched
    now = containers(s)
    alive = [c.name for c in now if c.name in g.old and c.state == "running"]
    new = [c.name for c in now if c.name not in g.old]  # also any not recorded yet
    if alive:
        proxy.set(alive, drain=new if g.switched else ())
        if g.switched:
            drain(s, proxy, new)
    s.project.remove_containers(new)
    if alive:
        proxy.set(alive)
    g.new, g.switched = [], False
    s.checkpoint()
    if not new:
        return f"{web}: nothing new to remove"
    return f"{web}: {', '.join(alive) or 'nothing'} serving again; removed {', '.join(new)}"
