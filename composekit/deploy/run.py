"""A deploy's steps for the layout, and running any list of steps (a deploy's or a rollback's):
undone on failure, the lock always released, the run recorded in the history."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime

from composekit.deploy.history import HistoryRecord, RunKind, record_history
from composekit.deploy.hooks import after_run, before_run, hook_steps
from composekit.deploy.initscripts import InitScripts
from composekit.deploy.rehearsal import Rehearse
from composekit.deploy.rollback import rollback_steps
from composekit.deploy.runner import RunReport, Step, run_steps
from composekit.deploy.state import DeployState
from composekit.deploy.steps import (
    BuildImages,
    Contract,
    DeployLock,
    DeployWeb,
    Maintenance,
    Migrate,
    Preflight,
    Resume,
    Retire,
    StartDatabase,
    TakeBackup,
    Together,
)
from composekit.deploy.swarm import swarm_rollback_steps, swarm_steps
from composekit.deploy.verify import Verify
from composekit.errors import ComposekitError, UndoFailed
from composekit.hooks import check_hooks


def plan_steps(s: DeployState, lock_wait: float) -> list[Step]:
    if s.settings.engine == "swarm":
        return swarm_steps(s, lock_wait)
    layout = s.settings.layout
    steps: list[Step] = [Preflight(s), StartDatabase(s), DeployLock(s, lock_wait)]
    steps += hook_steps(s, "pre-deploy")  # before anything changes: a failing one stops it all
    if not layout.runs_migrations:
        steps.append(InitScripts(s))
    if s.ctx.maintenance:  # nothing may write between the web stopping and the backup
        steps += [BuildImages(s), Maintenance(s), TakeBackup(s)]
    else:
        steps.append(Together(BuildImages(s), TakeBackup(s)))
    if s.settings.rehearse and layout.runs_migrations and not s.ctx.opaque:
        steps.append(Rehearse(s))  # on a copy of the backup just taken, with the image just built
    post_migrate = hook_steps(s, "post-migrate")
    if layout.has_migrator:
        steps += [Migrate(s), Verify(s), *post_migrate, DeployWeb(s)]
    elif layout.web_migrates:
        steps += [Migrate(s), DeployWeb(s), Verify(s), *post_migrate]  # it migrates as it starts
    else:
        steps += [Verify(s), DeployWeb(s)]  # init-scripts: nothing to migrate
    steps += [Resume(s)] if s.ctx.maintenance else []
    return steps + [Retire(s)] + ([Contract(s)] if layout.runs_migrations else [])


def rollback_plan(s: DeployState, to: str | None, lock_wait: float) -> list[Step]:
    if s.settings.engine == "swarm":
        return swarm_rollback_steps(s, to, lock_wait)
    return rollback_steps(s, to, lock_wait)


def describe(steps: list[Step]) -> list[str]:
    return [f"{i}. {st.name}: {st.describe()}" for i, st in enumerate(steps, 1)]


def execute(
    s: DeployState, steps: list[Step], *, kind: RunKind, dry_run: bool
) -> HistoryRecord | list[str]:
    """Run ``steps`` (undone on failure), always release the lock, and record the run."""
    check_hooks(s.settings.project_dir)  # one that is not executable: exit 3 before anything
    if dry_run:
        return describe(steps)
    started = datetime.now(UTC).isoformat()
    t0 = time.monotonic()
    run_id = s.run_id = uuid.uuid4().hex[:12]
    before_run(s, kind)
    run = RunReport()
    error: ComposekitError | None = None
    try:
        run_steps(
            steps,
            s.progress,
            run,
            what=str(kind),
            before_undo=s.start_undo,
            before_step=lambda step: s.checkpoint(step.name),
        )
    except ComposekitError as exc:
        error = exc
    finally:
        # done, or fully undone: nothing for a later run to recover (an undo that failed keeps
        # its journal, for `composekit recover`); then the lock goes
        if s.journal is not None and not isinstance(error, UndoFailed):
            s.journal.close()
        s.lock.close()
    after = s.ledger_after
    if error is not None or after is None:
        try:
            after = s.ledger()
        except ComposekitError:
            after = None
    record = HistoryRecord(
        id=run_id,
        kind=kind,
        env=s.ctx.env,
        started=started,
        finished=datetime.now(UTC).isoformat(),
        ok=error is None,
        steps=run.steps,
        error=run.error,
        ledger_before=s.ledger_before,
        ledger_after=after,
        backup=str(s.backup.path) if s.backup else None,
        web_before=s.web.previous,
        web_after=s.web.new if error is None and s.web.new else s.web.previous,
    )
    record_history(s.settings.project_dir, record, s.settings.redactor)
    after_run(s, kind, record, error, t0)
    if error is not None:
        raise error
    return record
