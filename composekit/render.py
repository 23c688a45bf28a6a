"""Printing results: one place for people (plain, aligned text) and machines (``--json``).

Library functions return dataclasses; the CLI hands them to an :class:`Output`, which sends every
line through the command's :class:`~composekit.redact.Redactor`.
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

from composekit.errors import ComposekitError
from composekit.redact import Redactor


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


def _mb(n: int) -> str:
    """A size people read at a glance: ``812 kB``, ``14.2 MB``, ``1.3 GB``."""
    if n < 1e6:
        return f"{n / 1e3:.0f} kB"
    return f"{n / 1e6:.1f} MB" if n < 1e9 else f"{n / 1e9:.2f} GB"


class Output:
    """Where a command prints: results on stdout, progress and errors on stderr, all redacted."""

    def __init__(self, redactor: Redactor | None = None) -> None:
        self.redactor = redactor or Redactor()
        self.json_progress = False  # --json: progress as JSON lines on stderr
        self._shown: dict[str, tuple[float, float, int]] = {}  # what -> (first, last shown, bytes)

    def meter(self, what: str, done: int, total: int) -> None:
        """A live line on a terminal (redrawn, at most 10 times a second); elsewhere a plain line
        every ~10 s (CI logs); with ``--json`` a JSON object per ~2 s. Always one at 100 %."""
        import time

        what, _, phase = what.partition("\x1f")  # progress.PHASE: "what", then its phase
        now = time.monotonic()
        first, last, _ = self._shown.setdefault(what, (now, 0.0, 0))
        final = done >= total
        if done <= 0 and not final:  # nothing to say yet (the first look, before a byte moved)
            return
        terminal = sys.stderr.isatty()
        every = 2.0 if self.json_progress else 0.1 if terminal else 10.0
        if not final and now - last < every:
            return
        self._shown[what] = (first, now, done)
        pct = 100.0 * done / total if total else 100.0
        rate = done / max(now - first, 1e-6)
        eta = (total - done) / rate if rate > 0 and not final else 0.0
        if now - first < 0.2:  # one look at the end of a quick one: no meaningful rate
            rate = 0.0
        if self.json_progress:
            event = {"event": "progress", "what": what, "done": done, "total": total}
            event |= {"percent": round(pct, 1), "eta_s": round(eta, 1)}
            event |= {"phase": phase} if phase else {}
            self.line(json.dumps(event), err=True)
        else:
            speed = f", {_mb(int(rate))}/s" if rate > 0 else ""  # none yet: no rate, no ETA
            left = f", about {eta:.0f}s left" if rate > 0 and not final else ""
            text = f"… {what}: {pct:5.1f}% ({_mb(done)} of {_mb(total)}{speed}{left})" + (
                f" — {phase}" if phase and not final else ""
            )
            if terminal:
                sys.stderr.write("\r" + self.redactor(text) + ("\n" if final else ""))
                sys.stderr.flush()
            else:
                self.line(text, err=True)
        if final:
            self._shown.pop(what, None)

    def to_json(self, data: Any) -> str:
        return self.redactor(json.dumps(data, default=_default, indent=2, sort_keys=False))

    def emit_json(self, data: Any) -> None:
        sys.stdout.write(self.to_json(data) + "\n")
        sys.stdout.flush()

    def line(self, text: str = "", err: bool = False) -> None:
        stream = sys.stderr if err else sys.stdout
        stream.write(self.redactor(text) + "\n")
        stream.flush()

    def progress(self, text: str) -> None:
        """Progress of long steps goes to stderr, so stdout stays clean for ``--json`` and pipes."""
        self.line(f"… {text}", err=True)

    def table(self, rows: Sequence[Sequence[Any]], headers: Sequence[str]) -> None:
        cells = [[str(h) for h in headers]]
        cells += [["" if c is None else str(c) for c in r] for r in rows]
        widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
        for i, r in enumerate(cells):
            self.line("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
            if i == 0:
                self.line("  ".join("-" * w for w in widths))

    def error(self, exc: ComposekitError, as_json: bool) -> None:
        if as_json:
            self.emit_json(exc.to_dict())
            return
        self.line(f"error: {exc.message}", err=True)
        for d in exc.details[:20]:
            self.line(f"  {d}", err=True)
        if exc.hint:
            self.line(f"  fix: {exc.hint}", err=True)
