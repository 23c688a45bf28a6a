"""Settings, from (highest first): flags > ``COMPOSEKIT_*`` / ``DATABASE_URL`` env >
``composekit.toml`` or ``[tool.composekit]`` in ``pyproject.toml`` > defaults.

One frozen dataclass; :func:`load_settings` is the only way to build one from the outside world.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from composekit.errors import ConfigError, UsageError
from composekit.redact import Redactor, secrets_of_url, url_password


class Layout(StrEnum):
    """Where migrations run. The deploy asks these questions, never compares strings."""

    INIT_SCRIPTS = "init-scripts"  # /docker-entrypoint-initdb.d, first start only
    APP_STARTUP = "app-startup"  # the web migrates as it starts
    MIGRATOR = "migrator"  # a one-off service: docker compose run --rm migrator

    @property
    def has_migrator(self) -> bool:
        return self is Layout.MIGRATOR

    @property
    def web_migrates(self) -> bool:
        return self is Layout.APP_STARTUP

    @property
    def runs_migrations(self) -> bool:
        return self is not Layout.INIT_SCRIPTS


LAYOUTS = tuple(layout.value for layout in Layout)
MIGRATOR_KINDS = ("auto", "composekit", "opaque", "alembic")
ENGINES = ("compose", "swarm")


class BackupMode(StrEnum):
    AUTO = "auto"  # when migrations are pending
    ALWAYS = "always"
    NEVER = "never"


@dataclass(frozen=True)
class Settings:
    project_dir: Path = Path(".")
    database_url: str | None = None
    migrations_dir: Path = Path("migrations")
    migrations_format: str = "auto"
    ledger_table: str = "schema_migrations"
    lock_wait: float = 60.0  # seconds to wait for another migrator's lock
    lock_timeout: float = 5.0  # SET lock_timeout per migration
    statement_timeout: float | None = None
    lock_retries: int = 3
    layout: Layout = Layout.MIGRATOR
    compose_files: tuple[str, ...] = ()
    project_name: str | None = None
    env_file: str | None = ".env"
    db_service: str = "db"
    web_service: str = "web"
    migrator_service: str = "migrator"
    proxy_service: str = "proxy"  # the reverse proxy in front of the web, when the project has it
    health_url: str | None = None
    backups_dir: Path = Path("backups")
    keep_backups: int = 10
    keep_images: int = 3  # previous web images kept tagged for `composekit rollback`
    drain_timeout: float = 30.0  # seconds the old web gets to finish requests in flight
    maintenance_services: tuple[str, ...] = ()
    expected_schema: str | None = None  # deploy's verify step compares the schema with this file
    migrator_kind: str = "auto"  # composekit | opaque (a project's own command) | alembic | auto
    engine: str = "compose"  # [deploy] engine: compose (one host) | swarm (the stack on a swarm)
    rehearse: bool = False  # [deploy] rehearse: every deploy rehearses its migrations first
    max_lock_ms: int = 1000  # [deploy] max_lock_ms: the longest ACCESS EXCLUSIVE a rehearsal allows
    hooks_timeout: float = 60.0  # [hooks] timeout: seconds each hook may run
    notify_webhook: str | None = None  # [notify] webhook: POST every event's JSON here
    notify_command: str | None = None  # [notify] command: run with every event's JSON on stdin
    lint_disable: tuple[str, ...] = ()  # [lint] disable: rule ids not checked
    lint_strict: bool = False  # [lint] strict: warnings count as errors
    source: dict[str, str] = field(default_factory=dict, compare=False)
    """Where each non-default value came from (``flag``, ``env:NAME``, ``file:PATH``)."""
    secrets: tuple[str, ...] = field(default=(), compare=False, repr=False)
    """Values to mask wherever they show up: passwords and tokens from the project's env file and
    the environment (Docker's and PostgreSQL's own messages may echo them)."""

    def path(self, p: Path) -> Path:
        return p if p.is_absolute() else self.project_dir / p

    @property
    def migrations_path(self) -> Path:
        return self.path(self.migrations_dir)

    @property
    def migrations_dir_in_image(self) -> str:
        """The migrations directory as the app's image sees it: the project-relative setting,
        resolved against the container's working directory (the image copies the project there)."""
        d = self.migrations_dir
        return d.as_posix() if not d.is_absolute() else "migrations"

    @property
    def backups_path(self) -> Path:
        return self.path(self.backups_dir)

    @property
    def expected_schema_path(self) -> Path:
        return self.path(Path(self.expected_schema or "schema.sql"))

    @property
    def migrate_service(self) -> str:
        """The service whose container runs the migrations (the web, in app-startup)."""
        return self.migrator_service if self.layout.has_migrator else self.web_service

    @property
    def database_users(self) -> list[str]:
        """The services to stop while the database is swapped (restore) — one list for deploy's
        undo and ``composekit restore``."""
        users = [self.web_service]
        if self.layout.has_migrator:
            users.append(self.migrator_service)
        return list(dict.fromkeys([*users, *self.maintenance_services]))

    @property
    def redactor(self) -> Redactor:
        """Masks this project's database password wherever it shows up."""
        return Redactor([*secrets_of_url(self.database_url), *self.secrets])

    def require_database_url(self) -> str:
        if not self.database_url:
            raise ConfigError(
                "no database URL given",
                hint="pass --database-url, set DATABASE_URL, or set database_url in composekit.toml",
            )
        return self.database_url


