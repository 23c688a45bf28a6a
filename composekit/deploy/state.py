"""What the steps of one deploy (or rollback) share.

:class:`DeployContext` is what every step reads and none changes. :class:`DeployState` is what
steps learn on the way; each field has one writer, named beside it, so the two steps that run at
the same time (build and backup) never write the same field.
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass, field

from composekit.backup import Backup
from composekit.compose import ComposeProject
from composekit.config import BackupMode, Settings
from composekit.dbtarget import DbTarget
from composekit.deadline import Deadline
from composekit.deploy.history import RunKind
from composekit.errors import UsageError
from composekit.journal import Journal
from composekit.migrations import Source, load_source, pending
from composekit.progress import Progress
from composekit.proxy import Proxy
from composekit.swarm import project_for

OVERLAYS = {"staging": "compose.staging.yaml", "prod": "compose.prod.yaml"}


@dataclass(frozen=True)
class DeployContext:
    settings: Settings
    project: ComposeProject
    target: DbTarget
    source: Source
    progress: Progress
    timeout: float  # --timeout: the whole run's budget (and again for an undo)
    env: str | None = None
    backup_mode: BackupMode = BackupMode.AUTO
    maintenance: bool = False
    kind: RunKind = RunKind.DEPLOY
    migrator: str = "composekit"  # what runs the migrations: see :func:`migrator_kind`
    scale: int | None = None  # --scale web=N (else deploy.replicas, else as many as run now)
    allow_lint: bool = False  # --allow-lint: deploy pending migrations lint finds errors in

    @property
    def opaque(self) -> bool:
        """The migrator is the project's own command: composekit cannot see what it applies, so
        it always runs, the backup is always taken, and its undo is a restore of that backup."""
        return self.migrator != "composekit"

    @property
    def alembic(self) -> bool:
        """An opaque migrator that is Alembic: its ledger is ``alembic_version``, and its undo is
        ``alembic downgrade`` to the revision before the deploy (else the restore)."""
        return self.migrator == "alembic"


@dataclass
class WebImages:
    """The web's image name and IDs (written by the build step, or rollback's web step)."""

    name: str = ""
    previous: str | None = None  # the ID the running web used before this run
    new: str | None = None


@dataclass
class Generations:
    """The web containers of a rollout behind the proxy (:mod:`composekit.deploy.rollout`)."""

    old: list[str] | None = None  # serving before it (None: no rollout began); retire removes them
    new: list[str] = field(default_factory=list)  # started by it
    switched: bool = False  # the proxy sends to ``new``
    retired: bool = False  # the old ones are gone: an undo rolls the previous image out again


@dataclass
class DeployState:
    ctx: DeployContext
    deadline: Deadline  # the run's; replaced by a fresh one for the undo
    web: WebImages = field(default_factory=WebImages)
    gen: Generations = field(default_factory=Generations)  # web step (rollout), retire step
    lock: ExitStack = field(default_factory=ExitStack)  # lock step; closed when the run ends
    ledger_before: list[str] | None = None  # lock step
    ledger_after: list[str] | None = None  # verify step
    backup: Backup | None = None  # backup step
    fingerprint: str | None = None  # backup step (else migrate): schema + ledger an undo gives back
    stopped: list[str] = field(default_factory=list)  # maintenance step
    journal: Journal | None = None  # started by the lock step, once no other run can be in flight
    run_id: str = ""  # the history record's id, known from the start (hooks, alerts)
    _proxy: Proxy | bool | None = field(default=None, repr=False)

    @property
    def settings(self) -> Settings:
        return self.ctx.settings

    @property
    def project(self) -> ComposeProject:
        return self.ctx.project

    @property
    def proxy(self) -> Proxy | None:
        """The reverse proxy in front of the web, when the project has one (read once)."""
        if self._proxy is None:  # a swarm stack's proxy finds the web's tasks by DNS itself
            swarm = self.settings.engine == "swarm"
            self._proxy = (not swarm and Proxy.of(self.settings, self.project)) or False
        return self._proxy if isinstance(self._proxy, Proxy) else None

    def progress(self, line: str) -> None:
        self.ctx.progress(line)

    @property
    def kind(self) -> RunKind:
        return self.ctx.kind

    def ledger(self) -> list[str] | None:
        """The versions applied now, in the ledger this project's migrator keeps."""
        target = self.ctx.target
        return target.alembic_revisions() if self.ctx.alembic else target.applied()

    def pending(self) -> list[str]:
        """Versions the ledger read at the lock step does not hold (Alembic keeps its own)."""
        if self.ctx.alembic:
            return []
        return [m.version for m in pending(self.ctx.source, self.ledger_before or [])]

    def after_rollout(self, applied: list[str] | None = None) -> list[str]:
        """Of what is pending on ``applied`` (default: the ledger read at the lock step), the
        versions from the first contract migration on: the deploy applies them after the web
        rollout (everything before them, before it)."""
        if self.ctx.alembic or self.ctx.opaque:
            return []
        left = pending(self.ctx.source, (self.ledger_before or []) if applied is None else applied)
        first = next((i for i, m in enumerate(left) if m.contract), len(left))
        return [m.version for m in left[first:]]

    def checkpoint(self, step: str = "") -> None:
        """Write what an undo would need to the journal, before a step changes anything."""
        if self.journal is None:
            return
        self.journal.write(
            step=step or self.journal.entry.step,
            ledger_before=self.ledger_before,
            backup=str(self.backup.path) if self.backup else None,
            web_name=self.web.name,
            web_previous=self.web.previous,
            web_new=self.web.new,
            stopped=self.stopped,
            web_old=self.gen.old,
            web_started=self.gen.new,
            switched=self.gen.switched,
            retired=self.gen.retired,
        )

    def start_undo(self) -> None:
        """The undo gets a budget of its own: the run's may be spent (that may be why it failed)."""
        self.deadline = Deadline(self.ctx.timeout)


