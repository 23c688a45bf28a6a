"""Backups: take, verify, list, prune and restore — never destructive.

* ``pg_dump -Fc`` runs **inside** the db container (its version always matches the server) and
  streams byte-for-byte to a temp file on the host; only after sha256 and ``pg_restore --list``
  pass is it renamed into place with its manifest. A crash never leaves a file that looks valid.
* Restore verifies the checksum first, restores into a **scratch database** and checks its
  ledger version while the app still serves; only then stops the services that use the database,
  takes the safety snapshot (so it holds every write), and swaps names with the live database.
  A failed ``pg_restore`` leaves the live database as it was.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from composekit import proc
from composekit.dbtarget import DatabaseProps, DbState, DbTarget, quote_ident
from composekit.errors import ComposekitError, DockerError, UsageError, VerifyError
from composekit.files import private_dir, write_private
from composekit.progress import Progress, silent
from composekit.signals import shielded

DUMP_SUFFIX = ".dump"
SQL_SUFFIX = ".sql"
SNAPSHOT_LABEL = "pre-restore-snapshot"
_KINDS = {"pre-deploy": "pre-deploy", SNAPSHOT_LABEL: "snapshot"}


@dataclass
class Backup:
    name: str
    path: Path
    database: str
    server_version: str
    ledger_version: str | None
    sha256: str
    size: int
    duration_s: float
    label: str
    compose_project: str
    created: str
    format: str = "custom"
    verified: bool = True
    system_identifier: str = ""  # the cluster it came from ("": unknown, older manifests)
    database_props: dict[str, Any] = field(default_factory=dict)  # see DatabaseProps

    @property
    def kind(self) -> str:
        """Retention keeps each kind apart: automatic ones never push out the user's own."""
        return _KINDS.get(self.label, "manual")

    @property
    def manifest_path(self) -> Path:
        return manifest_of(self.path)

    @classmethod
    def unverified(cls, path: Path, label: str) -> Backup:
        """A dump composekit did not write (no manifest): listed and restorable, never pruned."""
        st = path.stat()
        return cls(
            name=path.stem,
            path=path,
            database="?",
            server_version="?",
            ledger_version=None,
            sha256="",
            size=st.st_size,
            duration_s=0.0,
            label=label,
            compose_project="?",
            created=datetime.fromtimestamp(st.st_mtime, UTC).isoformat(),
            format="plain" if path.suffix == SQL_SUFFIX else "custom",
            verified=False,
        )

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["path"] = str(self.path)
        return d

    @property
    def age_s(self) -> float:
        return (datetime.now(UTC) - datetime.fromisoformat(self.created)).total_seconds()


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


