"""composekit inside the app image, with no package index entry: the project carries the exact
composekit it was scaffolded (or last vendored) with, as a wheel in ``vendor/``.

``requirements.txt`` pins it (``composekit==X``) and points pip at ``./vendor`` (``--find-links``),
so ``pip install -r requirements.txt`` in any base image finds composekit in the build context and
its dependencies where it finds every other package. The wheel is made here, from the running
composekit's own files, byte for byte the same for the same files (fixed timestamps, sorted
entries): a rebuild changes nothing in git, and the image layer stays cached.

``deploy`` refuses (exit 3) when the pin differs from the composekit running it, so the migrator in
the image and the host never disagree about the ledger; ``composekit vendor`` moves the pin.
"""

from __future__ import annotations

import base64
import hashlib
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

from composekit import __version__
from composekit.errors import ConfigError

VENDOR_DIR = "vendor"
REQUIREMENTS = "requirements.txt"
FIND_LINKS = f"--find-links ./{VENDOR_DIR}"
_EPOCH = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip entry can hold: no build time in the file
_SKIP_DIRS = {
    "__pycache__",
    "_templates",
    "_images",
    "_init-scripts",
    "_migrations",
}  # not needed inside the app image
_PIN = re.compile(r"^\s*composekit\s*(?:\[[^\]]*\])?\s*(?:[=<>!~]=?.*)?$", re.IGNORECASE)
_PINNED = re.compile(r"^\s*composekit\s*==\s*([A-Za-z0-9._+-]+)\s*$", re.IGNORECASE)


def wheel_name(version: str) -> str:
    return f"composekit-{version}-py3-none-any.whl"


def requirements() -> list[str]:
    """composekit's own dependencies, as its metadata (or, in a bare checkout, pyproject) says."""
    from importlib import metadata

    try:
        return [r for r in metadata.requires("composekit") or [] if "extra ==" not in r]
    except metadata.PackageNotFoundError:
        import tomllib

        root = Path(__file__).resolve().parent.parent
        data = tomllib.loads((root / "pyproject.toml").read_text())
        return list(data["project"]["dependencies"])


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
    return "sha256=" + digest.decode()


def build_wheel(dest: Path, *, package_dir: Path | None = None, version: str = __version__) -> Path:
    """Write ``dest/composekit-<version>-py3-none-any.whl`` from ``package_dir`` (default: the
    composekit running now) and return its path."""
    package = package_dir or Path(__file__).resolve().parent
    files: list[tuple[str, bytes]] = []
    for p in sorted(package.rglob("*")):
        rel = p.relative_to(package)
        if p.is_dir() or _SKIP_DIRS.intersection(rel.parts) or p.suffix in (".pyc", ".pyo"):
            continue
        files.append((f"composekit/{rel.as_posix()}", p.read_bytes()))
    info = f"composekit-{version}.dist-info"
    metadata = f"Metadata-Version: 2.1\nName: composekit\nVersion: {version}\n"
    metadata += "Requires-Python: >=3.11\n"
    metadata += "".join(f"Requires-Dist: {r}\n" for r in requirements())
    files += [
        (f"{info}/METADATA", metadata.encode()),
        (
            f"{info}/WHEEL",
            b"Wheel-Version: 1.0\nGenerator: composekit\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        ),
        (f"{info}/entry_points.txt", b"[console_scripts]\ncomposekit = composekit.entry:main\n"),
    ]
    record = "".join(f"{name},{_record_hash(data)},{len(data)}\n" for name, data in files)
    files.append((f"{info}/RECORD", (record + f"{info}/RECORD,,\n").encode()))
    dest.mkdir(parents=True, exist_ok=True)
    out = dest / wheel_name(version)
    tmp = out.with_name(out.name + ".partial")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in files:
            entry = zipfile.ZipInfo(name, _EPOCH)
            entry.external_attr = 0o644 << 16
            entry.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(entry, data)
    tmp.replace(out)
    return out


@dataclass
class VendorResult:
    wheel: Path
    version: str
    removed: list[str]
    requirements_changed: bool


def pin_requirements(text: str, version: str = __version__) -> str:
    """``text`` (a requirements file) with composekit pinned to ``version`` and pip pointed at
    ``./vendor``; other lines as they were."""
    lines = text.splitlines()
    out = [ln for ln in lines if ln.strip() != FIND_LINKS]
    pin = f"composekit=={version}"
    out = [pin if _PIN.match(ln) else ln for ln in out]
    if pin not in out:
        out.insert(0, pin)
    return "\n".join([FIND_LINKS, *out]) + "\n"


def vendor(project_dir: Path) -> VendorResult:
    """Put the running composekit into ``project_dir/vendor`` (removing other composekit wheels)
    and pin it in ``requirements.txt``."""
    d = project_dir / VENDOR_DIR
    wheel = build_wheel(d)
    removed = []
    for old in sorted(d.glob("composekit-*.whl")):
        if old != wheel:
            old.unlink()
            removed.append(old.name)
    req = project_dir / REQUIREMENTS
    before = req.read_text() if req.is_file() else ""
    after = pin_requirements(before)
    if after != before:
        req.write_text(after)
    return VendorResult(wheel, __version__, removed, after != before)


def pinned_version(project_dir: Path) -> str | None:
    """The composekit version ``requirements.txt`` pins (None: it pins none, or has no file)."""
    req = project_dir / REQUIREMENTS
    if not req.is_file():
        return None
    for line in req.read_text().splitlines():
        m = _PINNED.match(line)
        if m:
            return m.group(1)
    return None


def check_vendored(project_dir: Path) -> str | None:
    """Refuse (exit 3) when the image would get another composekit than the one running, or none:
    the pin in requirements.txt must be this version and its wheel in ``vendor/``. Returns the
    version checked (None when the project does not pin composekit)."""
    pinned = pinned_version(project_dir)
    if pinned is None:
        return None
    fix = "run `composekit vendor` (writes this composekit into vendor/ and moves the pin), then commit vendor/ and requirements.txt"
    if pinned != __version__:
        raise ConfigError(
            f"the app image would run composekit {pinned} (requirements.txt) but this is "
            f"composekit {__version__}: the migrator and this deploy could disagree about the ledger; nothing was changed",
            hint=fix,
        )
    if not (project_dir / VENDOR_DIR / wheel_name(pinned)).is_file():
        raise ConfigError(
            f"requirements.txt pins composekit {pinned} but {VENDOR_DIR}/{wheel_name(pinned)} is missing, "
            "so the image build cannot find it; nothing was changed",
            hint=fix,
        )
    return pinned