_FIELDS = {f.name: f for f in dataclasses.fields(Settings) if f.name not in ("source", "secrets")}
# (least, what it means) for numbers; a value below is refused with the range
_LEAST: dict[str, tuple[float, str]] = {
    "lock_wait": (0, "seconds to wait for another migrator (0: do not wait)"),
    "lock_timeout": (0.001, "seconds a migration waits for a table lock (> 0)"),
    "statement_timeout": (0.001, "seconds a statement may run (> 0; unset: no limit)"),
    "lock_retries": (0, "retries after a lock timeout (0: none)"),
    "keep_backups": (1, "backups to keep (at least 1)"),
    "keep_images": (1, "previous web images kept for rollback (at least 1)"),
    "drain_timeout": (0, "seconds the old web gets to finish its requests (0: do not wait)"),
}
SECRET_KEY = re.compile(r"PASSWORD|PASSWD|SECRET|TOKEN|_KEY$|^KEY$", re.IGNORECASE)
"""A variable whose name says it holds a secret (its value is masked, kept out of manifests)."""
_ENV_EXTRA = {"DATABASE_URL": "database_url"}


def _invalid(origin: str, message: str, hint: str) -> ConfigError | UsageError:
    """A bad flag is a usage error (exit 2); a bad setting a configuration error (exit 3)."""
    return (UsageError if origin == "the command line" else ConfigError)(message, hint=hint)


def _coerce(name: str, value: Any, origin: str) -> Any:
    default = _FIELDS[name].default
    numeric = isinstance(default, (int, float)) and not isinstance(default, bool)
    if (numeric or name == "statement_timeout") and isinstance(value, bool):
        raise _invalid(
            origin, f"{name} = {value!r} from {origin} is not a number", f"give {name} a number"
        )
    value = _coerce_type(name, default, value, origin)
    least = _LEAST.get(name)
    if least is not None and value is not None and value < least[0]:
        raise _invalid(
            origin,
            f"{name} = {value!r} from {origin} is out of range: {least[1]}",
            f"set {name} to at least {least[0]:g}",
        )
    if name == "migrator_kind" and value not in MIGRATOR_KINDS:
        raise _invalid(
            origin,
            f"[deploy] migrator = {value!r} from {origin} is not one of {', '.join(MIGRATOR_KINDS)}",
            "composekit: it runs `composekit migrate up`; alembic: it runs `alembic upgrade` (undo: "
            "alembic downgrade, else a restore); opaque: any other command (its undo is a restore of "
            "the pre-deploy backup); auto: decide from the migrator's command",
        )
    if name == "engine" and value not in ENGINES:
        raise _invalid(
            origin,
            f"[deploy] engine = {value!r} from {origin} is not one of {', '.join(ENGINES)}",
            "compose: docker compose on this host; swarm: the project as a stack on the swarm "
            "this engine manages",
        )
    if name in ("health_url", "notify_webhook") and value is not None:
        _check_http_url(value, origin, name)
    if name == "database_url" and value is not None:
        _check_database_url(value, origin)
    return value


