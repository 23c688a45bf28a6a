"""What pending migrations do to a database, measured on a throwaway copy of it.

:meth:`Migrator.rehearse` applies the pending migrations the way ``deploy`` does (expand, then
contract) on a copy of production, and for each one records:

* the **locks** its session held on tables (relation, mode, how long), sampled from ``pg_locks``
  every few milliseconds by a second connection — and how long the old web would be blocked
  (ACCESS EXCLUSIVE blocks its reads, SHARE and stronger its writes);
* **rows touched** (``pg_stat_user_tables`` before and after; PostgreSQL ≥ 15 flushes the counters
  on request);
* **table rewrites** (a ``relfilenode`` that changed) and **new INVALID indexes**;

then reverts them with their down sections and compares the schema with the one it started from.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

REHEARSAL_PREFIX = "composekit_rehearse_"
"""Every throwaway database's name starts so; the engine rehearses nowhere else."""

SAMPLE_EVERY = 0.005  # seconds between two looks at pg_locks, at first
SAMPLE_MAX = 0.05  # … and at most (reached after 4.5 s)
BLOCKS_READS = {"AccessExclusiveLock"}
BLOCKS_WRITES = BLOCKS_READS | {"ExclusiveLock", "ShareRowExclusiveLock", "ShareLock"}

_TABLES = (
    "SELECT c.oid, n.nspname || '.' || c.relname, c.relfilenode, c.relkind, "
    # a restored copy is never analyzed: the rows its restore inserted are in the statistics
    "greatest(c.reltuples, pg_stat_get_live_tuples(c.oid), 0)::bigint FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE c.relkind IN ('r', 'p', 'm', 'i') AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
    "AND n.nspname NOT LIKE 'pg_toast%%' AND n.nspname NOT LIKE 'pg_temp%%'"
)
_TOUCHED = (
    "SELECT coalesce(sum(n_tup_ins + n_tup_upd + n_tup_del), 0)::bigint FROM pg_stat_user_tables "
    "WHERE relid <> coalesce(to_regclass(%s), 0)"
)
_INVALID = (
    "SELECT n.nspname || '.' || c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
    "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE NOT i.indisvalid"
)
SCHEMA_FINGERPRINT = """
SELECT coalesce(string_agg(line, E'\\n' ORDER BY line), '') FROM (
  SELECT format('column %%I.%%I.%%I %%s%%s%%s', table_schema, table_name, column_name,
                CASE WHEN data_type = 'USER-DEFINED' THEN udt_name ELSE data_type END
                || coalesce('(' || character_maximum_length || ')', ''),
                CASE WHEN is_nullable = 'NO' THEN ' not null' ELSE '' END,
                coalesce(' default ' || column_default, '')) AS line
    FROM information_schema.columns
   WHERE table_schema NOT IN ('pg_catalog', 'information_schema') AND table_name <> %(ledger)s
  UNION ALL SELECT format('table %%I.%%I', schemaname, tablename) FROM pg_tables
   WHERE schemaname NOT IN ('pg_catalog', 'information_schema') AND tablename <> %(ledger)s
  UNION ALL SELECT 'index ' || indexdef FROM pg_indexes
   WHERE schemaname NOT IN ('pg_catalog', 'information_schema') AND tablename <> %(ledger)s
  UNION ALL SELECT format('constraint %%s %%s %%s', c.conrelid::regclass, c.conname,
                         pg_get_constraintdef(c.oid))
    FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace
   WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
     AND c.conrelid <> coalesce(to_regclass(%(ledger)s), 0)
  UNION ALL SELECT format('view %%I.%%I %%s', schemaname, viewname, definition) FROM pg_views
   WHERE schemaname NOT IN ('pg_catalog', 'information_schema')
  UNION ALL SELECT format('type %%I.%%I %%s', n.nspname, t.typname,
                         (SELECT string_agg(enumlabel, ',' ORDER BY enumsortorder)
                            FROM pg_enum e WHERE e.enumtypid = t.oid))
    FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
   WHERE t.typtype = 'e' AND n.nspname NOT IN ('pg_catalog', 'information_schema')
) s
"""


@dataclass(frozen=True)
class LockHeld:
    """A lock one migration's session held on a table, and for how long (sampled)."""

    relation: str
    mode: str  # as pg_locks names it: AccessExclusiveLock, ShareLock, …
    ms: int
    rows: int  # the table's estimated rows when the migration started (0: empty or new)

    @property
    def blocks(self) -> str:
        """What the running app cannot do meanwhile: "reads and writes", "writes" or ""."""
        if self.mode in BLOCKS_READS:
            return "reads and writes"
        return "writes" if self.mode in BLOCKS_WRITES else ""

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "blocks": self.blocks}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LockHeld:
        return cls(d["relation"], d["mode"], int(d["ms"]), int(d["rows"]))


