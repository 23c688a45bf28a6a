"""The reverse proxy in front of the web (HAProxy), driven through its runtime API.

The proxy is the only service that publishes the site's port; its runtime API (``stats socket``
on port 9999 in the container) is published on the host's loopback only (``127.0.0.1::9999``, a
port Docker picks) and found with ``docker compose port``. Runtime changes need no reload: no
connection is dropped when traffic moves (Caddy 2.6, which reloads its whole configuration for
any change, reset 1–3 connections in 20 switches in ``bench/proxy.py``; HAProxy none).

The scaffolded ``proxy/haproxy.cfg`` has, in backend ``web``:

* slots ``s1`` … ``sN`` (disabled at start): composekit points one at each web container by its
  *name* (``set server … fqdn``; Docker's DNS re-resolves it, so no stale IP), and switches them
  between ``ready`` (serving), ``drain`` (finishing requests in flight; reachable only by a probe)
  and ``maint``;
* a ``use-server sK`` rule per slot for the header ``X-Composekit-Probe: sK``: the health gate
  requests the app through the proxy, from one new container, before any visitor does;
* ``server-template dns`` on the service name: what serves when no rollout has set the slots (the
  first start, or after a proxy restart: every web container, health-checked).

With no server left (``--maintenance``, a restore's swap) HAProxy answers with
``proxy/maintenance.http``: 503 and ``Retry-After``.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from composekit.compose import ComposeProject
from composekit.config import Settings
from composekit.deadline import Deadline
from composekit.errors import DockerError

if TYPE_CHECKING:
    import urllib.request

ADMIN_PORT = 9999
BACKEND = "web"
SLOT = "s"  # s1, s2, …: the slots composekit points at containers
DNS = "dns"  # dns1, …: the service name's addresses (the fallback)
UNSET = "web.invalid"  # a slot's name before composekit points it anywhere
PROBE_HEADER = "X-Composekit-Probe"
SLOTS = 32  # web containers of two generations at most (so --scale up to 16)
RESOLVE_S = 10.0  # how long a slot's new name may take to resolve


@dataclass(frozen=True)
class ProxyView:
    """What the proxy does now."""

    serving: list[str]  # container names (or the service name: every container, by DNS)
    maintenance: bool  # nothing serves: the 503 page
    draining: list[str]


@dataclass(frozen=True)
class Server:
    name: str  # s3, dns1
    host: str  # the container name it points at ("" when unset)
    addr: str  # "" when unresolved
    status: str  # UP, no check, DRAIN, MAINT, MAINT (resolution), DOWN
    current: int  # requests in flight
    forced_maint: bool = False  # set to maint by the API (not only unresolved or unhealthy)

    @property
    def ready(self) -> bool:
        return self.status.startswith("UP") or self.status == "no check"

    @property
    def slot(self) -> bool:
        return self.name.startswith(SLOT) and self.name[len(SLOT) :].isdigit()


class Proxy:
    def __init__(self, project: ComposeProject, service: str, web_service: str) -> None:
        self.project = project
        self.service = service
        self.web_service = web_service
        self._admin: tuple[str, int] | None = None

    @classmethod
    def of(cls, settings: Settings, project: ComposeProject) -> Proxy | None:
        """The project's proxy, if its compose files have the ``[services] proxy`` service."""
        if settings.proxy_service not in project.services():
            return None
        return cls(project, settings.proxy_service, settings.web_service)

    # -- the container ---------------------------------------------------------------------
    def ensure_running(self, deadline: Deadline) -> None:
        """Start the proxy if it is not running, then wait until its runtime API answers."""
        if not self.project.ps([self.service], all=False):
            self.project.up(
                [self.service], no_build=True, no_deps=True, wait=False, no_recreate=True
            )
            self._admin = None
        last: Exception | None = None
        while True:
            try:
                self.servers()
                return
            except DockerError as exc:
                last = exc
            if deadline.expired:
                raise DockerError(
                    f"the proxy ({self.service}) did not answer on its runtime API: {last}",
                    hint=f"see `docker compose logs {self.service}`; its ports: must publish "
                    f'"127.0.0.1::{ADMIN_PORT}" and haproxy.cfg have '
                    f"`stats socket ipv4@0.0.0.0:{ADMIN_PORT} level admin`",
                )
            self._admin = None  # the published port changes when the container is recreated
            time.sleep(min(0.2, deadline.remaining()))

    def admin(self) -> tuple[str, int]:
        if self._admin is None:
            host, _, port = self.project.port(self.service, ADMIN_PORT).rpartition(":")
            self._admin = (host, int(port))
        return self._admin

    def public(self) -> str:
        """``host:port`` where the proxy serves the site (its first published port but the API)."""
        svc = self.project.config().get("services", {}).get(self.service, {})
        for p in svc.get("ports") or []:
            target = int(p.get("target", 0)) if isinstance(p, dict) else 0
            if target and target != ADMIN_PORT:
                return self.project.port(self.service, target)
        raise DockerError(
            f"{self.service} publishes no port for the site",
            hint=f'give {self.service} ports: ["${{WEB_PORT:-8000}}:8080"]',
        )

    # -- the runtime API -------------------------------------------------------------------
    def _call(self, command: str, timeout: float = 10) -> str:
        try:
            with socket.create_connection(self.admin(), timeout=timeout) as s:
                s.sendall(command.encode() + b"\n")
                chunks = []
                while chunk := s.recv(65536):
                    chunks.append(chunk)
        except OSError as exc:
            raise DockerError(
                f"the proxy's runtime API ({':'.join(map(str, self.admin()))}) did not answer: "
                f"{exc.strerror or exc}",
                hint=f"see `docker compose logs {self.service}`",
            ) from exc
        return b"".join(chunks).decode(errors="replace")

    def _commands(self, commands: list[str]) -> None:
        """Run ``set server`` commands (one connection each: HAProxy answers each with text only
        when something is wrong, or to note a change)."""
        for command in commands:
            out = self._call(command).strip()
            if out and not any(ok in out for ok in ("changed its FQDN", "changed its IP")):
                raise DockerError(
                    f"the proxy refused `{command}`: {out.splitlines()[0]}",
                    hint=f"is {self.service} running the scaffolded proxy/haproxy.cfg "
                    f"(backend {BACKEND}, slots {SLOT}1…{SLOT}{SLOTS})?",
                )

    def servers(self) -> list[Server]:
        """The web backend's servers: where each points, its state, its requests in flight."""
        state = self._call(f"show servers state {BACKEND}")
        hosts: dict[str, tuple[str, str, bool]] = {}
        for line in state.splitlines():
            f = line.split()
            if len(f) > 17 and not line.startswith("#") and f[1] == BACKEND:
                forced = bool(int(f[6]) & 0x01)  # srv_admin_state: SRV_ADMF_FMAINT
                hosts[f[3]] = (f[17] if f[17] != UNSET else "", f[4] if f[4] != "-" else "", forced)
        if not hosts:
            raise DockerError(
                f"the proxy has no backend {BACKEND!r} with servers",
                hint="use the scaffolded proxy/haproxy.cfg (composekit init writes one)",
            )
        out = []
        for line in self._call("show stat").splitlines():
            f = line.split(",")
            if len(f) > 17 and f[0] == BACKEND and f[1] in hosts:
                host, addr, forced = hosts[f[1]]
                out.append(Server(f[1], host, addr, f[17], int(f[4] or 0), forced))
        return out

    def in_flight(self, hosts: Sequence[str]) -> int:
        """Requests the proxy has in flight to these containers."""
        wanted = set(hosts)
        servers = self.servers()
        # the service-name servers reach the same containers by address (requests that started
        # before composekit pointed slots at them)
        addrs = {s.addr for s in servers if s.slot and s.host in wanted and s.addr}
        return sum(
            s.current
            for s in servers
            if (s.slot and s.host in wanted)
            or (not s.slot and (s.addr in addrs or self.web_service in wanted))
        )

    def view(self) -> ProxyView:
        servers = self.servers()
        serving = [s.host for s in servers if s.slot and s.ready]
        dns_up = any(not s.slot and s.ready for s in servers)
        if not serving and dns_up:
            serving = [self.web_service]  # the fallback: every container of the service
        return ProxyView(serving, not serving, [s.host for s in servers if s.status == "DRAIN"])

    # -- the switch ------------------------------------------------------------------------
    def set(
        self,
        serving: Sequence[str] | None,
        *,
        probes: Sequence[str] = (),
        drain: Sequence[str] = (),
        maintenance: bool | None = None,
    ) -> None:
        """Send the site to the containers ``serving`` (None or empty: as it is), let ``probes``
        be reached by a probe only, keep ``drain`` finishing what is in flight (no new requests),
        and the maintenance page on (nothing serves) or off (None: as it is). New servers are
        made ready before old ones stop taking requests: there is no moment without one."""
        servers = self.servers()
        by_host = {s.host: s.name for s in servers if s.slot and s.host}
        wanted = list(dict.fromkeys([*(serving or []), *probes, *drain]))
        free = [
            s.name
            for s in servers
            if s.slot and s.host not in wanted and (not s.host or s.status.startswith("MAINT"))
        ]
        pointed: list[str] = []
        for host in wanted:
            if host in by_host:
                continue
            if not free:
                raise DockerError(
                    f"the proxy has no free slot for {host} ({SLOTS} at most)",
                    hint="fewer web containers (--scale), or more slots in haproxy.cfg",
                )
            by_host[host] = free.pop(0)
            pointed.append(by_host[host])
            self._commands([f"set server {BACKEND}/{by_host[host]} fqdn {host}"])
        if pointed:
            self._await_resolved(pointed)
        state: dict[str, str] = {}
        if serving or maintenance is not None:  # everything else stops taking requests
            state = {s.name: "maint" for s in servers}
        if maintenance is False and not serving:
            state.update({s.name: "ready" for s in servers if not s.slot})  # every container
        if serving and not maintenance:
            state.update({by_host[h]: "ready" for h in serving})
        for host in [*drain, *probes]:
            if maintenance or host not in (serving or []):
                state[by_host[host]] = "drain"
        current = {s.name: s for s in servers}
        order = {"ready": 0, "drain": 1, "maint": 2}  # ready first: never a moment with none
        self._commands(
            [
                f"set server {BACKEND}/{name} state {want}"
                for name, want in sorted(state.items(), key=lambda kv: order[kv[1]])
                if name not in current or not _already(current[name], want)
            ]
        )

    def _await_resolved(self, slots: list[str]) -> None:
        deadline = time.monotonic() + RESOLVE_S
        while True:
            unresolved = [s.name for s in self.servers() if s.name in slots and not s.addr]
            if not unresolved:
                return
            if time.monotonic() > deadline:
                raise DockerError(
                    f"the proxy could not resolve {', '.join(unresolved)}'s container name",
                    hint=f"see `docker compose logs {self.service}` (its resolvers section)",
                )
            time.sleep(0.05)

    def probe_request(self, path: str, host: str) -> urllib.request.Request:
        """A request for ``path`` through the proxy's public port that container ``host`` alone
        answers (its slot's probe header). Built once per container: the port and slot lookups
        cost a ``docker compose port`` and two API calls."""
        slot = next((s.name for s in self.servers() if s.slot and s.host == host), None)
        if slot is None:
            raise DockerError(
                f"the proxy has no slot for {host}", hint="composekit sets one before it probes"
            )
        import urllib.request  # only a deploy through the proxy probes: not worth every command's start

        return urllib.request.Request(f"http://{self.public()}{path}", headers={PROBE_HEADER: slot})


def _already(server: Server, want: str) -> bool:
    if want == "maint":  # forced: an unresolved server would come up when its name resolves
        return server.forced_maint
    if want == "drain":
        return server.status == "DRAIN"
    return server.ready


def haproxy_slots() -> str:
    """The backend lines composekit's switch needs (written by ``composekit init``)."""
    rules = [
        f"    use-server {SLOT}{i} if {{ req.hdr({PROBE_HEADER}) -m str {SLOT}{i} }}"
        for i in range(1, SLOTS + 1)
    ]
    servers = [
        f"    server {SLOT}{i} {UNSET}:8000 resolvers docker init-addr none disabled"
        for i in range(1, SLOTS + 1)
    ]
    return "\n".join([*rules, *servers])
