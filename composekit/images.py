"""Offline images for machines with no container registry.

* ``composekit/debian-base:bookworm``: a Debian root filesystem from debootstrap (postgresql-15,
  python3, python3-venv), imported with ``docker import``.
* ``composekit/postgres:15``: a stand-in for the official ``postgres`` image (same contract).
* ``composekit/haproxy:2.6``: a stand-in for the official ``haproxy`` image (the reverse proxy of
  the scaffolded projects): the binary of Debian's package (and two libraries) on the base.
* ``composekit/python:3.11``: a stand-in for the official ``python`` image whose pip installs from
  a baked wheelhouse (composekit's dependencies — not composekit, which no index has), so
  ordinary Dockerfiles build offline.

Each image carries a ``composekit.hash`` label of its inputs; it is rebuilt only when they change.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from composekit import proc
from composekit.errors import DockerError

BASE_IMAGE = "composekit/debian-base:bookworm"
POSTGRES_IMAGE = "composekit/postgres:15"
PYTHON_IMAGE = "composekit/python:3.11"
HAPROXY_IMAGE = "composekit/haproxy:2.6"
BASE_PACKAGES = "postgresql-15,python3,python3-venv,ca-certificates"
HASH_LABEL = "composekit.hash"
# what PyPI would also give a project whose migrator is a framework's (the tests build such
# projects offline)
FRAMEWORK_MIGRATORS = ("alembic>=1.13", "SQLAlchemy>=2.0")


def cache_dir() -> Path:
    d = Path(os.environ.get("COMPOSEKIT_CACHE", Path.home() / ".cache" / "composekit"))
    d.mkdir(parents=True, exist_ok=True)
    return d


def image_files_dir() -> Path:
    """``images/`` in a source checkout, ``composekit/_images`` in an installed wheel."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "_images", here.parent / "images"):
        if candidate.is_dir():
            return candidate
    raise DockerError("composekit's image files are missing", hint="reinstall composekit")


def _hash_paths(paths: list[Path], extra: str = "") -> str:
    h = hashlib.sha256(extra.encode())
    for p in sorted(paths):
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


def image_label(image: str) -> str | None:
    """The image's hash label, ``""`` if it has none, ``None`` if the image does not exist."""
    r = proc.run(
        [
            "docker",
            "image",
            "inspect",
            "--format",
            '{{ index .Config.Labels "' + HASH_LABEL + '" }}',
            image,
        ],
        timeout=30,
        check=False,
    )
    if not r.ok:
        return None
    out = r.stdout.strip()
    return "" if out in ("", "<no value>") else out


def debian_mirror() -> str:
    """The Debian mirror apt already uses here (deb822 or one-line sources)."""
    for f in sorted(Path("/etc/apt/sources.list.d").glob("*")) + [Path("/etc/apt/sources.list")]:
        try:
            text = f.read_text()
        except OSError:
            continue
        for line in text.splitlines():
            line = line.strip()
            if line.startswith("URIs:") and "debian" in line and "security" not in line:
                return line.split()[1]
            if line.startswith("deb ") and "/debian" in line and "security" not in line:
                return next(p for p in line.split()[1:] if p.startswith("http"))
    return "http://deb.debian.org/debian"


@dataclass
class ImageResult:
    image: str
    action: str  # "present" or "built"
    seconds: float


