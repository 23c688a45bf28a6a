"""One deadline per command: ``--timeout 120`` means 120 s for the whole command, not per phase.

A :class:`Deadline` is made once, from the command's ``--timeout``, and handed down; each wait
asks it how long it may still take.
"""

from __future__ import annotations

import math
import time

from composekit.errors import ComposekitError


class DeadlineExceeded(ComposekitError):
    """The command's ``--timeout`` ran out (its exit code is the caller's, via the step)."""


class Deadline:
    """A monotonic point in time.

    >>> d = Deadline(120)
    >>> 119 < d.remaining() <= 120
    True
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.at = time.monotonic() + seconds

    def remaining(self, at_most: float | None = None) -> float:
        """Seconds left (0 once passed), capped at ``at_most``."""
        left = max(0.0, self.at - time.monotonic())
        return left if at_most is None else min(left, at_most)

    def whole_seconds(self) -> int:
        """Seconds left for APIs that take an int: rounded up, at least 1 (0 means "no limit"
        to some of them)."""
        return max(1, math.ceil(self.remaining()))

    @property
    def expired(self) -> bool:
        return time.monotonic() >= self.at

    def check(self, what: str) -> None:
        if self.expired:
            raise DeadlineExceeded(
                f"{what}: the --timeout of {self.seconds:g}s ran out",
                hint="raise --timeout, or find what is slow (the step times above)",
            )
