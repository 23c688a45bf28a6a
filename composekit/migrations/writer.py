"""``composekit migrate new``: the next file, in the directory's own format and numbering."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

from composekit.errors import UsageError
from composekit.migrations.source import load_source

NATIVE_TEMPLATE = """-- migrate:up


-- migrate:down

"""


def _slug(name: str) -> str:
    slug = re.sub(r"[^a-zA-Z0-9]+", "_", name.strip()).strip("_").lower()
    if not slug:
        raise UsageError(
            f"migration name {name!r} has no letters or digits", hint="e.g. add_users_email_index"
        )
    return slug


def next_version(existing: list[str], now: datetime | None = None) -> str:
    """Sequential (keeping the zero padding) when the directory numbers 1, 2, 3…; a 14-digit UTC
    timestamp otherwise (dbmate's habit), never lower than what exists."""
    if existing and all(len(v) < 14 and "." not in v for v in existing):
        width = max(len(v) for v in existing)
        return str(max(int(v) for v in existing) + 1).zfill(width)
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%d%H%M%S")
    if existing and "." not in max(existing, key=lambda v: int(v.replace(".", ""))):
        top = max(int(v) for v in existing if "." not in v)
        if int(stamp) <= top:
            stamp = str(top + 1)
    return stamp


def new_migration(directory: str | Path, name: str, fmt: str = "auto") -> list[Path]:
    """Create the file(s) for a new migration and return their paths."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    src = load_source(d, fmt)
    versions = [m.version for m in src.migrations]
    slug = _slug(name)
    if src.format == "flyway":
        version = str(max((int(v.split(".")[0]) for v in versions), default=0) + 1)
        paths = [d / f"V{version}__{slug}.sql", d / f"U{version}__{slug}.sql"]
        contents = ["-- up\n", "-- undo\n"]
    elif src.format == "golang-migrate":
        version = next_version(versions)
        paths = [d / f"{version}_{slug}.up.sql", d / f"{version}_{slug}.down.sql"]
        contents = ["", ""]
    else:
        version = next_version(versions or ["0000"])
        paths = [d / f"{version}_{slug}.sql"]
        contents = [NATIVE_TEMPLATE]
    for p, text in zip(paths, contents, strict=True):
        if p.exists():
            raise UsageError(f"{p} already exists", hint="pick another name")
        p.write_text(text)
    return paths
