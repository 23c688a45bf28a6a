"""The ``schema_migrations`` ledger.

Compatible with the table teams already have (``version varchar PRIMARY KEY`` and maybe
``applied_at``): missing columns are added in place, idempotently, only when missing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from composekit.errors import ConfigError
from composekit.migrations.source import Migration, version_key

COLUMNS = {
    "applied_at": "timestamp DEFAULT now()",
    "name": "text",
    "checksum": "text",
    "duration_ms": "integer",
    "applied_by": "text",
    "dirty": "boolean NOT NULL DEFAULT false",
    "resume_at": "text",  # a backfill's last key done, while it runs or after it was stopped
}


@dataclass(frozen=True)
class LedgerRow:
    version: str
    name: str | None
    checksum: str | None
    applied_at: datetime | None
    duration_ms: int | None
    applied_by: str | None
    dirty: bool
    resume_at: str | None = None

    @property
    def key(self) -> tuple[int, ...]:
        return version_key(self.version)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LedgerRow:
        """One row as ``json_agg`` gives it; absent columns (an older ledger) read as empty.

        >>> LedgerRow.from_dict({"version": 2, "applied_at": "2024-05-01T10:00:00"}).version
        '2'
        """
        return cls(
            str(d["version"]),
            _text(d.get("name")),
            _text(d.get("checksum")),
            _timestamp(d.get("applied_at")),
            _int(d.get("duration_ms")),
            _text(d.get("applied_by")),
            bool(d.get("dirty")),
            _text(d.get("resume_at")),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "name": self.name,
            "checksum": self.checksum,
            "applied_at": self.applied_at.isoformat() if self.applied_at else None,
            "duration_ms": self.duration_ms,
            "applied_by": self.applied_by,
            "dirty": self.dirty,
            "resume_at": self.resume_at,
        }


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _timestamp(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:  # 'infinity', or a column that is not a timestamp
        return None


class Ledger:
    """The ledger table's SQL. Reading goes through :meth:`select_json_sql` and
    :meth:`parse_rows` whatever the client (psycopg here, psql in the db container)."""

    def __init__(self, table: str) -> None:
        parts = table.split(".")
        if not 1 <= len(parts) <= 2 or not all(parts):
            raise ConfigError(
                f"bad ledger table name {table!r}", hint="use 'table' or 'schema.table'"
            )
        self.schema = parts[0] if len(parts) == 2 else None
        self.name = parts[-1]
        self.table = table

    @property
    def ident(self) -> Any:
        """The table as a psycopg ``sql.Identifier``."""
        from psycopg import sql

        return sql.Identifier(*self.table.split("."))

    @property
    def regclass(self) -> str:
        """The table name quoted, for ``to_regclass()`` and SQL text."""
        q = '"' + self.name.replace('"', '""') + '"'
        return ('"' + self.schema.replace('"', '""') + '".' if self.schema else "") + q

    def select_json_sql(self) -> str:
        """A query returning the whole ledger as one JSON array (``[]`` when empty). Every
        column comes as stored, so a ledger missing some columns still reads."""
        return f"SELECT coalesce(json_agg(t), '[]') FROM {self.regclass} t"

    def parse_rows(self, data: list[dict[str, Any]]) -> list[LedgerRow]:
        """The rows of :meth:`select_json_sql`'s array, oldest version first (refused when they
        are golang-migrate's: one number and a dirty flag, no name)."""
        if any(isinstance(d.get("version"), int) and "name" not in d for d in data):
            raise self._foreign()
        return sorted((LedgerRow.from_dict(d) for d in data), key=lambda r: r.key)

    def _foreign(self) -> ConfigError:
        return ConfigError(
            f"{self.table} looks like golang-migrate's ledger (one row holding the latest version)",
            hint="rename it, then `composekit migrate baseline <that version>` records the files up to it",
        )

    def columns(self, conn: Any) -> dict[str, str] | None:
        """Column name -> type, or None when the table does not exist."""
        row = conn.execute("SELECT to_regclass(%s)::oid", [self.regclass]).fetchone()
        if row is None or row[0] is None:
            return None
        rows = conn.execute(
            "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
            "WHERE attrelid = %s AND attnum > 0 AND NOT attisdropped",
            [row[0]],
        ).fetchall()
        return {r[0]: r[1] for r in rows}

    def exists(self, conn: Any) -> bool:
        row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", [self.regclass]).fetchone()
        return bool(row and row[0])

    def ensure(self, conn: Any) -> list[str]:
        """Create the table or add the missing columns. Returns what was done (for the log)."""
        from psycopg import sql

        cols = self.columns(conn)
        done = []
        if cols is None:
            import psycopg

            ddl = ", ".join(f"{c} {t}" for c, t in COLUMNS.items())
            try:
                conn.execute(
                    sql.SQL(
                        "CREATE TABLE IF NOT EXISTS {} (version varchar(255) PRIMARY KEY, "
                        + ddl
                        + ")"
                    ).format(self.ident)
                )
            except psycopg.errors.InvalidSchemaName as exc:
                raise ConfigError(
                    f"cannot create the ledger table {self.table}: schema {self.schema} does not exist; nothing was changed",
                    hint=f"create it first (CREATE SCHEMA {self.schema}), or set another ledger_table / --table",
                ) from exc
            return [f"created {self.table}"]
        if "version" not in cols:
            raise ConfigError(
                f"table {self.table} exists but has no 'version' column",
                hint="point ledger_table at another table name",
            )
        if cols["version"] in ("bigint", "integer") and "dirty" in cols and "name" not in cols:
            raise self._foreign()
        missing = [c for c in COLUMNS if c not in cols]
        if missing:
            adds = sql.SQL(", ").join(
                sql.SQL("ADD COLUMN IF NOT EXISTS {} ").format(sql.Identifier(c))
                + sql.SQL(COLUMNS[c])
                for c in missing
            )
            conn.execute(sql.SQL("ALTER TABLE {} ").format(self.ident) + adds)
            done.append(f"added {', '.join(missing)} to {self.table}")
        return done

    def rows(self, conn: Any) -> list[LedgerRow]:
        """The ledger through psycopg (empty when the table does not exist)."""
        if not self.exists(conn):
            return []
        row = conn.execute(self.select_json_sql()).fetchone()
        return self.parse_rows(row[0] if row else [])  # psycopg loads json into lists itself

    def insert_sql(self, conn: Any, m: Migration, applied_by: str, dirty: bool = False) -> str:
        """The INSERT as SQL text, to run in the same message as the migration itself; the
        duration is measured by the server from the start of that message."""
        from psycopg import sql

        q = sql.SQL(
            "INSERT INTO {} (version, name, checksum, applied_at, duration_ms, applied_by, dirty) VALUES "
            "({}, {}, {}, now(), (extract(epoch FROM clock_timestamp() - statement_timestamp()) * 1000)::int, {}, {}) "
            "ON CONFLICT (version) DO UPDATE SET name = EXCLUDED.name, checksum = EXCLUDED.checksum, "
            "applied_at = EXCLUDED.applied_at, duration_ms = EXCLUDED.duration_ms, "
            "applied_by = EXCLUDED.applied_by, dirty = EXCLUDED.dirty"
        ).format(
            self.ident,
            sql.Literal(m.version),
            sql.Literal(m.name),
            sql.Literal(m.checksum),
            sql.Literal(applied_by),
            sql.Literal(dirty),
        )
        return q.as_string(conn)

    def finish_sql(self, conn: Any, version: str, started_ms: int) -> str:
        from psycopg import sql

        return (
            sql.SQL(
                "UPDATE {} SET dirty = false, resume_at = NULL, duration_ms = {} WHERE version = {}"
            )
            .format(self.ident, sql.Literal(started_ms), sql.Literal(version))
            .as_string(conn)
        )

    def resume_at_sql(self, conn: Any, version: str, key: str | None) -> str:
        """Record where a backfill is: sent in the same transaction as the batch it ends."""
        from psycopg import sql

        return (
            sql.SQL("UPDATE {} SET resume_at = {} WHERE version = {}")
            .format(self.ident, sql.Literal(key), sql.Literal(version))
            .as_string(conn)
        )

    def mark_dirty_sql(self, conn: Any, version: str) -> str:
        from psycopg import sql

        return (
            sql.SQL("UPDATE {} SET dirty = true WHERE version = {}")
            .format(self.ident, sql.Literal(version))
            .as_string(conn)
        )

    def delete_sql(self, conn: Any, version: str) -> str:
        from psycopg import sql

        return (
            sql.SQL("DELETE FROM {} WHERE version = {}")
            .format(self.ident, sql.Literal(version))
            .as_string(conn)
        )
