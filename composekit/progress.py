"""How long operations report progress: a callable that takes one line.

The CLI passes :meth:`composekit.render.Output.progress` (stderr); library callers may pass their
own, or nothing (:func:`silent`).
"""

from __future__ import annotations

from collections.abc import Callable

Progress = Callable[[str], None]


def silent(line: str) -> None:
    """A :data:`Progress` that drops every line."""
