"""Batched backfills: a migration's one UPDATE, run in keyed batches of short transactions.

* **Batches by key.** The UPDATE's WHERE gets ``AND key > lo AND key <= hi`` added on pglast's
  parse tree; ``hi`` is the ``batch``-th key after ``lo`` (an index range scan). The bounds travel
  as transaction settings (``current_setting``), so the statement text is fixed and the user's SQL
  is never spliced with strings.
* **Resumable.** Each batch commits together with the ledger row's ``resume_at`` = its ``hi``, so
  a run killed at any moment resumes right after the last committed batch: no row is skipped and
  none is updated twice. The row stays ``dirty`` until the end; ``migrate up`` resumes it.
* **Throttled.** ``pause`` between batches, ``lock_timeout`` on each batch (retried with backoff),
  so an app's writer waits at most one batch for a row lock.
* **NOT NULL the safe way** for each ``not-null`` column: ``CHECK (col IS NOT NULL) NOT VALID``
  (a short lock) → ``VALIDATE`` (scans without blocking writes) → ``SET NOT NULL`` (PostgreSQL
  ≥ 12 trusts the valid check and skips its own scan) → drop the check.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from composekit.db import BlockerWatch
from composekit.errors import ConfigError, MigrationError
from composekit.migrations.ledger import Ledger
from composekit.migrations.source import Backfill, Migration
from composekit.migrations.sqlerrors import blockers_text, offset_of_line, sql_error
from composekit.progress import Progress

T = TypeVar("T")
_LO = "composekit.backfill_lo"
_HI = "composekit.backfill_hi"
REPORT_EVERY = 2.0  # seconds between progress lines
DDL_LOCK_TIMEOUT = 0.1  # seconds a NOT NULL step waits for its lock before it tries again
DDL_TRIES = 25  # … about 40 s in all, backing off to 2 s


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@dataclass(frozen=True)
class BatchPlan:
    """The statements one backfill sends, worked out once from its file and the catalog."""

    table: str  # quoted, maybe schema-qualified
    label: str  # for messages
    relid: int
    key: str
    key_type: str
    first_bound: str  # -> (hi, keys in the batch), from the start of the table
    next_bound: str  # the same after ``lo``
    first_update: str
    next_update: str
    not_null: tuple[str, ...]

    def remaining_sql(self, after: str | None) -> tuple[str, list[str]]:
        """How many keys a run still has to cover (for the percentage and the ETA)."""
        if after is None:
            return f"SELECT count(*) FROM {self.table}", []
        return (
            f"SELECT count(*) FROM {self.table} WHERE {quote(self.key)} > %s::{self.key_type}",
            [after],
        )


def plan_backfill(work: Any, m: Migration) -> BatchPlan:
    """Read the UPDATE, find its key (the one-column primary key unless ``key=`` names one)."""
    from pglast import ast, enums, parse_sql
    from pglast.stream import RawStream

    options = m.backfill or Backfill()
    node: Any = parse_sql(m.up.statements()[0].sql)[0].stmt
    if not isinstance(node, ast.UpdateStmt):
        raise ConfigError(
            f"{m.path.name}: a backfill migration holds one UPDATE statement",
            hint="put the other statements in a migration of their own",
        )
    rel: Any = node.relation
    table = (quote(rel.schemaname) + "." if rel.schemaname else "") + quote(rel.relname)
    label = (rel.schemaname + "." if rel.schemaname else "") + rel.relname
    ref = quote(rel.alias.aliasname if rel.alias else rel.relname)
    row = work.execute("SELECT to_regclass(%s)::oid", [table]).fetchone()
    if row is None or row[0] is None:
        raise ConfigError(
            f"{m.path.name}: table {label} does not exist",
            hint="create it (and its new column) in an earlier migration",
        )
    relid = int(row[0])
    key = options.key or _primary_key(work, relid, m, label)
    key_type = _column_type(work, relid, key, m, "key=")
    for column in options.not_null:
        _column_type(work, relid, column, m, "not-null=")
    k = quote(key)

    def bounded(first: bool) -> str:
        lower = "" if first else f"{ref}.{k} > current_setting('{_LO}')::{key_type} AND "
        select: Any = parse_sql(
            f"SELECT WHERE {lower}{ref}.{k} <= current_setting('{_HI}')::{key_type}"
        )[0].stmt
        extra = select.whereClause
        where = node.whereClause
        node.whereClause = (
            extra
            if where is None
            else ast.BoolExpr(boolop=enums.BoolExprType.AND_EXPR, args=(where, extra))
        )
        try:
            return str(RawStream()(node))
        finally:
            node.whereClause = where

    def bound(first: bool) -> str:
        after = "" if first else f" WHERE {k} > current_setting('{_LO}')::{key_type}"
        return (
            f"SELECT max(k)::text, count(*) FROM (SELECT {k} AS k FROM {table}{after} "
            f"ORDER BY {k} LIMIT {options.batch}) batch"
        )

    return BatchPlan(
        table, label, relid, key, key_type, bound(True), bound(False), bounded(True),
        bounded(False), options.not_null,
    )  # fmt: skip


def _primary_key(work: Any, relid: int, m: Migration, label: str) -> str:
    cols = [
        r[0]
        for r in work.execute(
            "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
            "AND a.attnum = ANY (i.indkey) WHERE i.indrelid = %s AND i.indisprimary",
            [relid],
        ).fetchall()
    ]
    if len(cols) != 1:
        what = "no primary key" if not cols else f"a primary key of {len(cols)} columns"
        raise ConfigError(
            f"{m.path.name}: table {label} has {what}, so the backfill has no key to batch by",
            hint="name a unique, indexed column: -- composekit:backfill key=COLUMN",
        )
    return str(cols[0])


def _column_type(work: Any, relid: int, column: str, m: Migration, option: str) -> str:
    row = work.execute(
        "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = %s "
        "AND attname = %s AND attnum > 0 AND NOT attisdropped",
        [relid, column],
    ).fetchone()
    if row is None:
        raise ConfigError(
            f"{m.path.name}: {option}{column} names no column of the UPDATE's table",
            hint=f"fix {option} in the '-- composekit:backfill' line",
        )
    return str(row[0])


@dataclass
class Backfiller:
    """Runs one backfill migration on ``work`` (autocommit; the migration lock held elsewhere)."""

    work: Any
    watch: BlockerWatch
    ledger: Ledger
    lock_timeout: float
    statement_timeout: float | None
    lock_retries: int
    retry_backoff: float
    progress: Progress

    def run(self, m: Migration, plan: BatchPlan, resume_at: str | None) -> int:
        """Every batch after ``resume_at`` (None: from the start), then the NOT NULLs; returns
        the number of rows updated by this run."""
        import psycopg

        options = m.backfill or Backfill()
        remaining_sql, params = plan.remaining_sql(resume_at)
        total = int(self.work.execute(remaining_sql, params).fetchone()[0])
        start = f"resuming after {plan.key} {resume_at}" if resume_at is not None else "starting"
        self.progress(
            f"{m.label}: backfill of {plan.label}, {start}: {total:,} rows to go in batches of "
            f"{options.batch:,} by {plan.key}, {options.pause * 1000:g} ms apart"
        )
        lo, seen, updated = resume_at, 0, 0
        t0 = last = time.monotonic()
        while True:

            def one(after: str | None = lo) -> tuple[str, int, int] | None:
                return self._batch(plan, m, after)

            try:
                batch = self._retrying(one, f"{m.path.name} (batch after {lo})")
            except psycopg.Error as exc:
                stmt = m.up.statements()[0]
                err = sql_error(m.up, exc, offset_of_line(m.up, stmt.line), [], "up", True)
                err.hint = (
                    f"fix {m.path.name}; the batches before {plan.key} {lo} stay committed, "
                    "and `composekit migrate up` resumes after them"
                )
                raise err from exc
            if batch is None:
                break
            lo, keys, rows = batch
            seen, updated = seen + keys, updated + rows
            now = time.monotonic()
            if now - last >= REPORT_EVERY:
                last = now
                rate = seen / max(now - t0, 1e-6)
                left = max(total - seen, 0) / rate if rate else 0
                self.progress(
                    f"{m.label}: {seen:,}/{total:,} rows ({100 * seen / max(total, 1):.0f}%), "
                    f"{rate:,.0f} rows/s, about {left:.0f}s left, at {plan.key} {lo}"
                )
            if options.pause:
                time.sleep(options.pause)
        self.progress(
            f"{m.label}: backfill done: {updated:,} rows updated in {time.monotonic() - t0:.1f}s"
        )
        for column in plan.not_null:
            self._not_null(plan, m, column)
        return updated

    def _batch(self, plan: BatchPlan, m: Migration, lo: str | None) -> tuple[str, int, int] | None:
        """One batch in one transaction, its ledger ``resume_at`` with it: (hi, keys, rows
        updated), or None when no key is left after ``lo``."""
        work = self.work
        with work.transaction():
            work.execute(
                "SELECT set_config('lock_timeout', %s, true)",
                [f"{int(self.lock_timeout * 1000)}ms"],
            )
            if self.statement_timeout:
                work.execute(
                    "SELECT set_config('statement_timeout', %s, true)",
                    [f"{int(self.statement_timeout * 1000)}ms"],
                )
            if lo is not None:
                work.execute(f"SELECT set_config('{_LO}', %s, true)", [lo])
            hi, keys = work.execute(plan.first_bound if lo is None else plan.next_bound).fetchone()
            if hi is None:
                return None
            work.execute(f"SELECT set_config('{_HI}', %s, true)", [hi])
            rows = work.execute(plan.first_update if lo is None else plan.next_update).rowcount
            work.execute(self.ledger.resume_at_sql(work, m.version, hi))
        return hi, int(keys), max(rows, 0)

    def _retrying(
        self,
        attempt_once: Callable[[], T],
        what: str,
        *,
        tries: int | None = None,
        backoff: float | None = None,
        timeout: float | None = None,
    ) -> T:
        """``attempt_once()``, retried with backoff (at most 2 s apart) on a lock timeout; the
        watch names who blocked."""
        import psycopg

        retries = self.lock_retries if tries is None else tries
        base = self.retry_backoff if backoff is None else backoff
        attempt = 0
        while True:
            attempt += 1
            try:
                with self.watch.watching() as watch:
                    return attempt_once()
            except psycopg.errors.LockNotAvailable as exc:
                who = blockers_text(watch.blockers)
                if attempt > retries:
                    raise MigrationError(
                        f"{what}: gave up after {attempt} tries: lock timeout "
                        f"({timeout or self.lock_timeout:g}s) waiting for {who}",
                        hint="end or wait out the blocking session; `composekit migrate up` "
                        "resumes after the last committed batch",
                    ) from exc
                wait = min(base * (2 ** (attempt - 1)), 2.0)
                if attempt <= 3 or attempt % 5 == 0:
                    self.progress(f"{what}: lock timeout waiting for {who}; retry in {wait:g}s")
                time.sleep(wait)

    def _ddl(self, statement: str, what: str) -> None:
        """A short ACCESS EXCLUSIVE step of the NOT NULL: it waits at most
        :data:`DDL_LOCK_TIMEOUT` for its lock — the app's queries queue behind a waiting ALTER,
        so a long wait (behind autovacuum, say) would stall them — and tries again, many times."""
        limit = min(self.lock_timeout, DDL_LOCK_TIMEOUT)

        def once() -> None:
            with self.work.transaction():
                self.work.execute(
                    "SELECT set_config('lock_timeout', %s, true)", [f"{int(limit * 1000)}ms"]
                )
                self.work.execute(statement)

        self._retrying(once, what, tries=DDL_TRIES, backoff=0.1, timeout=limit)

    def _not_null(self, plan: BatchPlan, m: Migration, column: str) -> None:
        import psycopg

        work, col = self.work, quote(column)
        row = work.execute(
            "SELECT attnotnull FROM pg_attribute WHERE attrelid = %s AND attname = %s",
            [plan.relid, column],
        ).fetchone()
        if row and row[0]:
            self.progress(f"{m.label}: {plan.label}.{column} is already NOT NULL")
            return
        check = quote(f"{plan.label.replace('.', '_')}_{column}_not_null"[:63])
        exists = work.execute(
            "SELECT 1 FROM pg_constraint WHERE conrelid = %s AND conname = %s",
            [plan.relid, check.strip('"').replace('""', '"')],
        ).fetchone()
        t0 = time.monotonic()
        if not exists:
            self._ddl(
                f"ALTER TABLE {plan.table} ADD CONSTRAINT {check} CHECK ({col} IS NOT NULL) NOT VALID",
                f"{m.path.name}: NOT NULL of {column}",
            )
        try:
            self._ddl(
                f"ALTER TABLE {plan.table} VALIDATE CONSTRAINT {check}",
                f"{m.path.name}: NOT NULL of {column}",
            )
        except psycopg.errors.CheckViolation as exc:
            nulls = work.execute(
                f"SELECT count(*) FROM {plan.table} WHERE {col} IS NULL"
            ).fetchone()[0]
            # the next run sweeps the whole table again: the NULLs may sit behind its last key
            work.execute(self.ledger.resume_at_sql(work, m.version, None))
            raise MigrationError(
                f"{m.path.name}: cannot make {plan.label}.{column} NOT NULL: {nulls:,} rows still "
                "have NULL there (written after their batch, or not matched by the UPDATE)",
                hint="make every writer fill the column (deploy that app first: backfills with "
                "not-null belong in contract migrations), then `composekit migrate up` runs it again",
            ) from exc
        self._ddl(
            f"ALTER TABLE {plan.table} ALTER COLUMN {col} SET NOT NULL",
            f"{m.path.name}: NOT NULL of {column}",
        )
        self._ddl(
            f"ALTER TABLE {plan.table} DROP CONSTRAINT IF EXISTS {check}",
            f"{m.path.name}: NOT NULL of {column}",
        )
        self.progress(
            f"{m.label}: {plan.label}.{column} is NOT NULL "
            f"(check, validate, set: {time.monotonic() - t0:.1f}s)"
        )
