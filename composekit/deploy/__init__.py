"""Deploys, rollbacks and what they share.

Rooms: ``state`` (what the steps share), ``runner`` (steps run, undone in reverse on failure),
``steps`` / ``verify`` / ``initscripts`` (the steps), ``revert`` (the database back as it was),
``web`` (start health-gated, previous image back, kept images), ``lock`` (the deploy lock, also
taken by restore), ``history`` (typed records), ``run`` (deploy) and ``rollback``.
"""

from __future__ import annotations

from composekit.deploy.history import HistoryRecord, RunKind, read_history
from composekit.deploy.lock import take_deploy_lock
from composekit.deploy.rollback import KeptImage, list_kept, rollback
from composekit.deploy.run import deploy
from composekit.deploy.state import OVERLAYS
from composekit.deploy.web import short

__all__ = [
    "OVERLAYS",
    "HistoryRecord",
    "KeptImage",
    "RunKind",
    "deploy",
    "list_kept",
    "read_history",
    "rollback",
    "short",
    "take_deploy_lock",
]
