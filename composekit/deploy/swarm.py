"""A deploy on Docker Swarm (``--engine swarm``, ``[deploy] engine = "swarm"``).

The database half is the Compose deploy's own steps — the lock, the backup, verify, contract and
every undo go through ``exec`` into the db task's container (:class:`~composekit.swarm.SwarmStack`)
— with the migrator run as a ``replicated-job`` service. The web half is Swarm's: each release is
a unique image tag (``<repo>:ck-<time>-<id>``: a moved ``:latest`` would not change the service's
spec, so nothing would roll), rolled out ``start-first`` with ``failure_action: rollback`` and the
compose healthcheck, behind the project's proxy, which sends to every healthy task by DNS. The
undo of the web is ``docker service rollback`` (or Swarm's own, when it already rolled back).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from composekit.deploy.hooks import hook_steps
from composekit.deploy.rollback import choose, kept_images
from composekit.deploy.runner import Skipped, Step
from composekit.deploy.state import DeployState
from composekit.deploy.steps import (
    Contract,
    DeployLock,
    Migrate,
    Preflight,
    StateStep,
    TakeBackup,
    Together,
)
from composekit.deploy.verify import Verify
from composekit.deploy.web import KEPT_PREFIX, short, split_image_name
from composekit.errors import ComposekitError, ConfigError, DockerError, UsageError
from composekit.swarm import SwarmStack, spec_replicas

UPDATE = {"parallelism": 1, "order": "start-first", "failure_action": "rollback", "monitor": "3s"}
ROLLBACK = {"parallelism": 1, "order": "start-first"}
FAILED = ("rollback_started", "rollback_paused", "rollback_completed", "paused")


def swarm_steps(s: DeployState, lock_wait: float) -> list[Step]:
    steps: list[Step] = [SwarmPreflight(s), SwarmServices(s), DeployLock(s, lock_wait)]
    steps += hook_steps(s, "pre-deploy")
    steps.append(Together(SwarmBuild(s), TakeBackup(s)))
    steps += [SwarmMigrate(s), Verify(s), *hook_steps(s, "post-migrate"), SwarmWeb(s)]
    return steps + [Contract(s)]


def swarm_rollback_steps(s: DeployState, to: str | None, lock_wait: float) -> list[Step]:
    """Under the deploy lock (the ledger only read), the web back to an earlier release."""
    return [SwarmPreflight(s), DeployLock(s, lock_wait, check_ledger=False), SwarmRollback(s, to)]


def stack(s: DeployState) -> SwarmStack:
    assert isinstance(s.project, SwarmStack)
    return s.project


def has_registry(image: str) -> bool:
    """Whether ``image`` names a registry host (``registry.example.com/app``, ``host:5000/app``)."""
    first, slash, _ = image.partition("/")
    return bool(slash) and ("." in first or ":" in first or first == "localhost")


class SwarmPreflight(Preflight):
    def describe(self) -> str:
        return super().describe() + "; this engine manages a swarm; images reach its nodes"

    def run(self) -> str:
        st, p = self.s.settings, stack(self.s)
        if not st.layout.has_migrator:
            raise ConfigError(
                f"--engine swarm deploys the migrator layout (a job applies the migrations, then "
                f"the web rolls); this project's layout is {st.layout}",
                hint='use the migrator layout (layout = "migrator" and a migrator service, as '
                "`composekit init --layout migrator` writes them), or deploy with Compose",
            )
        if self.s.ctx.maintenance or st.rehearse:
            flag = "--maintenance" if self.s.ctx.maintenance else "--rehearse"
            raise UsageError(
                f"{flag} is not available with --engine swarm yet",
                hint=f"deploy without {flag} (rehearse first with `composekit rehearse` on Compose)",
            )
        node = p.require_manager()
        p.require_services(st.proxy_service)
        name = p.image_name(st.web_service)
        if node.nodes > 1 and not has_registry(name):
            raise ConfigError(
                f"the swarm has {node.nodes} nodes and the web image {name} names no registry: "
                "the other nodes could not pull a release built here",
                hint="name it in a registry every node reaches (image: registry.example.com/shop/app:"
                "latest): composekit pushes each release tag there; or deploy on a one-node swarm",
            )
        where = (
            "one node: the images built here are the ones it runs"
            if node.nodes == 1
            else f"{node.nodes} nodes: each release is pushed to {name.partition('/')[0]}"
        )
        return f"{super().run()}; swarm manager, {where}"


class SwarmServices(StateStep):
    """The stack's database (and the other long-running services), deployed if missing."""

    name = "database"
    changes_nothing = True  # a database started here stays: it is the stack's, not the run's

    def describe(self) -> str:
        return f"make sure {self.s.settings.db_service} runs in the stack and is healthy"

    def run(self) -> str | Skipped:
        st, p = self.s.settings, stack(self.s)
        services = p.config().get("services", {})
        skip = {st.web_service, st.migrator_service, st.proxy_service}
        wanted = [n for n in p.services() if n not in skip and not services[n].get("profiles")]
        missing = [n for n in wanted if p.service(n) is None]
        if missing:
            p.up(missing, wait=True, wait_timeout=self.s.deadline.whole_seconds())
            return f"deployed {', '.join(missing)} to the stack {p.name}"
        if p.health(st.db_service) not in ("healthy", "running"):
            p.wait_healthy([st.db_service], timeout=self.s.deadline.remaining())
            return f"{st.db_service} healthy again"
        return Skipped("already up")


