"""``composekit rollback``: the web back to an image an earlier deploy replaced; the database is
not touched.

Every deploy that replaces the web tags the image it replaced as ``<repo>:ck-<UTC time>-<id>``
(the newest ``[web] keep_images`` of them are kept), so they are never dangling and never pruned
by ``docker image prune``. A rollback re-points the service's image name at one of them and
recreates the web, health-gated; if it never becomes healthy, the web it replaced comes back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from composekit.deploy.rollout import roll_out
from composekit.deploy.runner import Step
from composekit.deploy.state import DeployState
from composekit.deploy.steps import (
    DeployLock,
    Preflight,
    Retire,
    StartDatabase,
    StateStep,
    web_undo,
)
from composekit.deploy.web import (
    KEPT_PREFIX,
    keep_image,
    previous_web_back,
    short,
    split_image_name,
    start_web,
    web_back_by_hand,
)
from composekit.errors import UsageError


@dataclass(frozen=True)
class KeptImage:
    ref: str
    tag: str
    image_id: str
    created: str
    running: bool

    def to_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


def kept_images(s: DeployState) -> list[KeptImage]:
    """The previous web images kept for rollback, newest first."""
    s.web.name = s.project.image_name(s.settings.web_service)
    current = s.project.image_of(s.settings.web_service)
    repo, _ = split_image_name(s.web.name)
    return [  # what runs: an image ID (Compose), or a release's reference (a swarm service)
        KeptImage(f"{repo}:{tag}", tag, image_id, created, current in (image_id, f"{repo}:{tag}"))
        for tag, image_id, created in s.project.tagged(repo, KEPT_PREFIX)
    ]


def choose(kept: list[KeptImage], to: str | None) -> KeptImage:
    """``to`` as a tag, a full reference or an image ID prefix; default: the newest kept image the
    web does not run now."""
    if to is None:
        for k in kept:
            if not k.running:
                return k
        raise UsageError(
            "no earlier web image is kept to roll back to",
            hint="each deploy that replaces the web keeps the one it replaced; see `composekit rollback --list`",
        )
    bare = to.removeprefix("sha256:")
    for k in kept:
        if to in (k.tag, k.ref) or (len(bare) >= 6 and short(k.image_id).startswith(bare[:12])):
            return k
    raise UsageError(f"no kept web image matches {to!r}", hint="see `composekit rollback --list`")


class RollbackWeb(StateStep):
    name = "web"

    def __init__(self, s: DeployState, to: str | None) -> None:
        super().__init__(s)
        self.to = to
        self.target: KeptImage | None = None
        self.changes_nothing = True  # until the image name is re-pointed

    def describe(self) -> str:
        what = self.to or "the newest kept image it does not run now"
        return (
            f"{self.s.settings.web_service} back to {what}; up --force-recreate, wait until healthy"
        )

    def run(self) -> str:
        web = self.s.settings.web_service
        self.target = choose(kept_images(self.s), self.to)
        self.s.web.previous = self.s.project.image_of(web)
        self.s.web.new = self.target.image_id
        if self.target.running:
            return f"{web} already runs {self.target.tag}: unchanged"
        self.changes_nothing = False
        self.s.project.tag_image(self.target.image_id, self.s.web.name)
        if self.s.proxy is not None:
            roll_out(self.s)
        else:
            start_web(self.s, force_recreate=True)
        kept = ""
        if self.s.web.previous:  # so one can roll forward again
            tag = keep_image(self.s, self.s.web.previous)
            kept = f"; {short(self.s.web.previous)} kept as {tag}"
        return f"{web} healthy on {self.target.tag}{kept}"

    def undo(self) -> str:
        if self.target is None or self.target.running:
            return ""
        if self.s.proxy is not None:
            return web_undo(self.s)
        return previous_web_back(self.s)

    def manual_undo(self) -> str:
        return web_back_by_hand(self.s)


def rollback_steps(s: DeployState, to: str | None, lock_wait: float) -> list[Step]:
    """Under the deploy lock (the ledger only read), the web back to a kept image."""
    return [
        Preflight(s),
        StartDatabase(s),
        DeployLock(s, lock_wait, check_ledger=False),
        RollbackWeb(s, to),
        Retire(s),
    ]
