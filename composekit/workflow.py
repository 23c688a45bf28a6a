"""Deploys as data: a list of Steps, each with run / undo / describe.

The runner records what completed; on any failure (or Ctrl-C) it undoes the completed steps in
reverse order. ``--dry-run`` prints the same list without running anything.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from composekit.errors import ComposekitError, DeployFailed, ExitCode, Interrupted, UndoFailed

Progress = Callable[[str], None]


class Step(Protocol):
    name: str

    def describe(self) -> str: ...

    def run(self) -> str: ...

    def undo(self) -> str: ...


@dataclass
class StepRecord:
    name: str
    status: str  # ok | failed | undone | undo-failed | skipped
    seconds: float
    detail: str = ""
    undo_detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "seconds": round(self.seconds, 2),
            "detail": self.detail,
            "undo": self.undo_detail,
        }


@dataclass
class RunReport:
    steps: list[StepRecord] = field(default_factory=list)
    ok: bool = True
    error: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "error": self.error, "steps": [s.to_dict() for s in self.steps]}


def run_steps(
    steps: list[Any], progress: Progress, report: RunReport | None = None, what: str = "deploy"
) -> RunReport:
    """Run ``steps`` in order; on failure undo the completed ones newest first, then raise
    :class:`DeployFailed` (exit 7), :class:`Interrupted` (130) or, if an undo failed,
    :class:`UndoFailed` (exit 8) listing what a person must do."""
    report = report or RunReport()
    done: list[tuple[Any, StepRecord]] = []
    failure: BaseException | None = None
    for step in steps:
        progress(f"{step.name}: {step.describe()}")
        t0 = time.monotonic()
        try:
            detail = step.run()
        except (ComposekitError, KeyboardInterrupt) as exc:
            rec = StepRecord(step.name, "failed", time.monotonic() - t0, _message(exc))
            report.steps.append(rec)
            # a step can fail part-way (the migrator applied 2 of 3): its undo runs too, so every
            # undo must be safe after a partial run
            done.append((step, rec))
            failure = exc
            progress(f"{step.name}: FAILED after {rec.seconds:.1f}s: {rec.detail}")
            break
        rec = StepRecord(step.name, "ok", time.monotonic() - t0, detail)
        report.steps.append(rec)
        done.append((step, rec))
        progress(f"{step.name}: ok ({rec.seconds:.1f}s){' — ' + detail if detail else ''}")
    if failure is None:
        return report

    report.ok = False
    report.error = _message(failure)
    if isinstance(failure, ComposekitError) and all(
        getattr(st, "changes_nothing", False) for st, _ in done
    ):
        raise failure  # nothing was changed yet: the step's own error and exit code say it best
    manual: list[str] = []
    for step, rec in reversed(done):
        try:
            rec.undo_detail = step.undo()
            if rec.status != "failed":
                rec.status = "undone"
            if rec.undo_detail:
                progress(f"undo {step.name}: {rec.undo_detail}")
        except (ComposekitError, KeyboardInterrupt) as exc:  # keep undoing the rest
            rec.status = "undo-failed"
            rec.undo_detail = _message(exc)
            progress(f"undo {step.name}: FAILED: {rec.undo_detail}")
            manual_undo = getattr(step, "manual_undo", None)
            manual.append(manual_undo() if manual_undo else f"undo the {step.name} step by hand")
    failed_step = report.steps[-1].name
    if manual:
        raise UndoFailed(
            f"{what} failed at {failed_step} ({report.error}) and undoing it failed too",
            hint="run these commands, in order:",
            details=manual,
        )
    if isinstance(failure, KeyboardInterrupt):
        raise Interrupted(
            f"{what} interrupted during {failed_step}; every completed step was undone"
        )
    assert isinstance(failure, ComposekitError)
    raise DeployFailed(
        f"{what} failed at {failed_step}: {report.error}; every completed step was undone",
        hint=failure.hint or "fix the cause and deploy again",
        details=failure.details[-10:],
    )


def _message(exc: BaseException) -> str:
    if isinstance(exc, ComposekitError):
        return exc.message
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted (Ctrl-C)"
    return str(exc)


__all__ = ["ExitCode", "RunReport", "Step", "StepRecord", "run_steps"]
