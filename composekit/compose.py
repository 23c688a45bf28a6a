"""ComposeProject: the only module that talks to python-on-whales / Docker Compose.

Structured calls (config, ps, up, down, logs, build) go through python-on-whales; calls whose
output must be streamed line by line, or kept binary (``pg_dump -Fc``), use the very same
``docker compose`` command line python-on-whales builds, run through :mod:`composekit.proc`.
Every Docker failure leaves here as a :class:`~composekit.errors.ComposekitError`.
"""

from __future__ import annotations

import functools
import json
import re
import shutil
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from composekit import proc
from composekit.compose_errors import translate
from composekit.errors import ConfigError, DockerError

if TYPE_CHECKING:
    from composekit.config import Settings

MIN_COMPOSE = (2, 20, 0)
BUILD_STEP = re.compile(
    r"^(?:#\d+ \[(?:[\w.-]+ )?(?P<step>\d+/\d+)\]|Step (?P<classic>\d+/\d+) :) (?P<what>.+)$"
)
"""A build step starting, as BuildKit's plain output (``#7 [web 2/6] RUN …``) or the classic
builder (``Step 2/6 : RUN …``) prints it."""
BUILD_REPORT_EVERY = 2.0


@dataclass(frozen=True)
class ServiceState:
    service: str
    name: str
    state: str  # running, exited, ...
    health: str | None  # healthy, unhealthy, starting, None (no healthcheck)
    image_id: str
    exit_code: int | None
    config_hash: str = ""  # Compose's hash of the service configuration it was created from
    number: int = 0  # Compose's container number (web-1, web-2, ...)
    started: str = ""  # when it last started (Docker's StartedAt)
    check_failing: bool = False  # its latest healthcheck failed (Docker says "unhealthy" only
    # after `retries` failures in a row: a minute, with the templates' 30 × 2 s)


def parse_version(text: str) -> tuple[int, int, int]:
    """Numeric version from ``Docker Compose version v2.40.3`` / ``5.0.1`` / ``2.27.0-desktop.1``."""
    m = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", text)
    if not m:
        raise ValueError(f"no version number in {text!r}")
    return int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)


@contextmanager
def docker_errors(action: str) -> Iterator[None]:
    """Turn python-on-whales' exceptions into composekit errors with a fix."""
    from python_on_whales.client_config import ClientNotFoundError
    from python_on_whales.exceptions import DockerException

    try:
        yield
    except ClientNotFoundError as exc:
        raise DockerError(
            "the docker client is not installed",
            hint="install Docker (on Debian: `composekit doctor --fix`)",
        ) from exc
    except DockerException as exc:
        raise translate(action, exc.stderr or "", exc.return_code) from exc


def exec_flags(env: Mapping[str, str] | None, user: str | None) -> list[str]:
    """``-e NAME`` for each variable (the value is inherited from our environment, never in
    argv) and ``--user``: the same for ``docker exec`` and ``docker compose exec``."""
    flags = [f for key in env or {} for f in ("-e", key)]
    return flags + (["--user", user] if user else [])


COMPOSE_FILES = ("compose.yaml", "compose.yml", "docker-compose.yml", "docker-compose.yaml")
OVERRIDE_FILES = tuple(n.replace(".y", ".override.y") for n in COMPOSE_FILES)


def _last_check_failed(state: Mapping[str, Any]) -> bool:
    log = (state.get("Health") or {}).get("Log") or []
    return bool(log) and log[-1].get("ExitCode") != 0


def default_files(base: Path) -> list[Path]:
    """The files ``docker compose`` reads in ``base`` when none is named: the first of
    :data:`COMPOSE_FILES`, and with it the first override file (compose.override.yaml …) there
    is — so composekit sees the project exactly as the team's own ``docker compose up`` does."""
    main = next((base / n for n in COMPOSE_FILES if (base / n).is_file()), None)
    if main is None:
        return []
    override = next((base / n for n in OVERRIDE_FILES if (base / n).is_file()), None)
    return [main, *([override] if override else [])]


