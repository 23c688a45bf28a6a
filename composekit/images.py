"""Offline images for machines with no container registry.

* ``composekit/debian-base:bookworm``: a Debian root filesystem from debootstrap (postgresql-15,
  python3, python3-venv), imported with ``docker import``.
* ``composekit/postgres:15``: a stand-in for the official ``postgres`` image (same contract).
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


def ensure_python(progress: Callable[[str], None]) -> ImageResult:
    import time

    wheels = wheelhouse(progress)
    src = image_files_dir() / "python"
    whl = sorted(wheels.glob("*.whl"))
    label = _hash_paths(
        [*src.iterdir()], extra="|".join(f"{w.name}:{w.stat().st_size}" for w in whl)
    )
    if image_label(PYTHON_IMAGE) == label:
        return ImageResult(PYTHON_IMAGE, "present", 0.0)
    t0 = time.monotonic()
    progress(f"docker build {PYTHON_IMAGE}")
    with tempfile.TemporaryDirectory(prefix="composekit-python-") as tmp:
        ctx = Path(tmp)
        shutil.copy2(src / "Dockerfile", ctx / "Dockerfile")
        (ctx / "wheels").mkdir()
        for w in whl:
            os.link(w, ctx / "wheels" / w.name) if _same_fs(w, ctx) else shutil.copy2(
                w, ctx / "wheels"
            )
        _docker_build(ctx, PYTHON_IMAGE, label)
    return ImageResult(PYTHON_IMAGE, "built", time.monotonic() - t0)


def _same_fs(a: Path, b: Path) -> bool:
    return a.stat().st_dev == b.stat().st_dev


def ensure_images(progress: Callable[[str], None] = lambda msg: None) -> list[ImageResult]:
    """Build whatever offline image is missing or stale. Idempotent; seconds when all are current."""
    return [ensure_base(progress), ensure_postgres(progress), ensure_python(progress)]


def missing_images() -> list[str]:
    return [img for img in (BASE_IMAGE, POSTGRES_IMAGE, PYTHON_IMAGE) if image_label(img) is None]
