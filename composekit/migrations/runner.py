"""The migrator: plans runs and applies them under the migration lock.

* **Exactly once.** A session-level ``pg_advisory_lock`` is taken on a connection of its own (the
  *lock connection*) and held for the whole run, outside any transaction, so that
  ``CREATE INDEX CONCURRENTLY`` on the *work connection* never waits for it. PostgreSQL releases
  it if the process dies. A waiter names the holder (pid, application_name, since).
* How each migration is sent (one message, or statement by statement) is in :mod:`.apply`;
  drift between files and ledger in :mod:`.drift`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from composekit.db import BlockerWatch, advisory_lock, connect, lock_key, who_am_i
from composekit.errors import MigrationError, UsageError, VerifyError
from composekit.migrations.apply import Applier, drop_index, invalid_indexes
from composekit.migrations.drift import compare, drift_error, problem_hint
from composekit.migrations.ledger import Ledger, LedgerRow
from composekit.migrations.rehearsal import (
    REHEARSAL_PREFIX,
    SCHEMA_FINGERPRINT,
    LockSampler,
    MigrationRehearsal,
    Rehearsal,
    Snapshot,
)
from composekit.migrations.results import (
    Applied,
    Direction,
    PlannedStep,
    ProblemKind,
    RunResult,
    Status,
)
from composekit.migrations.source import PHASES, Migration, Source, load_source, version_key
from composekit.progress import Progress, silent

if TYPE_CHECKING:
    from composekit.config import Settings


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
        progress: Progress = silent,
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
        self._watch: BlockerWatch | None = None  # set while a run holds the lock
        # a statement running longer than this says how far it is (then every long_every s)
        self.long_after = 5.0
        self.long_every = 10.0

    @classmethod
    def from_settings(
        cls, settings: Settings, progress: Progress = silent, **overrides: Any
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
        exists = self.ledger.exists(conn)
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
    def _select_up(
        self, st: Status, target: str | None, steps: int | None, phase: str = "all"
    ) -> list[Migration]:
        todo = st.pending
        if phase == "expand":  # up to the first contract migration: the rest after the rollout
            first = next((i for i, m in enumerate(todo) if m.contract), len(todo))
            todo = todo[:first]
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
                missing = {
                    "golang-migrate": f"there is no {m.version}_{m.name}.down.sql",
                    "flyway": f"there is no U{m.version}__{m.name}.sql",
                }.get(m.format, "it has no down section")
                raise MigrationError(
                    f"cannot revert {m.path.name}: {missing}",
                    hint="add a '-- migrate:down' section (or a .down.sql / U file), or restore from a backup",
                )
            out.append((r, m))
        return out

    def plan(
        self, direction: str = Direction.UP, target: str | None = None, steps: int | None = None
    ) -> list[PlannedStep]:
        """What ``up``/``down`` would run, without changing anything."""
        st = self.status()
        if direction == Direction.UP:
            return [PlannedStep(m, Direction.UP, m.up) for m in self._select_up(st, target, steps)]
        return [
            PlannedStep(m, Direction.DOWN, m.down)
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
                    self._watch = BlockerWatch(
                        lock_conn,
                        work.info.backend_pid,
                        self.lock_timeout,
                        self.progress,
                        self.long_after,
                        self.long_every,
                    )
                    try:
                        yield lock_conn, work
                    finally:
                        self._watch.close()
                        self._watch = None
                finally:
                    work.close()
        finally:
            lock_conn.close()

    def _resumable(self, st: Status) -> list[tuple[LedgerRow, Migration]]:
        """Dirty rows of backfill migrations: ``up`` carries on where they stopped."""
        files = {m.key: m for m in self.source.migrations}
        out = []
        for r in st.applied:
            m = files.get(r.key)
            if r.dirty and m is not None and m.backfill is not None:
                out.append((r, m))
        return out

    def _preconditions(self, st: Status, allow_out_of_order: bool) -> None:
        resumable = {r.version for r, _ in self._resumable(st)}
        dirty = [p for p in st.of_kind(ProblemKind.DIRTY) if p.version not in resumable]
        if dirty:
            raise MigrationError(
                f"migration {dirty[0].version} is dirty: {dirty[0].detail}",
                hint="run `composekit migrate repair` (drops INVALID indexes it left and lets `up` retry it)",
            )
        drift = st.of_kind(ProblemKind.EDITED, ProblemKind.MISSING)
        if drift:
            p = drift[0]
            raise VerifyError(
                f"{p.kind} migration {p.version}: {p.detail}; nothing was applied",
                hint=problem_hint(p.kind),
                details=[d.describe() for d in drift[1:]],
            )
        ooo = st.of_kind(ProblemKind.OUT_OF_ORDER)
        if ooo and not allow_out_of_order:
            raise VerifyError(
                f"out-of-order migration {ooo[0].version}: {ooo[0].detail}; nothing was applied",
                hint=problem_hint(ProblemKind.OUT_OF_ORDER),
            )

    def upgrade(
        self,
        target: str | None = None,
        steps: int | None = None,
        atomic: bool = False,
        allow_out_of_order: bool | None = None,
        phase: str = "all",
    ) -> RunResult:
        """Apply pending migrations (all, up to ``target``, or the next ``steps``). ``phase``
        ``expand``: only those before the first pending contract migration (a deploy applies
        the rest after the web rollout); ``contract`` or ``all``: every pending one."""
        if phase not in PHASES:
            raise UsageError(f"unknown phase {phase!r}", hint=f"use one of: {', '.join(PHASES)}")
        allow = self.allow_out_of_order if allow_out_of_order is None else allow_out_of_order
        with self._locked() as (_, work):
            st = self._status(work)
            self._preconditions(st, allow)
            todo = self._select_up(st, target, steps, phase)
            resume = self._resumable(st)
            if phase == "expand" and any(m.contract for _, m in resume):
                resume, todo = [], []  # a stopped contract backfill: nothing expands past it
            if atomic and resume:
                raise UsageError(
                    f"--atomic cannot include the stopped backfill {resume[0][1].path.name}",
                    hint="run `composekit migrate up` without --atomic to finish it first",
                )
            if atomic:
                bad = [m for m in todo if not m.transactional]
                if bad:
                    raise UsageError(
                        f"--atomic cannot include non-transactional {bad[0].path.name} ({bad[0].reason})",
                        hint="run without --atomic, or apply up to the migration before it",
                    )
            if not todo and not resume:
                return RunResult(Direction.UP, [], st.current, notes=["database is up to date"])
            applier = self._applier(work)
            try:
                done: list[Applied] = [applier.backfill(m, row) for row, m in resume]
                if atomic:
                    done = applier.apply_atomic(todo)
                else:
                    for m in todo:
                        done.append(applier.apply(m, done))
            finally:
                _flush(applier)
            return RunResult(Direction.UP, done, done[-1].version if done else st.current)

    def downgrade(self, steps: int | None = None, target: str | None = None) -> RunResult:
        """Revert the newest ``steps`` (default 1) migrations, or all above ``target`` (``0``: all)."""
        with self._locked() as (_, work):
            st = self._status(work)
            if st.of_kind(ProblemKind.DIRTY):  # (a stopped backfill can be reverted)
                self._preconditions(st, True)
            todo = self._select_down(st, target, steps)
            applier = self._applier(work)
            done: list[Applied] = []
            try:
                for row, m in todo:
                    done.append(applier.revert(row, m, done))
            finally:
                _flush(applier)
            rows = self.ledger.rows(work)
            return RunResult(Direction.DOWN, done, rows[-1].version if rows else None)

    def _applier(self, work: Any) -> Applier:
        assert self._watch is not None, "only inside _locked()"
        return Applier(
            work,
            self._watch,
            self.ledger,
            self.who,
            self.lock_timeout,
            self.statement_timeout,
            self.lock_retries,
            self.retry_backoff,
            self.progress,
        )

    # -- rehearsal -----------------------------------------------------------------------------------
    def rehearse(self, check_downs: bool = True) -> Rehearsal:
        """Apply every pending migration (in deploy's order: expand, then contract) on a
        throwaway copy, measuring each (see :mod:`.rehearsal`), then revert them with their down
        sections and compare the schema. Refused on a database not named ``composekit_rehearse_*``."""
        from composekit.errors import ComposekitError

        probe = self._connect(" probe")
        try:
            db = _throwaway_copy(probe)
            stats = probe.info.server_version >= 150000
            report = Rehearsal(db, [])
            with self._locked() as (_, work):
                st = self._status(work)
                self._preconditions(st, self.allow_out_of_order)
                start = st.current
                fingerprint = _fingerprint(probe, self.ledger.name)
                applier = self._applier(work)
                done: list[Applied] = []
                for m in self._select_up(st, None, None, "all"):
                    before = Snapshot.take(probe, self.ledger.table, stats)
                    self.progress(f"rehearsing {m.label}")
                    t0 = time.perf_counter()
                    error = ""
                    with LockSampler(probe, work.info.backend_pid) as sampler:
                        try:
                            done.append(applier.apply(m, done))
                        except ComposekitError as exc:
                            error = exc.message
                    ms = int((time.perf_counter() - t0) * 1000)
                    if stats:
                        work.execute("SELECT pg_stat_force_next_flush()")
                    after = Snapshot.take(probe, self.ledger.table, stats)
                    touched = (
                        after.touched - before.touched
                        if after.touched is not None and before.touched is not None
                        else None
                    )
                    report.migrations.append(
                        MigrationRehearsal(
                            m.version,
                            m.name,
                            ms,
                            sampler.held(before.tables),
                            touched,
                            before.rewritten(after),
                            sorted(after.invalid - before.invalid),
                            error,
                        )
                    )
                    if error:
                        break
                rows = self.ledger.rows(work)
                report.ledger_after = rows[-1].version if rows else None
            report.start, report.schema_before = start, fingerprint
            if check_downs and report.migrations and not report.failed:
                ok, notes = self._downs_back_to(probe, start, fingerprint)
                report.downs_restore_schema, report.down_notes = ok, notes
            return report
        finally:
            probe.close()

    def rehearse_downs(
        self, start: str | None, schema_before: str
    ) -> tuple[bool | None, list[str]]:
        """On the throwaway copy: revert down to ``start`` with the down sections; whether the
        schema is ``schema_before`` again (its fingerprint digest), and notes."""
        with self._connect(" probe") as probe:
            _throwaway_copy(probe)
            return self._downs_back_to(probe, start, schema_before)

    def _downs_back_to(
        self, probe: Any, start: str | None, schema_before: str
    ) -> tuple[bool | None, list[str]]:
        from composekit.errors import ComposekitError

        try:
            self.downgrade(target=start or "0")
        except ComposekitError as exc:
            return None, [f"down sections not checked: {exc.message}"]
        if _fingerprint(probe, self.ledger.name) == schema_before:
            return True, []
        return False, ["after the down sections the schema differs from before the migrations"]

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
                    marked.append(
                        Applied(m.version, m.name, 0, m.transactional, Direction.BASELINE)
                    )
            self.progress(f"baseline: marked {len(marked)} migration(s) as applied up to {version}")
            return RunResult(Direction.UP, marked, version, notes=[f"baseline at {version}"])

    def repair(self, forget: list[str] | None = None) -> list[str]:
        """Clean up after an interrupted non-transactional migration: drop INVALID indexes it
        left, remove its dirty ledger row so ``up`` retries it. ``forget`` removes ledger rows of
        migrations whose files were deleted on purpose."""
        actions: list[str] = []
        with self._locked() as (_, work):
            st = self._status(work)
            forgotten = []  # every version checked before any row is touched
            for version in forget or []:
                match = [r for r in st.applied if r.key == _key_of(version)]
                if not match:
                    raise UsageError(
                        f"{version} is not in {self.ledger.table}; nothing was changed",
                        hint="see `composekit migrate status` for the applied versions",
                    )
                forgotten.append(match[0].version)
            files = {m.key: m for m in self.source.migrations}
            for row in st.applied:
                if not row.dirty:
                    continue
                m = files.get(row.key)
                for idx in invalid_indexes(work, m.up.sql if m else None):
                    drop_index(work, idx)
                    actions.append(f"dropped INVALID index {'.'.join(idx)} left by {row.version}")
                work.execute(self.ledger.delete_sql(work, row.version))
                actions.append(
                    f"cleared dirty entry {row.version}; `composekit migrate up` will run it again"
                )
            for version in forgotten:
                work.execute(self.ledger.delete_sql(work, version))
                actions.append(f"forgot ledger entry {version}")
        if not actions:
            actions.append("nothing to repair")
        for a in actions:
            self.progress(a)
        return actions


def _throwaway_copy(probe: Any) -> str:
    """The database ``probe`` is on, refused (:class:`UsageError`) unless it is a rehearsal's
    throwaway copy: the engine rehearses, and reverts for a rehearsal, nowhere else."""
    db = str(probe.execute("SELECT current_database()").fetchone()[0])
    if not db.startswith(REHEARSAL_PREFIX):
        raise UsageError(
            f"refusing to rehearse on database {db!r}: it is not a throwaway copy",
            hint="`composekit rehearse` makes one from a backup and runs this there",
        )
    return db


def _flush(applier: Applier) -> None:
    """The run's commits durable before it reports (after a failure too, if the server is up)."""
    try:
        applier.flush()
    except Exception:  # the connection is gone: there is nothing left to flush through it
        pass


def _fingerprint(conn: Any, ledger_name: str) -> str:
    """A digest of the schema (columns, indexes, constraints, views, enums; the ledger left out)."""
    import hashlib

    text = str(conn.execute(SCHEMA_FINGERPRINT, {"ledger": ledger_name}).fetchone()[0])
    return hashlib.sha256(text.encode()).hexdigest()


def _key_of(version: str) -> tuple[int, ...]:
    """A version given on the command line, as :func:`version_key`; not one is a usage error."""
    try:
        return version_key(version)
    except ValueError:
        raise UsageError(
            f"{version!r} is not a migration version", hint="versions are numbers, e.g. 0003"
        ) from None
