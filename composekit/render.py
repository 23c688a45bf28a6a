"""Printing results: one place for people (plain, aligned text) and machines (``--json``).

Library functions return dataclasses; commands hand them here. Everything printed goes through
:func:`composekit.redact.redact`.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Sequence
from datetime import date, datetime
from enum import Enum
from pathlib import Path
from typing import Any

from composekit.redact import redact


def _default(o: Any) -> Any:
    if hasattr(o, "to_dict"):
        return o.to_dict()
    if dataclasses.is_dataclass(o) and not isinstance(o, type):
        return dataclasses.asdict(o)
    if isinstance(o, (datetime, date)):
        return o.isoformat()
    if isinstance(o, Path):
        return str(o)
    if isinstance(o, Enum):
        return o.value
    if isinstance(o, (set, frozenset, tuple)):
        return list(o)
    return str(o)


def to_json(data: Any) -> str:
    return redact(json.dumps(data, default=_default, indent=2, sort_keys=False))


def emit_json(data: Any) -> None:
    sys.stdout.write(to_json(data) + "\n")
    sys.stdout.flush()


def line(text: str = "", err: bool = False) -> None:
    stream = sys.stderr if err else sys.stdout
    stream.write(redact(text) + "\n")
    stream.flush()


def progress(text: str) -> None:
    """Progress of long steps goes to stderr, so stdout stays clean for ``--json`` and pipes."""
    line(f"… {text}", err=True)


def table(rows: Sequence[Sequence[Any]], headers: Sequence[str]) -> None:
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    for i, r in enumerate(cells):
        line("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
        if i == 0:
            line("  ".join("-" * w for w in widths))


def error(exc: Any, as_json: bool) -> None:
    if as_json:
        emit_json(exc.to_dict())
        return
    line(f"error: {exc.message}", err=True)
    for d in exc.details[:20]:
        line(f"  {d}", err=True)
    if exc.hint:
        line(f"  fix: {exc.hint}", err=True)
