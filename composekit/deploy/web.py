"""The web service: start it health-gated, put the previous image back, keep old images.

Docker runs a healthcheck first one ``interval`` after the start (2 s in our templates, often 30 s
elsewhere). A single web container with a healthcheck is instead checked by running that same
test command in it ourselves, every 0.2 s, so the deploy goes on the moment it passes.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

from composekit.deploy.health import health_gate
from composekit.deploy.rollout import retire, roll_out
from composekit.deploy.state import DeployState
from composekit.errors import DockerError

KEPT_PREFIX = "ck-"


def short(image_id: str | None) -> str:
    return (image_id or "none").removeprefix("sha256:")[:12]


def split_image_name(name: str) -> tuple[str, str]:
    """``registry:5000/app:1.2`` → (``registry:5000/app``, ``1.2``); no tag means ``latest``."""
    repo, sep, tag = name.rpartition(":")
    if not sep or "/" in tag:
        return name, "latest"
    return repo, tag


def start_web(s: DeployState, force_recreate: bool = False, *, release: bool = True) -> None:
    """``up -d --no-build --no-deps`` the web with whatever its image name points at, wait until it
    is healthy, then — for a ``release`` — the HTTP health gate (when ``health_url`` is set), all
    within the run's deadline. The previous web put back by an undo is not a release: it served
    before, and the gate (maybe new in this very run) must not spend the undo's time on it."""
    st = s.settings
    test = s.project.healthcheck(st.web_service)
    fast = test is not None and s.project.replicas(st.web_service) == 1
    s.project.up(
        [st.web_service],
        no_build=True,
        no_deps=True,  # the database is up already and must not be recreated
        force_recreate=force_recreate,
        wait=not fast,
        wait_timeout=s.deadline.whole_seconds(),
    )
    if test is not None and fast:
        wait_healthcheck(s, st.web_service, test)
    if st.health_url and release:
        health_gate(st.health_url, s.deadline, s.progress)


def wait_healthcheck(s: DeployState, service: str, test: list[str]) -> None:
    last = ""
    while not s.deadline.expired:
        r = s.project.exec(service, test, check=False, timeout=s.deadline.remaining(30) + 1)
        if r.returncode == 0:
            return
        last = ((r.stderr or r.stdout).strip().splitlines() or [f"exit {r.returncode}"])[-1]
        state = next(iter(s.project.ps([service])), None)
        if state is None or state.state in ("exited", "dead", "restarting"):
            where = f"exited with code {state.exit_code}" if state else "is gone"
            tail = s.project.logs(service, tail=8).strip().splitlines()
            raise DockerError(
                f"{service} {where} right after it started: {(tail or ['no output'])[-1]}",
                hint=f"see `docker compose logs {service}`",
                details=tail,
            )
        time.sleep(min(0.2, s.deadline.remaining()))
    raise DockerError(
        f"{service} did not pass its healthcheck within the --timeout of "
        f"{s.deadline.seconds:g}s (last: {last or 'never ran'})",
        hint=f"see `docker compose logs {service}`",
    )


def point_back(s: DeployState) -> bool:
    """Re-point the web's image name at the image it ran before this run (if any)."""
    if not (s.web.previous and s.web.name):
        return False
    s.project.tag_image(s.web.previous, s.web.name)
    return True


def previous_web_back(s: DeployState) -> str:
    """Point the web's image name at the image it ran before and recreate it (or stop the web if
    there was none)."""
    web = s.settings.web_service
    if not s.web.previous:
        s.project.stop([web])
        return f"stopped {web} (there was no previous version)"
    point_back(s)
    if s.ctx.maintenance:  # it starts again (on that image) once the database is back
        s.project.stop([web])
        return f"{web} stopped; its image name points at {short(s.web.previous)} again"
    if s.proxy is not None:
        roll_out(s, release=False)
        retire(s)
    else:
        start_web(s, force_recreate=True, release=False)
    return f"{web} back on {short(s.web.previous)}"


def web_back_by_hand(s: DeployState) -> str:
    """What a person runs to put the previous web back when the undo could not."""
    return (
        f"docker tag {s.web.previous} {s.web.name} && "
        f"docker compose up -d --no-build --no-deps --force-recreate --wait {s.settings.web_service}"
    )


def keep_image(s: DeployState, image_id: str) -> str:
    """Tag ``image_id`` as ``<repo>:ck-<UTC time>-<id>`` so it is not left dangling, then keep only
    the newest ``keep_images`` such tags (one per image)."""
    repo, _ = split_image_name(s.web.name)
    tag = f"{KEPT_PREFIX}{datetime.now(UTC):%Y%m%dT%H%M%S}-{short(image_id)}"
    s.project.tag_image(image_id, f"{repo}:{tag}")
    seen: set[str] = set()
    for old_tag, old_id, _ in s.project.tagged(repo, KEPT_PREFIX):
        if old_id in seen or len(seen) >= s.settings.keep_images:
            s.project.untag(f"{repo}:{old_tag}")
        else:
            seen.add(old_id)
    return tag


def start_services(s: DeployState, services: list[str]) -> None:
    """``up -d --no-build --no-deps --wait`` services --maintenance stopped."""
    s.project.up(
        services, no_build=True, no_deps=True, wait=True, wait_timeout=s.deadline.whole_seconds()
    )
