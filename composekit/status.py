"""``composekit status``: one look at a project — services, ledger, pending, last backup, last deploy."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from composekit.backup import DbTarget, list_backups
from composekit.compose import ComposeProject
from composekit.deploy import read_history, short
from composekit.errors import ComposekitError
from composekit.migrations.source import load_source, version_key


@dataclass
class ProjectStatus:
    services: list[dict[str, Any]]
    ledger_version: str | None
    pending: list[str]
    last_backup: dict[str, Any] | None
    last_deploy: dict[str, Any] | None
    problems: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


def project_status(settings: Any) -> ProjectStatus:
    """Reads only. A stopped database is reported as a problem, not raised."""
    project = ComposeProject.from_settings(settings)
    services = [
        {
            "service": s.service,
            "container": s.name,
            "state": s.state,
            "health": s.health,
            "image": short(s.image_id),
        }
        for s in project.ps()
    ]
    problems: list[str] = []
    ledger: str | None = None
    pending: list[str] = []
    source = load_source(settings.migrations_path, settings.migrations_format)
    try:
        target = DbTarget.from_settings(settings, project)
        applied = target.applied() or []
        keys = {version_key(v) for v in applied}
        ledger = applied[-1] if applied else None
        pending = [m.version for m in source.migrations if m.key not in keys]
    except ComposekitError as exc:
        problems.append(f"database: {exc.message}")
    backups = list_backups(settings.backups_path)
    history = read_history(settings.project_dir)
    last = history[-1] if history else None
    return ProjectStatus(
        services=services,
        ledger_version=ledger,
        pending=pending,
        last_backup=backups[0].to_dict() if backups else None,
        last_deploy={"kind": last.get("kind", "deploy")}
        | {k: last[k] for k in ("started", "ok", "error", "ledger_after")}
        if last
        else None,
        problems=problems,
    )
