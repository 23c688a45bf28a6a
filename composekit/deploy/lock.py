"""The deploy lock: one deploy, rollback or restore per database at a time, from any machine.

An advisory lock held by a psql session in the ``postgres`` database (a restore of the app
database cannot end it), ``application_name`` naming who holds it. PostgreSQL releases it when the
session ends — when the stack closes, or when this process dies (its stdin pipe closes).
"""

from __future__ import annotations

from contextlib import ExitStack

from composekit.db import advisory_lock, lock_key, who_am_i
from composekit.dbtarget import DbTarget
from composekit.progress import Progress


def take_deploy_lock(target: DbTarget, stack: ExitStack, wait: float, progress: Progress) -> None:
    """Hold the deploy lock until ``stack`` closes; names the holder if another deploy has it."""
    app_name = f"composekit deploy {who_am_i()}"
    session = target.session(app_name)
    stack.callback(session.close)
    key = lock_key(f"{target.database}/{target.ledger_table}", purpose="deploy")
    stack.enter_context(advisory_lock(session, key, wait, "deploy", progress, app_name))
