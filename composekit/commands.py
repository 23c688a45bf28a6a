"""One plain function per verb (alembic's ``command.py``): typed settings and the verb's
arguments in, a typed result out. The only place that composes the layers below; the CLI parses,
calls one of these, and renders what it returns.

>>> from composekit.config import load_settings
>>> report = deploy(load_settings("shop"), env="staging")   # doctest: +SKIP
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from composekit.config import BackupMode, Settings
from composekit.progress import Meter, Progress, no_meter, silent

if TYPE_CHECKING:  # the verbs import what they need when they run: `--help` stays light
    from composekit.adopt import Adoption
    from composekit.backup import Backup
    from composekit.compose import ComposeProject
    from composekit.deploy import HistoryRecord, KeptImage
    from composekit.doctor import DoctorReport
    from composekit.flags import Flag, FlagChange
    from composekit.hooks import HookEvent
    from composekit.k8s import K8sExport
    from composekit.lint import LintReport
    from composekit.migrations import Migrator, PlannedStep, Rehearsal, RunResult, Status
    from composekit.rehearse import RehearseReport
    from composekit.restore import RestoreReport
    from composekit.scaffold import ScaffoldResult
    from composekit.status import ProjectStatus
    from composekit.vendor import VendorResult

Confirm = Callable[[str, str], None]
"""Asked before a restore with (backup file name, database it replaces); raises to refuse."""


# -- machine and project ----------------------------------------------------------------------


def doctor(project_dir: Path, *, fix: bool = False, progress: Progress = silent) -> DoctorReport:
    from composekit.doctor import doctor as run_doctor

    return run_doctor(project_dir, fix=fix, progress=progress)


def init(
    directory: Path,
    layout: str,
    *,
    ci: str,
    name: str | None,
    db_image: str,
    force: bool,
    python_image: str = "python:3.12-slim",
    proxy_image: str = "haproxy:2.6",
) -> ScaffoldResult:
    from composekit.scaffold import scaffold

    return scaffold(
        directory,
        layout,
        ci=ci,
        name=name,
        db_image=db_image,
        python_image=python_image,
        proxy_image=proxy_image,
        force=force,
    )


def adopt(
    project_dir: Path,
    *,
    db: str | None,
    web: str | None,
    migrator: str | None,
    dry_run: bool,
    force: bool,
) -> Adoption:
    from composekit.adopt import adopt as run_adopt

    return run_adopt(project_dir, db=db, web=web, migrator=migrator, dry_run=dry_run, force=force)


def vendor(project_dir: Path) -> VendorResult:
    from composekit.vendor import vendor as write_vendor

    return write_vendor(project_dir)


def export_k8s(
    settings: Settings,
    out_dir: Path | None,
    *,
    env: str | None = None,
    external_db: bool = False,
    registry: str | None = None,
    storage: str = "10Gi",
    secret_file: Path | None = None,
) -> K8sExport:
    """The project as Kubernetes manifests, written under ``out_dir`` (None: only returned), and
    the Secret's values to ``secret_file`` (mode 0600) when asked."""
    from composekit.compose import ComposeProject
    from composekit.deploy import overlay_for
    from composekit.k8s import export_k8s as make
    from composekit.k8s import write_export, write_secret_file

    project = ComposeProject.from_settings(settings, overlay=overlay_for(env))
    result = make(settings, project, external_db=external_db, registry=registry, storage=storage)
    if out_dir is not None:
        result.written = write_export(result, out_dir)
    if secret_file is not None:
        write_secret_file(result, secret_file)
        result.written.append(str(secret_file))
    return result


def status(settings: Settings) -> ProjectStatus:
    from composekit.status import project_status

    return project_status(settings)


def lint(settings: Settings, paths: Sequence[Path] = (), *, strict: bool = False) -> LintReport:
    """Lint migration files (default: the project's migrations folder and its ``post/``)."""
    from composekit.lint import config_of, lint_paths

    config = config_of(settings.lint_disable, strict or settings.lint_strict)
    return lint_paths(list(paths) or [settings.migrations_path], settings.migrations_format, config)


