"""``composekit history show``: one run's steps as a bar chart on a time axis — where the time
went, which step failed, and the undo that followed (newest first, after the failure)."""

from __future__ import annotations

from composekit.deploy import HistoryRecord
from composekit.deploy.runner import StepStatus

BAR, BLANK = "█", " "


def run_chart(r: HistoryRecord, width: int = 40) -> list[str]:
    """The lines to print for ``r``: a header, a bar per step (then per undo), the total."""
    rows: list[tuple[str, float, float, str]] = []  # label, start, seconds, what happened
    at = 0.0
    for s in r.steps:
        what = str(s.status) if s.status is not StepStatus.UNDONE else "ok"
        if s.status is StepStatus.FAILED:
            what = "FAILED"
        rows.append((s.name, at, s.seconds, f"{what}{' — ' + s.detail if s.detail else ''}"))
        at += s.seconds
    for s in reversed(r.steps):
        if s.undo_detail or s.undo_seconds:
            state = "undo FAILED" if s.status is StepStatus.UNDO_FAILED else "undone"
            rows.append((f"undo {s.name}", at, s.undo_seconds, f"{state} — {s.undo_detail}"))
            at += s.undo_seconds
    total = at or 1.0
    label_w = max((len(label) for label, *_ in rows), default=4)
    result = "ok" if r.ok else f"FAILED at {r.failed_step or '?'}"
    out = [
        f"{r.kind} {r.id}  started {r.started[:19]} UTC  {r.env or 'no --env'}  {result}",
        f"ledger {_last(r.ledger_before)} → {_last(r.ledger_after)}   "
        f"web {_short(r.web_before)} → {_short(r.web_after)}"
        + (f"   backup {r.backup.rsplit('/', 1)[-1]}" if r.backup else ""),
    ]
    for label, start, seconds, what in rows:
        lead = int(start / total * width)
        length = max(1, round(seconds / total * width)) if seconds >= 0.05 else 1
        length = min(length, width - lead) or 1
        bar = BLANK * lead + BAR * length
        out.append(f"  {label:<{label_w}} {bar:<{width}} {seconds:6.1f}s  {what[:90]}")
    out.append(f"  {'total':<{label_w}} {'':<{width}} {at:6.1f}s")
    if r.error:
        out.append(f"error: {r.error[:200]}")
    return out


def _last(ledger: list[str] | None) -> str:
    return ledger[-1] if ledger else "-"


def _short(image: str | None) -> str:
    return image.removeprefix("sha256:")[:12] if image else "-"