def _check_http_url(url: str, origin: str, name: str = "health_url") -> None:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        example = {"notify_webhook": "https://hooks.example.com/deploys"}.get(
            name, "http://127.0.0.1:8000/healthz"
        )
        shown = url if name == "health_url" else f"{parts.scheme}://…"  # a webhook may hold a token
        raise _invalid(
            origin,
            f"{name} = {shown!r} from {origin} is not an http(s) URL",
            f'e.g. {name} = "{example}"',
        )


def _check_database_url(url: str, origin: str) -> None:
    """A password with a raw ``@ / ? #``, a space or a stray ``%`` cannot be parsed the same way by
    every reader (psycopg would take part of it for the host, and echo it). Refused, never echoed."""
    pw = url_password(url)
    if pw is None:
        return
    bad = sorted({c for c in pw if c in "@/?# "})
    if re.search(r"%(?![0-9A-Fa-f]{2})", pw):
        bad.append("%")
    if bad:
        shown = ", ".join("space" if c == " " else repr(c) for c in bad)
        raise _invalid(
            origin,
            f"the password in the database URL from {origin} holds {shown} not percent-encoded, "
            "so the URL cannot be read reliably (it is not shown here)",
            "percent-encode them: @ → %40, / → %2F, ? → %3F, # → %23, % → %25, space → %20",
        )


def _coerce_type(name: str, default: Any, value: Any, origin: str) -> Any:
    try:
        if isinstance(default, Path):
            return Path(value)
        if isinstance(default, tuple):
            if isinstance(value, str):
                return tuple(v.strip() for v in value.split(",") if v.strip())
            return tuple(str(v) for v in value)
        if isinstance(default, bool):
            if isinstance(value, str):
                return value.lower() in ("1", "true", "yes", "on")
            return bool(value)
        if isinstance(default, int) and not isinstance(default, bool):
            return int(value)
        if isinstance(default, float) or name == "statement_timeout":
            return None if value in (None, "") else float(value)
        return None if value is None else str(value)
    except (TypeError, ValueError) as exc:
        shown = "(not shown)" if name == "database_url" else repr(value)
        raise _invalid(
            origin, f"{name} = {shown} from {origin} is not valid: {exc}", f"fix {name} in {origin}"
        ) from exc


def find_config_file(project_dir: Path) -> tuple[Path, dict[str, Any]] | None:
    """``composekit.toml`` wins over ``[tool.composekit]`` in ``pyproject.toml``."""
    toml = project_dir / "composekit.toml"
    if toml.is_file():
        return toml, _read_toml(toml)
    pyproject = project_dir / "pyproject.toml"
    if pyproject.is_file():
        section = _read_toml(pyproject).get("tool", {}).get("composekit")
        if isinstance(section, dict):
            return pyproject, section
    return None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(
            f"{path} is not valid TOML: {exc}", hint=f"fix the syntax in {path}"
        ) from exc
    except OSError as exc:
        raise ConfigError(
            f"cannot read {path}: {exc.strerror}", hint="check the path and permissions"
        ) from exc


