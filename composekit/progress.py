"""How long operations report progress: a callable that takes one line.

The CLI passes :meth:`composekit.render.Output.progress` (stderr); library callers may pass their
own, or nothing (:func:`silent`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

Progress = Callable[[str], None]


def silent(line: str) -> None:
    """A :data:`Progress` that drops every line."""


Meter = Callable[[str, int, int], None]
"""How far a long operation is: ``(what, done, total)`` — called often (a few times a second);
the sink decides what to show (see :meth:`composekit.render.Output.meter`). ``what`` may end
with :data:`PHASE` and the operation's current phase (e.g. ``indexes``)."""

PHASE = "\x1f"
"""Separates an operation's name from its current phase in a meter's ``what``."""


def no_meter(what: str, done: int, total: int) -> None:
    """A :data:`Meter` that shows nothing."""


def _quietly(phase: Callable[[], str]) -> str:
    try:
        return phase()
    except Exception:  # a phase is a nicety: never the reason an operation fails
        return ""


@contextmanager
def metering(
    meter: Meter,
    what: str,
    total: int,
    position: Callable[[], int],
    every: float = 0.25,
    estimate: bool = False,
    phase: Callable[[], str] | None = None,
    phase_every: float = 3.0,
) -> Iterator[None]:
    """Report ``position()`` of ``total`` to ``meter`` from a thread while the block runs; once
    it ends well, ``total`` of ``total``. With ``estimate``, ``total`` is a guess (a backup's
    size from the last one): it grows past the guess, and the end reports the real size."""
    if meter is no_meter:
        yield
        return
    stop = threading.Event()
    seen = [0]
    current = [""]  # the phase
    read_at = [0.0]  # when it was read

    def watch() -> None:
        while not stop.wait(every):
            try:
                pos = seen[0] = position()
            except OSError:  # the file was closed under us: the block is ending
                return
            if phase is not None and time.monotonic() - read_at[0] >= phase_every:
                current[0], read_at[0] = _quietly(phase), time.monotonic()
            whole = max(total, int(pos * 1.05)) if estimate else total
            if pos < whole:  # the 100 % line is the end's, once
                meter(what + (PHASE + str(current[0]) if current[0] else ""), pos, whole)

    t = threading.Thread(target=watch, daemon=True)
    t.start()
    try:
        yield
    finally:
        stop.set()
        t.join(timeout=5)
    if estimate:
        try:
            total = position()
        except OSError:
            total = max(seen[0], 1)
    meter(what, total, total)
