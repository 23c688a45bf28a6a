"""One signal policy for every command: SIGINT, SIGTERM and SIGHUP stop the work the same way.

A CI runner cancels a job with SIGTERM (then SIGKILL after a grace period); a terminal sends
SIGINT; a closed SSH session SIGHUP. Each raises :class:`Terminated` in the main thread, so the
command takes its undo path, then exits ``128 + signal``. Inside :func:`shielded` (an undo, a
database swap, cleaning up) signals are remembered instead: that work must finish.

Children run in their own session (see :mod:`composekit.proc`), so a signal sent to the whole
process group reaches composekit only, and composekit stops its children in order.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

HANDLED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Terminated(KeyboardInterrupt):
    """A signal asked composekit to stop. A KeyboardInterrupt, so every path that cleans up after
    Ctrl-C cleans up after SIGTERM and SIGHUP too."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name


def signum_of(exc: BaseException) -> int:
    """The signal behind an interruption (a bare KeyboardInterrupt is Ctrl-C)."""
    return exc.signum if isinstance(exc, Terminated) else int(signal.SIGINT)


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


class Received:
    """The signals that stopped a command, newest last (Typer turns the KeyboardInterrupt into a
    plain exit 130; this says which signal it was)."""

    def __init__(self) -> None:
        self.signals: list[int] = []

    def exit_code(self, default: int) -> int:
        return 128 + self.signals[-1] if self.signals else default


@contextmanager
def _handling(handler: Callable[[int, FrameType | None], None]) -> Iterator[None]:
    """``handler`` for every signal of the policy inside the block, the previous ones after it
    (only the main thread can install handlers; elsewhere this does nothing)."""
    if not _in_main_thread():
        yield
        return
    old = {s: signal.signal(s, handler) for s in HANDLED}
    try:
        yield
    finally:
        for s, previous in old.items():
            signal.signal(s, previous)


@contextmanager
def stop_on_signals() -> Iterator[Received]:
    """Install the policy for the length of a command (the CLI does, around every command)."""
    received = Received()

    def stop(signum: int, frame: FrameType | None) -> None:
        received.signals.append(signum)
        raise Terminated(signum)

    with _handling(stop):
        yield received


@contextmanager
def shielded(reraise: bool = True) -> Iterator[list[int]]:
    """Signals that arrive inside are remembered, not raised: the block finishes. With
    ``reraise`` the first of them is raised once the block is done; without, the caller reads the
    list it was given."""
    got: list[int] = []
    with _handling(lambda signum, frame: got.append(signum)):
        yield got
    if got and reraise:
        raise Terminated(got[0])