def _flatten(data: Mapping[str, Any]) -> dict[str, Any]:
    """Accept both flat keys and the sections ``[database]``, ``[services]``, ``[compose]``."""
    flat: dict[str, Any] = {}
    aliases = {
        ("services", "db"): "db_service",
        ("services", "web"): "web_service",
        ("services", "migrator"): "migrator_service",
        ("services", "proxy"): "proxy_service",
        ("database", "url"): "database_url",
        ("migrations", "dir"): "migrations_dir",
        ("migrations", "table"): "ledger_table",
        ("migrations", "format"): "migrations_format",
        ("migrations", "statement_timeout"): "statement_timeout",
        ("migrations", "lock_timeout"): "lock_timeout",
        ("compose", "files"): "compose_files",
        ("compose", "project_name"): "project_name",
        ("compose", "env_file"): "env_file",
        ("backups", "dir"): "backups_dir",
        ("backups", "keep"): "keep_backups",
        ("web", "health_url"): "health_url",
        ("web", "keep_images"): "keep_images",
        ("web", "drain_timeout"): "drain_timeout",
        ("deploy", "maintenance"): "maintenance_services",
        ("deploy", "expected_schema"): "expected_schema",
        ("deploy", "migrator"): "migrator_kind",
        ("deploy", "rehearse"): "rehearse",
        ("deploy", "engine"): "engine",
        ("deploy", "max_lock_ms"): "max_lock_ms",
        ("hooks", "timeout"): "hooks_timeout",
    }
    for key, value in data.items():
        if isinstance(value, dict):
            for sub, subvalue in value.items():
                flat[aliases.get((key, sub), f"{key}_{sub}")] = subvalue
        else:
            flat[key] = value
    return flat


def load_settings(
    project_dir: str | Path = ".",
    flags: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
) -> Settings:
    """Build :class:`Settings` for ``project_dir``.

    >>> load_settings(".", flags={"ledger_table": "my_migrations"}).ledger_table
    'my_migrations'
    """
    env = os.environ if env is None else env
    project = Path(project_dir)
    values: dict[str, Any] = {"project_dir": project}
    source: dict[str, str] = {}

    found = find_config_file(project)
    if found:
        path, data = found
        for key, value in _flatten(data).items():
            if key not in _FIELDS or key == "project_dir":
                raise ConfigError(
                    f"unknown setting {key!r} in {path}",
                    hint=f"remove it; known settings: {', '.join(sorted(_FIELDS))}",
                )
            values[key] = _coerce(key, value, str(path))
            source[key] = f"file:{path}"

    for name in _FIELDS:
        var = f"COMPOSEKIT_{name.upper()}"
        if var in env:
            values[name] = _coerce(name, env[var], f"env {var}")
            source[name] = f"env:{var}"
    for var, name in _ENV_EXTRA.items():
        if var in env and f"COMPOSEKIT_{name.upper()}" not in env:
            values[name] = _coerce(name, env[var], f"env {var}")
            source[name] = f"env:{var}"

    for name, value in (flags or {}).items():
        if value is None:
            continue
        if name not in _FIELDS:
            raise ValueError(f"unknown flag setting {name}")
        values[name] = _coerce(name, value, "the command line")
        source[name] = "flag"

    layout = values.get("layout", Layout.MIGRATOR)
    if layout not in LAYOUTS:
        raise ConfigError(
            f"unknown layout {layout!r} ({source.get('layout', 'default')})",
            hint=f"use one of: {', '.join(LAYOUTS)}",
        )
    values["layout"] = Layout(layout)
    secrets = _known_secrets(project, values.get("env_file", ".env"), env)
    return Settings(**values, source=source, secrets=secrets)


def _known_secrets(project: Path, env_file: str | None, env: Mapping[str, str]) -> tuple[str, ...]:
    """Values of password-like keys in the project's env file and in the environment."""
    pairs = [(k, v) for k, v in env.items()]
    path = project / env_file if env_file else None
    if path is not None and path.is_file():
        try:
            lines = path.read_text(errors="replace").splitlines()
        except OSError:
            lines = []
        for line in lines:
            key, sep, value = line.strip().removeprefix("export ").partition("=")
            if sep and not key.startswith("#"):
                pairs.append((key.strip(), value.strip().strip("'\"")))
    return tuple(sorted({v for k, v in pairs if v and SECRET_KEY.search(k)}))