def history(settings: Settings) -> list[HistoryRecord]:
    from composekit.deploy import read_history

    return read_history(settings.project_dir)


def history_filtered(
    settings: Settings,
    *,
    since: str | None = None,
    result: str | None = None,
    kind: str | None = None,
) -> list[tuple[int, HistoryRecord]]:
    """The runs that match, each with its number in the whole history (for ``history show N``)."""
    from datetime import UTC, datetime, timedelta

    from composekit.errors import UsageError

    start = None
    if since:
        m = re.fullmatch(r"(\d+)\s*(min|m|h|d|w)", since.strip().lower())
        if m:
            unit = {"min": 60, "m": 60, "h": 3600, "d": 86400, "w": 604800}[m.group(2)]
            start = datetime.now(UTC) - timedelta(seconds=int(m.group(1)) * unit)
        else:
            try:
                start = datetime.fromisoformat(since)
            except ValueError:
                raise UsageError(
                    f"--since {since!r} is neither a duration nor a date",
                    hint="e.g. --since 7d, --since 12h, --since 2026-11-30",
                ) from None
            start = start if start.tzinfo else start.replace(tzinfo=UTC)
    if result not in (None, "ok", "failed"):
        raise UsageError(f"unknown --result {result!r}", hint="use --result ok or --result failed")
    if kind not in (None, "deploy", "rollback", "recover"):
        raise UsageError(f"unknown --kind {kind!r}", hint="use deploy, rollback or recover")
    out = []
    for n, r in enumerate(history(settings), 1):
        when = datetime.fromisoformat(r.started)
        when = when if when.tzinfo else when.replace(tzinfo=UTC)
        if start is not None and when < start:
            continue
        if result is not None and r.ok != (result == "ok"):
            continue
        if kind is not None and str(r.kind) != kind:
            continue
        out.append((n, r))
    return out


# -- rehearse ----------------------------------------------------------------------------------


def rehearse(
    settings: Settings,
    *,
    backup: str | None = None,
    env: str | None = None,
    timeout: float = 3600,
    progress: Progress = silent,
    meter: Meter = no_meter,
) -> RehearseReport:
    """Build the migrate service's image, restore a backup into a throwaway copy, run the pending
    migrations there measuring each, check and revert them; the copy is always dropped."""
    from composekit.backup import find_backup
    from composekit.compose import ComposeProject
    from composekit.dbtarget import DbTarget
    from composekit.deadline import Deadline
    from composekit.deploy import migrator_kind, overlay_for
    from composekit.errors import ConfigError
    from composekit.rehearse import engine_runner, rehearse_migrations
    from composekit.signals import shielded

    deadline = Deadline(timeout)
    project = ComposeProject.from_settings(settings, overlay=overlay_for(env))
    kind = migrator_kind(settings, project)
    if kind != "composekit":
        raise ConfigError(
            f"rehearse runs composekit's engine; this project's migrator is {kind}",
            hint='set [deploy] migrator = "composekit" if the migrator runs `composekit migrate up`',
        )
    service = settings.migrate_service
    target = DbTarget.from_settings(settings, project)
    find_backup(settings.backups_path, backup, of=(project.name, target.database))  # before a build
    image = project.image_name(service)
    before = _image_or_none(project, image)
    progress(f"building the {service} image (it holds the pending migrations)")
    try:
        project.build([service], timeout=deadline.remaining(), progress=progress)
        run = engine_runner(
            project, service, settings.migrations_dir_in_image, deadline.remaining, progress
        )
        return rehearse_migrations(
            target,
            settings.backups_path,
            run,
            backup,
            expected_schema=settings.expected_schema_path if settings.expected_schema else None,
            checks_dir=settings.project_dir / "verify",
            timeout=deadline.remaining(),
            progress=progress,
            meter=meter,
        )
    finally:
        with shielded(reraise=False):  # the tag the web deploys from is put back as it was
            _put_back(project, image, before, progress)


def _image_or_none(project: ComposeProject, name: str) -> str | None:
    from composekit.errors import DockerError

    try:
        return project.image_id(name)
    except DockerError:
        return None


