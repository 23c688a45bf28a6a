"""SwarmStack: the same compose files, run as a Docker Swarm stack named after the project.

It is a :class:`~composekit.compose.ComposeProject` whose containers are swarm tasks, so every
capability built on ``exec`` (the deploy lock, the ledger, backup, restore, verify) works on a
stack unchanged: ``exec`` goes to the running task container of the service on this node.
What differs is how services change:

* :meth:`deploy_services` writes a stack file from the resolved ``docker compose config`` (keys
  the stack loader rejects dropped, the images a deploy chose put in) and feeds it to
  ``docker stack deploy -c -`` on stdin — the environment's secrets never reach an argv;
* :meth:`run` runs a one-off (the migrator) as a ``replicated-job`` service whose environment
  goes through a 0600 ``--env-file``; its output is streamed and its exit code returned;
* :meth:`stop` / :meth:`start` scale a service to 0 and back (the count kept in a label of the
  service, so another process can start what this one stopped).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from composekit import proc
from composekit.compose import ComposeProject, ServiceState
from composekit.compose_errors import translate
from composekit.config import Settings
from composekit.errors import ConfigError, DockerError

STACK_LABEL = "com.docker.stack.namespace"
SERVICE_LABEL = "com.docker.swarm.service.name"
JOB_LABEL = "com.composekit.job"  # on a one-off job service: the stack service it runs
STOPPED_LABEL = "com.composekit.stopped-replicas"
TERMINAL = {"complete", "failed", "rejected", "shutdown", "orphaned", "remove"}

# what the stack loader (compose file format 3.9) accepts of a resolved service; the rest
# (build, restart, depends_on, profiles, expose, container_name, …) has no meaning in a stack
SERVICE_KEYS = {
    "image", "command", "entrypoint", "environment", "healthcheck", "volumes", "ports", "deploy",
    "labels", "stop_grace_period", "stop_signal", "user", "working_dir", "init", "tmpfs",
    "ulimits", "hostname", "secrets", "configs", "logging", "cap_add", "cap_drop", "sysctls",
    "extra_hosts", "dns", "read_only", "networks",
}  # fmt: skip
HEALTH_KEYS = {"test", "interval", "timeout", "retries", "start_period", "disable"}
PORT_KEYS = {"target", "published", "protocol", "mode"}
MOUNT_KEYS = {"type", "source", "target", "read_only", "volume", "tmpfs", "consistency"}


HEALTH_URL = re.compile(
    r"https?://(?:127\.0\.0\.1|localhost)(?::(?P<port>\d+))?(?P<path>/[^\s\"',)]*)?"
)
"""The local URL a web's healthcheck command asks (``urllib.request.urlopen("http://127.0.0.1:8000/healthz")``, ``curl -f http://localhost/up``)."""


@dataclass(frozen=True)
class SwarmNode:
    """This engine's place in a swarm (``docker info``)."""

    state: str  # active, inactive, pending, error, locked
    manager: bool
    node_id: str
    nodes: int


@dataclass(frozen=True)
class Task:
    id: str
    state: str  # new … running, complete, failed, shutdown, rejected
    desired: str
    node_id: str
    container_id: str
    exit_code: int | None
    error: str
    image: str