class SwarmBuild(StateStep):
    name = "build"

    def describe(self) -> str:
        return f"build {self.s.settings.web_service}'s image and tag it as this release"

    def run(self) -> str:
        st, web, p = self.s.settings, self.s.web, stack(self.s)
        web.name = p.image_name(st.web_service)
        web.previous = p.spec_image(st.web_service)
        self.s.checkpoint()
        services = [st.web_service]
        same = p.image_name(st.migrator_service) == web.name
        if not same:
            services.append(st.migrator_service)
        p.build(services, timeout=self.s.deadline.remaining(), progress=self.s.progress)
        new_id = p.image_id(web.name)
        if web.previous and _image_id(p, web.previous) == new_id:
            web.new = web.previous  # the same image: the service's spec does not change
        else:
            repo, _ = split_image_name(web.name)
            web.new = f"{repo}:{KEPT_PREFIX}{datetime.now(UTC):%Y%m%dT%H%M%S}-{short(new_id)}"
            p.tag_image(new_id, web.new)
            if p.node().nodes > 1:
                p.push(web.new, timeout=self.s.deadline.remaining())
        p.images[st.web_service] = web.new
        if same:
            p.images[st.migrator_service] = web.new
        return f"{web.new} (running: {web.previous or 'none yet'})"

    def undo(self) -> str:
        web, p = self.s.web, stack(self.s)
        if web.new and web.new != web.previous and p.untag(web.new):
            return f"removed the tag {web.new}"
        return ""


def _image_id(p: SwarmStack, ref: str) -> str | None:
    try:
        return p.image_id(ref)
    except ComposekitError:
        return None  # gone from this engine (pruned, or pulled on another node only)


class SwarmMigrate(Migrate):
    def describe(self) -> str:
        return f"{self.s.settings.migrator_service} as a replicated-job service of the stack"