class ComposeProject:
    """One Compose project: its files, project name and env file.

    >>> p = ComposeProject(["compose.yaml"], project_name="shop")   # doctest: +SKIP
    >>> p.up(["db"], wait=True)                                       # doctest: +SKIP
    """

    def __init__(
        self,
        files: Sequence[str | Path] = (),
        *,
        project_name: str | None = None,
        project_dir: str | Path | None = None,
        env_file: str | Path | None = None,
        profiles: Sequence[str] = (),
    ) -> None:
        base = Path(project_dir) if project_dir else Path.cwd()
        self.project_dir = base
        self.files = [Path(f) if Path(f).is_absolute() else base / f for f in files]
        if not self.files:
            self.files = default_files(base)
        missing = [str(f) for f in self.files if not f.is_file()]
        if missing or not self.files:
            raise ConfigError(
                f"compose file not found: {', '.join(missing) or 'compose.yaml in ' + str(base)}",
                hint='run composekit in the project directory (or -C DIR), or list the files in composekit.toml: [compose] files = ["compose.yaml"]',
            )
        env_path = None
        if env_file:
            env_path = Path(env_file) if Path(env_file).is_absolute() else base / env_file
            if not env_path.is_file():
                env_path = None
        self.env_file = env_path
        self.project_name = project_name
        self.profiles = list(profiles)
        self._config: dict[str, Any] | None = None
        self._containers: dict[str, str] = {}  # service → its running container (exec's target)
        self._hashes: dict[str, proc.Later[str]] = {}  # service → its config hash, being read

    @functools.cached_property
    def client(self) -> Any:
        """python-on-whales, for the structured calls. Made on first use: importing it costs about
        0.13 s, which commands that only run ``docker compose exec`` (backup, restore) never pay."""
        from python_on_whales import DockerClient

        return DockerClient(
            compose_files=list(self.files),
            compose_project_name=self.project_name,
            compose_project_directory=self.project_dir,
            compose_env_files=[self.env_file] if self.env_file else [],
            compose_profiles=self.profiles,
        )

    @classmethod
    def from_settings(cls, settings: Settings, overlay: str | None = None) -> ComposeProject:
        files: list[str | Path] = list(settings.compose_files)
        if overlay:
            files = [*(files or default_files(settings.project_dir)), overlay]
        return cls(
            files,
            project_name=settings.project_name,
            project_dir=settings.project_dir,
            env_file=settings.env_file,
        )

    # -- the command line, for proc-run calls -------------------------------------------------
    @property
    def name(self) -> str:
        """The project's name as Compose resolves it (``--project-name``, ``name:``, the folder)."""
        return self.project_name or str(self.config().get("name") or self.project_dir.name)

    @staticmethod
    def _docker() -> str:
        docker = shutil.which("docker")
        if docker is None:
            raise DockerError(
                "the docker client is not installed",
                hint="install Docker (on Debian: `composekit doctor --fix`)",
            )
        return docker

    def compose_argv(self, *args: str) -> list[str]:
        """The ``docker compose`` command line python-on-whales would build for this project (a
        test holds the two equal), then ``args``."""
        argv = [self._docker(), "compose"]
        for f in self.files:
            argv += ["--file", str(f)]
        for profile in self.profiles:
            argv += ["--profile", profile]
        if self.env_file:
            argv += ["--env-file", str(self.env_file)]
        if self.project_name:
            argv += ["--project-name", self.project_name]
        return argv + ["--project-directory", str(self.project_dir), *args]

    # -- structured calls ---------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        """The resolved configuration (validates every file and the env overlay); read once per
        ComposeProject — one composekit command does not expect its compose files to change."""
        if self._config is None:
            # every profile: plain `config` hides profiled services (e.g. the migrator)
            args = self.compose_argv("--profile", "*", "config", "--format", "json")
            try:
                r = proc.run(args, timeout=60)
            except proc.CommandFailed as exc:
                error = translate("docker compose config", exc.stderr, exc.returncode)
                culprit = self._unreadable_file(exc.stderr)
                if culprit is not None:
                    error.message = error.message.replace(
                        "the compose file is invalid", f"{culprit.name} is invalid"
                    )
                raise error from exc
            self._config = dict(json.loads(r.stdout))
        return self._config

    def _unreadable_file(self, stderr: str) -> Path | None:
        """Which of several files a YAML error is in (Compose's message does not say)."""
        if "yaml:" not in stderr or len(self.files) < 2:
            return None
        for f in self.files:
            r = proc.run(
                [self._docker(), "compose", "--file", f, "config", "--quiet", "--no-interpolate"],
                timeout=30,
                check=False,
            )
            if "yaml:" in r.stderr:
                return f
        return None

    def config_changed(self, service: str, running: Sequence[ServiceState] | None = None) -> bool:
        """Whether ``service``'s running containers (``running``: as the caller just read them)
        were created from another configuration than the compose files (and overlay) say now —
        an environment or port change with the same image still needs the container recreated."""
        want = self.config_hash(service)
        states = self.ps([service], all=False) if running is None else running
        return any(s.config_hash != want for s in states)

    def config_hash(self, service: str) -> str:
        """The hash Compose labels ``service``'s containers with, for the configuration now."""
        if service not in self._hashes:
            self.prefetch_config_hash(service)
        return self._hashes[service].result()

    def prefetch_config_hash(self, service: str) -> None:
        """Start reading :meth:`config_hash` in the background (``docker compose config --hash``
        takes 0.05 s: a deploy starts it at preflight and asks at its web step)."""

        def read() -> str:
            argv = self.compose_argv("config", "--hash", service)
            out = self._read(argv, "docker compose config").split()
            return out[-1] if out else ""

        if service not in self._hashes:
            self._hashes[service] = proc.Later(read)

    def healthcheck(self, service: str) -> list[str] | None:
        """The argv of ``service``'s healthcheck test as it runs in the container, or None."""
        hc = self.config().get("services", {}).get(service, {}).get("healthcheck") or {}
        test = hc.get("test")
        if hc.get("disable") or not test:
            return None
        if isinstance(test, str):
            argv = ["/bin/sh", "-c", test]
        else:
            kind, *rest = test
            if kind == "CMD" and rest:
                argv = [str(a) for a in rest]
            elif kind == "CMD-SHELL" and rest:
                argv = ["/bin/sh", "-c", str(rest[0])]
            else:
                return None  # NONE
        return [a.replace("$$", "$") for a in argv]  # `config` keeps compose's escape for a $

    def replicas(self, service: str) -> int:
        return self.replicas_set(service) or 1

    def replicas_set(self, service: str) -> int | None:
        """``deploy.replicas`` (or ``scale``) as the compose files set it; None when they do not."""
        svc = self.config().get("services", {}).get(service, {})
        n = (svc.get("deploy") or {}).get("replicas") or svc.get("scale")
        return int(n) if n else None

    def port(self, service: str, private: int) -> str:
        """``host:port`` where ``service`` publishes its container port ``private``."""
        out = self._read(
            self.compose_argv("port", service, str(private)), "docker compose port"
        ).split()
        if not out or out[0].endswith(":0"):
            raise DockerError(
                f"{service} publishes no port {private}",
                hint=f"see the ports: of {service} in the compose file",
            )
        host, _, port = out[0].rpartition(":")
        return f"{'127.0.0.1' if host in ('0.0.0.0', '::', '[::]') else host}:{port}"

    def remove_containers(self, names: Sequence[str], stop_timeout: int = 10) -> None:
        """Stop (``SIGTERM``, up to ``stop_timeout`` s) then remove these containers, by name."""
        self._containers.clear()
        for args, timeout in (
            (["stop", "--time", str(stop_timeout)], stop_timeout + 120),
            (["rm", "--force"], 120),
        ):
            if not names:
                return
            r = proc.run([self._docker(), *args, *names], timeout=timeout, check=False)
            errors = [ln for ln in r.stderr.splitlines() if "no such container" not in ln.lower()]
            if r.returncode != 0 and any(ln.strip() for ln in errors):
                raise translate(f"docker {args[0]}", r.stderr, r.returncode)

    def services(self) -> list[str]:
        """Every service, including those behind a profile."""
        return sorted(self.config().get("services", {}))

    def require_services(self, *names: str) -> None:
        known = self.services()
        for name in names:
            if name not in known:
                raise ConfigError(
                    f"service {name!r} is not in {', '.join(str(f.name) for f in self.files)}"
                    f" (services: {', '.join(known) or 'none'})",
                    hint="add the service, or name the right one in composekit.toml [services]",
                )

    def up(
        self,
        services: Sequence[str] | None = None,
        *,
        build: bool = False,
        wait: bool = True,
        wait_timeout: int | None = 120,
        scales: Mapping[str, int] | None = None,
        no_build: bool = False,
        force_recreate: bool = False,
        no_deps: bool = False,
        no_recreate: bool = False,
    ) -> None:
        flags = ["-d"]
        flags += ["--build"] if build else []
        flags += ["--no-build"] if no_build else []
        flags += ["--force-recreate"] if force_recreate else []
        flags += ["--no-recreate"] if no_recreate else []
        flags += ["--no-deps"] if no_deps else []
        if wait:
            flags += ["--wait", *(["--wait-timeout", str(wait_timeout)] if wait_timeout else [])]
        for service, n in (scales or {}).items():
            flags += ["--scale", f"{service}={n}"]
        self._mutate(("up", *flags, *(services or [])), timeout=(wait_timeout or 600) + 120)

    def _mutate(
        self, args: Sequence[str], *, timeout: float, compose: bool = True, action: str = ""
    ) -> None:
        """A command that changes containers or images, through :mod:`composekit.proc` (not
        python-on-whales): in a session of its own, so a signal sent to composekit's process group
        cannot kill it half-way through an undo; and with a timeout."""
        argv = self.compose_argv(*args) if compose else [self._docker(), *args]
        self._containers.clear()  # a container may be another one now
        try:
            proc.run(argv, timeout=timeout)
        except proc.CommandFailed as exc:
            action = action or f"docker {'compose ' if compose else ''}{args[0]}"
            raise translate(action, exc.stderr, exc.returncode) from exc

    def build(
        self,
        services: Sequence[str] | None = None,
        *,
        timeout: float = 3600,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        """``docker compose build`` (through proc: python-on-whales has no timeout). With
        ``progress``, the build's steps as they start (``[2/6] RUN pip install …``), at most one
        line every :data:`BUILD_REPORT_EVERY` seconds and never a cached one."""
        if progress is None:
            args = self.compose_argv("build", "--quiet", *(services or []))
            try:
                proc.run(args, timeout=timeout)
            except proc.CommandFailed as exc:
                raise translate("docker compose build", exc.stderr, exc.returncode) from exc
            return
        args = self.compose_argv("--progress", "plain", "build", *(services or []))
        said = [0.0]

        def step(line: str) -> None:
            m = BUILD_STEP.match(line)
            if m and time.monotonic() - said[0] >= BUILD_REPORT_EVERY:
                said[0] = time.monotonic()
                number = m.group("step") or m.group("classic")
                progress(f"  build [{number}] {m.group('what')[:80]}")

        done = proc.stream(args, timeout=timeout, on_line=step)
        if done.returncode != 0:
            raise translate("docker compose build", done.stdout, done.returncode)

    def down(self, *, volumes: bool = False, timeout: int = 10) -> None:
        flags = ["--remove-orphans", "--timeout", str(timeout), *(["--volumes"] if volumes else [])]
        self._mutate(("down", *flags), timeout=timeout + 120)

    def stop(self, services: Sequence[str]) -> None:
        self._mutate(("stop", *services), timeout=180)

    def start(self, services: Sequence[str]) -> None:
        """Start the stopped containers of ``services`` as they are (``docker start``: 0.3 s where
        ``docker compose start`` takes 0.9 s re-checking every dependency's condition; callers
        start what they stopped, with its dependencies still running)."""
        names = [st.name for st in self.ps(services) if st.state != "running"]
        if names:
            self._mutate(("start", *names), timeout=120, compose=False)

    def ps(self, services: Sequence[str] | None = None, all: bool = True) -> list[ServiceState]:
        """The project's containers (of ``services``), read through :mod:`composekit.proc` like
        every call an undo makes: a signal to composekit's process group cannot fail it."""
        ids = self._read(*self._ps_argv(services, all)).split()
        if not ids:
            return []
        # a container may be gone between the two calls (a one-off that ended): skip it
        r = proc.run([self._docker(), "container", "inspect", *ids], timeout=60, check=False)
        other = [
            ln
            for ln in r.stderr.splitlines()
            if ln.strip() and "no such container" not in ln.lower()
        ]
        if r.returncode != 0 and other:
            raise translate("docker inspect", r.stderr, r.returncode)
        found = json.loads(r.stdout or "[]")
        out = []
        for c in found:
            st = c.get("State") or {}
            labels = c.get("Config", {}).get("Labels") or {}
            if services and labels.get("com.docker.compose.service") not in services:
                continue
            out.append(
                ServiceState(
                    service=labels.get("com.docker.compose.service", ""),
                    name=str(c.get("Name", "")).lstrip("/"),
                    state=str(st.get("Status", "")),
                    health=(st.get("Health") or {}).get("Status"),
                    image_id=str(c.get("Image", "")),
                    exit_code=st.get("ExitCode"),
                    config_hash=labels.get("com.docker.compose.config-hash", ""),
                    number=int(labels.get("com.docker.compose.container-number") or 0),
                    started=str(st.get("StartedAt", "")),
                    check_failing=_last_check_failed(st),
                )
            )
        for state in sorted(out, key=lambda st: -st.number):  # exec's target, as it is now
            if state.state == "running":
                self._containers[state.service] = state.name
        return sorted(out, key=lambda st: st.name)  # as `docker compose ps` lists them

    def _ps_argv(self, services: Sequence[str] | None, all: bool) -> tuple[list[str], str]:
        """How to list the containers' IDs: once the project's name is known, `docker ps` by the
        labels Compose puts on them (0.01 s, where `docker compose ps` parses the whole project
        again, 0.06 s, to ask the engine the same); before that, `docker compose ps` (reading the
        configuration just for the name would cost more than it saves)."""
        name = self.project_name or (self._config or {}).get("name")
        if not name:
            args = ["ps", "--quiet", *(["--all"] if all else []), *(services or [])]
            return self.compose_argv(*args), "docker compose ps"
        argv = [self._docker(), "ps", "--quiet", "--no-trunc", *(["--all"] if all else [])]
        argv += ["--filter", f"label=com.docker.compose.project={name}"]  # one-offs too, as Compose
        if services and len(services) == 1:  # several: the labels are filtered below
            argv += ["--filter", f"label=com.docker.compose.service={services[0]}"]
        return argv, "docker ps"

    def _read(self, argv: list[str], action: str) -> str:
        try:
            return proc.run(argv, timeout=60).stdout
        except proc.CommandFailed as exc:
            raise translate(action, exc.stderr, exc.returncode) from exc

    def health(self, service: str) -> str:
        """``healthy``/``unhealthy``/``starting``/``running`` (no healthcheck)/``exited``/``missing``."""
        states = self.ps([service])
        if not states:
            return "missing"
        worst = "healthy"
        for s in states:
            if s.state != "running":
                return s.state
            h = s.health or "running"
            if h != "healthy":
                worst = h
        return worst

    def logs(self, service: str, tail: int = 50) -> str:
        with docker_errors("docker compose logs"):
            return str(self.client.compose.logs([service], tail=str(tail), no_log_prefix=True))

    def container_logs(self, name: str, tail: int = 8) -> list[str]:
        """The last non-empty lines one container wrote (stdout and stderr)."""
        r = proc.run([self._docker(), "logs", "--tail", str(tail), name], timeout=30, check=False)
        return [ln for ln in (r.stdout + r.stderr).splitlines() if ln.strip()]

    def image_of(self, service: str) -> str | None:
        """Image ID the first running container of ``service`` uses, if any."""
        for s in self.ps([service], all=False):
            return s.image_id
        return None

    def image_name(self, service: str) -> str:
        """The image name compose builds/uses for ``service`` (``image:``, else ``<project>-<service>``)."""
        cfg = self.config()
        image = cfg.get("services", {}).get(service, {}).get("image")
        return str(image) if image else f"{cfg.get('name')}-{service}"

    def _inspect_id(self, ref: str) -> list[str]:
        return [self._docker(), "image", "inspect", "--format", "{{.Id}}", ref]

    def image_id(self, name: str) -> str:
        """The ID of the image ``name``; its absence (or Docker's) is raised, translated."""
        return self._read(self._inspect_id(name), f"docker image inspect {name}").strip()

    def local_image_id(self, ref: str) -> str | None:
        """The ID of the image ``ref`` names on this engine (None: there is none)."""
        r = proc.run(self._inspect_id(ref), timeout=60, check=False)
        return r.stdout.strip() or None if r.returncode == 0 else None

    def tag_image(self, image_id: str, name: str) -> None:
        self._mutate(("tag", image_id, name), timeout=60, compose=False)

    def tagged(self, repo: str, prefix: str) -> list[tuple[str, str, str]]:
        """``(tag, image ID, created)`` for every ``repo:<prefix>…`` tag, newest tag first."""
        with docker_errors(f"docker image list {repo}"):
            images = self.client.image.list(repo)
        found = [
            (tag, str(im.id), im.created.isoformat(timespec="seconds"))
            for im in images
            for ref in im.repo_tags
            for r, _, tag in [ref.rpartition(":")]
            if r == repo and tag.startswith(prefix)
        ]
        return sorted(found, reverse=True)

    def untag(self, ref: str) -> bool:
        """Remove the tag ``ref`` (and the image, if that was its last tag); False if the image
        behind it is still used by a container."""
        try:
            self._mutate(("image", "rm", ref), timeout=120, compose=False)
        except DockerError:
            return False
        return True

    def remove_images(self, repo: str) -> int:
        """Every tag of ``repo`` — ``:latest`` and the ones kept for rollback — once no container
        uses them (e.g. after ``down``); returns how many were removed."""
        return sum(self.untag(f"{repo}:{tag}") for tag, _, _ in self.tagged(repo, ""))

    def remove_oneoffs(self, service: str) -> int:
        """Force-remove ``docker compose run`` containers of ``service`` (e.g. after Ctrl-C,
        which ends the CLI but not necessarily the container it started)."""
        name = self.config().get("name")
        with docker_errors("docker ps"):
            labels = [
                f"com.docker.compose.project={name}",
                f"com.docker.compose.service={service}",
                "com.docker.compose.oneoff=True",
            ]
            found = self.client.container.list(all=True, filters=[("label", lab) for lab in labels])
        if found:
            self._mutate(("rm", "--force", *(c.id for c in found)), timeout=120, compose=False)
        return len(found)

    # -- proc-run calls -------------------------------------------------------------------------
    def exec(
        self,
        service: str,
        argv: Sequence[str],
        *,
        timeout: float = 120,
        env: Mapping[str, str] | None = None,
        user: str | None = None,
        check: bool = True,
        input: str | None = None,
    ) -> proc.Completed:
        """Run ``argv`` in the running ``service`` container; environment values go by name only."""
        args = self._exec_args(service, argv, env, user)
        r = proc.run(args, timeout=timeout, env=env, check=False, input=input)
        if not r.ok and self._stale(service, r.stderr) and self.ps([service], all=False):
            # the remembered container was replaced (by another command): once more, in the new one
            args = self._exec_args(service, argv, env, user)
            r = proc.run(args, timeout=timeout, env=env, check=False, input=input)
        if check and not r.ok:
            raise translate(f"docker compose exec {service}", r.stderr, r.returncode)
        return r

    def _stale(self, service: str, stderr: str) -> bool:
        """Whether the remembered container of ``service`` is gone (something else recreated
        it): then it is forgotten, for the caller to look it up again."""
        low = stderr.lower()
        gone = "no such container" in low or ("container" in low and "is not running" in low)
        if gone:
            self._containers.pop(service, None)
        return gone

    def session(
        self, service: str, argv: Sequence[str], *, env: Mapping[str, str] | None = None
    ) -> proc.Session:
        """A long-lived ``docker compose exec -T`` child to talk to line by line (e.g. ``psql``)."""
        return proc.Session(self._exec_args(service, argv, env, None), env=env)

    def exec_tee(
        self,
        service: str,
        argv: Sequence[str],
        out: IO[bytes],
        check_argv: Sequence[str],
        *,
        timeout: float,
    ) -> tuple[str, proc.Completed]:
        """``argv``'s stdout into ``out`` and, at the same time, into ``check_argv``'s stdin (both
        run in ``service``); see :func:`composekit.proc.run_tee`."""
        return proc.run_tee(
            self._exec_args(service, argv, None, None),
            out,
            self._exec_args(service, check_argv, None, None),
            timeout=timeout,
        )

    def exec_from_file(
        self,
        service: str,
        argv: Sequence[str],
        inp: IO[bytes],
        *,
        timeout: float,
        env: Mapping[str, str] | None = None,
    ) -> proc.Completed:
        return proc.run_from_file(
            self._exec_args(service, argv, env, None), inp, timeout=timeout, env=env
        )

    def _exec_args(
        self, service: str, argv: Sequence[str], env: Mapping[str, str] | None, user: str | None
    ) -> list[str]:
        # `docker exec` into the container, found once per command: ~0.1 s less per call than
        # `docker compose exec`, which parses the whole project again each time
        flags = exec_flags(env, user)
        return [self._docker(), "exec", "-i", *flags, self.container_of(service), *argv]

    def container_of(self, service: str) -> str:
        """The ID of ``service``'s running container (its first, as ``docker compose exec``
        picks), remembered until this object changes a container."""
        if service not in self._containers:
            running = sorted(self.ps([service], all=False), key=lambda st: st.number)
            if not running:
                raise DockerError(
                    f"docker compose exec {service}: the {service} service is not running",
                    hint=f"start it: docker compose up -d --wait {service}",
                )
            self._containers[service] = running[0].name
        return self._containers[service]

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
        """``docker compose run --rm`` a one-off container, streaming its output; never raises on
        the container's own exit code (returned), only on Docker failures."""
        # no_deps: for callers that started the dependencies themselves — `run` would otherwise
        # recreate a dependency whose configuration differs (the same project from another checkout)
        args = self.compose_argv("run", "--rm", "-T", *(["--no-deps"] if no_deps else []))
        for key in env or {}:
            args += ["-e", key]
        args += [service, *argv]
        return proc.stream(args, timeout=timeout, on_line=on_line, env=env)