def _put_back(project: ComposeProject, name: str, before: str | None, progress: Progress) -> None:
    """``name`` points at ``before`` again (a rehearsal changes no image); the image it built
    is removed unless a container uses it."""
    built = _image_or_none(project, name)
    if built is None or built == before:
        return
    if before is not None:
        project.tag_image(before, name)
    removed = project.untag(built if before is not None else name)
    progress(f"{name} points at the image it pointed at before"
             + ("; removed the rehearsal's build" if removed else ""))  # fmt: skip


# -- feature flags ----------------------------------------------------------------------------


def flag_set(
    settings: Settings, name: str, percent: float, *, env: str | None = None
) -> FlagChange:
    """Turn flag ``name`` on for ``percent`` % of keys (0: off, 100: on), recorded in its history."""
    import json

    from composekit import flags
    from composekit.db import who_am_i
    from composekit.errors import UsageError

    if not flags.NAME.match(name):
        raise UsageError(
            f"bad flag name {name!r}",
            hint="use lower-case letters, digits, '.', '_' and '-' (at most 63), e.g. new-checkout",
        )
    who = who_am_i()
    out = _flag_sql(settings, flags.change_statements(name, percent, who), env)
    if not out.strip():  # already at that percentage: nothing was written
        return flags.FlagChange(name, "", who, percent, percent, unchanged=True)
    return flags.FlagChange.from_dict(json.loads(out))


def flag_delete(settings: Settings, name: str, *, env: str | None = None) -> FlagChange:
    import json

    from composekit import flags
    from composekit.db import who_am_i
    from composekit.errors import UsageError

    missing = UsageError(f"there is no flag {name!r}", hint="`composekit flag list` lists them")
    if not _flags_exist(settings, env):
        raise missing
    out = _flag_sql(settings, flags.delete_statements(name, who_am_i()), env)
    if not out.strip():
        raise missing
    return flags.FlagChange.from_dict(json.loads(out))


def flag_list(settings: Settings, *, env: str | None = None) -> list[Flag]:
    import json

    from composekit import flags

    if not _flags_exist(settings, env):
        return []
    return [
        flags.Flag.from_dict(d) for d in json.loads(_flag_sql(settings, [flags.list_sql()], env))
    ]


def flag_history(
    settings: Settings, name: str | None = None, *, env: str | None = None
) -> list[FlagChange]:
    import json

    from composekit import flags

    if not _flags_exist(settings, env):
        return []
    rows = json.loads(_flag_sql(settings, [flags.history_sql(name)], env))
    return [flags.FlagChange.from_dict(d) for d in rows]


def _flags_exist(settings: Settings, env: str | None) -> bool:
    """Whether the flags tables are there (reading asks first, so it creates nothing)."""
    from composekit import flags

    return _flag_sql(settings, [flags.exists_sql()], env) in ("t", "True")


def _flag_sql(settings: Settings, statements: list[str], env: str | None) -> str:
    """``statements`` in one transaction — over DATABASE_URL, or else with psql in the db
    container (a database that publishes no port is the usual case); the last one's value."""
    if settings.database_url is not None:
        import psycopg

        from composekit.db import connect
        from composekit.errors import DatabaseUnavailable

        url = settings.database_url
        with connect(url, "composekit flag", settings.source.get("database_url", "")) as conn:
            try:
                with conn.transaction():
                    for statement in statements[:-1]:
                        conn.execute(statement)
                    row = conn.execute(statements[-1]).fetchone()
            except psycopg.Error as exc:
                raise DatabaseUnavailable(
                    f"the flags query failed: {(exc.diag.message_primary or str(exc)).strip()}",
                    hint="check that the database user may create and write tables",
                ) from exc
        return "" if row is None else str(row[0])
    from composekit.dbtarget import DbTarget
    from composekit.deploy import overlay_for
    from composekit.swarm import project_for

    project = project_for(settings, overlay_for(env))
    script = "BEGIN;\n" + ";\n".join(statements) + ";\nCOMMIT;\n"
    return DbTarget.from_settings(settings, project).psql(script=script)


# -- migrate ----------------------------------------------------------------------------------


