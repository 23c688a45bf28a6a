"""Plan and apply migrations: locking, transactions, timeouts, retries and errors.

How a run is made safe:

* **Exactly once.** A session-level ``pg_advisory_lock`` is taken on a connection of its own (the
  *lock connection*) and held for the whole run, outside any transaction, so that
  ``CREATE INDEX CONCURRENTLY`` on the *work connection* never waits for it. PostgreSQL releases
  it if the process dies. A waiter names the holder (pid, application_name, since).
* **Atomic with the ledger.** A transactional migration is sent as ONE simple-query message:
  ``set_config(lock_timeout…)``, the file's SQL, then the ledger INSERT. PostgreSQL runs a
  multi-statement message as one implicit transaction, so the migration and its ledger row commit
  together or not at all — and it costs one round trip.
* **Non-transactional migrations** (CONCURRENTLY, VACUUM, ``-- composekit:no-transaction``…) run
  statement by statement in autocommit. Their ledger row is written ``dirty`` first and cleared at
  the end, so an interrupted run is visible and ``repair`` can clean up (INVALID indexes).
* **Lock timeouts** (SQLSTATE 55P03) are retried with backoff; a watcher thread on the lock
  connection reads ``pg_blocking_pids`` while a migration waits, so the message names the blocker.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from composekit.db import BlockerWatch, LockHolder, advisory_lock, connect, lock_key, who_am_i
from composekit.errors import (
    MigrationError,
    UsageError,
    VerifyError,
)
from composekit.migrations.ledger import Ledger, LedgerRow
from composekit.migrations.source import Migration, Section, Source, load_source, version_key
from composekit.redact import redact

Progress = Callable[[str], None]


def _silent(msg: str) -> None:
    pass


# -- results ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Applied:
    version: str
    name: str
    duration_ms: int
    transactional: bool
    direction: str = "up"


@dataclass(frozen=True)
class Problem:
    kind: str  # edited | missing | out-of-order | dirty
    version: str
    detail: str


@dataclass
class Status:
    applied: list[LedgerRow]
    pending: list[Migration]
    problems: list[Problem]
    ledger_exists: bool
    format: str
    ignored: list[str] = field(default_factory=list)

    @property
    def current(self) -> str | None:
        return self.applied[-1].version if self.applied else None

    @property
    def up_to_date(self) -> bool:
        return not self.pending and not any(p.kind == "dirty" for p in self.problems)

    def to_dict(self) -> dict[str, Any]:
        return {
            "current_version": self.current,
            "up_to_date": self.up_to_date,
            "format": self.format,
            "applied": [r.to_dict() for r in self.applied],
            "pending": [
                {
                    "version": m.version,
                    "name": m.name,
                    "file": m.path.name,
                    "transactional": m.transactional,
                }
                for m in self.pending
            ],
            "problems": [p.__dict__ for p in self.problems],
            "ignored_files": self.ignored,
        }


@dataclass
class RunResult:
    direction: str
    done: list[Applied]
    current: str | None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "direction": self.direction,
            "applied" if self.direction == "up" else "reverted": [a.__dict__ for a in self.done],
            "current_version": self.current,
            "notes": self.notes,
        }


@dataclass(frozen=True)
class PlannedStep:
    migration: Migration
    direction: str
    section: Section

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.migration.version,
            "name": self.migration.name,
            "direction": self.direction,
            "file": str(self.section.path),
            "transactional": self.migration.transactional
            if self.direction == "up"
            else _section_tx(self.section),
            "reason": self.migration.reason,
            "sql": self.section.sql.strip(),
        }


def _section_tx(section: Section) -> bool:
    return not any(s.non_transactional for s in section.statements())


# -- the migrator ------------------------------------------------------------------------------------


class Migrator:
    """Applies the migrations of one directory to one database.

    >>> m = Migrator("postgresql://app@localhost/app", "migrations")   # doctest: +SKIP
    >>> [a.version for a in m.upgrade().done]                           # doctest: +SKIP
    ['0001', '0002']
    """

    def __init__(
        self,
        database_url: str,
        directory: str | Path = "migrations",
        *,
        table: str = "schema_migrations",
        fmt: str = "auto",
        lock_wait: float = 60.0,
        lock_timeout: float = 5.0,
        statement_timeout: float | None = None,
        lock_retries: int = 3,
        retry_backoff: float = 1.0,
        allow_out_of_order: bool = False,
        progress: Progress = _silent,
        url_origin: str = "",
        application_name: str | None = None,
    ) -> None:
        self.url = database_url
        self.directory = Path(directory)
        self.ledger = Ledger(table)
        self.fmt = fmt
        self.lock_wait = lock_wait
        self.lock_timeout = lock_timeout
        self.statement_timeout = statement_timeout
        self.lock_retries = lock_retries
        self.retry_backoff = retry_backoff
        self.allow_out_of_order = allow_out_of_order
        self.progress = progress
        self.url_origin = url_origin
        self.who = who_am_i()
        self.app_name = application_name or f"composekit migrate {self.who}"
        self._source: Source | None = None

    @classmethod
    def from_settings(
        cls, settings: Any, progress: Progress = _silent, **overrides: Any
    ) -> Migrator:
        kw: dict[str, Any] = dict(
            table=settings.ledger_table,
            fmt=settings.migrations_format,
            lock_wait=settings.lock_wait,
            lock_timeout=settings.lock_timeout,
            statement_timeout=settings.statement_timeout,
            lock_retries=settings.lock_retries,
            progress=progress,
            url_origin=settings.source.get("database_url", ""),
        )
        kw.update(overrides)
        return cls(settings.require_database_url(), settings.migrations_path, **kw)

    # -- reading --------------------------------------------------------------------------------
    @property
    def source(self) -> Source:
        if self._source is None:
            self._source = load_source(self.directory, self.fmt)
        return self._source

    def _connect(self, suffix: str = "") -> Any:
        return connect(self.url, self.app_name + suffix, self.url_origin)

    def _status(self, conn: Any) -> Status:
        src = self.source
        exists = self.ledger.columns(conn) is not None
        rows = self.ledger.rows(conn) if exists else []
        pending, problems = compare(rows, src)
        return Status(rows, pending, problems, exists, src.format, src.ignored)

    def status(self) -> Status:
        """Applied, pending and drift; reads only (the ledger is not created)."""
        self.source  # noqa: B018 - file errors before touching the database
        with self._connect(" status") as conn:
            return self._status(conn)

    def is_up_to_date(self) -> bool:
        return self.status().up_to_date

    def verify(self) -> Status:
        """Raise :class:`VerifyError` (exit 6) on edited, missing, out-of-order or dirty migrations."""
        st = self.status()
        if st.problems:
            raise drift_error(st.problems, self.directory, self.ledger.table)
        return st

    # -- planning -------------------------------------------------------------------------------
    def _select_up(self, st: Status, target: str | None, steps: int | None) -> list[Migration]:
        todo = st.pending
        if target is not None:
            tkey = self._known_key(target)
            todo = [m for m in todo if m.key <= tkey]
        if steps is not None:
            todo = todo[: max(0, steps)]
        return todo

    def _known_key(self, version: str) -> tuple[int, ...]:
        try:
            key = version_key(version)
        except ValueError as exc:
            raise UsageError(
                f"target {version!r} is not a version number", hint="use a version like 0003"
            ) from exc
        if key != (0,) and key not in {m.key for m in self.source.migrations}:
            raise UsageError(
                f"no migration with version {version} in {self.directory}",
                hint="`composekit migrate status` lists the versions",
            )
        return key

    def _select_down(
        self, st: Status, target: str | None, steps: int | None
    ) -> list[tuple[LedgerRow, Migration]]:
        files = {m.key: m for m in self.source.migrations}
        rows = list(reversed(st.applied))
        if target is not None:
            tkey = self._known_key(target)
            rows = [r for r in rows if r.key > tkey]
        else:
            rows = rows[: 1 if steps is None else max(0, steps)]
        out = []
        for r in rows:
            m = files.get(r.key)
            if m is None:
                raise MigrationError(
                    f"cannot revert {r.version}: its file is missing from {self.directory}",
                    hint="restore the file (git) before reverting it",
                )
            if m.down is None:
                raise MigrationError(
                    f"cannot revert {m.path.name}: it has no down section",
                    hint="add a '-- migrate:down' section (or a .down.sql / U file), or restore from a backup",
                )
            out.append((r, m))
        return out

    def plan(
        self, direction: str = "up", target: str | None = None, steps: int | None = None
    ) -> list[PlannedStep]:
        """What ``up``/``down`` would run, without changing anything."""
        st = self.status()
        if direction == "up":
            return [PlannedStep(m, "up", m.up) for m in self._select_up(st, target, steps)]
        return [
            PlannedStep(m, "down", m.down)
            for _, m in self._select_down(st, target, steps)
            if m.down
        ]

    # -- running --------------------------------------------------------------------------------
    @contextmanager
    def _locked(self) -> Iterator[tuple[Any, Any]]:
        """(lock connection, work connection), the migration lock held, the ledger ensured."""
        self.source  # noqa: B018 - file errors before touching the database
        lock_conn = self._connect(" lock")
        try:
            with advisory_lock(
                lock_conn,
                lock_key(self.ledger.table),
                self.lock_wait,
                "migration",
                self.progress,
                self.app_name,
            ):
                work = self._connect()
                try:
                    if work.info.server_version >= 140000:
                        # a killed client's migration is cancelled within a second, not left running
                        work.execute("SET client_connection_check_interval = '1s'")
                    for done in self.ledger.ensure(work):
                        self.progress(done)
                    self._watch = BlockerWatch(lock_conn, work.info.backend_pid, self.lock_timeout)
                    try:
                        yield lock_conn, work
                    finally:
                        self._watch.close()
                finally:
                    work.close()
        finally:
            lock_conn.close()

    def _preconditions(self, st: Status, allow_out_of_order: bool) -> None:
        dirty = [p for p in st.problems if p.kind == "dirty"]
        if dirty:
            raise MigrationError(
                f"migration {dirty[0].version} is dirty: {dirty[0].detail}",
                hint="run `composekit migrate repair` (drops INVALID indexes it left and lets `up` retry it)",
            )
        drift = [p for p in st.problems if p.kind in ("edited", "missing")]
        if drift:
            p = drift[0]
            raise VerifyError(
                f"{p.kind} migration {p.version}: {p.detail}; nothing was applied",
                hint=_problem_hint(p.kind),
                details=[f"{d.kind} {d.version}: {d.detail}" for d in drift[1:]],
            )
        ooo = [p for p in st.problems if p.kind == "out-of-order"]
        if ooo and not allow_out_of_order:
            raise VerifyError(
                f"out-of-order migration {ooo[0].version}: {ooo[0].detail}; nothing was applied",
                hint=_problem_hint("out-of-order"),
            )

    def upgrade(
        self,
        target: str | None = None,
        steps: int | None = None,
        atomic: bool = False,
        allow_out_of_order: bool | None = None,
    ) -> RunResult:
        """Apply pending migrations (all, up to ``target``, or the next ``steps``)."""
        allow = self.allow_out_of_order if allow_out_of_order is None else allow_out_of_order
        with self._locked() as (lock_conn, work):
            st = self._status(work)
            self._preconditions(st, allow)
            todo = self._select_up(st, target, steps)
            if atomic:
                bad = [m for m in todo if not m.transactional]
                if bad:
                    raise UsageError(
                        f"--atomic cannot include non-transactional {bad[0].path.name} ({bad[0].reason})",
                        hint="run without --atomic, or apply up to the migration before it",
                    )
            done: list[Applied] = []
            if not todo:
                return RunResult("up", [], st.current, notes=["database is up to date"])
            if atomic:
                done = self._apply_atomic(work, lock_conn, todo)
            else:
                for m in todo:
                    done.append(self._apply_one(work, lock_conn, m, done))
            return RunResult("up", done, done[-1].version if done else st.current)

    def downgrade(self, steps: int | None = None, target: str | None = None) -> RunResult:
        """Revert the newest ``steps`` (default 1) migrations, or all above ``target`` (``0``: all)."""
        with self._locked() as (lock_conn, work):
            st = self._status(work)
            dirty = [p for p in st.problems if p.kind == "dirty"]
            if dirty:
                self._preconditions(st, True)
            todo = self._select_down(st, target, steps)
            done: list[Applied] = []
            for row, m in todo:
                done.append(self._revert_one(work, lock_conn, row, m, done))
            rows = self.ledger.rows(work)
            return RunResult("down", done, rows[-1].version if rows else None)

    # -- one migration ----------------------------------------------------------------------------
    def _prefix(self, local: bool) -> str:
        parts = [
            f"SELECT set_config('lock_timeout', '{int(self.lock_timeout * 1000)}ms', {str(local).lower()})"
        ]
        if self.statement_timeout:
            parts.append(
                f"SELECT set_config('statement_timeout', '{int(self.statement_timeout * 1000)}ms', {str(local).lower()})"
            )
        return ";\n".join(parts) + ";\n"

    def _apply_one(self, work: Any, lock_conn: Any, m: Migration, done: list[Applied]) -> Applied:
        if not m.transactional:
            return self._run_autocommit(work, lock_conn, m, m.up, "up", done)
        insert = self.ledger.insert_sql(work, m, self.who)
        return self._run_message(work, lock_conn, m, m.up, insert, "up", done)

    def _revert_one(
        self, work: Any, lock_conn: Any, row: LedgerRow, m: Migration, done: list[Applied]
    ) -> Applied:
        assert m.down is not None
        delete = self.ledger.delete_sql(work, row.version)
        if not _section_tx(m.down):
            return self._run_autocommit(work, lock_conn, m, m.down, "down", done, ledger_row=row)
        return self._run_message(work, lock_conn, m, m.down, delete, "down", done)

    def _run_message(
        self,
        work: Any,
        lock_conn: Any,
        m: Migration,
        section: Section,
        ledger_sql: str,
        direction: str,
        done: list[Applied],
    ) -> Applied:
        """One implicit transaction: timeouts + the section + the ledger change, with retries."""
        import psycopg

        prefix = self._prefix(local=True)
        message = prefix + section.sql + "\n;\n" + ledger_sql
        attempt = 0
        while True:
            attempt += 1
            t0 = time.perf_counter()
            try:
                with self._watch.watching() as watch:
                    work.execute(message)
            except psycopg.errors.LockNotAvailable as exc:
                who = _blockers_text(watch.blockers)
                if attempt > self.lock_retries:
                    raise MigrationError(
                        f"{section.path.name}: gave up after {attempt} tries: lock timeout "
                        f"({self.lock_timeout:g}s) waiting for {who}; nothing of it was applied",
                        hint="end or wait out the blocking session, or raise lock_timeout",
                        details=_done_details(done),
                    ) from exc
                wait = self.retry_backoff * (2 ** (attempt - 1))
                self.progress(
                    f"{section.path.name}: lock timeout waiting for {who}; "
                    f"retry {attempt}/{self.lock_retries} in {wait:g}s"
                )
                time.sleep(wait)
                continue
            except psycopg.OperationalError as exc:
                raise MigrationError(
                    f"{section.path.name}: lost the database connection while applying it: {redact(str(exc)).strip()}",
                    hint="the transaction was not committed; check `composekit migrate status` and rerun",
                    details=_done_details(done),
                ) from exc
            except psycopg.Error as exc:
                offset = _error_offset(exc, len(prefix), len(section.sql))
                if offset is None:
                    offset = self._locate_failure(work, prefix, section, exc)
                raise _sql_error(section, exc, offset, done, direction, committed=False) from exc
            ms = int((time.perf_counter() - t0) * 1000)
            self.progress(f"{'applied' if direction == 'up' else 'reverted'} {m.label} ({ms} ms)")
            return Applied(m.version, m.name, ms, True, direction)

    def _locate_failure(self, work: Any, prefix: str, section: Section, exc: Any) -> int | None:
        """The error had no position: replay statement by statement in a transaction that is
        always rolled back, to find which one fails (transactional sections only)."""
        import psycopg

        state = getattr(exc, "sqlstate", None)
        if not state or state.startswith("08") or state in ("57014", "55P03"):
            return None
        statements = section.statements()
        if len(statements) <= 1:
            return _offset_of_line(section, statements[0].line) if statements else None
        try:
            with work.transaction(force_rollback=True):
                work.execute(prefix)
                for stmt in statements:
                    try:
                        work.execute(stmt.sql)
                    except psycopg.Error as again:
                        if getattr(again, "sqlstate", None) == state:
                            return _offset_of_line(section, stmt.line)
                        return None
        except psycopg.Error:
            return None
        return None

    def _run_autocommit(
        self,
        work: Any,
        lock_conn: Any,
        m: Migration,
        section: Section,
        direction: str,
        done: list[Applied],
        ledger_row: LedgerRow | None = None,
    ) -> Applied:
        """Statement by statement, each committed on its own; the ledger row is dirty meanwhile."""
        import psycopg
        from psycopg import sql

        t0 = time.perf_counter()
        if direction == "up":
            work.execute(self.ledger.insert_sql(work, m, self.who, dirty=True))
        else:
            assert ledger_row is not None
            work.execute(
                sql.SQL("UPDATE {} SET dirty = true WHERE version = %s").format(self.ledger.ident),
                [ledger_row.version],
            )
        self.progress(
            f"{m.label}: non-transactional ({m.reason or 'down section'}), running statement by statement"
        )
        work.execute(self._prefix(local=False))
        statements = section.statements()
        for i, stmt in enumerate(statements):
            attempt = 0
            while True:
                attempt += 1
                try:
                    with self._watch.watching() as watch:
                        work.execute(stmt.sql)
                    break
                except psycopg.errors.LockNotAvailable as exc:
                    who = _blockers_text(watch.blockers)
                    if attempt > self.lock_retries:
                        raise MigrationError(
                            f"{section.path.name}:{stmt.line}: gave up after {attempt} tries: lock timeout waiting "
                            f"for {who}; {i} of {len(statements)} statements had committed, so it is marked dirty",
                            hint="end the blocking session, then `composekit migrate repair` and `up`",
                            details=_done_details(done),
                        ) from exc
                    wait = self.retry_backoff * (2 ** (attempt - 1))
                    self.progress(
                        f"{section.path.name}:{stmt.line}: lock timeout waiting for {who}; retry in {wait:g}s"
                    )
                    time.sleep(wait)
                    # a cancelled CREATE INDEX CONCURRENTLY leaves an INVALID index behind
                    for idx in _invalid_indexes(work, stmt.sql):
                        work.execute(
                            sql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {}").format(
                                sql.Identifier(*idx)
                            )
                        )
                        self.progress(
                            f"dropped INVALID index {'.'.join(idx)} left by the cancelled attempt"
                        )
                except psycopg.Error as exc:
                    pos = getattr(exc.diag, "statement_position", None)
                    offset = _offset_of_line(section, stmt.line)
                    line_extra = stmt.sql.count("\n", 0, int(pos) - 1) if pos else 0
                    err = _sql_error(
                        section,
                        exc,
                        offset,
                        done,
                        direction,
                        committed=i > 0,
                        extra_lines=line_extra,
                    )
                    err.hint = (
                        f"{i} of {len(statements)} statements had committed, so {m.label} is marked dirty: "
                        "fix the file, then `composekit migrate repair` and `up` (write it so a rerun is safe: IF NOT EXISTS)"
                    )
                    raise err from exc
        work.execute("RESET lock_timeout; RESET statement_timeout")
        ms = int((time.perf_counter() - t0) * 1000)
        if direction == "up":
            work.execute(self.ledger.finish_sql(work, m.version, ms))
        else:
            assert ledger_row is not None
            work.execute(self.ledger.delete_sql(work, ledger_row.version))
        self.progress(
            f"{'applied' if direction == 'up' else 'reverted'} {m.label} ({ms} ms, non-transactional)"
        )
        return Applied(m.version, m.name, ms, False, direction)

    def _apply_atomic(self, work: Any, lock_conn: Any, todo: list[Migration]) -> list[Applied]:
        import psycopg

        done: list[Applied] = []
        prefix = self._prefix(local=True)
        try:
            with work.transaction():
                work.execute(prefix)
                for m in todo:
                    t0 = time.perf_counter()
                    try:
                        work.execute(m.up.sql + "\n;\n" + self.ledger.insert_sql(work, m, self.who))
                    except psycopg.Error as exc:
                        raise _sql_error(
                            m.up,
                            exc,
                            _error_offset(exc, 0, len(m.up.sql)),
                            [],
                            "up",
                            committed=False,
                        ) from exc
                    done.append(
                        Applied(m.version, m.name, int((time.perf_counter() - t0) * 1000), True)
                    )
        except MigrationError as err:
            err.details.insert(
                0, f"--atomic: all {len(todo)} migrations of this run were rolled back"
            )
            raise
        for a in done:
            self.progress(f"applied {a.version}_{a.name} ({a.duration_ms} ms, atomic)")
        return done

    # -- maintenance ---------------------------------------------------------------------------------
    def baseline(self, version: str) -> RunResult:
        """Record every migration up to ``version`` as applied without running it (existing schema)."""
        with self._locked() as (_, work):
            key = self._known_key(version)
            st = self._status(work)
            applied = {r.key for r in st.applied}
            marked = []
            for m in self.source.migrations:
                if m.key <= key and m.key not in applied:
                    work.execute(self.ledger.insert_sql(work, m, f"baseline by {self.who}"))
                    marked.append(Applied(m.version, m.name, 0, m.transactional, "baseline"))
            self.progress(f"baseline: marked {len(marked)} migration(s) as applied up to {version}")
            return RunResult("up", marked, version, notes=[f"baseline at {version}"])

    def repair(self, forget: list[str] | None = None) -> list[str]:
        """Clean up after an interrupted non-transactional migration: drop INVALID indexes it
        left, remove its dirty ledger row so ``up`` retries it. ``forget`` removes ledger rows of
        migrations whose files were deleted on purpose."""
        from psycopg import sql

        actions: list[str] = []
        with self._locked() as (_, work):
            st = self._status(work)
            files = {m.key: m for m in self.source.migrations}
            for row in st.applied:
                if not row.dirty:
                    continue
                m = files.get(row.key)
                for idx in _invalid_indexes(work, m.up.sql if m else None):
                    work.execute(
                        sql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {}").format(sql.Identifier(*idx))
                    )
                    actions.append(f"dropped INVALID index {'.'.join(idx)} left by {row.version}")
                work.execute(self.ledger.delete_sql(work, row.version))
                actions.append(
                    f"cleared dirty entry {row.version}; `composekit migrate up` will run it again"
                )
            for version in forget or []:
                match = [r for r in st.applied if r.key == version_key(version)]
                if not match:
                    raise UsageError(
                        f"{version} is not in {self.ledger.table}",
                        hint="see `composekit migrate status`",
                    )
                work.execute(self.ledger.delete_sql(work, match[0].version))
                actions.append(f"forgot ledger entry {match[0].version}")
        if not actions:
            actions.append("nothing to repair")
        for a in actions:
            self.progress(a)
        return actions


# -- helpers ----------------------------------------------------------------------------------------


def _invalid_indexes(work: Any, sql_text: str | None) -> list[tuple[str, str]]:
    """INVALID indexes (a killed CONCURRENTLY build); only those named in ``sql_text`` if given."""
    rows = work.execute(
        "SELECT n.nspname, c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE NOT i.indisvalid "
        "AND n.nspname NOT IN ('pg_catalog', 'information_schema')"
    ).fetchall()
    if sql_text is None:
        return [(r[0], r[1]) for r in rows]
    words = set(re.findall(r"[\w$]+", sql_text.lower()))
    return [(r[0], r[1]) for r in rows if r[1].lower() in words]


def compare(rows: list[LedgerRow], src: Source) -> tuple[list[Migration], list[Problem]]:
    """Pending migrations, and the problems between the ledger rows and the files: dirty, missing,
    edited (checksum), out-of-order."""
    files = {m.key: m for m in src.migrations}
    applied_keys = {r.key for r in rows}
    problems: list[Problem] = []
    for r in rows:
        m = files.get(r.key)
        if r.dirty:
            problems.append(
                Problem(
                    "dirty",
                    r.version,
                    f"{m.path.name if m else r.version} was interrupted or failed part-way (non-transactional)",
                )
            )
        if m is None:
            problems.append(
                Problem(
                    "missing", r.version, f"applied {r.name or ''} but no file in {src.directory}"
                )
            )
        elif r.checksum and r.checksum != m.checksum and not r.dirty:
            problems.append(
                Problem("edited", r.version, f"{m.path.name} changed after it was applied")
            )
    pending = [m for m in src.migrations if m.key not in applied_keys]
    top = max(applied_keys) if applied_keys else None
    for m in pending:
        if top is not None and m.key < top:
            problems.append(
                Problem(
                    "out-of-order",
                    m.version,
                    f"{m.path.name} is pending but older than applied {rows[-1].version}",
                )
            )
    return pending, problems


def drift_error(problems: list[Problem], directory: Path, table: str) -> VerifyError:
    first = problems[0]
    return VerifyError(
        f"{len(problems)} problem(s) between {directory} and {table}: "
        f"{first.kind} {first.version}: {first.detail}",
        hint=_problem_hint(first.kind),
        details=[f"{p.kind} {p.version}: {p.detail}" for p in problems[1:]],
    )


def _problem_hint(kind: str) -> str:
    return {
        "edited": "put the file back as it was applied (git checkout) and make the change in a new migration",
        "missing": "restore the file; if it was removed on purpose: `composekit migrate repair --forget VERSION`",
        "out-of-order": "renumber the migration after the newest applied one, or pass --allow-out-of-order",
        "dirty": "run `composekit migrate repair`, then `composekit migrate up`",
    }.get(kind, "see `composekit migrate status`")


def _blockers_text(blockers: list[LockHolder]) -> str:
    if not blockers:
        return "another session"
    b = blockers[0]
    q = f", query: {b.query}" if b.query else ""
    more = f" (+{len(blockers) - 1} more)" if len(blockers) > 1 else ""
    return f"pid {b.pid} ({b.application_name or 'no application_name'}, since {b.since}{q}){more}"


def _done_details(done: list[Applied]) -> list[str]:
    if not done:
        return ["nothing was applied before it in this run"]
    return [
        "applied before it in this run (still applied): "
        + ", ".join(f"{a.version}_{a.name}" for a in done)
    ]


def _error_offset(exc: Any, prefix_len: int, body_len: int) -> int | None:
    pos = getattr(getattr(exc, "diag", None), "statement_position", None)
    if not pos:
        return None
    offset = int(pos) - 1 - prefix_len
    return offset if 0 <= offset <= body_len else None


def _offset_of_line(section: Section, line: int) -> int:
    idx = 0
    for _ in range(line - section.first_line):
        nxt = section.sql.find("\n", idx)
        if nxt < 0:
            break
        idx = nxt + 1
    return idx


def _sql_error(
    section: Section,
    exc: Any,
    offset: int | None,
    done: list[Applied],
    direction: str,
    committed: bool,
    extra_lines: int = 0,
) -> MigrationError:
    diag = exc.diag
    line = (section.line_of(offset) if offset is not None else section.first_line) + extra_lines
    where = f"{section.path.name}:{line}"
    primary = (diag.message_primary or str(exc)).strip()
    state = getattr(exc, "sqlstate", None) or "?"
    details = []
    if diag.message_detail:
        details.append(f"detail: {diag.message_detail}")
    if diag.message_hint:
        details.append(f"postgres hint: {diag.message_hint}")
    details.append(
        (
            "its changes were rolled back"
            if not committed
            else "earlier statements of it had committed"
        )
        + f" ({direction})"
    )
    details += _done_details(done)
    return MigrationError(
        f"{where}: {primary} (SQLSTATE {state})",
        hint=f"fix {section.path.name} near line {line}, then run the command again",
        details=details,
    )
