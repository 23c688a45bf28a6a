"""A deploy's hooks (see :mod:`composekit.hooks`): ``pre-deploy`` and ``post-migrate`` are steps;
``post-deploy``, ``on-failure`` and ``post-rollback`` run once the run is recorded."""

from __future__ import annotations

import time

from composekit.deploy.history import HistoryRecord, RunKind
from composekit.deploy.runner import Skipped
from composekit.deploy.state import DeployState
from composekit.deploy.steps import StateStep
from composekit.errors import ComposekitError, DeployFailed, Interrupted, UndoFailed
from composekit.hooks import HookEvent, find_hook, run_hook, run_reported
from composekit.notify import send


def alert(s: DeployState, name: str, event: HookEvent) -> None:
    """``[notify]``: one event out; a failure is reported, never raised."""
    st = s.settings
    send(name, event, webhook=st.notify_webhook, command=st.notify_command, progress=s.progress)


def before_run(s: DeployState, kind: RunKind) -> None:
    if kind in (RunKind.DEPLOY, RunKind.ROLLBACK):
        alert(s, f"{kind}.started", event_of(s, kind))


def event_of(s: DeployState, kind: RunKind) -> HookEvent:
    return HookEvent(
        command=str(kind),
        project=s.project.name,
        env=s.ctx.env or "",
        run_id=s.run_id,
        ledger_before=(s.ledger_before or [""])[-1],
        backup=s.backup.path.name if s.backup else "",
        web_before=s.web.previous or "",
    )


class HookStep(StateStep):
    """A hook as a step: ``pre-deploy`` stops the deploy (nothing changed yet, exit 6);
    ``post-migrate`` is reported and never fails the deploy."""

    changes_nothing = True

    def __init__(self, s: DeployState, hook: str) -> None:
        super().__init__(s)
        self.hook = hook
        self.name = f"hook {hook}"

    def describe(self) -> str:
        return f"run .composekit/hooks/{self.hook}"

    def run(self) -> str | Skipped:
        event = event_of(self.s, self.s.ctx.kind)
        event.ledger_after = ((self.s.ledger() or [""])[-1]) if self.hook == "post-migrate" else ""
        done = run_hook(
            self.s.settings.project_dir,
            self.hook,
            event,
            timeout=min(self.s.settings.hooks_timeout, self.s.deadline.remaining()),
            progress=self.s.progress,
        )
        return Skipped("no such hook") if done is None else done.describe()


def hook_steps(s: DeployState, hook: str) -> list[StateStep]:
    """The step of ``hook`` when the project has that hook (its file must be executable)."""
    return [HookStep(s, hook)] if find_hook(s.settings.project_dir, hook) else []


def after_run(
    s: DeployState, kind: RunKind, record: HistoryRecord, error: ComposekitError | None,
    started: float,
) -> None:  # fmt: skip
    """``post-deploy`` / ``on-failure`` / ``post-rollback`` with the run's result; their failures
    are reported, never change the result."""
    event = event_of(s, kind)
    event.ledger_after = (record.ledger_after or [""])[-1]
    event.web_after = record.web_after or ""
    event.duration_s = f"{time.monotonic() - started:.1f}"
    event.result = _result(error)
    event.failed_step = record.failed_step or ""
    event.error = error.message if error else ""
    if kind in (RunKind.DEPLOY, RunKind.ROLLBACK):
        outcome = {"ok": "succeeded", "undo-failed": "undo_failed"}.get(event.result, "failed")
        alert(s, f"{kind}.{outcome}", event)
    hooks = []
    if kind is RunKind.DEPLOY:
        hooks.append("post-deploy" if error is None else "on-failure")
    elif kind is RunKind.ROLLBACK:
        hooks += ["post-rollback"] + (["on-failure"] if error is not None else [])
    for hook in hooks:
        run_reported(s.settings.project_dir, hook, event, timeout=s.settings.hooks_timeout,
                     progress=s.progress)  # fmt: skip


def _result(error: ComposekitError | None) -> str:
    if error is None:
        return "ok"
    if isinstance(error, UndoFailed):
        return "undo-failed"
    if isinstance(error, Interrupted):
        return "interrupted"
    if isinstance(error, DeployFailed):
        return "undone"
    return "failed"  # refused before anything changed
