"""How long operations report progress: a callable that takes one line.

The CLI passes :meth:`composekit.render.Output.progress` (stderr); library callers may pass their
own, or nothing (:func:`silent`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

Progress = Callable[[str], None]


def silent(line: str) -> None:
    """A :data:`Progress` that drops every line."""


Meter = Callable[[str, int, int], None]
"""How far a long operation is: ``(what, done, total)`` — called often (a few times a second);
the sink decides what to show (see :meth:`composekit.render.Output.meter`)."""


def no_meter(what: str, done: int, total: int) -> None:
    """A :data:`Meter` that shows nothing."""


@contextmanager
def metering(
    meter: Meter,
    what: str,
    total: int,
    position: Callable[[], int],
    every: float = 0.25,
    estimate: bool = False,
) -> Iterator[None]:
    """Report ``position()`` of ``total`` to ``meter`` from a thread while the block runs; once
    it ends well, ``total`` of ``total``. With ``estimate``, ``total`` is a guess (a backup's
    size from the last one): it grows past the guess, and the end reports the real size."""
    if meter is no_meter:
        yield
        return
    stop = threading.Event()
    seen = [0]

    def watch() -> None:
        while not stop.wait(every):
            try:
                pos = seen[0] = position()
            except OSError:  # the file was closed under us: the block is ending
                return
            whole = max(total, int(pos * 1.05)) if estimate else total
            if pos < whole:  # the 100 % line is the end's, once
                meter(what, pos, whole)

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
