"""``composekit status``: one look at a project — services, ledger, pending, last backup, last deploy."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from composekit.backup import Backup, list_backups
from composekit.config import Settings
from composekit.dbtarget import DbTarget
from composekit.deploy import HistoryRecord, read_history, short
from composekit.errors import ComposekitError
from composekit.journal import JournalEntry, read_journal
from composekit.migrations import load_source, pending
from composekit.proxy import Proxy, ProxyView
from composekit.swarm import project_for


@dataclass(frozen=True)
class ServiceRow:
    service: str
    container: str
    state: str
    health: str | None
    image: str
    traffic: bool | None = None  # a web container the proxy sends to (None: no proxy, not web)


@dataclass
class ProjectStatus:
    services: list[ServiceRow]
    ledger_version: str | None
    pending: list[str] | None  # None: the ledger could not be read
    last_backup: Backup | None
    last_deploy: HistoryRecord | None
    problems: list[str] = field(default_factory=list)
    run: JournalEntry | None = None  # a run in flight, or one that was killed (see ``running``)
    running: bool = False
    proxy: ProxyView | None = None  # what the proxy in front of the web does (None: no proxy)

    def to_dict(self) -> dict[str, Any]:
        d = self.last_deploy
        return {
            "services": [s.__dict__ for s in self.services],
            "ledger_version": self.ledger_version,
            "pending": self.pending,
            "last_backup": self.last_backup.to_dict() if self.last_backup else None,
            "last_deploy": None
            if d is None
            else {
                "kind": str(d.kind),
                "started": d.started,
                "ok": d.ok,
                "error": d.error,
                "ledger_after": d.ledger_after,
            },
            "problems": self.problems,
            "interrupted": None if self.run is None or self.running else self.run.to_dict(),
            "in_progress": self.run.to_dict() if self.run is not None and self.running else None,
            "proxy": None if self.proxy is None else self.proxy.__dict__,
        }


def project_status(settings: Settings) -> ProjectStatus:
    """Reads only. A stopped database is reported as a problem, not raised."""
    project = project_for(settings)
    swarm = settings.engine == "swarm"
    problems: list[str] = []
    view = None
    proxy = None if swarm else Proxy.of(settings, project)  # a stack's finds its tasks by DNS
    if proxy is not None and project.ps([proxy.service], all=False):
        try:
            view = proxy.view()
        except ComposekitError as exc:
            problems.append(f"proxy: {exc.message}")

    def traffic(service: str, name: str) -> bool | None:
        if view is None or service != settings.web_service:
            return None
        return name in view.serving or service in view.serving  # the name: every container

    services = [
        ServiceRow(
            s.service, s.name, s.state, s.health, short(s.image_id), traffic(s.service, s.name)
        )
        for s in project.ps(all=not swarm)  # a swarm keeps its ended tasks: not services
    ]
    ledger: str | None = None
    todo: list[str] | None = None
    source = None  # no migrations directory: the project keeps its migrations its own way
    if settings.migrations_path.is_dir():
        source = load_source(settings.migrations_path, settings.migrations_format)
    target = DbTarget.from_settings(settings, project)  # no db service: a configuration error
    try:
        applied = target.applied() or []
        ledger = applied[-1] if applied else None
        todo = [m.version for m in pending(source, applied)] if source is not None else None
    except ComposekitError as exc:
        problems.append(f"database: {exc.message}")
    backups = list_backups(settings.backups_path)
    history = read_history(settings.project_dir)
    run = read_journal(settings.project_dir)
    running = run is not None and run.alive
    if run is not None and not running:
        problems.append(
            f"the {run.describe()} was interrupted: run `composekit recover` "
            "(the next deploy does it too)"
        )
    return ProjectStatus(
        services=services,
        ledger_version=ledger,
        pending=todo,
        last_backup=backups[0] if backups else None,
        last_deploy=history[-1] if history else None,
        problems=problems,
        run=run,
        running=running,
        proxy=view,
    )