def _migrator(settings: Settings, progress: Progress, **overrides: Any) -> Migrator:
    from composekit.migrations import Migrator

    return Migrator.from_settings(settings, progress=progress, **overrides)


def migrate_status(settings: Settings, *, progress: Progress = silent) -> Status:
    """With no database URL, in a Compose project: read through the db container (a database
    that publishes no port is the usual case)."""
    if settings.database_url is None:
        through = _status_through_container(settings, progress)
        if through is not None:
            return through
    return _migrator(settings, progress).status()


def migrate_verify(settings: Settings, *, progress: Progress = silent) -> Status:
    """Raises :class:`~composekit.errors.VerifyError` (exit 6) on any drift."""
    if settings.database_url is None:
        st = _status_through_container(settings, progress)
        if st is not None:
            if st.problems:
                from composekit.migrations import drift_error

                raise drift_error(st.problems, settings.migrations_path, settings.ledger_table)
            return st
    return _migrator(settings, progress).verify()


def _status_through_container(settings: Settings, progress: Progress) -> Status | None:
    """The ledger read with psql in the db service's container (None: no Compose project with
    that service here, so there is no container to go through)."""
    from composekit.dbtarget import DbTarget
    from composekit.errors import ConfigError
    from composekit.migrations import Status, compare, load_source
    from composekit.swarm import project_for

    source = load_source(settings.migrations_path, settings.migrations_format)
    try:
        project = project_for(settings)
        if settings.db_service not in project.services():
            return None
    except ConfigError:
        return None
    progress(f"no database URL: reading the ledger through the {settings.db_service} container")
    rows = DbTarget.from_settings(settings, project).ledger_rows()
    todo, problems = compare(rows or [], source)
    return Status(rows or [], todo, problems, rows is not None, source.format, source.ignored)


def migrate_plan(
    settings: Settings,
    *,
    down: bool = False,
    target: str | None = None,
    steps: int | None = None,
    progress: Progress = silent,
) -> list[PlannedStep]:
    return _migrator(settings, progress).plan("down" if down else "up", target, steps)


def migrate_up(
    settings: Settings,
    *,
    target: str | None = None,
    steps: int | None = None,
    atomic: bool = False,
    allow_out_of_order: bool = False,
    phase: str = "all",
    dry_run: bool = False,
    progress: Progress = silent,
) -> RunResult | list[PlannedStep]:
    m = _migrator(settings, progress, allow_out_of_order=allow_out_of_order)
    if dry_run:
        return m.plan("up", target, steps)
    return m.upgrade(target=target, steps=steps, atomic=atomic, phase=phase)


def migrate_down(
    settings: Settings,
    *,
    target: str | None = None,
    steps: int | None = None,
    dry_run: bool = False,
    progress: Progress = silent,
) -> RunResult | list[PlannedStep]:
    m = _migrator(settings, progress)
    if dry_run:
        return m.plan("down", target, steps)
    return m.downgrade(steps=steps, target=target)


def migrate_new(settings: Settings, name: str) -> list[Path]:
    from composekit.migrations import new_migration

    return new_migration(settings.migrations_path, name, settings.migrations_format)


def migrate_baseline(settings: Settings, version: str, *, progress: Progress = silent) -> RunResult:
    return _migrator(settings, progress).baseline(version)


def migrate_repair(
    settings: Settings, *, forget: Sequence[str] = (), progress: Progress = silent
) -> list[str]:
    return _migrator(settings, progress).repair(forget=list(forget))


def migrate_rehearse(
    settings: Settings,
    database: str,
    *,
    check_downs: bool = True,
    downs_to: tuple[str | None, str] | None = None,
    progress: Progress = silent,
) -> Rehearsal | tuple[bool | None, list[str]]:
    """The engine's half of ``composekit rehearse``, on the throwaway copy ``database`` (same
    server and credentials as the database URL): the pending migrations measured; or, with
    ``downs_to`` = (start version, schema digest), their down sections checked."""
    from dataclasses import replace

    from psycopg.conninfo import make_conninfo

    url = make_conninfo(settings.require_database_url(), dbname=database)
    migrator = _migrator(replace(settings, database_url=url), progress)
    if downs_to is not None:
        return migrator.rehearse_downs(*downs_to)
    return migrator.rehearse(check_downs=check_downs)