def overlay_for(env: str | None) -> str | None:
    """The Compose overlay of ``--env`` (None: none); an unknown environment is a usage error."""
    overlay = OVERLAYS.get(env) if env else None
    if env and overlay is None:
        raise UsageError(f"unknown environment {env!r}", hint="use --env staging or --env prod")
    return overlay


def new_state(
    settings: Settings,
    *,
    env: str | None,
    timeout: float,
    progress: Progress,
    backup_mode: BackupMode = BackupMode.AUTO,
    maintenance: bool = False,
    kind: RunKind = RunKind.DEPLOY,
    migrations: bool = True,
    scale: int | None = None,
    allow_lint: bool = False,
) -> DeployState:
    """The context of a deploy (or rollback); checks ``--env``. The deadline starts here."""
    deadline = Deadline(timeout)
    overlay = overlay_for(env)
    project = project_for(settings, overlay)
    migrator = migrator_kind(settings, project)
    if migrator != "composekit" and not settings.migrations_path.is_dir():
        migrations = False  # the project's own migrator keeps its migrations its own way
    ctx = DeployContext(
        settings,
        project,
        DbTarget.from_settings(settings, project),
        load_source(settings.migrations_path, settings.migrations_format)
        if migrations
        else Source(settings.migrations_path, settings.migrations_format, [], []),
        progress,
        timeout,
        env,
        backup_mode,
        maintenance,
        kind,
        migrator,
        scale,
        allow_lint,
    )
    return DeployState(ctx, deadline)


def migrator_kind(settings: Settings, project: ComposeProject) -> str:
    """``[deploy] migrator``, or (auto) what the migrator service runs: composekit, Alembic, or
    something else (opaque). The web of the app-startup layout is taken at its word
    (composekit's engine) unless the setting says otherwise."""
    if settings.migrator_kind != "auto":
        return settings.migrator_kind
    if not settings.layout.has_migrator:
        return "composekit"
    svc = project.config().get("services", {}).get(settings.migrator_service, {})
    argv = " ".join(str(a) for a in [*(svc.get("entrypoint") or []), *(svc.get("command") or [])])
    if "composekit" in argv:
        return "composekit"
    return "alembic" if "alembic" in argv else "opaque"
