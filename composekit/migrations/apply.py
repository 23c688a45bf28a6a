"""Sending one migration section to the server, with its ledger change, timeouts and retries.

* A transactional section goes as ONE simple-query message: ``set_config(lock_timeout…)``, the
  file's SQL, then the ledger change. PostgreSQL runs a multi-statement message as one implicit
  transaction, so the migration and its ledger row commit together or not at all.
* A non-transactional one runs statement by statement in autocommit, its ledger row ``dirty``
  meanwhile, so an interrupted run is visible and ``repair`` can clean up.
* Lock timeouts (SQLSTATE 55P03) are retried with backoff; the :class:`BlockerWatch` names who
  blocked the statement.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any

from composekit.db import BlockerWatch
from composekit.errors import MigrationError
from composekit.migrations.backfill import Backfiller, plan_backfill
from composekit.migrations.ledger import Ledger, LedgerRow
from composekit.migrations.results import Applied, Direction
from composekit.migrations.source import Migration, Section
from composekit.migrations.sqlerrors import (
    blockers_text,
    done_details,
    error_offset,
    offset_of_line,
    sql_error,
)
from composekit.progress import Progress
from composekit.redact import redact


def invalid_indexes(work: Any, sql_text: str | None) -> list[tuple[str, str]]:
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


def drop_index(work: Any, index: tuple[str, str]) -> None:
    from psycopg import sql

    work.execute(sql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {}").format(sql.Identifier(*index)))


def _connection_lost(exc: Any, conn: Any) -> bool:
    """A lost connection, not an error of the SQL: psycopg files a statement timeout (57014)
    and an admin shutdown (57P01) under OperationalError too."""
    import psycopg

    if conn.closed or isinstance(exc, psycopg.InterfaceError):
        return True
    state = getattr(exc, "sqlstate", None)
    return isinstance(exc, psycopg.OperationalError) and (not state or state[:2] in ("08", "57P"))


@dataclass
class Applier:
    """Runs sections on ``work`` (autocommit, the migration lock held elsewhere)."""

    work: Any
    watch: BlockerWatch
    ledger: Ledger
    who: str
    lock_timeout: float
    statement_timeout: float | None
    lock_retries: int
    retry_backoff: float
    progress: Progress

    unflushed: str | None = None  # the ledger row of the last commit not yet known on disk

    def flush(self) -> None:
        """Wait until every commit of this run is on disk: one synchronous commit that writes
        WAL (an update of the last ledger row to itself) flushes all before it. (A transaction
        that writes nothing, e.g. ``SELECT txid_current()``, commits without a flush.)"""
        if self.unflushed is not None and not self.work.closed:
            from psycopg import sql

            self.work.execute(
                sql.SQL("UPDATE {} SET dirty = dirty WHERE version = {}").format(
                    self.ledger.ident, sql.Literal(self.unflushed)
                )
            )
            self.unflushed = None

    def apply(self, m: Migration, done: list[Applied]) -> Applied:
        if m.backfill is not None:
            return self.backfill(m, None)
        if not m.transactional:
            return self._run_autocommit(m, m.up, Direction.UP, done)
        insert = self.ledger.insert_sql(self.work, m, self.who)
        return self._run_message(m, m.up, insert, Direction.UP, done)

    def backfill(self, m: Migration, resumed: LedgerRow | None) -> Applied:
        """A backfill migration: its ledger row is dirty (with where it is) until it ends; a
        ``resumed`` row carries on after its ``resume_at``."""
        t0 = time.perf_counter()
        backfiller = Backfiller(
            self.work,
            self.watch,
            self.ledger,
            self.lock_timeout,
            self.timeout_of(m),
            self.lock_retries,
            self.retry_backoff,
            self.progress,
        )
        plan = plan_backfill(self.work, m)  # its errors before anything is written
        # (re)written dirty: a resumed row takes the file's current checksum, keeps resume_at
        self.work.execute(self.ledger.insert_sql(self.work, m, self.who, dirty=True))
        backfiller.run(m, plan, resumed.resume_at if resumed else None)
        ms = int((time.perf_counter() - t0) * 1000)
        self.work.execute(self.ledger.finish_sql(self.work, m.version, ms))
        self.progress(f"applied {m.label} ({ms} ms, backfill)")
        return Applied(m.version, m.name, ms, False, Direction.UP)

    def revert(self, row: LedgerRow, m: Migration, done: list[Applied]) -> Applied:
        assert m.down is not None
        if m.down_is_noop:
            self.progress(f"{m.label}: its down section holds no SQL; removing its ledger row only")
        if not m.down_transactional:
            return self._run_autocommit(m, m.down, Direction.DOWN, done, ledger_row=row)
        delete = self.ledger.delete_sql(self.work, row.version)
        return self._run_message(m, m.down, delete, Direction.DOWN, done)

    def apply_atomic(self, todo: list[Migration]) -> list[Applied]:
        """All of ``todo`` in one transaction (transactional migrations only)."""
        import psycopg

        work = self.work
        done: list[Applied] = []
        try:
            with work.transaction():
                work.execute(self._prefix(local=True))
                for m in todo:
                    work.execute(self._prefix(local=True, m=m))  # its own statement_timeout
                    t0 = time.perf_counter()
                    try:
                        work.execute(m.up.sql + "\n;\n" + self.ledger.insert_sql(work, m, self.who))
                    except psycopg.Error as exc:
                        raise sql_error(
                            m.up,
                            exc,
                            error_offset(exc, 0, len(m.up.sql)),
                            [],
                            Direction.UP,
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

    def _prefix(self, local: bool, m: Migration | None = None) -> str:
        scope = str(local).lower()
        parts = [f"SELECT set_config('lock_timeout', '{int(self.lock_timeout * 1000)}ms', {scope})"]
        limit = self.timeout_of(m)
        if limit:
            parts.append(
                f"SELECT set_config('statement_timeout', '{int(limit * 1000)}ms', {scope})"
            )
        return ";\n".join(parts) + ";\n"

    def timeout_of(self, m: Migration | None) -> float | None:
        """The statement_timeout ``m`` runs with: its file's line, else the setting."""
        return (m.statement_timeout if m else None) or self.statement_timeout

    def _explain_timeout(self, err: MigrationError, exc: Any, m: Migration) -> MigrationError:
        if getattr(exc, "sqlstate", None) == "57014" and self.timeout_of(m):
            err.message += f"; it ran longer than its statement_timeout of {self.timeout_of(m):g}s"
            err.hint = (
                "if it needs longer, raise it for this file: -- composekit:statement-timeout "
                "10min (or [migrations] statement_timeout); else make it faster"
            )
        return err

    def _backoff(self, attempt: int) -> float:
        return self.retry_backoff * (2 ** (attempt - 1))

    def _run_message(
        self,
        m: Migration,
        section: Section,
        ledger_sql: str,
        direction: Direction,
        done: list[Applied],
    ) -> Applied:
        """One implicit transaction: timeouts + the section + the ledger change, with retries."""
        import psycopg

        prefix = self._prefix(local=True, m=m)
        if direction == Direction.UP:
            # the commit does not wait for the WAL flush: a crash can lose only a suffix of whole
            # migrations (each commits with its ledger row), and the run ends with flush() —
            # one synchronous commit that makes every earlier one durable. (Downs, run in an
            # undo, stay synchronous.)
            prefix += "SELECT set_config('synchronous_commit', 'off', true);\n"
        message = prefix + section.sql + "\n;\n" + ledger_sql
        attempt = 0
        while True:
            attempt += 1
            t0 = time.perf_counter()
            try:
                with self.watch.watching(m.label) as watch:
                    self.work.execute(message)
            except psycopg.errors.LockNotAvailable as exc:
                who = blockers_text(watch.blockers)
                if attempt > self.lock_retries:
                    raise MigrationError(
                        f"{section.path.name}: gave up after {attempt} tries: lock timeout "
                        f"({self.lock_timeout:g}s) waiting for {who}; nothing of it was applied",
                        hint="end or wait out the blocking session, or raise lock_timeout",
                        details=done_details(done),
                    ) from exc
                wait = self._backoff(attempt)
                self.progress(
                    f"{section.path.name}: lock timeout waiting for {who}; "
                    f"retry {attempt}/{self.lock_retries} in {wait:g}s"
                )
                time.sleep(wait)
                continue
            except psycopg.Error as exc:
                if _connection_lost(exc, self.work):
                    raise MigrationError(
                        f"{section.path.name}: lost the database connection while applying it: {redact(str(exc)).strip()}",
                        hint="the transaction was not committed; check `composekit migrate status` and rerun",
                        details=done_details(done),
                    ) from exc
                offset = error_offset(exc, len(prefix), len(section.sql))
                if offset is None:
                    offset = self._locate_failure(prefix, section, exc)
                err = sql_error(section, exc, offset, done, direction, committed=False)
                raise self._explain_timeout(err, exc, m) from exc
            ms = int((time.perf_counter() - t0) * 1000)
            verb = "applied" if direction == Direction.UP else "reverted"
            self.progress(f"{verb} {m.label} ({ms} ms)")
            if direction == Direction.UP:
                self.unflushed = m.version
            return Applied(m.version, m.name, ms, True, direction)

    def _locate_failure(self, prefix: str, section: Section, exc: Any) -> int | None:
        """The error had no position: replay statement by statement in a transaction that is
        always rolled back, to find which one fails (transactional sections only)."""
        import psycopg

        state = getattr(exc, "sqlstate", None)
        if not state or state.startswith("08") or state in ("57014", "55P03"):
            return None
        statements = section.statements()
        if len(statements) <= 1:
            return offset_of_line(section, statements[0].line) if statements else None
        try:
            with self.work.transaction(force_rollback=True):
                self.work.execute(prefix)
                for stmt in statements:
                    try:
                        self.work.execute(stmt.sql)
                    except psycopg.Error as again:
                        if getattr(again, "sqlstate", None) == state:
                            return offset_of_line(section, stmt.line)
                        return None
        except psycopg.Error:
            return None
        return None

    def _run_autocommit(
        self,
        m: Migration,
        section: Section,
        direction: Direction,
        done: list[Applied],
        ledger_row: LedgerRow | None = None,
    ) -> Applied:
        """Statement by statement, each committed on its own; the ledger row is dirty meanwhile."""
        import psycopg

        work = self.work
        t0 = time.perf_counter()
        if direction == Direction.UP:
            work.execute(self.ledger.insert_sql(work, m, self.who, dirty=True))
        else:
            assert ledger_row is not None
            work.execute(self.ledger.mark_dirty_sql(work, ledger_row.version))
        self.progress(
            f"{m.label}: non-transactional ({(m.reason if direction == Direction.UP else m.down_reason) or 'statement by statement'}), running statement by statement"
        )
        work.execute(self._prefix(local=False, m=m))
        statements = section.statements()
        for i, stmt in enumerate(statements):
            attempt = 0
            while True:
                attempt += 1
                try:
                    with self.watch.watching(f"{section.path.name}:{stmt.line}") as watch:
                        work.execute(stmt.sql)
                    break
                except psycopg.errors.LockNotAvailable as exc:
                    who = blockers_text(watch.blockers)
                    if attempt > self.lock_retries:
                        raise MigrationError(
                            f"{section.path.name}:{stmt.line}: gave up after {attempt} tries: lock timeout waiting "
                            f"for {who}; {i} of {len(statements)} statements had committed, so it is marked dirty",
                            hint="end the blocking session, then `composekit migrate repair` and `up`",
                            details=done_details(done),
                        ) from exc
                    wait = self._backoff(attempt)
                    self.progress(
                        f"{section.path.name}:{stmt.line}: lock timeout waiting for {who}; retry in {wait:g}s"
                    )
                    time.sleep(wait)
                    # a cancelled CREATE INDEX CONCURRENTLY leaves an INVALID index behind
                    for idx in invalid_indexes(work, stmt.sql):
                        drop_index(work, idx)
                        self.progress(
                            f"dropped INVALID index {'.'.join(idx)} left by the cancelled attempt"
                        )
                except psycopg.Error as exc:
                    pos = getattr(exc.diag, "statement_position", None)
                    line_extra = stmt.sql.count("\n", 0, int(pos) - 1) if pos else 0
                    err = sql_error(
                        section,
                        exc,
                        offset_of_line(section, stmt.line),
                        done,
                        direction,
                        committed=i > 0,
                        extra_lines=line_extra,
                    )
                    err.hint = (
                        f"{i} of {len(statements)} statements had committed, so {m.label} is marked dirty: "
                        "fix the file, then `composekit migrate repair` and `up` (write it so a rerun is safe: IF NOT EXISTS)"
                    )
                    raise self._explain_timeout(err, exc, m) from exc
        work.execute("RESET lock_timeout; RESET statement_timeout")
        ms = int((time.perf_counter() - t0) * 1000)
        if direction == Direction.UP:
            work.execute(self.ledger.finish_sql(work, m.version, ms))
        else:
            assert ledger_row is not None
            work.execute(self.ledger.delete_sql(work, ledger_row.version))
        verb = "applied" if direction == Direction.UP else "reverted"
        self.progress(f"{verb} {m.label} ({ms} ms, non-transactional)")
        return Applied(m.version, m.name, ms, False, direction)
