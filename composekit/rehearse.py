"""``composekit rehearse``: the pending migrations, run on a throwaway copy of production first.

1. The newest verified backup of this project and database (or one named) is verified again
   (checksum, ``pg_restore --list``) and restored into a throwaway database
   ``composekit_rehearse_<id>`` **in the running db container**: the same server, version and
   settings as production, and no second server to start. It needs room for one more copy, which
   is checked first (the database's size against the free space of the data directory).
2. The app's image runs composekit's engine against the copy, exactly as a deploy would (expand,
   then contract), measuring each migration (:mod:`composekit.migrations.rehearsal`).
3. On the migrated copy: the ``verify/*.sql`` checks and, if set, the expected-schema compare.
4. The down sections are run on the copy and the schema compared with the one before.

The copy is always dropped — after an error, Ctrl-C or SIGTERM too; one left by a killed run
(SIGKILL) is dropped by the next rehearsal.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from composekit.backup import Backup, find_backup, verify_backup
from composekit.checks import compare_schema, run_checks
from composekit.dbtarget import DbTarget, quote_ident, quote_literal
from composekit.errors import ComposekitError, ConfigError, VerifyError
from composekit.migrations import REHEARSAL_PREFIX, Rehearsal
from composekit.progress import Meter, Progress, no_meter, silent
from composekit.restore import _drop_scratch, _load_into, _owners
from composekit.signals import shielded

REHEARSAL_LINE = "composekit-rehearsal: "
WHERE = (
    "a throwaway database in the running db container: the same server, version and settings "
    "as production, no second server to start"
)

RunEngine = Callable[[list[str]], tuple[int, list[str]]]
"""Runs ``composekit migrate rehearse <args>`` in the app's image; (exit code, output lines)."""


@dataclass
class RehearseReport:
    backup: Backup
    database: str
    where: str
    restore_s: float
    engine: Rehearsal
    checks: list[str] = field(default_factory=list)  # verify/*.sql and the schema compare
    check_failed: str = ""
    duration_s: float = 0.0
    notes: list[str] = field(default_factory=list)
    copy_dropped: bool = False

    def problems(self, max_lock_ms: int | None) -> list[str]:
        """What makes ``deploy --rehearse`` refuse: a failure, or an ACCESS EXCLUSIVE lock on a
        non-empty table held longer than ``max_lock_ms``."""
        out = []
        if self.engine.failed:
            out.append(f"{self.engine.failed.version} fails: {self.engine.failed.error}")
        if self.check_failed:
            out.append(self.check_failed)
        for m in self.engine.migrations:
            lock = m.longest("AccessExclusiveLock")
            if max_lock_ms is not None and lock is not None and lock.ms > max_lock_ms:
                out.append(
                    f"{m.version}_{m.name} holds ACCESS EXCLUSIVE on {lock.relation} "
                    f"({lock.rows:,} rows) for {lock.ms} ms, over max_lock_ms = {max_lock_ms}"
                )
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "backup": self.backup.path.name,
            "database": self.database,
            "where": self.where,
            "restore_s": round(self.restore_s, 2),
            **self.engine.to_dict(),
            "checks": self.checks,
            "check_failed": self.check_failed,
            "duration_s": round(self.duration_s, 2),
            "notes": self.notes,
            "copy_dropped": self.copy_dropped,
        }


def engine_runner(
    project: Any, service: str, inside: str, deadline: Callable[[], float], progress: Progress
) -> RunEngine:
    """How the engine runs against the copy: ``docker compose run`` of the migrate service (its
    image holds composekit and the pending migrations in ``inside``), the database URL its own."""

    def run(args: list[str]) -> tuple[int, list[str]]:
        lines: list[str] = []

        def show(line: str) -> None:
            lines.append(line)
            if line.strip() and not line.startswith(REHEARSAL_LINE):
                progress(f"  rehearse | {line}")

        argv = ["composekit", "migrate", "rehearse", "--dir", inside, *args]
        r = project.run(service, argv, timeout=deadline(), on_line=show, no_deps=True)
        return r.returncode, lines

    return run


def drop_leftovers(target: DbTarget, progress: Progress = silent) -> int:
    """Throwaway copies nobody is connected to (a rehearsal killed with SIGKILL) are dropped;
    returns the database's size (one round trip for both)."""
    pattern = REHEARSAL_PREFIX.replace("_", "\\_") + "%"
    out = target.psql(
        f"SELECT pg_database_size({quote_literal(target.database)})",
        "SELECT datname FROM pg_database d WHERE datname LIKE "
        f"'{pattern}' AND NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.datname = d.datname)",
        database="postgres",
    ).split()
    for name in out[1:]:
        progress(f"dropping {name}, left by a rehearsal that was killed")
        target.psql(
            f"DROP DATABASE IF EXISTS {quote_ident(name)} WITH (FORCE)", database="postgres"
        )
    return int(out[0]) if out and out[0].isdigit() else 0


