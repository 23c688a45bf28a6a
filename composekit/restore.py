"""``composekit restore``: a verified backup of this project and database back in place — never
destructive.

Verifies the checksum and ``pg_restore --list`` first and checks where the backup came from
(project, database, cluster; anything else needs ``--foreign``); restores into a **scratch
database** — keeping object ownership for roles that exist — and checks its ledger version while the
app still serves; only then stops the services that use the database, takes the safety snapshot
(so it holds every write), swaps names in one transaction and puts back the database-level
settings, comment and ACL. A failed ``pg_restore`` leaves the live database as it was; every exit
path drops the scratch copy and starts what it stopped.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from composekit import proc
from composekit.backup import (
    SNAPSHOT_LABEL,
    Backup,
    find_backup,
    take_backup,
    verify_backup,
)
from composekit.dbtarget import DatabaseProps, DbState, DbTarget, PsqlSession, quote_ident
from composekit.errors import VerifyError
from composekit.progress import Meter, Progress, metering, no_meter, silent
from composekit.signals import shielded


@dataclass(frozen=True)
class RowChange:
    table: str
    replaced: int | None  # rows in the database that was replaced (None: the table was not there)
    restored: int | None  # rows after the restore (None: the backup has no such table)

    def __str__(self) -> str:
        def n(v: int | None) -> str:
            return "absent" if v is None else str(v)

        return f"{self.table} {n(self.replaced)} → {n(self.restored)}"


def row_changes(replaced: dict[str, int], restored: dict[str, int]) -> list[RowChange]:
    return [
        RowChange(t, replaced.get(t), restored.get(t))
        for t in sorted(replaced.keys() | restored.keys())
        if replaced.get(t) != restored.get(t)
    ]


@dataclass
class RestoreReport:
    restored: Backup
    snapshot: Backup | None
    database: str
    stopped: list[str]
    ledger_version: str | None
    duration_s: float
    row_changes: list[RowChange] | None = None
    """Per table, rows in the replaced database vs the restored one (only tables that differ)."""
    notes: list[str] = field(default_factory=list)  # what could not be restored as it was

    def to_dict(self) -> dict[str, Any]:
        return {
            "row_changes": None
            if self.row_changes is None
            else [c.__dict__ for c in self.row_changes],
            "restored": self.restored.to_dict(),
            "snapshot": self.snapshot.to_dict() if self.snapshot else None,
            "database": self.database,
            "stopped_and_restarted": self.stopped,
            "ledger_version": self.ledger_version,
            "duration_s": round(self.duration_s, 2),
            "notes": self.notes,
        }


def restore_backup(
    target: DbTarget,
    backups_dir: Path,
    name: str | None = None,
    *,
    snapshot: bool = True,
    stop_services: list[str] | None = None,
    compare_rows: bool = False,
    foreign: bool = False,
    timeout: float = 3600,
    progress: Progress = silent,
    before_stop: Callable[[list[str]], None] = lambda services: None,
    after_start: Callable[[list[str]], None] = lambda services: None,
    meter: Meter = no_meter,
) -> RestoreReport:
    """Restore ``name`` (default: the newest of this project and database) — verified first, its
    origin checked, restored into a scratch database keeping object ownership, the users stopped,
    a safety snapshot, an atomic name swap, the database-level properties put back. Raises before
    touching anything if the backup does not verify or comes from elsewhere (unless ``foreign``)."""
    t0 = time.monotonic()
    b = find_backup(backups_dir, name, of=(target.project.name, target.database))
    progress(f"verifying {b.path.name}")
    # all at once: verify the archive, create the scratch database, read the live one and check
    # the origin (a verify that fails leaves its thread to end by itself: a hash in this process,
    # a --list that reads the TOC; anything that fails drops the scratch database again)
    verifying = proc.Later(lambda: verify_backup(target, b))
    scratch, old = side_databases(target.database)
    q = quote_ident
    creating = proc.Later(
        lambda: target.psql(
            f"DROP DATABASE IF EXISTS {q(scratch)} WITH (FORCE)",
            f"CREATE DATABASE {q(scratch)} OWNER {q(target.user)}",
            database="postgres",
        )
    )
    stopped: list[str] = []
    snap = changes = None
    notes: list[str] = []
    try:
        here = target.read_state()
        check_origin(b, target, here, foreign)
        creating.result()
        listing = verifying.result()
        progress(f"restoring {b.path.name} into scratch database {scratch}")
        roles = set(here.roles)
        missing = sorted(_owners(listing) - roles)
        if missing:
            notes.append(
                f"objects owned by {', '.join(missing)} (no such role here) now belong to {target.user}"
            )
        _load_into(target, b, scratch, timeout, keep_owners=not missing, meter=meter)
        restored_ledger = target.ledger_version(scratch)
        if b.ledger_version is not None and restored_ledger != b.ledger_version:
            raise VerifyError(
                f"restored ledger version {restored_ledger} differs from the manifest's {b.ledger_version}",
                hint="the backup does not hold what its manifest says; use another backup",
            )
        props_sql, props_notes = DatabaseProps.from_dict(b.database_props).to_sql(
            target.database, roles
        )
        notes += props_notes
        stopped = _running_users(target, stop_services or [])
        before_stop(stopped)  # e.g. into the journal: started again, should this run be killed
        if stopped:
            progress(f"stopping {', '.join(stopped)} for the swap")
            target.project.stop(stopped)
        # with its users stopped, the live database holds its final rows: the snapshot loses none
        if snapshot:
            snap = take_backup(
                target, backups_dir, label=SNAPSHOT_LABEL, keep=None, progress=progress,
                meter=meter,
            )  # fmt: skip
        if compare_rows:
            changes = row_changes(target.row_counts(), target.row_counts(scratch))
        progress(f"swapping {scratch} in as {target.database}")
        with shielded(reraise=False) as late:  # the swap is the commit point: it finishes
            _swap(target, scratch, props_sql if b.database_props else [])
        if late:
            progress("a signal arrived during the swap: too late to stop, the restore is done")
    except BaseException:
        with shielded():  # a signal while cleaning up must not leave a full copy of the data
            if not creating.failed():  # one that failed (the database is down, say) made none
                _drop_scratch(target, scratch)
        raise
    finally:
        if stopped:
            with shielded():
                progress(f"starting {', '.join(stopped)} again")
                target.project.start(stopped)
                after_start(stopped)
    # only now, with the users back: PostgreSQL 15's DROP DATABASE forces a checkpoint, which
    # writes out the whole restored copy (seconds on a large one) — they need not wait for it
    progress(f"dropping the replaced copy {old}")
    with shielded(reraise=False) as late:  # the restore is done: this finishes too
        target.psql(f"DROP DATABASE IF EXISTS {quote_ident(old)} WITH (FORCE)", database="postgres")
    if late:
        progress("a signal arrived while dropping the replaced copy: it finished first")
    for note in notes:
        progress(f"note: {note}")
    return RestoreReport(  # the restored ledger was read from the scratch database before the swap
        b, snap, target.database, stopped, restored_ledger, time.monotonic() - t0, changes, notes
    )


def _drop_scratch(target: DbTarget, scratch: str, wait: float = 15) -> None:
    """Drop the scratch copy — and again if it comes back: a ``CREATE DATABASE`` whose client the
    signal ended still runs to its commit inside the container."""
    q, lit = quote_ident(scratch), scratch.replace("'", "''")
    deadline = time.monotonic() + wait
    while True:
        left = target.psql(
            f"DROP DATABASE IF EXISTS {q} WITH (FORCE)",
            "SELECT count(*) FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND "
            f"query ILIKE '%CREATE DATABASE%{lit}%'",
            database="postgres",
        )
        if left.splitlines()[-1:] == ["0"] or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    target.psql(f"DROP DATABASE IF EXISTS {q} WITH (FORCE)", database="postgres")


def side_databases(database: str) -> tuple[str, str]:
    """(the scratch copy a restore loads into, the replaced database a swap drops): what a killed
    restore may leave behind."""
    return f"{database}__ck_restore"[:63], f"{database}__ck_old"[:63]


def check_origin(b: Backup, target: DbTarget, here: DbState, foreign: bool) -> None:
    """A backup restores into the project, database and cluster it was taken from; anything else
    is a deliberate act (``--foreign``)."""
    if foreign:
        return
    project = target.project.name
    if not b.verified:
        why = f"{b.path.name} has no manifest, so where it came from is unknown"
    elif (b.compose_project, b.database) != (project, target.database):
        why = (
            f"{b.path.name} is a backup of database {b.database} of project {b.compose_project}, "
            f"not of {target.database} of {project}"
        )
    elif (
        b.system_identifier
        and here.system_identifier
        and (b.system_identifier != here.system_identifier)
    ):
        why = (
            f"{b.path.name} was taken from another cluster (system identifier "
            f"{b.system_identifier}; this one is {here.system_identifier}): another machine's "
            "database, or this volume before it was created anew"
        )
    else:
        return
    raise VerifyError(
        f"refusing to restore: {why}; nothing was changed",
        hint="if that is what you mean (a dump from the old shell script, a copy of production, "
        "a volume created anew), pass --foreign",
    )


def _owners(listing: str) -> set[str]:
    """The roles owning the objects of a ``pg_restore --list`` (the last field of each entry)."""
    owners = set()
    for line in listing.splitlines():
        if line and not line.startswith(";") and ";" in line:
            fields = line.split()
            if len(fields) >= 6:
                owners.add(fields[-1])
    return owners


def _swap(target: DbTarget, scratch: str, then: list[str]) -> None:
    """The restored database takes the live one's name, both renames in one transaction (a
    failure between them cannot leave no database under the live name). The replaced one is
    dropped by the caller once the users run again (or by the next restore, if this one is
    killed first)."""
    q = quote_ident
    _, old = side_databases(target.database)
    live = target.database.replace("'", "''")
    target.psql(
        f"DROP DATABASE IF EXISTS {q(old)} WITH (FORCE)",
        # wait (up to 5 s each) until the terminated sessions are gone, so the rename finds none
        "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity "
        f"WHERE datname = '{live}' AND pid <> pg_backend_pid()",
        f"ALTER DATABASE {q(target.database)} RENAME TO {q(old)}; "
        f"ALTER DATABASE {q(scratch)} RENAME TO {q(target.database)}",
        *then,  # its properties: they belong to the name, which it has only now
        database="postgres",
    )


def _load_into(
    target: DbTarget,
    b: Backup,
    database: str,
    timeout: float,
    *,
    keep_owners: bool,
    meter: Meter = no_meter,
) -> None:
    if b.format == "plain":
        argv = [
            "psql",
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "--single-transaction",
            "-U",
            target.user,
            "-d",
            database,
        ]
    else:
        # no --single-transaction: a scratch database that fails is dropped whole; each object
        # keeps its owner when every owning role exists here
        argv = ["pg_restore", "--exit-on-error"]
        argv += [] if keep_owners else ["--no-owner", "--role", target.user]
        argv += ["-U", target.user, "-d", database]
    with open(b.path, "rb") as inp, LoadWatch(target, database) as watch:
        # the child reads our open file: its offset (shared) is how far the restore has come
        where = inp.fileno()
        try:
            with metering(
                meter,
                f"restoring {b.path.name}",
                b.path.stat().st_size,
                lambda: os.lseek(where, 0, os.SEEK_CUR),
                phase=watch.look,
                phase_every=1,
            ):
                target.project.exec_from_file(target.service, argv, inp, timeout=timeout)
        except proc.CommandFailed as exc:
            last = load_error(exc.stderr) or f"exit {exc.returncode}"
            raise VerifyError(
                f"restoring {b.path.name} failed: {last}; the live database {target.database} was not touched",
                hint="the backup does not load cleanly; use another backup",
            ) from exc


class LoadWatch:
    """What ``pg_restore`` is doing in ``database`` — its phase, for the meter, which calls
    :meth:`look` from its own thread — read from a psql session of its own, opened at the first
    look (none without a meter): a round trip per look, not a ``docker exec``."""

    QUERY = (
        "SELECT upper(translate(left(query, 200), E'\\n\\r\\t|', '    ')) FROM pg_stat_activity "
        "WHERE datname = %s AND application_name = 'pg_restore' AND state = 'active'"
    )

    def __init__(self, target: DbTarget, database: str) -> None:
        self.target, self.database = target, database
        self.seen: list[str] = []  # each phase as it began
        self._session: PsqlSession | None = None

    def __enter__(self) -> LoadWatch:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._session is not None:
            self._session.close()

    def look(self) -> str:
        """The phase now; raises what the session raises (the meter then shows none)."""
        if self._session is None:
            self._session = self.target.session("composekit restore watch")
        row = self._session.execute(self.QUERY, [self.database]).fetchone()
        phase = phase_of(row[0] if row else "")
        if phase and self.seen[-1:] != [phase]:
            self.seen.append(phase)
        return phase


def load_error(stderr: str) -> str:
    """The server's error in what ``pg_restore`` (or ``psql``) printed as it failed — not its last
    line, which is often the statement it ran, or the caret under the failing character."""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    for ln in lines:
        if "ERROR:" in ln:
            return " ".join(ln[ln.index("ERROR:") :].split())
    for ln in lines:
        if ln.startswith("pg_restore: error:"):
            return ln.removeprefix("pg_restore: error:").strip()
    return next((ln for ln in reversed(lines) if set(ln) - set("^ ")), "")


def phase_of(query: str) -> str:
    """What ``pg_restore`` is doing, from the query it runs: ``data``, ``indexes``,
    ``constraints`` or ``schema`` ("" when it runs none)."""
    query = query.upper()
    # (an ALTER TABLE without ADD CONSTRAINT is schema: … OWNER TO, … ALTER COLUMN … SET DEFAULT)
    for word, phase in (("COPY ", "data"), ("CREATE INDEX", "indexes"),
                        ("CREATE UNIQUE INDEX", "indexes"), ("ADD CONSTRAINT", "constraints")):  # fmt: skip
        if word in query:
            return phase
    return "schema" if query.strip() else ""


def _running_users(target: DbTarget, services: list[str]) -> list[str]:
    """Which of ``services`` (the database's users) run now: those the restore stops, and must
    start again on every way out — so the list is known before the first one is stopped."""
    known = set(target.project.services())
    services = [s for s in services if s in known and s != target.service]
    running = [s.service for s in target.project.ps(services, all=False)] if services else []
    return sorted(set(running))