def drop_nulls(value: Any) -> Any:
    """``value`` without the ``null`` entries the stack loader refuses (compose config keeps them)."""
    if isinstance(value, dict):
        return {k: drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [drop_nulls(v) for v in value if v is not None]
    return value


def stack_service(svc: Mapping[str, Any]) -> dict[str, Any]:
    """One resolved compose service as the stack loader accepts it."""
    out = {k: v for k, v in svc.items() if k in SERVICE_KEYS}
    if "healthcheck" in out:
        out["healthcheck"] = {k: v for k, v in out["healthcheck"].items() if k in HEALTH_KEYS}
    ports = []
    for p in out.get("ports") or []:
        port = {k: v for k, v in p.items() if k in PORT_KEYS}
        if "published" in port:
            port["published"] = int(port["published"])
        ports.append(port)
    if ports:
        out["ports"] = ports
    volumes = []
    for v in out.get("volumes") or []:
        mount = {k: val for k, val in v.items() if k in MOUNT_KEYS}
        if not mount.get("volume"):
            mount.pop("volume", None)
        volumes.append(mount)
    if volumes:
        out["volumes"] = volumes
    networks = out.get("networks")
    if isinstance(networks, dict) and set(networks) <= {"default"}:
        out.pop("networks")  # the stack's own default network
    return drop_nulls(out)


def web_endpoint(service: str, svc: Mapping[str, Any]) -> tuple[int, str | None]:
    """The port ``service`` listens on and the HTTP path its healthcheck asks (None: it checks
    some other way): from the healthcheck's URL, else its ``expose:``/``ports:``."""
    test = (svc.get("healthcheck") or {}).get("test") or []
    m = HEALTH_URL.search(" ".join(test) if isinstance(test, list) else str(test))
    exposed = [int(str(p).split("/")[0]) for p in svc.get("expose") or []]
    exposed += [int(p["target"]) for p in svc.get("ports") or [] if p.get("target")]
    port = int(m.group("port")) if m and m.group("port") else (exposed[0] if exposed else None)
    if port is None:
        raise ConfigError(
            f"cannot tell which port {service} listens on",
            hint=f'add expose: ["8000"] (its port) to {service}',
        )
    return port, (m.group("path") or "/") if m else None


def proxy_config(stack: str, web: str, port: int, path: str | None, bind: int) -> str:
    """HAProxy's configuration in a stack: every task of ``web`` by DNS (``tasks.<web>``: it
    works where the routing mesh's IPVS does not), health-checked each second; a request whose
    task went away as it was sent (a rolling update stopping it) is retried on another."""
    check = f"    option httpchk GET {path}\n" if path else ""
    return (
        f"# written by composekit for the swarm stack {stack}; composekit rewrites it\n"
        "resolvers docker\n"
        "    nameserver dns 127.0.0.11:53\n"
        "    hold valid 1s\n"
        "    hold obsolete 0s\n\n"
        "defaults\n"
        "    mode http\n"
        "    timeout connect 2s\n"
        "    timeout client 60s\n"
        "    timeout server 60s\n"
        "    timeout http-request 10s\n"
        "    retries 3\n"
        "    option redispatch 1\n"
        "    retry-on all-retryable-errors\n\n"
        "frontend site\n"
        f"    bind :{bind}\n"
        "    default_backend web\n\n"
        "backend web\n"
        "    balance roundrobin\n"
        "    # only a GET (or HEAD) is sent again: a POST may have been acted on\n"
        "    http-request disable-l7-retry if !METH_GET\n"
        f"{check}"
        "    default-server check inter 1s fall 1 rise 1 resolvers docker init-addr none\n"
        f"    server-template task 1-16 tasks.{web}:{port}\n"
    )


class SwarmStack(ComposeProject):
    """The project as the stack ``<project name>`` on the swarm this engine manages."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.images: dict[str, str] = {}  # service → the image a deploy chose for it
        self._node: SwarmNode | None = None

    @classmethod
    def from_settings(cls, settings: Settings, overlay: str | None = None) -> SwarmStack:
        project = ComposeProject.from_settings(settings, overlay)
        return cls(
            project.files,
            project_name=project.project_name,
            project_dir=project.project_dir,
            env_file=project.env_file,
        )

    def full(self, service: str) -> str:
        """The swarm service's name: ``<stack>_<service>``."""
        return f"{self.name}_{service}"

    # -- reading the swarm ---------------------------------------------------------------------
    def _docker_read(self, args: Sequence[str], action: str, timeout: float = 60) -> str:
        try:
            return proc.run([self._docker(), *args], timeout=timeout).stdout
        except proc.CommandFailed as exc:
            raise translate(action, exc.stderr, exc.returncode) from exc

    def node(self) -> SwarmNode:
        if self._node is None:
            info = json.loads(
                self._docker_read(["info", "--format", "{{json .Swarm}}"], "docker info") or "{}"
            )
            self._node = SwarmNode(
                str(info.get("LocalNodeState", "")),
                bool(info.get("ControlAvailable")),
                str(info.get("NodeID", "")),
                int(info.get("Nodes") or 0),
            )
        return self._node

    def require_manager(self) -> SwarmNode:
        node = self.node()
        if node.state != "active":
            raise DockerError(
                f"this Docker engine is not in a swarm (state: {node.state or 'inactive'})",
                hint="make it one: docker swarm init --advertise-addr 127.0.0.1 (one node), or run "
                "composekit on a manager of your swarm; without --engine swarm it deploys with Compose",
            )
        if not node.manager:
            raise DockerError(
                "this node is a swarm worker: only a manager can deploy a stack",
                hint="run composekit on a manager node (docker node ls shows them)",
            )
        return node

    def service(self, service: str) -> dict[str, Any] | None:
        """``docker service inspect`` of ``<stack>_<service>``, or None when there is none."""
        r = proc.run(
            [self._docker(), "service", "inspect", self.full(service)], timeout=60, check=False
        )
        if r.returncode != 0:
            if "no such service" in r.stderr.lower():
                return None
            raise translate("docker service inspect", r.stderr, r.returncode)
        return dict(json.loads(r.stdout)[0])

    def tasks(self, full_name: str) -> list[Task]:
        """The tasks of the swarm service ``full_name``, newest first."""
        ids = self._docker_read(
            ["service", "ps", "--quiet", "--no-trunc", full_name], "docker service ps"
        ).split()
        if not ids:
            return []
        found = json.loads(self._docker_read(["inspect", *ids], "docker inspect") or "[]")
        found.sort(key=lambda t: str(t.get("CreatedAt", "")), reverse=True)
        out = []
        for t in found:
            st = t.get("Status") or {}
            cs = st.get("ContainerStatus") or {}
            out.append(
                Task(
                    str(t.get("ID", "")),
                    str(st.get("State", "")),
                    str(t.get("DesiredState", "")),
                    str(t.get("NodeID", "")),
                    str(cs.get("ContainerID", "")),
                    cs.get("ExitCode"),
                    str(st.get("Err", "")),
                    str(t.get("Spec", {}).get("ContainerSpec", {}).get("Image", "")),
                )
            )
        return out

    def spec_image(self, service: str) -> str | None:
        """The image the swarm service runs (its reference, without the digest swarm pins)."""
        svc = self.service(service)
        if svc is None:
            return None
        image = str(svc["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"])
        return image.split("@", 1)[0]

    def ps(self, services: Sequence[str] | None = None, all: bool = True) -> list[ServiceState]:
        """The stack's task containers on this node (of ``services``)."""
        args = ["ps", "--quiet", "--no-trunc", "--filter", f"label={STACK_LABEL}={self.name}"]
        ids = self._docker_read([*args, *(["--all"] if all else [])], "docker ps").split()
        if not ids:
            return []
        r = proc.run([self._docker(), "container", "inspect", *ids], timeout=60, check=False)
        prefix = f"{self.name}_"
        out = []
        for c in json.loads(r.stdout or "[]"):
            st = c.get("State") or {}
            labels = c.get("Config", {}).get("Labels") or {}
            service = str(labels.get(SERVICE_LABEL, "")).removeprefix(prefix)
            if services and service not in services:
                continue
            out.append(
                ServiceState(
                    service=service,
                    name=str(c.get("Name", "")).lstrip("/"),
                    state=str(st.get("Status", "")),
                    health=(st.get("Health") or {}).get("Status"),
                    image_id=str(c.get("Image", "")),
                    exit_code=st.get("ExitCode"),
                    started=str(st.get("StartedAt", "")),
                )
            )
        return out

    def health(self, service: str) -> str:
        """As :meth:`ComposeProject.health`, over the running tasks (swarm keeps old ones)."""
        states = self.ps([service], all=False)
        if not states:
            return "missing"
        healths = {s.health or "running" for s in states}
        return "healthy" if healths == {"healthy"} else sorted(healths - {"healthy"})[0]

    def image_of(self, service: str) -> str | None:
        return self.spec_image(service)

    def container_of(self, service: str) -> str:
        """The running task container of ``service`` on this node (``exec`` goes there)."""
        ids = self._docker_read(
            ["ps", "--quiet", "--filter", f"label={SERVICE_LABEL}={self.full(service)}"],
            "docker ps",
        ).split()
        if not ids:
            raise DockerError(
                f"no running {service} task of the stack {self.name} on this node",
                hint=f"run composekit on the node that runs {self.full(service)} "
                f"(docker service ps {self.full(service)}), or start it: composekit deploy --engine swarm",
            )
        return ids[0]

    def logs(self, service: str, tail: int = 50) -> str:
        r = proc.run(
            [self._docker(), "service", "logs", "--raw", "--tail", str(tail), self.full(service)],
            timeout=30,
            check=False,
        )
        return r.stdout + r.stderr

    # -- changing the stack --------------------------------------------------------------------
    def stack_file(
        self,
        services: Mapping[str, Mapping[str, Any]],
        configs: Mapping[str, Path] | None = None,
    ) -> dict[str, Any]:
        """A stack file holding ``services`` (resolved compose services, already adjusted), the
        named volumes they use and ``configs`` (swarm configs from files, named by content: a
        config cannot change, a new content is a new one). Every service is reached by DNS
        round-robin (``endpoint_mode: dnsrr``): the virtual IPs and the routing mesh need IPVS,
        which many hosts (this test bed among them) lack; ports are published on the host."""
        cfg = self.config()
        used = {
            str(m.get("source"))
            for svc in services.values()
            for m in svc.get("volumes") or []
            if m.get("type") == "volume"
        }
        volumes = {k: v for k, v in (cfg.get("volumes") or {}).items() if k in used}
        out: dict[str, Any] = {}
        for name, svc in services.items():
            spec = stack_service(svc)
            spec.setdefault("deploy", {}).setdefault("endpoint_mode", "dnsrr")
            for port in spec.get("ports") or []:
                port["mode"] = "host"
            out[name] = spec
        named = {
            key: {
                "name": f"{self.name}_{key}-{hashlib.sha256(path.read_bytes()).hexdigest()[:10]}",
                "file": str(path),
            }
            for key, path in (configs or {}).items()
        }
        return drop_nulls(
            {
                "version": "3.9",
                "services": out,
                **({"volumes": volumes} if volumes else {}),
                **({"configs": named} if named else {}),
            }
        )

    def site_proxy(self, proxy: str, web: str) -> tuple[dict[str, Any], dict[str, Path]]:
        """The project's proxy service as the stack runs it: its image, publishing the site's
        port on the host, configured by composekit (:func:`proxy_config`) to send to every
        healthy task of ``web``; and the config file it needs."""
        svc = self.resolved(proxy)
        site = [
            p for p in svc.get("ports") or [] if p.get("published") and int(p["target"]) != 9999
        ]
        if not site:
            raise ConfigError(
                f"{proxy} publishes no port for the site",
                hint=f'give {proxy} ports: ["${{WEB_PORT:-8000}}:8080"]',
            )
        port, path = web_endpoint(web, self.config()["services"][web])
        bind = int(site[0]["target"])
        folder = self.project_dir / ".composekit"
        folder.mkdir(exist_ok=True)
        cfg = folder / f"swarm-{proxy}.cfg"
        cfg.write_text(proxy_config(self.name, web, port, path, bind))
        spec = {
            k: v
            for k, v in svc.items()
            if k not in ("volumes", "command", "entrypoint", "healthcheck")
        }
        spec["ports"] = [
            {"target": bind, "published": int(site[0]["published"]), "protocol": "tcp"}
        ]
        spec["configs"] = [{"source": "haproxy", "target": "/usr/local/etc/haproxy/haproxy.cfg"}]
        return spec, {"haproxy": cfg}

    def deploy_services(
        self,
        services: Mapping[str, Mapping[str, Any]],
        *,
        timeout: float,
        configs: Mapping[str, Path] | None = None,
    ) -> None:
        """``docker stack deploy`` these services (the others in the stack are left as they are).
        Returns once swarm accepted the change; callers wait for it to converge."""
        spec = json.dumps(self.stack_file(services, configs))  # JSON is YAML: no emitter needed
        args = [self._docker(), "stack", "deploy", "--resolve-image", "never", "--detach=true"]
        if self.node().nodes > 1:
            args.append("--with-registry-auth")
        try:
            proc.run([*args, "-c", "-", self.name], timeout=timeout, input=spec)
        except proc.CommandFailed as exc:
            raise translate("docker stack deploy", exc.stderr, exc.returncode) from exc

    def resolved(self, service: str) -> dict[str, Any]:
        """``service`` as the compose files resolve it, with the image a deploy chose for it."""
        svc = dict(self.config().get("services", {}).get(service) or {})
        if service in self.images:
            svc["image"] = self.images[service]
        return svc

    def up(
        self,
        services: Sequence[str] | None = None,
        *,
        wait: bool = True,
        wait_timeout: int | None = 120,
        **_: Any,
    ) -> None:
        """Deploy ``services`` as they are resolved, then (``wait``) wait until each is healthy."""
        names = list(services or self.services())
        self.deploy_services({n: self.resolved(n) for n in names}, timeout=120)
        if wait:
            self.wait_healthy(names, timeout=wait_timeout or 120)

    def wait_healthy(self, services: Sequence[str], *, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for name in services:
            while self.health(name) not in ("healthy", "running"):
                if time.monotonic() > deadline:
                    raise DockerError(
                        f"{self.full(name)} did not become healthy in {timeout:.0f}s",
                        hint=f"see docker service ps --no-trunc {self.full(name)}",
                    )
                time.sleep(0.5)

    def push(self, ref: str, *, timeout: float) -> None:
        """``docker push`` a release, for the swarm's other nodes to pull."""
        self._mutate(("push", "--quiet", ref), timeout=timeout, compose=False)

    def _update(self, service: str, *args: str, timeout: float = 300) -> None:
        argv = ("service", "update", "--quiet", *args, self.full(service))
        self._mutate(argv, timeout=timeout, compose=False, action="docker service update")

    def stop(self, services: Sequence[str]) -> None:
        """Scale each service to 0, its count kept in a label (for :meth:`start`)."""
        for name in services:
            replicas = spec_replicas(self.service(name))
            if not replicas:
                continue
            self._update(name, "--replicas", "0", "--label-add", f"{STOPPED_LABEL}={replicas}")

    def start(self, services: Sequence[str]) -> None:
        for name in services:
            svc = self.service(name)
            labels = (svc or {}).get("Spec", {}).get("Labels") or {}
            if STOPPED_LABEL in labels:
                n = labels[STOPPED_LABEL]
                self._update(name, "--replicas", str(n), "--label-rm", STOPPED_LABEL)

    def rollback(self, service: str, *, timeout: float) -> None:
        """``docker service rollback``: the spec the last update replaced, waited for."""
        argv = ("service", "rollback", "--quiet", self.full(service))
        self._mutate(argv, timeout=timeout, compose=False, action="docker service rollback")

    def web_back(self, service: str, previous: str | None, new: str | None) -> str:
        """After a run that was killed: ``service`` back on ``previous`` ("" if it runs it)."""
        current = self.spec_image(service)
        if current == previous or current is None:
            return ""
        if previous is None:  # the killed run's first deploy created it
            self.remove_service(service)
            return f"removed {service} (the interrupted first deploy created it)"
        self.rollback(service, timeout=600)
        if self.spec_image(service) != previous:
            raise DockerError(
                f"{self.full(service)} runs {self.spec_image(service)} after a rollback, not {previous}",
                hint=f"put it back by hand: docker service update --image {previous} {self.full(service)}",
            )
        return f"{service} back on {previous} (docker service rollback)"

    def remove_service(self, service: str) -> bool:
        r = proc.run(
            [self._docker(), "service", "rm", self.full(service)], timeout=120, check=False
        )
        return r.returncode == 0

    def remove_oneoffs(self, service: str) -> int:
        """Remove the job services still there for ``service`` (a run stopped half-way)."""
        names = self._docker_read(
            [
                "service", "ls", "--quiet", "--filter",
                f"label={JOB_LABEL}={self.full(service)}",
            ],
            "docker service ls",
        ).split()  # fmt: skip
        for name in names:
            self._remove_job(name)
        left = self._remove_labelled(f"{JOB_LABEL}={self.full(service)}")
        return len(names) or left

    def run(
        self,
        service: str,
        argv: Sequence[str] = (),
        *,
        timeout: float = 600,
        on_line: Callable[[str], None] = lambda line: None,
        env: Mapping[str, str] | None = None,
        no_deps: bool = False,
    ) -> proc.Completed:
        """``service`` once, as a ``replicated-job`` service on the stack's network: its output
        streamed, its exit code returned (never raised); the job service removed afterwards."""
        svc = self.resolved(service)
        image = svc.get("image")
        if not image:
            raise ConfigError(
                f"{service} has no image: a swarm job needs one",
                hint=f"give {service} an image: (the web's, if it runs the same code)",
            )
        name = f"{self.full(service)}-{uuid.uuid4().hex[:8]}"
        values = {
            str(k): str(v) for k, v in (svc.get("environment") or {}).items() if v is not None
        }
        values.update(env or {})
        with tempfile.TemporaryDirectory(prefix="composekit-job-") as tmp:
            env_file = Path(tmp) / "env"
            fd = os.open(env_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.writelines(f"{k}={v}\n" for k, v in values.items())
            create = [
                self._docker(), "service", "create", "--quiet", "--detach",
                "--name", name, "--mode", "replicated-job", "--restart-condition", "none",
                "--network", f"{self.name}_default", "--env-file", str(env_file),
                "--label", f"{JOB_LABEL}={self.full(service)}",
                "--label", f"{STACK_LABEL}={self.name}",
                "--container-label", f"{STACK_LABEL}={self.name}",
                "--container-label", f"{JOB_LABEL}={self.full(service)}",
            ]  # fmt: skip
            for m in svc.get("volumes") or []:
                if m.get("type") in ("bind", "volume"):
                    ro = ",readonly" if m.get("read_only") else ""
                    create += [
                        "--mount",
                        f"type={m['type']},src={m['source']},dst={m['target']}{ro}",
                    ]
            if svc.get("working_dir"):
                create += ["--workdir", str(svc["working_dir"])]
            if svc.get("user"):
                create += ["--user", str(svc["user"])]
            entrypoint = svc.get("entrypoint") or []
            if entrypoint:
                create += ["--entrypoint", " ".join(entrypoint)]
            command = list(argv) or list(svc.get("command") or [])
            try:
                proc.run([*create, str(image), *command], timeout=120)
            except proc.CommandFailed as exc:
                raise translate("docker service create", exc.stderr, exc.returncode) from exc
        try:
            return self._follow(name, timeout=timeout, on_line=on_line)
        finally:
            self._remove_job(name)

    def _remove_job(self, name: str) -> None:
        """The job service and its container (removing a job service leaves an ended one)."""
        proc.run([self._docker(), "service", "rm", name], timeout=120, check=False)
        self._remove_labelled(f"{SERVICE_LABEL}={name}")

    def _remove_labelled(self, label: str) -> int:
        """Force-remove every container with ``label`` (``key=value``); how many there were."""
        left = self._docker_read(
            ["ps", "--all", "--quiet", "--filter", f"label={label}"], "docker ps"
        ).split()
        if left:
            proc.run([self._docker(), "rm", "--force", *left], timeout=120, check=False)
        return len(left)

    def _follow(
        self, name: str, *, timeout: float, on_line: Callable[[str], None]
    ) -> proc.Completed:
        """Wait for the job's task to end, streaming its output; its exit code."""
        deadline = time.monotonic() + timeout
        lines: list[str] = []
        followed = False
        while True:
            tasks = self.tasks(name)
            task = tasks[0] if tasks else None
            here = task is not None and task.node_id == self.node().node_id
            if task is not None and here and task.container_id and not followed:
                # on this node: its container's log, followed until the container exits
                out = proc.stream(
                    [self._docker(), "logs", "--follow", task.container_id],
                    timeout=max(1.0, deadline - time.monotonic()),
                    on_line=on_line,
                )
                lines, followed = out.stdout.splitlines(), True
                continue
            if task is not None and task.state in TERMINAL:
                break
            if time.monotonic() > deadline:
                raise proc.CommandTimeout([name], timeout)
            time.sleep(0.2)
        if not followed:  # ran elsewhere (or never started): its log, once it ended
            text = self._docker_read(["service", "logs", "--raw", name], "docker service logs")
            lines = text.splitlines()
            for line in lines:
                on_line(line)
        if task.exit_code is None or (task.state == "rejected" and task.exit_code == 0):
            raise DockerError(
                f"the {name} job did not run: {task.error or task.state}",
                hint=f"is its image on every node? docker service ps --no-trunc {name}",
            )
        return proc.Completed([name], int(task.exit_code), "\n".join(lines), "")


def project_for(settings: Settings, overlay: str | None = None) -> ComposeProject:
    """The project as ``[deploy] engine`` runs it: Compose on this host, or the swarm stack."""
    if settings.engine == "swarm":
        return SwarmStack.from_settings(settings, overlay)
    return ComposeProject.from_settings(settings, overlay)


def spec_replicas(svc: dict[str, Any] | None) -> int | None:
    """The replica count a service's spec asks for (None: no such service, 0, or global)."""
    mode = (svc or {}).get("Spec", {}).get("Mode", {}).get("Replicated") or {}
    return int(mode["Replicas"]) if mode.get("Replicas") else None
