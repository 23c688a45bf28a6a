"""Turning a server error into a message that names the file, the line and what was left applied."""

from __future__ import annotations

from typing import Any

from composekit.db import LockHolder
from composekit.errors import MigrationError
from composekit.migrations.results import Applied
from composekit.migrations.source import Section


def blockers_text(blockers: list[LockHolder]) -> str:
    if not blockers:
        return "another session"
    b = blockers[0]
    q = f", query: {b.query}" if b.query else ""
    more = f" (+{len(blockers) - 1} more)" if len(blockers) > 1 else ""
    return f"pid {b.pid} ({b.application_name or 'no application_name'}, since {b.since}{q}){more}"


def done_details(done: list[Applied]) -> list[str]:
    if not done:
        return ["nothing was applied before it in this run"]
    return [
        "applied before it in this run (still applied): "
        + ", ".join(f"{a.version}_{a.name}" for a in done)
    ]


def error_offset(exc: Any, prefix_len: int, body_len: int) -> int | None:
    """Offset in the section of the error's position, when it falls inside the section."""
    pos = getattr(getattr(exc, "diag", None), "statement_position", None)
    if not pos:
        return None
    offset = int(pos) - 1 - prefix_len
    return offset if 0 <= offset <= body_len else None


def offset_of_line(section: Section, line: int) -> int:
    idx = 0
    for _ in range(line - section.first_line):
        nxt = section.sql.find("\n", idx)
        if nxt < 0:
            break
        idx = nxt + 1
    return idx


def sql_error(
    section: Section,
    exc: Any,
    offset: int | None,
    done: list[Applied],
    direction: str,
    committed: bool,
    extra_lines: int = 0,
) -> MigrationError:
    diag = exc.diag
    line = (section.line_of(offset) if offset is not None else section.first_line) + extra_lines
    where = f"{section.path.name}:{line}"
    if offset is None and getattr(exc, "sqlstate", None) == "57014":
        where = section.path.name  # cancelled: which of its statements was running is unknown
    primary = (diag.message_primary or str(exc)).strip()
    state = getattr(exc, "sqlstate", None) or "?"
    details = []
    if diag.message_detail:
        details.append(f"detail: {diag.message_detail}")
    if diag.message_hint:
        details.append(f"postgres hint: {diag.message_hint}")
    details.append(
        (
            "its changes were rolled back"
            if not committed
            else "earlier statements of it had committed"
        )
        + f" ({direction})"
    )
    details += done_details(done)
    return MigrationError(
        f"{where}: {primary} (SQLSTATE {state})",
        hint=f"fix {section.path.name} near line {line}, then run the command again",
        details=details,
    )
