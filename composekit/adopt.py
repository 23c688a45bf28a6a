"""``composekit adopt``: take an existing Compose project as it is.

Reads the resolved compose configuration (every file Compose itself reads, every profile), finds
the PostgreSQL service, the web and the one-off migrator, and how they get their database
settings; writes ``composekit.toml`` (and ``.gitignore`` lines for ``backups/`` and
``.composekit/``) — never the compose files, the Dockerfile or the migrations. A migrator that
runs its own command (``python migrate.py``, ``alembic upgrade head``…) is adopted as such: the
deploy always runs it and undoes it by restoring the pre-deploy backup.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from composekit.compose import ComposeProject
from composekit.errors import ConfigError, UsageError

_POSTGRES_IMAGE = re.compile(r"(^|/)(postgres|postgis|timescaledb[\w-]*|supabase/postgres)(:|@|$)")
_WEB_NAMES = ("web", "app", "api", "backend", "frontend", "server")
_IGNORE_LINES = ("backups/", ".composekit/")
CONFIG_FILE = "composekit.toml"


@dataclass
class Adoption:
    directory: Path
    compose_files: list[str]
    db: str
    db_user: str
    db_name: str
    web: str | None
    migrator: str | None
    migrator_command: str = ""
    migrator_kind: str = ""  # "composekit" | "opaque" | "" (no migrator)
    layout: str = "migrator"
    settings_from: dict[str, str] = field(default_factory=dict)  # service -> how it gets the DB
    notes: list[str] = field(default_factory=list)  # what the project still lacks, or should know
    toml: str = ""
    written: list[str] = field(default_factory=list)


def _argv(svc: dict[str, Any]) -> list[str]:
    return [str(a) for a in [*(svc.get("entrypoint") or []), *(svc.get("command") or [])]]


def _is_postgres(svc: dict[str, Any]) -> bool:
    image = str(svc.get("image") or "")
    test = " ".join(str(t) for t in (svc.get("healthcheck") or {}).get("test") or [])
    return bool(_POSTGRES_IMAGE.search(image.split("@")[0])) or "pg_isready" in test


def databases(services: dict[str, dict[str, Any]]) -> list[str]:
    """The services that are a PostgreSQL server: a postgres image or a pg_isready healthcheck —
    but not a one-off (``restart: "no"``, or a migrator by name) that merely uses that image for
    its psql."""
    return sorted(
        n
        for n, s in services.items()
        if _is_postgres(s) and str(s.get("restart", "")) != "no" and "migrat" not in n.lower()
    )


def _settings_from(svc: dict[str, Any]) -> str:
    names = set((svc.get("environment") or {}).keys())
    if "DATABASE_URL" in names:
        return "DATABASE_URL"
    for prefix in ("DB_", "POSTGRES_", "PG"):
        parts = sorted(n for n in names if n.startswith(prefix))
        if parts:
            return f"{prefix}* variables ({', '.join(parts)})"
    return "no database variables"


def _pick(candidates: list[str], what: str, flag: str) -> str | None:
    if len(candidates) > 1:
        raise ConfigError(
            f"more than one {what} service: {', '.join(candidates)}; nothing was written",
            hint=f"name the one to use: composekit adopt {flag} NAME",
        )
    return candidates[0] if candidates else None


def find(
    project_dir: Path,
    *,
    db: str | None = None,
    web: str | None = None,
    migrator: str | None = None,
) -> Adoption:
    """What composekit would adopt in ``project_dir`` (nothing written)."""
    project = ComposeProject(project_dir=project_dir)
    services: dict[str, dict[str, Any]] = project.config().get("services", {})
    for name, flag in ((db, "--db"), (web, "--web"), (migrator, "--migrator")):
        if name is not None and name not in services:
            raise UsageError(
                f"{flag} {name}: no such service (services: {', '.join(sorted(services))})",
                hint="name one of the services in the compose file(s)",
            )
    db = db or _pick(databases(services), "PostgreSQL", "--db")
    if db is None:
        raise ConfigError(
            f"no PostgreSQL service in {', '.join(f.name for f in project.files)} (no postgres "
            "image, no pg_isready healthcheck); nothing was written",
            hint="name it: composekit adopt --db NAME",
        )
    rest = {n: s for n, s in services.items() if n != db}
    if migrator is None:
        one_offs = sorted(
            n
            for n, s in rest.items()
            if "migrat" in n.lower()
            or (str(s.get("restart", "no")) == "no" and "migrat" in " ".join(_argv(s)).lower())
        )
        migrator = _pick(one_offs, "migrator", "--migrator")
    rest.pop(migrator or "", None)
    if web is None:
        named = [n for n in _WEB_NAMES if n in rest]
        serving = sorted(n for n, s in rest.items() if s.get("ports") or s.get("build"))
        web = named[0] if named else (serving[0] if serving else None)

    db_env = services[db].get("environment") or {}
    user = str(db_env.get("POSTGRES_USER") or "postgres")
    found = Adoption(
        directory=project_dir,
        compose_files=[f.name for f in project.files],
        db=db,
        db_user=user,
        db_name=str(db_env.get("POSTGRES_DB") or user),
        web=web,
        migrator=migrator,
    )
    for name in (web, migrator):
        if name:
            found.settings_from[name] = _settings_from(services[name])
    notes = found.notes
    if migrator:
        svc = services[migrator]
        found.migrator_command = " ".join(_argv(svc)) or "(the image's own command)"
        cmd = found.migrator_command
        found.migrator_kind = (
            "composekit" if "composekit" in cmd else "alembic" if "alembic" in cmd else "opaque"
        )
        if str(svc.get("restart", "no")) != "no":
            notes.append(
                f'{migrator} has restart: {svc.get("restart")}: a one-off migrator wants restart: "no" '
                "(it would run again and again)"
            )
        if not svc.get("profiles"):
            notes.append(
                f"{migrator} is in no profile, so a plain `docker compose up` runs it too; "
                "composekit deploy runs it itself (`docker compose run --rm`)"
            )
    else:
        mounts = " ".join(str(v) for v in services[db].get("volumes") or [])
        if "docker-entrypoint-initdb.d" in mounts:
            found.layout = "init-scripts"
        else:
            notes.append(
                "no migrator service found: if the web migrates as it starts, set "
                'layout = "app-startup"; otherwise add a one-off migrator service '
                '(restart: "no"), or name it: composekit adopt --migrator NAME'
            )
    if web is None:
        notes.append("no web service found: name it with --web NAME (deploy needs one)")
    elif not services[web].get("healthcheck"):
        notes.append(
            f"{web} has no healthcheck: deploy can only wait for it to run; add one (or "
            "[web] health_url) so a broken release is caught and undone"
        )
    if not services[db].get("healthcheck"):
        notes.append(f"{db} has no healthcheck: add `pg_isready` so nothing starts before it is up")
    if found.migrator_kind == "alembic":
        notes.append(
            f"{migrator} runs Alembic ({found.migrator_command}): every deploy runs it after a "
            "verified backup; its undo is `alembic downgrade` to the revision before, checked, "
            "else a restore of that backup"
        )
    if found.migrator_kind == "opaque":
        notes.append(
            f"{migrator} runs the project's own command ({found.migrator_command}): every deploy "
            "runs it after a verified backup, and undoes it by restoring that backup"
        )
    found.toml = _toml(found)
    return found


def _toml(a: Adoption) -> str:
    lines = [
        f"# written by `composekit adopt` from {', '.join(a.compose_files)}; edit freely",
        f'layout = "{a.layout}"',
        "",
        "[services]",
        f'db = "{a.db}"',
    ]
    if a.web:
        lines.append(f'web = "{a.web}"')
    if a.migrator:
        lines.append(f'migrator = "{a.migrator}"')
    if a.migrator_kind:
        why = {
            "opaque": "its own command: always runs; undone by restoring the pre-deploy backup",
            "composekit": "it runs `composekit migrate up`: undone with the down sections",
            "alembic": "it runs Alembic: undone with alembic downgrade, else a restore",
        }[a.migrator_kind]
        lines += ["", "[deploy]", f'migrator = "{a.migrator_kind}"  # {why}']
    return "\n".join(lines) + "\n"


def adopt(
    project_dir: Path,
    *,
    db: str | None = None,
    web: str | None = None,
    migrator: str | None = None,
    dry_run: bool = False,
    force: bool = False,
) -> Adoption:
    """Find, then (unless ``dry_run``) write composekit.toml and the .gitignore lines."""
    found = find(project_dir, db=db, web=web, migrator=migrator)
    toml = project_dir / CONFIG_FILE
    if toml.exists() and not force:
        raise UsageError(
            f"{toml} exists already; nothing was written",
            hint="pass --force to replace it, or --dry-run to see what adopt finds",
        )
    if dry_run:
        return found
    toml.write_text(found.toml)
    found.written.append(CONFIG_FILE)
    ignore = project_dir / ".gitignore"
    have = ignore.read_text().splitlines() if ignore.is_file() else []
    missing = [ln for ln in _IGNORE_LINES if ln not in have]
    if missing:
        with open(ignore, "a") as f:
            if have and have[-1].strip():
                f.write("\n")
            f.write("# composekit: backups and run state stay on this machine\n")
            f.write("".join(f"{ln}\n" for ln in missing))
        found.written.append(".gitignore")
    return found
