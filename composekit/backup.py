"""Backups: take, verify, list, find and prune (restoring is :mod:`composekit.restore`).

``pg_dump -Fc`` runs **inside** the db container (its version always matches the server) and
streams byte-for-byte to a temp file on the host; only after sha256 and ``pg_restore --list`` pass
is it renamed into place with its manifest (where it came from: project, database, cluster; the
database-level properties a dump leaves out). A crash never leaves a file that looks valid.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from composekit import proc
from composekit.dbtarget import DbState, DbTarget
from composekit.errors import ComposekitError, DockerError, UsageError, VerifyError
from composekit.files import finished, private_dir, unfinished, write_private
from composekit.progress import Meter, Progress, metering, no_meter, silent

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
    verified: bool = False  # True only once pg_restore --list read the whole archive
    toc_entries: int = 0  # how many entries that listing had
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
    meter: Meter = no_meter,
) -> Backup:
    """Dump, verify (sha256 + ``pg_restore --list``), then publish with a manifest. ``meter``
    sees the bytes written against the last backup's size (else the database's).

    >>> take_backup(DbTarget.from_settings(settings), Path("backups"), label="pre-deploy")  # doctest: +SKIP
    """
    d = private_dir(backups_dir)
    now = datetime.now(UTC)
    name = f"{now.strftime('%Y%m%dT%H%M%S%fZ')}_{_safe_label(label)}"
    final = d / f"{name}{DUMP_SUFFIX}"
    tmp = d / f".{name}{DUMP_SUFFIX}.{os.getpid()}.partial"  # the pid: whose it is, if left
    target.project.container_of(target.service)  # found once, for both
    reading = proc.Later(target.read_state)  # the manifest's facts, read beside the dump
    progress(f"pg_dump {target.database} → {final.name}")
    t0 = time.monotonic()
    unfinished(tmp)  # removed on the way out, whatever happens (cli.main)
    try:  # the file is created inside: a signal right after os.open still removes it
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        guess = _size_guess(target, backups_dir, meter, reading)
        with (
            os.fdopen(fd, "wb") as out,
            metering(
                meter,
                f"backing up {target.database}",
                guess,
                lambda: os.fstat(fd).st_size,
                estimate=True,
            ),  # fmt: skip
        ):
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
        entries = _listed(listing, tmp)
        state = reading.result()
        tmp.rename(final)  # published only now: a backup that does not list is never seen
        finished(tmp)
    except BaseException:
        tmp.unlink(missing_ok=True)
        finished(tmp)
        raise
    backup = Backup(
        name=name,
        path=final,
        database=target.database,
        server_version=state.server_version,
        ledger_version=state.ledger[-1].version if state.ledger else None,
        sha256=digest,
        size=final.stat().st_size,
        duration_s=round(time.monotonic() - t0, 3),
        label=label,
        compose_project=target.project.name,
        created=now.isoformat(),
        verified=True,
        toc_entries=entries,
        system_identifier=state.system_identifier,
        database_props=state.props.to_dict(),
    )
    _write_manifest(backup)
    progress(
        f"backup verified: {final.name} ({backup.size} bytes, sha256 {digest[:12]}…, "
        f"server {state.server_version})"
    )
    if keep is not None:
        for old in prune(d, keep):
            progress(f"removed old backup {old.name} (keeping {keep})")
    return backup


def _size_guess(
    target: DbTarget, backups_dir: Path, meter: Meter, state: proc.Later[DbState]
) -> int:
    """How big the dump will be, for the meter: the last backup of this database, else its size
    on disk (a compressed dump is smaller: the meter then reaches 100 % early)."""
    if meter is no_meter:
        return 1
    mine = [
        b
        for b in list_backups(backups_dir)
        if (b.compose_project, b.database) == (target.project.name, target.database) and b.size
    ]
    if mine:
        return max(int(mine[0].size), 1)
    return max(state.result().size, 1)


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