def ensure_base(progress: Callable[[str], None]) -> ImageResult:
    import time

    t0 = time.monotonic()
    if image_label(BASE_IMAGE) is not None:
        return ImageResult(BASE_IMAGE, "present", 0.0)
    if not shutil.which("debootstrap"):
        raise DockerError(
            f"{BASE_IMAGE} is missing and debootstrap is not installed",
            hint="apt-get install -y debootstrap (or run `composekit doctor --fix`)",
        )
    work = Path(tempfile.mkdtemp(prefix="composekit-rootfs-", dir=cache_dir()))
    rootfs = work / "rootfs"
    tarball = work / "rootfs.tar"
    try:
        progress(f"debootstrap bookworm ({BASE_PACKAGES}) — about a minute")
        proc.run(
            [
                "debootstrap",
                "--variant=minbase",
                f"--include={BASE_PACKAGES}",
                "bookworm",
                rootfs,
                debian_mirror(),
            ],
            timeout=1200,
        )
        # slim the image: apt lists and downloaded .debs are not needed at run time
        for sub in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for p in (rootfs / sub).glob("*.deb" if "archives" in sub else "*_*"):
                p.unlink(missing_ok=True)
        progress(f"docker import {BASE_IMAGE}")
        proc.run(["tar", "-C", rootfs, "-cf", tarball, "."], timeout=600)
        proc.run(
            [
                "docker",
                "import",
                "--change",
                f"LABEL {HASH_LABEL}=debootstrap",
                tarball,
                BASE_IMAGE,
            ],
            timeout=600,
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return ImageResult(BASE_IMAGE, "built", time.monotonic() - t0)


def _image_id(image: str) -> str | None:
    r = proc.run(
        ["docker", "image", "inspect", "--format", "{{.Id}}", image], timeout=30, check=False
    )
    return r.stdout.strip() if r.ok else None


def _docker_build(context: Path, image: str, label: str) -> None:
    previous = _image_id(image)
    proc.run(
        ["docker", "build", "-q", "--label", f"{HASH_LABEL}={label}", "-t", image, context],
        timeout=1200,
        env={"DOCKER_BUILDKIT": "0"},
    )
    if previous and previous != _image_id(image):
        # the stale build would linger as a dangling image on every rebuild; in use, it stays
        proc.run(["docker", "image", "rm", previous], timeout=60, check=False)


def ensure_postgres(progress: Callable[[str], None]) -> ImageResult:
    import time

    src = image_files_dir() / "postgres"
    label = _hash_paths(list(src.iterdir()))
    if image_label(POSTGRES_IMAGE) == label:
        return ImageResult(POSTGRES_IMAGE, "present", 0.0)
    t0 = time.monotonic()
    progress(f"docker build {POSTGRES_IMAGE}")
    _docker_build(src, POSTGRES_IMAGE, label)
    return ImageResult(POSTGRES_IMAGE, "built", time.monotonic() - t0)


def wheelhouse(progress: Callable[[str], None]) -> Path:
    """Wheels of composekit's dependencies (what PyPI would give a real build), cached — but not
    of composekit itself: no index has it, so the stand-in image must not either. A scaffolded
    project brings composekit in its own ``vendor/`` (see :mod:`composekit.vendor`)."""
    from composekit.vendor import requirements

    wheels = cache_dir() / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    wanted = sorted([*requirements(), *FRAMEWORK_MIGRATORS])
    stamp_hash = hashlib.sha256("\n".join(wanted).encode()).hexdigest()[:16]
    stamp = wheels / ".requirements"
    for old in wheels.glob("composekit-*.whl"):  # from before: composekit was baked in
        old.unlink()
    if stamp.is_file() and stamp.read_text() == stamp_hash:
        return wheels
    progress("building the wheelhouse (composekit's dependencies, Alembic, SQLAlchemy)")
    proc.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--wheel-dir",
            wheels,
            "--find-links",
            wheels,
            *wanted,
        ],
        timeout=900,
    )
    stamp.write_text(stamp_hash)
    return wheels


def _ensure_built(
    image: str, label: str, progress: Callable[[str], None], fill: Callable[[Path], None]
) -> ImageResult:
    """Build ``image`` from a context ``fill`` writes (beside its Dockerfile), unless the image
    already carries ``label``."""
    import time

    if image_label(image) == label:
        return ImageResult(image, "present", 0.0)
    t0 = time.monotonic()
    progress(f"docker build {image}")
    with tempfile.TemporaryDirectory(prefix="composekit-image-") as tmp:
        ctx = Path(tmp)
        fill(ctx)
        _docker_build(ctx, image, label)
    return ImageResult(image, "built", time.monotonic() - t0)


