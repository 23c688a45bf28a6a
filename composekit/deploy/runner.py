"""Deploys as data: a list of :class:`Step` objects, each with run / undo / describe.

The runner records what completed; on any failure (or a signal) it undoes the completed steps in
reverse order. ``--dry-run`` prints the same list without running anything.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from composekit.errors import ComposekitError, DeployFailed, Interrupted, UndoFailed
from composekit.progress import Progress
from composekit.signals import shielded, signum_of


class StepStatus(StrEnum):
    OK = "ok"
    SKIPPED = "skipped"  # ran, found nothing to do, changed nothing
    FAILED = "failed"
    UNDONE = "undone"
    UNDO_FAILED = "undo-failed"


@dataclass(frozen=True)
class Skipped:
    """What :meth:`Step.run` returns when it found nothing to do."""

    reason: str


class Step:
    """One step of a deploy. ``run`` may fail part-way, so ``undo`` must be safe after a partial
    run (it also runs for the step that failed)."""

    name = ""
    changes_nothing = False
    """True for steps that only read or check: a failure while only such steps ran is reported
    with the step's own error and exit code, since there is nothing to undo."""

    refusal = False
    """True for a check that refuses the run (e.g. the rehearsal): once the steps before it are
    undone, nothing is changed, so the run exits with the step's own error and code."""

    def describe(self) -> str:
        raise NotImplementedError

    def run(self) -> str | Skipped:
        raise NotImplementedError

    def undo(self) -> str:
        return ""

    def manual_undo(self) -> str:
        """What a person runs when :meth:`undo` failed."""
        return f"undo the {self.name} step by hand"


@dataclass
class StepRecord:
    name: str
    status: StepStatus
    seconds: float
    detail: str = ""
    undo_detail: str = ""
    undo_seconds: float = 0.0  # how long its undo took (0: it was not undone)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": str(self.status),
            "seconds": round(self.seconds, 2),
            "detail": self.detail,
            "undo": self.undo_detail,
            "undo_seconds": round(self.undo_seconds, 2),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> StepRecord:
        return cls(
            d["name"],
            StepStatus(d["status"]),
            d["seconds"],
            d["detail"],
            d["undo"],
            d.get("undo_seconds", 0.0),  # records from before it was kept have none
        )


@dataclass
class RunReport:
    steps: list[StepRecord] = field(default_factory=list)
    ok: bool = True
    error: str = ""


def run_steps(
    steps: list[Step],
    progress: Progress,
    report: RunReport | None = None,
    what: str = "deploy",
    before_undo: Callable[[], None] = lambda: None,
    before_step: Callable[[Step], None] = lambda step: None,
) -> RunReport:
    """Run ``steps`` in order; on failure call ``before_undo``, undo the completed ones newest
    first, then raise :class:`DeployFailed` (exit 7), :class:`Interrupted` (130) or, if an undo
    failed, :class:`UndoFailed` (exit 8) listing what a person must do."""
    report = report or RunReport()
    done: list[tuple[Step, StepRecord]] = []
    failure: BaseException | None = None
    for step in steps:
        progress(f"{step.name}: {step.describe()}")
        t0 = time.monotonic()
        try:
            before_step(step)
            result = step.run()
        except (ComposekitError, KeyboardInterrupt) as exc:
            rec = StepRecord(step.name, StepStatus.FAILED, time.monotonic() - t0, _message(exc))
            report.steps.append(rec)
            # a step can fail part-way (the migrator applied 2 of 3): its undo runs too
            done.append((step, rec))
            failure = exc
            progress(f"{step.name}: FAILED after {rec.seconds:.1f}s: {rec.detail}")
            break
        skipped = isinstance(result, Skipped)
        detail = result.reason if isinstance(result, Skipped) else result
        status = StepStatus.SKIPPED if skipped else StepStatus.OK
        rec = StepRecord(step.name, status, time.monotonic() - t0, detail)
        report.steps.append(rec)
        done.append((step, rec))
        progress(f"{step.name}: {status} ({rec.seconds:.1f}s){' — ' + detail if detail else ''}")
    if failure is None:
        return report

    report.ok = False
    report.error = _message(failure)
    if isinstance(failure, ComposekitError) and all(st.changes_nothing for st, _ in done):
        raise failure  # nothing was changed yet: the step's own error and exit code say it best
    manual: list[str] = []
    with shielded(reraise=False) as later:  # a second signal must not stop the undo half-way
        before_undo()
        for step, rec in reversed(done):
            t0 = time.monotonic()
            try:
                rec.undo_detail = step.undo()
                if rec.status is StepStatus.OK:
                    rec.status = StepStatus.UNDONE
                if rec.undo_detail:
                    progress(f"undo {step.name}: {rec.undo_detail}")
            except ComposekitError as exc:  # keep undoing the rest
                rec.status = StepStatus.UNDO_FAILED
                rec.undo_detail = _message(exc)
                progress(f"undo {step.name}: FAILED: {rec.undo_detail}")
                manual.append(step.manual_undo())
            rec.undo_seconds = time.monotonic() - t0
    if later:
        progress(f"{len(later)} more signal(s) arrived during the undo; it ran to the end")
    failed_step = report.steps[-1].name
    if manual:
        raise UndoFailed(
            f"{what} failed at {failed_step} ({report.error}) and undoing it failed too",
            hint="run these commands, in order:",
            details=manual,
        )
    if isinstance(failure, KeyboardInterrupt):
        raise Interrupted(
            f"{what} interrupted ({_message(failure)}) during {failed_step}; every completed "
            "step was undone",
            signum=signum_of(failure),
        )
    assert isinstance(failure, ComposekitError)
    if done[-1][0].refusal:  # undone in full: as good as refused before anything changed
        failure.message += "; every completed step was undone, nothing was changed"
        raise failure
    raise DeployFailed(
        f"{what} failed at {failed_step}: {report.error}; every completed step was undone",
        hint=failure.hint or "fix the cause and deploy again",
        details=failure.details[-10:],
    )


def _message(exc: BaseException) -> str:
    if isinstance(exc, ComposekitError):
        return exc.message
    if isinstance(exc, KeyboardInterrupt):
        return f"interrupted by {signal.Signals(signum_of(exc)).name}"
    return str(exc)