# -- backups ------------------------------------------------------------------------------------


def backup(
    settings: Settings,
    *,
    label: str = "manual",
    keep: int | None = None,
    lock_wait_timeout: float = 30,
    progress: Progress = silent,
    meter: Meter = no_meter,
) -> Backup:
    from composekit.backup import take_backup
    from composekit.dbtarget import DbTarget

    return take_backup(
        DbTarget.from_settings(settings),
        settings.backups_path,
        label=label,
        keep=settings.keep_backups if keep is None else keep,
        lock_wait_timeout=lock_wait_timeout,
        progress=progress,
        meter=meter,
    )


def backup_list(settings: Settings) -> list[Backup]:
    from composekit.backup import list_backups

    return list_backups(settings.backups_path)


def restore(
    settings: Settings,
    name: str | None = None,
    *,
    snapshot: bool = True,
    lock_wait: float = 0,
    confirm: Confirm | None = None,
    foreign: bool = False,
    snapshots: bool = False,
    progress: Progress = silent,
    meter: Meter = no_meter,
) -> RestoreReport:
    """Restore ``name`` (default: the newest backup) under the deploy lock, stopping the same
    services a deploy's undo stops. ``confirm`` is asked first (None: already confirmed)."""
    from composekit.backup import find_backup
    from composekit.dbtarget import DbTarget
    from composekit.deploy import take_deploy_lock
    from composekit.errors import ComposekitError
    from composekit.hooks import HookEvent, check_hooks, run_hook
    from composekit.journal import Journal, read_journal
    from composekit.restore import restore_backup

    target = DbTarget.from_settings(settings)
    chosen = find_backup(
        settings.backups_path, name, of=(target.project.name, target.database), snapshots=snapshots
    )
    if confirm is not None:
        confirm(chosen.path.name, target.database)
    with ExitStack() as lock:  # never under a running deploy (nor one starting meanwhile)
        take_deploy_lock(target, lock, lock_wait, progress)
        leftover = read_journal(settings.project_dir)
        if leftover is not None:  # a run was killed: its undo first (the deploy machinery)
            from composekit.deploy import new_state, recover_leftover

            s = new_state(
                settings,
                env=None,
                timeout=900,
                progress=progress,
                migrations=leftover.kind == "deploy",  # only a deploy's undo reads them
            )
            recover_leftover(s)
        event = HookEvent("restore", target.project.name, backup=chosen.path.name)
        check_hooks(settings.project_dir)
        if run_hook(settings.project_dir, "pre-restore", event, timeout=settings.hooks_timeout,
                    progress=progress):  # fmt: skip
            progress("hook pre-restore: ok")
        journal = Journal.start(settings.project_dir, "restore")
        page = _maintenance_page(settings, target.project)
        t0 = time.monotonic()

        def stopping(services: list[str]) -> None:
            journal.write(step="swap", stopped=services)  # started again, should it be killed
            page(services, True)

        try:
            report = restore_backup(
                target,
                settings.backups_path,
                str(chosen.path),
                snapshot=snapshot,
                stop_services=settings.database_users,
                foreign=foreign,
                progress=progress,
                before_stop=stopping,
                after_start=lambda services: page(services, False),
                meter=meter,
            )
        except (ComposekitError, KeyboardInterrupt) as exc:
            journal.close()  # it cleaned up after itself (shielded from further signals)
            event.result = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
            event.error = exc.message if isinstance(exc, ComposekitError) else ""
            _post_restore(settings, event, t0, progress)
            raise
        journal.close()
        event.result = "ok"
        event.extra = {"snapshot": report.snapshot.path.name if report.snapshot else ""}
        _post_restore(settings, event, t0, progress)
        return report


def _post_restore(settings: Settings, event: HookEvent, t0: float, progress: Progress) -> None:
    from composekit.hooks import run_reported
    from composekit.notify import send

    event.duration_s = f"{time.monotonic() - t0:.1f}"
    name = "restore.succeeded" if event.result == "ok" else "restore.failed"
    send(name, event, webhook=settings.notify_webhook, command=settings.notify_command,
         progress=progress)  # fmt: skip
    run_reported(settings.project_dir, "post-restore", event, timeout=settings.hooks_timeout,
                 progress=progress)  # fmt: skip


