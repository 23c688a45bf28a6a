"""The step runner's promises, with recording steps: undo newest first (the failed step too), a
failing undo is exit 8 with what to run by hand, a signal is 128 + its number after the undo, and a
failure while only checks ran keeps its own error and exit code."""

from __future__ import annotations

import signal

import pytest

from composekit.deploy.runner import Skipped, Step, StepStatus, run_steps
from composekit.errors import (
    ComposekitError,
    ConfigError,
    DeployFailed,
    ExitCode,
    Interrupted,
    UndoFailed,
)
from composekit.signals import Terminated


class Recording(Step):
    def __init__(
        self,
        name: str,
        log: list[str],
        fail: BaseException | None = None,
        undo_fails: bool = False,
        checks_only: bool = False,
        skip: bool = False,
    ) -> None:
        self.name = name
        self.log = log
        self.fail = fail
        self.undo_fails = undo_fails
        self.changes_nothing = checks_only
        self.skip = skip

    def describe(self) -> str:
        return self.name

    def run(self) -> str | Skipped:
        self.log.append(f"run {self.name}")
        if self.fail is not None:
            raise self.fail
        return Skipped("nothing to do") if self.skip else "done"

    def undo(self) -> str:
        self.log.append(f"undo {self.name}")
        if self.undo_fails:
            raise ComposekitError(f"{self.name} would not undo")
        return f"{self.name} undone"

    def manual_undo(self) -> str:
        return f"fix {self.name} by hand"


def test_undo_runs_newest_first_including_the_failed_step() -> None:
    log: list[str] = []
    steps = [
        Recording("a", log),
        Recording("b", log, skip=True),
        Recording("c", log),
        Recording("d", log, fail=ComposekitError("d broke")),
        Recording("e", log),
    ]
    with pytest.raises(DeployFailed) as exc:
        run_steps(steps, lambda m: None)
    assert exc.value.exit_code == ExitCode.DEPLOY_UNDONE
    assert log == ["run a", "run b", "run c", "run d", "undo d", "undo c", "undo b", "undo a"]


def test_skipped_steps_are_recorded_as_skipped() -> None:
    log: list[str] = []
    report = run_steps([Recording("a", log), Recording("b", log, skip=True)], lambda m: None)
    assert [(s.name, s.status, s.detail) for s in report.steps] == [
        ("a", StepStatus.OK, "done"),
        ("b", StepStatus.SKIPPED, "nothing to do"),
    ]


def test_a_failing_undo_is_exit_8_and_the_rest_is_still_undone() -> None:
    log: list[str] = []
    steps = [
        Recording("a", log),
        Recording("b", log, undo_fails=True),
        Recording("c", log, fail=ComposekitError("c broke")),
    ]
    with pytest.raises(UndoFailed) as exc:
        run_steps(steps, lambda m: None)
    assert exc.value.exit_code == ExitCode.UNDO_FAILED
    assert log[-3:] == ["undo c", "undo b", "undo a"]
    assert exc.value.details == ["fix b by hand"]
    assert "undoing it failed too" in exc.value.message


def test_a_signal_undoes_then_exits_128_plus_its_number() -> None:
    log: list[str] = []
    steps = [Recording("a", log), Recording("b", log, fail=Terminated(signal.SIGTERM))]
    with pytest.raises(Interrupted) as exc:
        run_steps(steps, lambda m: None)
    assert exc.value.exit_code == 128 + signal.SIGTERM
    assert "interrupted by SIGTERM" in exc.value.message
    assert log == ["run a", "run b", "undo b", "undo a"]


def test_a_failure_while_only_checks_ran_keeps_its_own_exit_code() -> None:
    log: list[str] = []
    steps = [
        Recording("preflight", log, checks_only=True),
        Recording("lock", log, checks_only=True, fail=ConfigError("bad compose file")),
    ]
    with pytest.raises(ConfigError):
        run_steps(steps, lambda m: None)
    assert log == ["run preflight", "run lock"]  # nothing to undo