@dataclass
class MigrationRehearsal:
    version: str
    name: str
    duration_ms: int
    locks: list[LockHeld] = field(default_factory=list)
    rows_touched: int | None = None  # None: this server cannot say (PostgreSQL < 15)
    rewrites: list[str] = field(default_factory=list)
    invalid_indexes: list[str] = field(default_factory=list)
    error: str = ""

    @property
    def blocked_ms(self) -> int:
        """How long the old web would wait on this migration (the longest blocking lock)."""
        return max((lk.ms for lk in self.locks if lk.blocks and lk.rows > 0), default=0)

    def longest(self, mode: str) -> LockHeld | None:
        """The longest lock of ``mode`` on a non-empty table."""
        held = [lk for lk in self.locks if lk.mode == mode and lk.rows > 0]
        return max(held, key=lambda lk: lk.ms) if held else None

    def to_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in self.__dict__.items() if k != "locks"}
        return {**d, "locks": [lk.to_dict() for lk in self.locks], "blocked_ms": self.blocked_ms}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MigrationRehearsal:
        return cls(
            str(d["version"]),
            d["name"],
            int(d["duration_ms"]),
            [LockHeld.from_dict(x) for x in d["locks"]],
            d["rows_touched"],
            list(d["rewrites"]),
            list(d["invalid_indexes"]),
            d.get("error", ""),
        )


@dataclass
class Rehearsal:
    """The engine's part of a rehearsal: the migrations measured, then the down check."""

    database: str
    migrations: list[MigrationRehearsal]
    downs_restore_schema: bool | None = None  # None: not checked (failed up, or no downs)
    down_notes: list[str] = field(default_factory=list)
    ledger_after: str | None = None
    start: str | None = None  # the ledger's version before the migrations
    schema_before: str = ""  # a digest of the schema before them (for a later down check)

    @property
    def failed(self) -> MigrationRehearsal | None:
        return next((m for m in self.migrations if m.error), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "database": self.database,
            "migrations": [m.to_dict() for m in self.migrations],
            "downs_restore_schema": self.downs_restore_schema,
            "down_notes": self.down_notes,
            "ledger_after": self.ledger_after,
            "start": self.start,
            "schema_before": self.schema_before,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Rehearsal:
        return cls(
            d["database"],
            [MigrationRehearsal.from_dict(m) for m in d["migrations"]],
            d["downs_restore_schema"],
            list(d["down_notes"]),
            d["ledger_after"],
            d.get("start"),
            d.get("schema_before", ""),
        )


class LockSampler:
    """Looks at ``pg_locks`` for one backend from its own connection while a migration runs
    (one sampler per migration: ``with LockSampler(conn, pid) as sampler: …``)."""

    def __init__(self, conn: Any, pid: int) -> None:
        self.conn = conn
        self.pid = pid
        self._seen: dict[tuple[int, str], tuple[float, float]] = {}  # (oid, mode) -> first, last
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="composekit-locks")

    def __enter__(self) -> LockSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        q = (
            "SELECT relation::bigint, mode FROM pg_locks WHERE pid = %s AND granted "
            "AND locktype = 'relation' AND relation >= 16384"
        )
        started = time.monotonic()
        while not self._stop.is_set():
            now = time.monotonic()
            try:
                rows = self.conn.execute(q, [self.pid]).fetchall()
            except Exception:  # the copy went away under us: what was seen stays
                return
            for oid, mode in rows:
                first, _ = self._seen.get((oid, mode), (now, now))
                self._seen[(oid, mode)] = (first, now)
            # every 5 ms at first, then less often: a long statement needs no ms precision, and
            # the sampling must not slow it down (it shares the server's CPUs)
            self._stop.wait(min(SAMPLE_MAX, SAMPLE_EVERY + (now - started) / 100))

    def held(self, tables: dict[int, tuple[str, int]]) -> list[LockHeld]:
        """The locks seen on ``tables`` (oid -> (name, rows)), strongest and longest first."""
        out = []
        for (oid, mode), (first, last) in self._seen.items():
            if oid in tables:
                name, rows = tables[oid]
                out.append(LockHeld(name, mode, int((last - first) * 1000) + 1, rows))
        return sorted(out, key=lambda lk: (-len(lk.blocks), -lk.ms, lk.relation))


@dataclass(frozen=True)
class Snapshot:
    files: dict[int, int]  # oid -> relfilenode
    names: dict[int, str]
    tables: dict[int, tuple[str, int]]  # oid -> (name, estimated rows), tables only
    invalid: set[str]
    touched: int | None

    @classmethod
    def take(cls, conn: Any, ledger: str, stats: bool) -> Snapshot:
        rows = conn.execute(_TABLES).fetchall()
        touched = None
        if stats:
            conn.execute("SELECT pg_stat_clear_snapshot()")
            touched = int(conn.execute(_TOUCHED, [ledger]).fetchone()[0])
        return cls(
            {r[0]: r[2] for r in rows},
            {r[0]: r[1] for r in rows},
            {r[0]: (r[1], int(r[4])) for r in rows if r[3] in ("r", "p", "m")},
            {r[0] for r in conn.execute(_INVALID).fetchall()},
            touched,
        )

    def rewritten(self, after: Snapshot) -> list[str]:
        return sorted(
            self.names[oid]
            for oid, node in self.files.items()
            if oid in after.files and after.files[oid] != node and node != 0
        )