def check_room(target: DbTarget, size: int) -> None:
    """One more copy of the database (``size`` bytes) must fit in the data directory's free space."""
    df = target.project.exec(
        target.service, ["sh", "-c", 'df -Pk "${PGDATA:-/var/lib/postgresql/data}"'], timeout=30
    ).stdout.split()
    free = int(df[-3]) * 1024 if len(df) >= 4 and df[-3].isdigit() else None
    if free is not None and free < size * 1.2:
        raise ConfigError(
            f"no room for a throwaway copy: the database is {size // 2**20} MB and the data "
            f"directory has {free // 2**20} MB free",
            hint="free disk space in the db container's volume, or rehearse on a staging host",
        )


def rehearse_migrations(
    target: DbTarget,
    backups_dir: Path,
    run_engine: RunEngine,
    name: str | None = None,
    *,
    expected_schema: Path | None = None,
    checks_dir: Path | None = None,
    timeout: float = 3600,
    progress: Progress = silent,
    meter: Meter = no_meter,
) -> RehearseReport:
    """Restore a backup into a throwaway copy, migrate it measuring each migration, check it,
    revert it; the copy is dropped on every way out."""
    t0 = time.monotonic()
    size = drop_leftovers(target, progress)
    b = find_backup(backups_dir, name, of=(target.project.name, target.database))
    notes = []
    live = target.ledger_version()
    if b.ledger_version != live:
        notes.append(
            f"{b.path.name} is at {b.ledger_version or 'no migration'} but the live database at "
            f"{live or 'no migration'}: the copy is not production as it is now "
            "(`composekit backup` takes a fresh one)"
        )
        progress(f"note: {notes[-1]}")
    progress(f"verifying {b.path.name}")
    listing = verify_backup(target, b)
    check_room(target, size)
    copy = f"{REHEARSAL_PREFIX}{uuid.uuid4().hex[:10]}"
    progress(f"restoring {b.path.name} into {copy} ({WHERE})")
    created = False
    try:
        target.psql(
            f"CREATE DATABASE {quote_ident(copy)} OWNER {quote_ident(target.user)}",
            database="postgres",
        )
        created = True
        t1 = time.monotonic()
        keep_owners = not (_owners(listing) - target.roles())
        _load_into(target, b, copy, timeout, keep_owners=keep_owners, meter=meter)
        restore_s = time.monotonic() - t1
        checks = bool(checks_dir and list(checks_dir.glob("*.sql"))) or bool(
            expected_schema and expected_schema.is_file()
        )
        # with nothing to check on the migrated copy, one run of the engine does the downs too
        args = ["--database", copy] + (["--no-downs"] if checks else [])
        engine = Rehearsal.from_dict(_engine_report(run_engine, args))
        report = RehearseReport(b, copy, WHERE, restore_s, engine, notes=notes)
        if not engine.failed and checks:
            _check(target, copy, report, expected_schema, checks_dir)
            if engine.migrations:
                back = _engine_report(
                    run_engine,
                    ["--database", copy, "--downs-to", engine.start or "0",
                     "--schema-before", engine.schema_before],
                )  # fmt: skip
                engine.downs_restore_schema = back["downs_restore_schema"]
                engine.down_notes = list(back["down_notes"])
        report.duration_s = time.monotonic() - t0
    finally:
        with shielded(reraise=False):  # a second signal must not leave the copy behind
            if created:
                target.psql(f"DROP DATABASE IF EXISTS {quote_ident(copy)} WITH (FORCE)",
                            database="postgres")  # fmt: skip
            else:  # a signal during CREATE DATABASE: it may still commit in the container
                _drop_scratch(target, copy)
            progress(f"dropped {copy}")
    report.copy_dropped = True
    return report


def _engine_report(run_engine: RunEngine, args: list[str]) -> dict[str, Any]:
    code, lines = run_engine(args)
    found = [ln for ln in lines if ln.startswith(REHEARSAL_LINE)]
    if code != 0 or not found:
        err = next((ln[7:] for ln in reversed(lines) if ln.startswith("error: ")), "")
        raise ComposekitError(
            f"the rehearsal in the app's image failed (exit {code}): {err or 'see its output'}",
            hint="its image needs composekit ≥ 0.3 (`composekit vendor`, then build)",
            details=[ln for ln in lines if ln.strip()][-8:],
        )
    report: dict[str, Any] = json.loads(found[-1][len(REHEARSAL_LINE) :])
    return report


def _check(
    target: DbTarget,
    copy: str,
    report: RehearseReport,
    expected_schema: Path | None,
    checks_dir: Path | None,
) -> None:
    """The migrated copy through the project's checks and expected schema, as deploy's verify
    step runs them; the first failure goes in ``report.check_failed``."""
    try:
        names = run_checks(target, checks_dir, copy) if checks_dir else []
        report.checks += [f"{name} passed" for name in names]
        if expected_schema is not None and expected_schema.is_file():
            report.checks.append(compare_schema(target, expected_schema, copy))
    except VerifyError as exc:
        report.check_failed = f"on the copy, {exc.message}"


def refuse(report: RehearseReport, max_lock_ms: int | None) -> None:
    """Raise :class:`VerifyError` (exit 6) naming what the rehearsal found unsafe."""
    problems = report.problems(max_lock_ms)
    if problems:
        raise VerifyError(
            f"the rehearsal refuses this deploy: {problems[0]}",
            hint="make the migration lock less (see `composekit lint`), raise [deploy] "
            "max_lock_ms, or deploy without --rehearse",
            details=problems[1:],
        )