def _maintenance_page(
    settings: Settings, project: ComposeProject
) -> Callable[[list[str], bool], None]:
    """While a restore has the web stopped, the proxy in front of it (if running) shows its
    maintenance page (503, Retry-After) instead of failing requests; then sends to the web again."""
    from composekit.proxy import Proxy

    # a swarm stack's proxy has no runtime API: with no healthy task it answers 503 by itself
    proxy = None if settings.engine == "swarm" else Proxy.of(settings, project)

    def page(services: list[str], on: bool) -> None:
        if proxy is None or settings.web_service not in services:
            return
        if not project.ps([proxy.service], all=False):
            return
        serving = [c.name for c in project.ps([settings.web_service], all=False)]
        proxy.set(serving or None, maintenance=on)

    return page


def recover(
    settings: Settings, *, lock_wait: float = 0, timeout: float = 900, progress: Progress = silent
) -> list[str]:
    """Finish the undo of a deploy, rollback or restore that was killed (its journal says what it
    had done); under the deploy lock. Returns what was done; empty: nothing was interrupted."""
    from composekit.deploy import new_state, recover_leftover, take_deploy_lock

    s = new_state(settings, env=None, timeout=timeout, progress=progress)
    with s.lock:
        take_deploy_lock(s.ctx.target, s.lock, lock_wait, progress)
        return recover_leftover(s)


# -- deploy -------------------------------------------------------------------------------------


def deploy(
    settings: Settings,
    *,
    env: str | None = None,
    timeout: float = 900,
    backup_mode: BackupMode = BackupMode.AUTO,
    lock_wait: float = 0,
    maintenance: bool = False,
    scale: int | None = None,
    allow_lint: bool = False,
    dry_run: bool = False,
    progress: Progress = silent,
) -> HistoryRecord | list[str]:
    """Run (or with ``dry_run`` describe) a deploy; recorded in ``.composekit/history.jsonl``.
    ``timeout`` bounds the whole run; an undo gets as long again."""
    from composekit.deploy import RunKind, execute, new_state, plan_steps

    s = new_state(
        settings,
        env=env,
        timeout=timeout,
        progress=progress,
        backup_mode=backup_mode,
        maintenance=maintenance,
        scale=scale,
        allow_lint=allow_lint,
    )
    return execute(s, plan_steps(s, lock_wait), kind=RunKind.DEPLOY, dry_run=dry_run)


def rollback(
    settings: Settings,
    *,
    to: str | None = None,
    env: str | None = None,
    timeout: float = 900,
    lock_wait: float = 0,
    dry_run: bool = False,
    progress: Progress = silent,
) -> HistoryRecord | list[str]:
    """Run (or describe) a rollback of the web to a kept image; the database is not touched."""
    from composekit.deploy import RunKind, execute, new_state, rollback_plan

    s = new_state(settings, env=env, timeout=timeout, progress=progress, kind=RunKind.ROLLBACK)
    return execute(s, rollback_plan(s, to, lock_wait), kind=RunKind.ROLLBACK, dry_run=dry_run)


def rollback_list(settings: Settings, *, env: str | None = None) -> list[KeptImage]:
    from composekit.deploy import kept_images, new_state

    return kept_images(new_state(settings, env=env, timeout=60, progress=silent))


# -- schema -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SchemaFile:
    path: Path
    lines: int
    configured: bool  # whether [deploy] expected_schema already names it


def schema(settings: Settings) -> str:
    """The database's schema, normalized (see :func:`composekit.dbtarget.normalize_schema`)."""
    from composekit.dbtarget import DbTarget

    return DbTarget.from_settings(settings).schema()


def write_schema(settings: Settings, output: Path | None = None) -> SchemaFile:
    text = schema(settings)
    path = settings.path(output) if output else settings.expected_schema_path
    path.write_text(text)
    return SchemaFile(path, len(text.splitlines()), bool(settings.expected_schema))