def ensure_python(progress: Callable[[str], None]) -> ImageResult:
    wheels = wheelhouse(progress)
    src = image_files_dir() / "python"
    whl = sorted(wheels.glob("*.whl"))
    label = _hash_paths(
        [*src.iterdir()], extra="|".join(f"{w.name}:{w.stat().st_size}" for w in whl)
    )

    def fill(ctx: Path) -> None:
        shutil.copy2(src / "Dockerfile", ctx / "Dockerfile")
        (ctx / "wheels").mkdir()
        for w in whl:
            os.link(w, ctx / "wheels" / w.name) if _same_fs(w, ctx) else shutil.copy2(
                w, ctx / "wheels"
            )

    return _ensure_built(PYTHON_IMAGE, label, progress, fill)


def _same_fs(a: Path, b: Path) -> bool:
    return a.stat().st_dev == b.stat().st_dev


HAPROXY_DEBS = ("haproxy", "liblua5.3-0", "libopentracing-c-wrapper0", "libopentracing1")
"""Debian's haproxy package and the libraries of it the base image lacks."""


def haproxy_debs(progress: Callable[[str], None]) -> list[Path]:
    """Debian's haproxy package (and the libraries the base lacks), downloaded once into the
    cache with the host's apt."""
    debs = cache_dir() / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    missing = [p for p in HAPROXY_DEBS if not list(debs.glob(f"{p}_*.deb"))]
    if missing:
        if not shutil.which("apt-get"):
            raise DockerError(
                f"{HAPROXY_IMAGE} is missing and this machine has no apt-get to fetch Debian's "
                "haproxy",
                hint="set PROXY_IMAGE in .env to an image you can pull (e.g. haproxy:2.6)",
            )
        progress(f"apt-get download {' '.join(missing)}")
        proc.run(["apt-get", "download", "-q", *missing], timeout=600, cwd=debs)
    found = [sorted(debs.glob(f"{p}_*.deb"))[-1:] for p in HAPROXY_DEBS]
    if not all(found):
        raise DockerError("apt-get download haproxy left no package", hint="check apt's sources")
    return [f[0] for f in found]


def ensure_haproxy(progress: Callable[[str], None]) -> ImageResult:
    src = image_files_dir() / "haproxy"
    debs = haproxy_debs(progress)
    label = _hash_paths(list(src.iterdir()), extra="|".join(d.name for d in debs))

    def fill(ctx: Path) -> None:  # the binary and the libraries, nothing else of the packages
        shutil.copy2(src / "Dockerfile", ctx / "Dockerfile")
        for deb in debs:
            proc.run(["dpkg-deb", "-x", deb, ctx / "x"], timeout=120)
        lib = "usr/lib/x86_64-linux-gnu"
        (ctx / "root" / "usr" / "sbin").mkdir(parents=True)
        shutil.copy2(ctx / "x" / "usr" / "sbin" / "haproxy", ctx / "root" / "usr" / "sbin")
        shutil.copytree(ctx / "x" / lib, ctx / "root" / lib, symlinks=True)
        shutil.rmtree(ctx / "x")

    return _ensure_built(HAPROXY_IMAGE, label, progress, fill)


def ensure_images(progress: Callable[[str], None] = lambda msg: None) -> list[ImageResult]:
    """Build whatever offline image is missing or stale. Idempotent; seconds when all are current."""
    return [
        ensure_base(progress),
        ensure_postgres(progress),
        ensure_python(progress),
        ensure_haproxy(progress),
    ]


OFFLINE_IMAGES = (BASE_IMAGE, POSTGRES_IMAGE, PYTHON_IMAGE, HAPROXY_IMAGE)


def missing_images() -> list[str]:
    return [img for img in OFFLINE_IMAGES if image_label(img) is None]