def manifest_of(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# -- taking backups ---------------------------------------------------------------------------------


def _safe_label(label: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", label).strip("-")
    return slug[:60] or "manual"


def take_backup(
    target: DbTarget,
    backups_dir: Path,
    *,
    label: str = "manual",
    keep: int | None = 10,
    lock_wait_timeout: float = 30,
    timeout: float = 3600,
    progress: Progress = silent,
) -> Backup:
    """Dump, verify (sha256 + ``pg_restore --list``), then publish with a manifest.

    >>> take_backup(DbTarget.from_settings(settings), Path("backups"), label="pre-deploy")  # doctest: +SKIP
    """
    d = private_dir(backups_dir)
    now = datetime.now(UTC)
    name = f"{now.strftime('%Y%m%dT%H%M%S%fZ')}_{_safe_label(label)}"
    final = d / f"{name}{DUMP_SUFFIX}"
    tmp = d / f".{name}{DUMP_SUFFIX}.{os.getpid()}.partial"  # the pid: whose it is, if left
    state = target.read_state()
    server = state.server_version
    ledger = state.ledger[-1].version if state.ledger else None
    progress(f"pg_dump {target.database} (server {server}) → {final.name}")
    t0 = time.monotonic()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            try:  # pg_restore --list reads the archive as pg_dump writes it
                digest, listing = target.project.exec_tee(
                    target.service,
                    [
                        "pg_dump",
                        "-Fc",
                        f"--lock-wait-timeout={int(lock_wait_timeout * 1000)}",
                        "-U",
                        target.user,
                        "-d",
                        target.database,
                    ],
                    out,
                    ["pg_restore", "--list"],
                    timeout=timeout,
                )
            except proc.CommandFailed as exc:
                raise _dump_error(exc, target, lock_wait_timeout) from exc
            out.flush()
            os.fsync(out.fileno())
        _listed(listing, tmp)
        tmp.rename(final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    backup = Backup(
        name=name,
        path=final,
        database=target.database,
        server_version=server,
        ledger_version=ledger,
        sha256=digest,
        size=final.stat().st_size,
        duration_s=round(time.monotonic() - t0, 3),
        label=label,
        compose_project=target.project.name,
        created=now.isoformat(),
        system_identifier=state.system_identifier,
        database_props=state.props.to_dict(),
    )
    _write_manifest(backup)
    progress(f"backup verified: {final.name} ({backup.size} bytes, sha256 {digest[:12]}…)")
    if keep is not None:
        for old in prune(d, keep):
            progress(f"removed old backup {old.name} (keeping {keep})")
    return backup


def _dump_error(exc: proc.CommandFailed, target: DbTarget, lock_wait: float) -> ComposekitError:
    text = exc.stderr.strip()
    last = text.splitlines()[-1] if text else f"exit {exc.returncode}"
    if "lock" in text.lower() and ("timeout" in text.lower() or "could not obtain" in text.lower()):
        return DockerError(
            f"backup gave up: pg_dump waited {lock_wait:g}s for a table lock ({last}); no backup file was written",
            hint="a long transaction holds an exclusive lock: let it finish (see pg_stat_activity) or raise --lock-wait-timeout",
        )
    return DockerError(
        f"pg_dump of {target.database} failed: {last}",
        hint="see the message; no backup file was written",
    )


def _pg_restore_list(target: DbTarget, path: Path) -> str:
    """``pg_restore --list`` inside the db container; returns the listing."""
    with open(path, "rb") as inp:
        try:
            r = target.project.exec_from_file(
                target.service, ["pg_restore", "--list"], inp, timeout=600
            )
        except proc.CommandFailed as exc:
            r = proc.Completed(exc.argv, exc.returncode, "", exc.stderr)
    _listed(r, path)
    return r.stdout


def _listed(r: proc.Completed, path: Path) -> int:
    """Judge a ``pg_restore --list`` run over ``path``'s bytes: the number of TOC entries, or
    :class:`VerifyError` if it could not read the archive."""
    entries = sum(1 for ln in r.stdout.splitlines() if ln and not ln.startswith(";"))
    header = "; Archive created at" in r.stdout  # an empty database's archive has no entries
    if r.returncode != 0 or not (entries or header):
        last = r.stderr.strip().splitlines()[-1] if r.stderr.strip() else "unreadable archive"
        raise VerifyError(
            f"{path.name} is not a valid pg_dump archive: {last}",
            hint="the file is corrupt or truncated; use another backup (`composekit backup list`)",
        )
    return entries


def _write_manifest(b: Backup) -> None:
    write_private(b.manifest_path, json.dumps(b.to_dict(), indent=2))


def list_backups(backups_dir: Path) -> list[Backup]:
    """Newest first. Dumps without a manifest (e.g. copied in by hand) are listed as unverified."""
    if not backups_dir.is_dir():
        return []
    out = []
    for p in backups_dir.iterdir():
        if p.name.startswith(".") or p.suffix not in (DUMP_SUFFIX, SQL_SUFFIX):
            continue
        out.append(_load(p, "(no manifest)"))
    out.sort(key=lambda b: b.created, reverse=True)
    return out


def _load(path: Path, label: str) -> Backup:
    """The backup at ``path``, from its manifest (unverified without one)."""
    m = manifest_of(path)
    if not m.is_file():
        return Backup.unverified(path, label)
    data = json.loads(m.read_text())
    data["path"] = path
    return Backup(**data)


def prune(backups_dir: Path, keep: int) -> list[Path]:
    """Keep the ``keep`` newest backups of each kind (pre-deploy, snapshot, manual), so automatic
    ones never push out the user's own; never the newest verified one."""
    backups = list_backups(backups_dir)
    newest_verified = next((b for b in backups if b.verified), None)
    removed = []
    seen: dict[str, int] = {}
    for b in backups:
        if not b.verified:
            continue  # hand-placed files are the user's to delete
        seen[b.kind] = seen.get(b.kind, 0) + 1
        if seen[b.kind] <= max(keep, 1) or b is newest_verified:
            continue
        b.path.unlink(missing_ok=True)
        b.manifest_path.unlink(missing_ok=True)
        removed.append(b.path)
    return removed


def find_backup(
    backups_dir: Path,
    name: str | None,
    *,
    of: tuple[str, str] | None = None,
    snapshots: bool = False,
) -> Backup:
    """``name`` (a file name, path or backup name), or with ``None`` the newest verified backup
    ``of`` (compose project, database) — a safety snapshot only with ``snapshots``, so running the
    same ``restore --latest`` twice restores the same backup."""
    backups = list_backups(backups_dir)
    if name is None:
        fits = [
            b
            for b in backups
            if b.verified
            and (snapshots or b.kind != "snapshot")
            and (of is None or (b.compose_project, b.database) == of)
        ]
        if not fits:
            whose = f" of project {of[0]}, database {of[1]}" if of else ""
            raise UsageError(
                f"no verified backup{whose} in {backups_dir}",
                hint="take one with `composekit backup`, or name a file (see `composekit backup list`)",
            )
        return fits[0]
    for b in backups:
        if name in (b.name, b.path.name, str(b.path)):
            return b
    p = Path(name)
    if p.is_file():  # a dump from elsewhere, e.g. the old shell script's backup.sql
        return _load(p, "(external)")
    raise UsageError(
        f"no backup named {name!r} in {backups_dir}", hint="see `composekit backup list`"
    )


def verify_backup(target: DbTarget, b: Backup) -> str:
    """Checksum against the manifest, then ``pg_restore --list`` (custom format); returns that
    listing (empty for a plain dump)."""
    if not b.path.is_file():
        raise VerifyError(f"backup file {b.path} is missing", hint="see `composekit backup list`")
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:  # hash while pg_restore reads the archive
        hashing = pool.submit(sha256_file, b.path) if b.sha256 else None
        failed: VerifyError | None = None
        listing = ""
        if b.format == "custom":
            try:
                listing = _pg_restore_list(target, b.path)
            except VerifyError as exc:
                failed = exc
        actual = hashing.result() if hashing else b.sha256
    if actual != b.sha256:  # the checksum speaks first: it says why the archive is unreadable
        raise VerifyError(
            f"{b.path.name} is corrupt: sha256 {actual[:12]}… does not match its manifest ({b.sha256[:12]}…); nothing was changed",
            hint="use another backup (`composekit backup list`)",
        )
    if failed is not None:
        raise failed
    return listing


# -- restoring -------------------------------------------------------------------------------------


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
) -> RestoreReport:
    """Restore ``name`` (default: the newest of this project and database) — verified first, its
    origin checked, restored into a scratch database keeping object ownership, the users stopped,
    a safety snapshot, an atomic name swap, the database-level properties put back. Raises before
    touching anything if the backup does not verify or comes from elsewhere (unless ``foreign``)."""
    t0 = time.monotonic()
    b = find_backup(backups_dir, name, of=(target.project.name, target.database))
    here = target.read_state()
    check_origin(b, target, here, foreign)
    progress(f"verifying {b.path.name}")
    listing = verify_backup(target, b)
    scratch = f"{target.database}__ck_restore"[:63]
    progress(f"restoring {b.path.name} into scratch database {scratch}")
    q = quote_ident
    drop_scratch = f"DROP DATABASE IF EXISTS {q(scratch)} WITH (FORCE)"
    stopped: list[str] = []
    snap = changes = None
    notes: list[str] = []
    try:
        target.psql(
            drop_scratch,
            f"CREATE DATABASE {q(scratch)} OWNER {q(target.user)}",
            database="postgres",
        )
        roles = target.roles()
        missing = sorted(_owners(listing) - roles)
        if missing:
            notes.append(
                f"objects owned by {', '.join(missing)} (no such role here) now belong to {target.user}"
            )
        _load_into(target, b, scratch, timeout, keep_owners=not missing)
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
                target, backups_dir, label=SNAPSHOT_LABEL, keep=None, progress=progress
            )
        if compare_rows:
            changes = row_changes(target.row_counts(), target.row_counts(scratch))
        progress(f"swapping {scratch} in as {target.database}")
        with shielded(reraise=False) as late:  # the swap is the commit point: it finishes
            _swap(target, scratch, props_sql if b.database_props else [])
        if late:
            progress("a signal arrived during the swap: too late to stop, the restore is done")
    except BaseException:
        with shielded():  # a signal while cleaning up must not leave a full copy of the data
            target.psql(drop_scratch, database="postgres")
        raise
    finally:
        if stopped:
            with shielded():
                progress(f"starting {', '.join(stopped)} again")
                target.project.start(stopped)
    for note in notes:
        progress(f"note: {note}")
    return RestoreReport(  # the restored ledger was read from the scratch database before the swap
        b, snap, target.database, stopped, restored_ledger, time.monotonic() - t0, changes, notes
    )


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
    failure between them cannot leave no database under the live name); then the replaced one is
    dropped (or by the next restore, if this one is stopped first)."""
    q = quote_ident
    old = f"{target.database}__ck_old"[:63]
    live = target.database.replace("'", "''")
    target.psql(
        f"DROP DATABASE IF EXISTS {q(old)} WITH (FORCE)",
        # wait (up to 5 s each) until the terminated sessions are gone, so the rename finds none
        "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity "
        f"WHERE datname = '{live}' AND pid <> pg_backend_pid()",
        f"ALTER DATABASE {q(target.database)} RENAME TO {q(old)}; "
        f"ALTER DATABASE {q(scratch)} RENAME TO {q(target.database)}",
        f"DROP DATABASE {q(old)} WITH (FORCE)",
        *then,  # its properties: they belong to the name, which it has only now
        database="postgres",
    )


def _load_into(
    target: DbTarget, b: Backup, database: str, timeout: float, *, keep_owners: bool
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
    with open(b.path, "rb") as inp:
        try:
            target.project.exec_from_file(target.service, argv, inp, timeout=timeout)
        except proc.CommandFailed as exc:
            last = (
                exc.stderr.strip().splitlines()[-1]
                if exc.stderr.strip()
                else f"exit {exc.returncode}"
            )
            raise VerifyError(
                f"restoring {b.path.name} failed: {last}; the live database {target.database} was not touched",
                hint="the backup does not load cleanly; use another backup",
            ) from exc


def _running_users(target: DbTarget, services: list[str]) -> list[str]:
    """Which of ``services`` (the database's users) run now: those the restore stops, and must
    start again on every way out — so the list is known before the first one is stopped."""
    known = set(target.project.services())
    services = [s for s in services if s in known and s != target.service]
    running = [s.service for s in target.project.ps(services, all=False)] if services else []
    return sorted(set(running))
