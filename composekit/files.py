"""Files only their owner may read: backups, manifests, the history, the journal.

They hold schema, data and error texts; nothing in them is for other users of the machine.
"""

from __future__ import annotations

import os
from pathlib import Path


def private_dir(d: Path) -> Path:
    """``d`` (and its missing parents) with mode 0700."""
    d.mkdir(parents=True, exist_ok=True)
    d.chmod(0o700)
    return d


def write_private(path: Path, text: str) -> None:
    """Replace ``path`` with ``text``, mode 0600, never briefly readable by others; atomic (a crash
    leaves the old content or the new, never half of it)."""
    private_dir(path.parent)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)


def append_private(path: Path, line: str) -> None:
    """Append one line to ``path`` (created 0600)."""
    private_dir(path.parent)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "a") as f:
        f.write(line.rstrip("\n") + "\n")


_UNFINISHED: set[Path] = set()


def unfinished(path: Path) -> None:
    """``path`` is being written and must not outlive this process unless :func:`finished`
    says so (a signal can land between any two statements, even inside a cleanup handler)."""
    _UNFINISHED.add(path)


def finished(path: Path) -> None:
    _UNFINISHED.discard(path)


def remove_unfinished() -> list[Path]:
    """Remove whatever is still marked unfinished; the command's last act (see ``cli.main``)."""
    removed = []
    for p in sorted(_UNFINISHED):
        p.unlink(missing_ok=True)
        removed.append(p)
    _UNFINISHED.clear()
    return removed