class SwarmWeb(StateStep):
    """Roll the web to this release (``start-first``, health-gated, Swarm rolls back a task that
    fails) and wait until the update converges; the proxy is deployed with it."""

    name = "web"

    def __init__(self, s: DeployState) -> None:
        super().__init__(s)
        self.changed = False  # the web's spec changed: an undo has something to roll back
        self.first = False  # the web service did not exist before

    def describe(self) -> str:
        return (
            f"docker stack deploy {self.s.settings.web_service} (start-first, rollback on "
            "failure) and wait until every task is healthy"
        )

    def run(self) -> str | Skipped:
        st, p = self.s.settings, stack(self.s)
        web = st.web_service
        before = p.service(web)
        self.first = before is None
        replicas = (
            self.s.ctx.scale or p.replicas_set(web) or spec_replicas(before) or p.replicas(web)
        )
        spec = p.resolved(web)
        spec.pop("ports", None)  # the proxy publishes the site: two tasks cannot share a host port
        deploy = dict(spec.get("deploy") or {})
        deploy.update(replicas=replicas, update_config=UPDATE, rollback_config=ROLLBACK)
        spec["deploy"] = deploy
        proxy, configs = p.site_proxy(st.proxy_service, web)
        started = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")
        p.deploy_services(
            {web: spec, st.proxy_service: proxy},
            timeout=self.s.deadline.remaining(),
            configs=configs,
        )
        after = p.service(web)
        self.changed = self.first or _version(after) != _version(before)
        if not self.changed:
            if p.health(web) == "healthy":
                return Skipped(f"{web} already runs {self.s.web.new}")
        self._converge(started, replicas)
        self._through_proxy(int(proxy["ports"][0]["published"]))
        self._prune()
        return f"{web} on {self.s.web.new}: {replicas} healthy task(s), {st.proxy_service} sends to them"

    def _converge(self, started: str, replicas: int) -> None:
        p, web = stack(self.s), self.s.settings.web_service
        while True:
            svc = p.service(web) or {}
            status = svc.get("UpdateStatus") or {}
            fresh = str(status.get("StartedAt", ""))[:26] >= started[:26]
            state = str(status.get("State", "")) if fresh else ""
            healthy = [t for t in p.ps([web], all=False) if t.health in ("healthy", None)]
            if state in FAILED:
                raise self._failure(f"swarm stopped the update: {status.get('Message', state)}")
            if state in ("", "completed") and len(healthy) >= replicas:
                if state == "completed" or self.first:
                    return
            if self.s.deadline.expired:
                raise self._failure(
                    f"{web} did not get {replicas} healthy task(s) on {self.s.web.new} in time"
                )
            time.sleep(0.5)

    def _through_proxy(self, port: int) -> None:
        """Wait until the proxy sends to the web: any answer but HAProxy's own 503 (a new proxy
        finds the tasks by DNS and health-checks them first). Only where the proxy runs on this
        node: its port is published on the host that runs it."""
        import urllib.error
        import urllib.request

        p, proxy = stack(self.s), self.s.settings.proxy_service
        if not p.ps([proxy], all=False):
            return
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5):
                    return
            except urllib.error.HTTPError as exc:
                if exc.code != 503 or b"No server is available" not in exc.read():
                    return  # the web answered (its own error is its own business)
            except OSError:
                pass  # the proxy is still starting
            if self.s.deadline.expired:
                raise self._failure(
                    f"{proxy} does not reach {self.s.settings.web_service} (HTTP 503)"
                )
            time.sleep(0.2)

    def _failure(self, message: str) -> ComposekitError:
        """The error, with why the newest task of this release ended (its error and log)."""
        p = stack(self.s)
        details: list[str] = []
        ended = [
            t
            for t in p.tasks(p.full(self.s.settings.web_service))
            if t.image.split("@")[0] == self.s.web.new
            and t.state in ("failed", "rejected", "shutdown", "complete")
        ]
        for task in ended[:3]:  # newest first: the first that says why
            details = [f"task {task.id[:12]}: {task.state}: {task.error}"] if task.error else []
            if task.container_id:
                details += p.container_logs(task.container_id, tail=6)
            if len(details) > 1:
                break
        why = next((d for d in reversed(details) if d.strip()), "")
        return ComposekitError(
            message + (f"; its last words: {why[:200]}" if why else ""),
            hint=f"see docker service ps --no-trunc {p.full(self.s.settings.web_service)}",
            details=details,
        )

    def _prune(self) -> None:
        """Keep the newest ``[web] keep_images`` release tags (one in use is never removed)."""
        p, web = stack(self.s), self.s.web
        repo, _ = split_image_name(web.name)
        keep = {web.new, web.previous}
        for i, (tag, _, _) in enumerate(p.tagged(repo, KEPT_PREFIX)):
            ref = f"{repo}:{tag}"
            if i >= self.s.settings.keep_images + 1 and ref not in keep:
                p.untag(ref)

    def undo(self) -> str:
        p, st = stack(self.s), self.s.settings
        web = st.web_service
        if not self.changed:
            return ""
        if self.first:
            p.remove_service(web)
            return f"removed {web} (this deploy created it)"
        deadline = self.s.deadline
        while True:
            state = str(((p.service(web) or {}).get("UpdateStatus") or {}).get("State", ""))
            if state != "rollback_started" or deadline.expired:
                break
            time.sleep(0.5)  # swarm is rolling it back itself: let it finish
        if state != "rollback_completed":
            p.rollback(web, timeout=max(30.0, deadline.remaining()))
            how = "docker service rollback"
        else:
            how = "swarm's own rollback"
        now = p.spec_image(web)
        if now != self.s.web.previous:
            raise DockerError(
                f"{web} runs {now} after the rollback, not {self.s.web.previous}",
                hint=self.manual_undo(),
            )
        return f"{web} back on {now} ({how})"

    def manual_undo(self) -> str:
        return f"docker service rollback {stack(self.s).full(self.s.settings.web_service)}"


def _version(svc: dict[str, Any] | None) -> int | None:
    return None if svc is None else int(svc.get("Version", {}).get("Index", 0))


class SwarmRollback(SwarmWeb):
    """The web back to an earlier release tag (``composekit rollback`` on a swarm): rolled as a
    deploy rolls it (start-first, health-gated); the database is not touched."""

    def __init__(self, s: DeployState, to: str | None) -> None:
        super().__init__(s)
        self.to = to
        self.changes_nothing = True  # until the service changes

    def describe(self) -> str:
        what = self.to or "the newest earlier release it does not run now"
        return f"{self.s.settings.web_service} back to {what}: docker stack deploy start-first, wait until healthy"

    def run(self) -> str | Skipped:
        p, web = stack(self.s), self.s.settings.web_service
        target = choose(kept_images(self.s), self.to)
        self.s.web.previous = p.spec_image(web)
        self.s.web.new = target.ref
        if target.running:
            return Skipped(f"{web} already runs {target.tag}")
        self.changes_nothing = False
        p.images[web] = target.ref
        return super().run()
