"""Deploys, rollbacks and what they share.

Rooms: ``state`` (what the steps share), ``runner`` (steps run, undone in reverse on failure),
``steps`` / ``verify`` / ``initscripts`` (the steps), ``revert`` (the database back as it was),
``web`` (start health-gated, previous image back, kept images), ``lock`` (the deploy lock, also
taken by restore), ``history`` (typed records), ``run`` (a deploy's steps; running steps) and ``rollback``
(its steps), ``swarm`` (the same on a Docker Swarm stack). :mod:`composekit.commands` puts them together.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from composekit.lazy import exports

if TYPE_CHECKING:  # the same names, for the type checker; at run time __getattr__ imports each
    from composekit.deploy.history import HistoryRecord, RunKind, read_history
    from composekit.deploy.lock import take_deploy_lock
    from composekit.deploy.recover import recover_leftover
    from composekit.deploy.rollback import KeptImage, kept_images
    from composekit.deploy.run import execute, plan_steps, rollback_plan
    from composekit.deploy.state import OVERLAYS, migrator_kind, new_state, overlay_for
    from composekit.deploy.web import short

__getattr__ = exports(
    __name__,
    {
        "history": "HistoryRecord RunKind read_history",
        "lock": "take_deploy_lock",
        "recover": "recover_leftover",
        "rollback": "KeptImage kept_images",
        "run": "execute plan_steps rollback_plan",
        "state": "OVERLAYS migrator_kind new_state overlay_for",
        "web": "short",
    },
)

__all__ = [
    "OVERLAYS",
    "HistoryRecord",
    "KeptImage",
    "RunKind",
    "execute",
    "kept_images",
    "migrator_kind",
    "new_state",
    "overlay_for",
    "plan_steps",
    "read_history",
    "recover_leftover",
    "rollback_plan",
    "short",
    "take_deploy_lock",
]
