"""The database as its container sees it: ``psql`` and ``pg_dump`` run inside the db service
(unix socket, trusted locally — the official image's contract), so their versions always match the
server and no password travels anywhere."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from composekit import proc
from composekit.compose import ComposeProject
from composekit.compose_errors import translate
from composekit.config import Settings
from composekit.errors import DockerError
from composekit.migrations import Ledger, LedgerRow
from composekit.swarm import project_for

UTF8 = {"PGCLIENTENCODING": "UTF8"}  # text comes back as UTF-8 whatever the database's encoding


@dataclass(frozen=True)
class DbTarget:
    """How to reach the database from inside its container."""

    project: ComposeProject
    service: str
    user: str
    database: str
    ledger_table: str = "schema_migrations"

    @classmethod
    def from_settings(cls, settings: Settings, project: ComposeProject | None = None) -> DbTarget:
        project = project or project_for(settings)
        services = project.config().get("services", {})
        if settings.db_service not in services:
            project.require_services(settings.db_service)  # raises, naming the services there are
        env = services[settings.db_service].get("environment") or {}
        user = env.get("POSTGRES_USER") or "postgres"
        return cls(
            project,
            settings.db_service,
            user,
            env.get("POSTGRES_DB") or user,
            settings.ledger_table,
        )

    def psql(
        self,
        *sql: str,
        database: str | None = None,
        timeout: float = 120,
        script: str | None = None,
    ) -> str:
        """Run one or more commands in one psql process (each ``-c`` commits on its own), or a
        ``script`` (which may use psql's own ``\\gset`` / ``\\if``) read from stdin."""
        argv = ["psql", "-X", "-q", "-tA", "-v", "ON_ERROR_STOP=1", "-U", self.user]
        argv += ["-d", database or self.database]
        for command in sql:
            argv += ["-c", command]
        return self.project.exec(
            self.service, argv, timeout=timeout, input=script, env=UTF8
        ).stdout.strip()

    def session(self, application_name: str, database: str = "postgres") -> PsqlSession:
        """A psql session kept open (e.g. to hold an advisory lock for as long as it lives)."""
        return PsqlSession(
            self.project.session(
                self.service,
                ["psql", "-X", "-q", "-tA", "-U", self.user, "-d", database],
                env={"PGAPPNAME": application_name[:63], **UTF8},
            )
        )

    # -- the ledger: one reader, shared with the engine (Ledger's SQL and parser) ---------------
    def read_state(self, database: str | None = None, via: PsqlSession | None = None) -> DbState:
        """Server version, cluster identity, database-level properties, the ledger (``None``
        without a ledger table), the cluster's roles and the database's size, in one round trip."""
        ledger = Ledger(self.ledger_table)
        facts = (
            "'server', current_setting('server_version'), "
            "'sysid', CASE WHEN has_function_privilege('pg_control_system()', 'execute') "
            "THEN (SELECT system_identifier::text FROM pg_control_system()) END, "
            "'props', (SELECT json_build_object('comment', shobj_description(d.oid, 'pg_database'), "
            "'acl', d.datacl::text[], 'settings', (SELECT s.setconfig FROM pg_db_role_setting s "
            "WHERE s.setdatabase = d.oid AND s.setrole = 0)) FROM pg_database d "
            "WHERE d.datname = current_database()), "
            "'roles', (SELECT json_agg(rolname) FROM pg_roles), "
            "'size', pg_database_size(current_database())"
        )
        script = (
            f"SELECT to_regclass({quote_literal(ledger.regclass)}) IS NOT NULL AS ck_has \\gset\n"
            "\\if :ck_has\n"
            f"SELECT json_build_object({facts}, 'ledger', ({ledger.select_json_sql()}));\n"
            "\\else\n"
            f"SELECT json_build_object({facts}, 'ledger', NULL);\n"
            "\\endif\n"
        )
        out = via.script(script) if via else self.psql(script=script, database=database, timeout=60)
        data = json.loads(out)
        rows = data["ledger"]
        return DbState(
            data["server"],
            data["sysid"] or "",
            DatabaseProps.from_dict(data["props"] or {}),
            None if rows is None else ledger.parse_rows(rows),
            frozenset(data["roles"] or ()),
            int(data["size"] or 0),
        )

    def roles(self) -> set[str]:
        return set(self.psql("SELECT rolname FROM pg_roles", database="postgres").splitlines())

    def ledger_rows(self, via: PsqlSession | None = None) -> list[LedgerRow] | None:
        """The whole ledger, or ``None`` without a ledger table (over ``via``, a session in the
        app's database, if given)."""
        return self.read_state(via=via).ledger

    def applied(self) -> list[str] | None:
        """Every applied ledger version, in order; ``None`` when there is no ledger table."""
        rows = self.ledger_rows()
        return None if rows is None else [r.version for r in rows]

    def alembic_revisions(self) -> list[str] | None:
        """Alembic's ledger: the revision(s) in ``alembic_version`` (None: no such table)."""
        script = (  # one round trip, as read_state
            "SELECT to_regclass('alembic_version') IS NOT NULL AS ck_has \\gset\n"
            "\\if :ck_has\n"
            "SELECT json_agg(version_num ORDER BY version_num) FROM alembic_version;\n"
            "\\else\n"
            "SELECT 'no table';\n"
            "\\endif\n"
        )
        out = self.psql(script=script)
        if out == "no table":
            return None
        return list(json.loads(out)) if out else []  # json_agg of no rows is NULL

    def ledger_version(self, database: str | None = None) -> str | None:
        """The newest applied version in ``database`` (default: the app's)."""
        rows = self.read_state(database).ledger
        return rows[-1].version if rows else None

    def schema(self, database: str | None = None) -> str:
        """The schema as ``pg_dump --schema-only`` prints it, normalized (see :func:`normalize_schema`)."""
        argv = ["pg_dump", "--schema-only", "--no-owner", "--no-privileges"]
        argv += ["-U", self.user, "-d", database or self.database]
        return normalize_schema(self.project.exec(self.service, argv, timeout=300).stdout)

    def system_identifier(self) -> str:
        """The cluster's identity: it changes only when the volume is initialised anew."""
        return self.psql("SELECT system_identifier FROM pg_control_system()")

    def row_counts(self, database: str | None = None) -> dict[str, int]:
        """Exact row count of every user table (``schema.table``), in one round trip."""
        out = self.psql(
            "SELECT format('%I.%I', n.nspname, c.relname) || '|' || (xpath('/row/c/text()', "
            "query_to_xml(format('SELECT count(*) AS c FROM %I.%I', n.nspname, c.relname), "
            "false, true, '')))[1]::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
            "AND n.nspname NOT LIKE 'pg_toast%' ORDER BY 1",
            database=database,
        )
        counts = {}
        for line in out.splitlines():
            table, _, n = line.rpartition("|")
            counts[table] = int(n)
        return counts


@dataclass(frozen=True)
class DatabaseProps:
    """What a database holds outside any schema — and a plain ``pg_dump`` does not: its settings
    (``ALTER DATABASE … SET``), comment and ACL (``REVOKE CONNECT … FROM PUBLIC``). Recorded in a
    backup's manifest and put back by a restore."""

    comment: str | None = None
    acl: tuple[str, ...] | None = None  # datacl items (``grantee=privs/grantor``); None: defaults
    settings: tuple[str, ...] = ()  # ``name=value``

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DatabaseProps:
        acl = d.get("acl")
        return cls(
            d.get("comment"), None if acl is None else tuple(acl), tuple(d.get("settings") or ())
        )

    def to_dict(self) -> dict[str, Any]:
        return {"comment": self.comment, "acl": self.acl, "settings": list(self.settings)}

    def to_sql(self, database: str, roles: set[str]) -> tuple[list[str], list[str]]:
        """(statements that give ``database`` these properties, notes on what could not be)."""
        db = quote_ident(database)
        sql = [f"ALTER DATABASE {db} RESET ALL"]
        for item in self.settings:
            name, _, value = item.partition("=")
            if name in _LIST_SETTINGS:
                value = ", ".join(quote_literal(v.strip()) for v in value.split(","))
            else:
                value = quote_literal(value)
            sql.append(f"ALTER DATABASE {db} SET {quote_ident(name)} = {value}")
        sql.append(
            f"COMMENT ON DATABASE {db} IS {quote_literal(self.comment) if self.comment else 'NULL'}"
        )
        notes: list[str] = []
        if self.acl is not None:
            sql.append(f"REVOKE ALL ON DATABASE {db} FROM PUBLIC")
            for item in self.acl:
                grantee, _, rest = item.partition("=")
                privs = rest.partition("/")[0]
                grantee = grantee.strip('"')
                if grantee and grantee not in roles:
                    notes.append(f"no role {grantee} here: its {privs} on the database not granted")
                    continue
                names = [_DB_PRIVILEGES[c] for c in privs if c in _DB_PRIVILEGES]
                if names:
                    to = quote_ident(grantee) if grantee else "PUBLIC"
                    sql.append(f"GRANT {', '.join(names)} ON DATABASE {db} TO {to}")
        return sql, notes


@dataclass(frozen=True)
class DbState:
    server_version: str
    system_identifier: str
    props: DatabaseProps
    ledger: list[LedgerRow] | None
    roles: frozenset[str] = frozenset()  # every role of the cluster
    size: int = 0  # the database's size on disk, in bytes


_LIST_SETTINGS = {
    "search_path",
    "temp_tablespaces",
    "session_preload_libraries",
    "local_preload_libraries",
}
_DB_PRIVILEGES = {"C": "CREATE", "T": "TEMPORARY", "c": "CONNECT"}


def quote_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class PsqlSession:
    """Just enough of a psycopg connection over a psql session for :func:`composekit.db.advisory_lock`:
    ``execute(sql, params).fetchone()``, parameters inlined as literals (ints and strings only)."""

    END = "__composekit_end__"

    def __init__(self, session: proc.Session) -> None:
        self.session = session
        self.rows: list[tuple[Any, ...]] = []

    def execute(self, sql: str, params: list[Any] | None = None) -> PsqlSession:
        for value in params or []:
            literal = str(value) if isinstance(value, int) else quote_literal(str(value))
            sql = sql.replace("%s", literal, 1)
        lines = self._exchange(sql.rstrip().rstrip(";") + ";")
        self.rows = [
            tuple({"t": True, "f": False}.get(v, v) for v in ln.split("|")) for ln in lines
        ]
        return self

    def fetchone(self) -> tuple[Any, ...] | None:
        return self.rows[0] if self.rows else None

    def script(self, text: str) -> str:
        """Run a psql script (``\\gset``, ``\\if`` … as psql reads them) and return what it
        printed, as :meth:`DbTarget.psql` with ``script=`` does in a process of its own."""
        return "\n".join(self._exchange(text.rstrip())).strip()

    def _exchange(self, text: str) -> list[str]:
        """Send ``text``, then read what it printed up to an end marker."""
        errors = len(self.session.errors)
        lines = []
        try:
            self.session.send(text)
            self.session.send(f"\\echo {self.END}")
            while (line := self.session.read_line()) != self.END:
                lines.append(line)
        except proc.CommandFailed as exc:  # the session ended: Docker or the db container is down
            raise translate("docker compose exec psql", exc.stderr, exc.returncode) from exc
        if len(self.session.errors) > errors:
            raise DockerError(
                f"psql: {self.session.errors[errors]}", hint="see PostgreSQL's message"
            )
        return lines

    def close(self) -> None:
        self.session.close()


def normalize_schema(text: str) -> str:
    """Drop what differs between two dumps of one schema: comments (they name the server and dump
    versions), blank lines, ``SET`` lines and pg_dump 15.18's random ``\\restrict`` keys."""
    noise = ("--", "\\restrict", "\\unrestrict", "SET ", "SELECT pg_catalog.set_config(")
    lines = [ln.rstrip() for ln in text.splitlines()]
    return "\n".join(ln for ln in lines if ln and not ln.startswith(noise)) + "\n"
