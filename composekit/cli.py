"""The ``composekit`` command: parse → settings → ONE library call → render.

No business logic here. One top-level handler (:func:`main`) maps every
:class:`~composekit.errors.ComposekitError` to one line plus a fix and its exit code; ``--debug``
adds the traceback; Ctrl-C exits 130.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from composekit import __version__, render

EPILOG_MAIN = """Examples:

  composekit doctor --fix            # set up Docker, Compose and the offline images

  composekit migrate up              # apply pending migrations (DATABASE_URL)

  composekit migrate status --json   # what is applied, pending, drifted
"""

app = typer.Typer(
    name="composekit",
    help="Safe, boring database migrations and deploys for Docker Compose + PostgreSQL.",
    epilog=EPILOG_MAIN,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout.")]
EnvOpt = Annotated[
    str | None, typer.Option("--env", help="staging | prod: adds compose.<env>.yaml.")
]
DryRunOpt = Annotated[bool, typer.Option("--dry-run", help="Print the steps; change nothing.")]
TimeoutOpt = Annotated[
    float, typer.Option("--timeout", help="Seconds for health waits and the migrator.")
]
LockWaitOpt = Annotated[
    float, typer.Option("--lock-wait", help="Seconds to wait for another deploy's lock.")
]


class _State:
    project_dir: Path = Path(".")
    debug: bool = False


state = _State()


def _version(value: bool) -> None:
    if value:
        typer.echo(f"composekit {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    project_dir: Annotated[
        Path, typer.Option("--project-dir", "-C", help="Project directory (holds composekit.toml).")
    ] = Path("."),
    debug: Annotated[
        bool, typer.Option("--debug", help="Show tracebacks and the commands run.")
    ] = False,
    version: Annotated[
        bool,
        typer.Option("--version", "-V", callback=_version, is_eager=True, help="Show the version."),
    ] = False,
) -> None:
    state.project_dir = project_dir
    state.debug = debug
    if debug:
        import logging

        logging.basicConfig(level=logging.DEBUG, format="debug: %(name)s: %(message)s")


def settings(**flags: Any) -> Any:
    from composekit.config import load_settings

    return load_settings(state.project_dir, flags=flags)


# -- doctor ----------------------------------------------------------------------------------------


@app.command(
    epilog="Examples:\n\n  composekit doctor\n\n  composekit doctor --fix   # install/start what is missing (Debian, root)"
)
def doctor(
    fix: Annotated[
        bool, typer.Option("--fix", help="Install and start what is missing; build offline images.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Check Docker engine, Compose plugin, images and disk; print one fix per problem."""
    from composekit.doctor import doctor as run_doctor

    report = run_doctor(state.project_dir, fix=fix, progress=render.progress)
    if as_json:
        render.emit_json(report)
    else:
        for c in report.checks:
            render.line(
                f"{'ok  ' if c.ok else 'FAIL'}  {c.name}: {c.detail}"
                + ("" if c.ok else f" — fix: {c.fix}")
            )
        render.line(f"{'ready' if report.ok else 'not ready'} ({report.seconds:.1f}s)")
    if not report.ok:
        raise typer.Exit(4)


# -- init ----------------------------------------------------------------------------------------


@app.command(
    epilog="Examples:\n\n  composekit init shop --layout migrator\n\n"
    "  composekit init . --layout app-startup --ci gitlab\n\n"
    "  composekit init demo --layout init-scripts --ci none --db-image postgres:15"
)
def init(
    directory: Annotated[
        Path, typer.Argument(help="Where to write the project (created if missing).")
    ] = Path("."),
    layout: Annotated[
        str | None,
        typer.Option(
            "--layout", help="init-scripts | app-startup | migrator (asked on a terminal)."
        ),
    ] = None,
    ci: Annotated[str, typer.Option("--ci", help="github | gitlab | none")] = "github",
    name: Annotated[
        str | None, typer.Option("--name", help="Project name (default: the directory's).")
    ] = None,
    db_image: Annotated[str, typer.Option("--db-image", help="PostgreSQL image.")] = "postgres:16",
    force: Annotated[bool, typer.Option("--force", help="Overwrite existing files.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Scaffold a runnable web + PostgreSQL project in one of the three migration layouts."""
    from composekit.config import LAYOUTS
    from composekit.errors import UsageError
    from composekit.scaffold import scaffold

    if layout is None:
        if not sys.stdin.isatty():
            raise UsageError("no --layout given", hint=f"pass --layout {' | '.join(LAYOUTS)}")
        layout = typer.prompt(f"Layout ({', '.join(LAYOUTS)})", default="migrator")
    result = scaffold(directory, layout, ci=ci, name=name, db_image=db_image, force=force)
    if as_json:
        render.emit_json(result)
        return
    for f in result.files:
        render.line(f"wrote {directory / f}")
    render.line(f"next: cd {directory} && read README.md (layout {layout})")


# -- migrate ---------------------------------------------------------------------------------------

migrate_app = typer.Typer(
    help="Apply, revert and inspect SQL migrations (schema_migrations ledger, advisory lock).",
    no_args_is_help=True,
    epilog=(
        "Examples:\n\n  composekit migrate status\n\n  composekit migrate up --target 0003\n\n"
        "  composekit migrate plan --json\n\n  composekit migrate new add_users_email_index\n\n"
        "  DATABASE_URL=postgresql://app@localhost/app composekit migrate verify"
    ),
)
app.add_typer(migrate_app, name="migrate")

UrlOpt = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        envvar=None,
        help="PostgreSQL URL (default: DATABASE_URL / composekit.toml).",
    ),
]
DirOpt = Annotated[
    Path | None, typer.Option("--dir", "-d", help="Migrations directory (default: migrations).")
]
TableOpt = Annotated[
    str | None, typer.Option("--table", help="Ledger table (default: schema_migrations).")
]
FormatOpt = Annotated[
    str | None,
    typer.Option("--format", help="auto | native | golang-migrate | flyway (default: auto)."),
]
TargetOpt = Annotated[str | None, typer.Option("--target", help="Stop at this version.")]


def _migrator(
    url: str | None,
    directory: Path | None,
    table: str | None,
    fmt: str | None,
    as_json: bool,
    **extra: Any,
) -> Any:
    from composekit.migrations import Migrator

    s = settings(
        database_url=url,
        migrations_dir=directory,
        ledger_table=table,
        migrations_format=fmt,
        **{
            k: v
            for k, v in extra.items()
            if k in ("lock_wait", "lock_timeout", "statement_timeout", "lock_retries")
        },
    )
    return Migrator.from_settings(
        s, progress=render.progress, **{k: v for k, v in extra.items() if k == "allow_out_of_order"}
    )


def _show_run(result: Any, as_json: bool) -> None:
    if as_json:
        render.emit_json(result)
        return
    for note in result.notes:
        render.line(note)
    verb = "applied" if result.direction == "up" else "reverted"
    if result.done:
        render.line(
            f"{verb} {len(result.done)} migration(s); now at {result.current or 'nothing applied'}"
        )


@migrate_app.command("status")
def migrate_status(
    url: UrlOpt = None,
    directory: DirOpt = None,
    table: TableOpt = None,
    fmt: FormatOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Applied and pending migrations, and drift between files and ledger."""
    st = _migrator(url, directory, table, fmt, as_json).status()
    if as_json:
        render.emit_json(st)
        return
    rows = [
        (
            r.version,
            r.name or "",
            "applied" + (" (DIRTY)" if r.dirty else ""),
            r.applied_at.strftime("%Y-%m-%d %H:%M:%S") if r.applied_at else "",
        )
        for r in st.applied
    ]
    rows += [
        (m.version, m.name, "pending" + ("" if m.transactional else " (no transaction)"), "")
        for m in st.pending
    ]
    render.table(rows, ["version", "name", "state", "applied at"])
    for p in st.problems:
        render.line(f"{p.kind}: {p.version}: {p.detail}")
    for ig in st.ignored:
        render.line(f"note: ignored {ig} (not a migration file)")
    render.line(
        f"current: {st.current or 'none'}; {len(st.pending)} pending"
        + ("" if st.problems else "; no drift")
    )


@migrate_app.command(
    "up",
    epilog="Examples:\n\n  composekit migrate up\n\n  composekit migrate up --steps 1\n\n  composekit migrate up --target 20260101120000 --json",
)
def migrate_up(
    url: UrlOpt = None,
    directory: DirOpt = None,
    table: TableOpt = None,
    fmt: FormatOpt = None,
    target: TargetOpt = None,
    steps: Annotated[
        int | None, typer.Option("--steps", "-n", help="Apply at most N migrations.")
    ] = None,
    atomic: Annotated[
        bool, typer.Option("--atomic", help="All pending migrations in ONE transaction.")
    ] = False,
    allow_out_of_order: Annotated[
        bool,
        typer.Option(
            "--allow-out-of-order", help="Apply pending versions older than the newest applied."
        ),
    ] = False,
    lock_wait: Annotated[
        float | None,
        typer.Option("--lock-wait", help="Seconds to wait for another migrator (default 60)."),
    ] = None,
    lock_timeout: Annotated[
        float | None,
        typer.Option("--lock-timeout", help="Per-migration lock_timeout in seconds (default 5)."),
    ] = None,
    statement_timeout: Annotated[
        float | None, typer.Option("--statement-timeout", help="Per-statement timeout in seconds.")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the plan; change nothing.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Apply pending migrations, each in its own transaction with its ledger row."""
    m = _migrator(
        url,
        directory,
        table,
        fmt,
        as_json,
        lock_wait=lock_wait,
        lock_timeout=lock_timeout,
        statement_timeout=statement_timeout,
        allow_out_of_order=allow_out_of_order,
    )
    if dry_run:
        _show_plan(m.plan("up", target, steps), as_json)
        return
    _show_run(m.upgrade(target=target, steps=steps, atomic=atomic), as_json)


@migrate_app.command(
    "down",
    epilog="Examples:\n\n  composekit migrate down            # the newest one\n\n  composekit migrate down --target 0  # all of them",
)
def migrate_down(
    url: UrlOpt = None,
    directory: DirOpt = None,
    table: TableOpt = None,
    fmt: FormatOpt = None,
    target: Annotated[
        str | None, typer.Option("--target", help="Revert everything above this version (0: all).")
    ] = None,
    steps: Annotated[
        int | None, typer.Option("--steps", "-n", help="Revert the newest N (default 1).")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the plan; change nothing.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Revert applied migrations with their down sections, newest first."""
    m = _migrator(url, directory, table, fmt, as_json)
    if dry_run:
        _show_plan(m.plan("down", target, steps), as_json)
        return
    _show_run(m.downgrade(steps=steps, target=target), as_json)


def _show_plan(steps: list[Any], as_json: bool) -> None:
    if as_json:
        render.emit_json({"plan": steps})
        return
    if not steps:
        render.line("nothing to do")
    for st in steps:
        d = st.to_dict()
        tx = (
            "in a transaction"
            if d["transactional"]
            else f"WITHOUT a transaction ({d['reason'] or 'statement by statement'})"
        )
        render.line(
            f"-- {d['direction']} {d['version']}_{d['name']} ({Path(d['file']).name}), {tx}"
        )
        render.line(d["sql"])
        render.line()


@migrate_app.command("plan")
def migrate_plan(
    url: UrlOpt = None,
    directory: DirOpt = None,
    table: TableOpt = None,
    fmt: FormatOpt = None,
    target: TargetOpt = None,
    down: Annotated[bool, typer.Option("--down", help="Plan a revert instead.")] = False,
    steps: Annotated[int | None, typer.Option("--steps", "-n")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Dry run: the SQL that would run, and whether each runs in a transaction."""
    m = _migrator(url, directory, table, fmt, as_json)
    _show_plan(m.plan("down" if down else "up", target, steps), as_json)


@migrate_app.command("verify")
def migrate_verify(
    url: UrlOpt = None,
    directory: DirOpt = None,
    table: TableOpt = None,
    fmt: FormatOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Files vs ledger: edited after apply, applied but missing, out-of-order, dirty (exit 6)."""
    st = _migrator(url, directory, table, fmt, as_json).verify()
    if as_json:
        render.emit_json(st)
    else:
        render.line(
            f"ok: {len(st.applied)} applied migrations match their files; {len(st.pending)} pending"
        )


@migrate_app.command("new")
def migrate_new(
    name: Annotated[
        str, typer.Argument(help="What the migration does, e.g. add_users_email_index.")
    ],
    directory: DirOpt = None,
    fmt: FormatOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create the next migration file in the directory's own format and numbering."""
    from composekit.migrations import new_migration

    s = settings(migrations_dir=directory, migrations_format=fmt)
    paths = new_migration(s.migrations_path, name, s.migrations_format)
    if as_json:
        render.emit_json({"created": [str(p) for p in paths]})
    else:
        for p in paths:
            render.line(f"created {p}")


@migrate_app.command("baseline")
def migrate_baseline(
    version: Annotated[
        str, typer.Argument(help="Mark every migration up to this version as applied.")
    ],
    url: UrlOpt = None,
    directory: DirOpt = None,
    table: TableOpt = None,
    fmt: FormatOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Adopt an existing database: record migrations up to VERSION as applied without running them."""
    _show_run(_migrator(url, directory, table, fmt, as_json).baseline(version), as_json)


@migrate_app.command("repair")
def migrate_repair(
    url: UrlOpt = None,
    directory: DirOpt = None,
    table: TableOpt = None,
    fmt: FormatOpt = None,
    forget: Annotated[
        list[str] | None,
        typer.Option(
            "--forget", help="Remove this version's ledger row (file deleted on purpose)."
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Clean up after an interrupted non-transactional migration (INVALID indexes, dirty row)."""
    actions = _migrator(url, directory, table, fmt, as_json).repair(forget=forget)
    if as_json:
        render.emit_json({"actions": actions})
    else:
        for a in actions:
            render.line(a)


# -- backup / restore ----------------------------------------------------------------------------

backup_app = typer.Typer(
    help="Take, list and prune verified backups (pg_dump -Fc inside the db container).",
    invoke_without_command=True,
    epilog="Examples:\n\n  composekit backup --label before-upgrade\n\n  composekit backup list --json",
)
app.add_typer(backup_app, name="backup")


def _db_target() -> Any:
    from composekit.backup import DbTarget

    s = settings()
    return s, DbTarget.from_settings(s)


@backup_app.callback()
def backup(
    ctx: typer.Context,
    label: Annotated[
        str, typer.Option("--label", "-l", help="A word to find it by later.")
    ] = "manual",
    keep: Annotated[
        int | None, typer.Option("--keep", help="Keep the N newest backups (default 10).")
    ] = None,
    lock_wait_timeout: Annotated[
        float, typer.Option("--lock-wait-timeout", help="Seconds pg_dump waits for a table lock.")
    ] = 30,
    as_json: JsonOpt = False,
) -> None:
    """Back up the database now: dump, verify (sha256 + pg_restore --list), keep the N newest."""
    if ctx.invoked_subcommand is not None:
        return
    from composekit.backup import take_backup

    s, target = _db_target()
    b = take_backup(
        target,
        s.backups_path,
        label=label,
        keep=keep if keep is not None else s.keep_backups,
        lock_wait_timeout=lock_wait_timeout,
        progress=render.progress,
    )
    if as_json:
        render.emit_json(b)
    else:
        render.line(f"backup {b.path} ({b.size} bytes, ledger {b.ledger_version or '-'}, verified)")


@backup_app.command("list")
def backup_list(as_json: JsonOpt = False) -> None:
    """Backups, newest first: label, age, size, ledger version, verified."""
    from composekit.backup import list_backups

    backups = list_backups(settings().backups_path)
    if as_json:
        render.emit_json({"backups": backups})
        return
    rows = [
        (
            b.path.name,
            b.label,
            _age(b.age_s),
            b.size,
            b.ledger_version or "-",
            "yes" if b.verified else "no",
        )
        for b in backups
    ]
    render.table(rows, ["file", "label", "age", "bytes", "ledger", "verified"])


def _age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"


@app.command(
    epilog="Examples:\n\n  composekit restore --latest --yes\n\n  composekit restore 20261125T101500Z_manual.dump\n\n"
    "  composekit restore ./backup.sql --yes   # a plain dump from the old shell script"
)
def restore(
    name: Annotated[
        str | None, typer.Argument(help="Backup file name (see `backup list`); default: newest.")
    ] = None,
    latest: Annotated[bool, typer.Option("--latest", help="Restore the newest backup.")] = False,
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="Do not ask (required without a terminal).")
    ] = False,
    no_snapshot: Annotated[
        bool,
        typer.Option("--no-snapshot", help="Skip the safety snapshot of the current database."),
    ] = False,
    lock_wait: LockWaitOpt = 0,
    as_json: JsonOpt = False,
) -> None:
    """Restore a backup: verify it, restore into a scratch database, stop the services using the
    database, snapshot it, then swap the restored one in. Holds the deploy lock throughout."""
    from contextlib import ExitStack

    from composekit.backup import find_backup, restore_backup
    from composekit.deploy import take_deploy_lock
    from composekit.errors import UsageError

    if name and latest:
        raise UsageError(
            "give a backup name or --latest, not both", hint="see `composekit backup list`"
        )
    s, target = _db_target()
    chosen = find_backup(s.backups_path, name)
    if not yes:
        if not sys.stdin.isatty():
            raise UsageError(
                f"refusing to restore {chosen.path.name} over database {target.database} without --yes",
                hint="rerun with --yes (no terminal to ask on)",
            )
        typer.confirm(
            f"Replace database {target.database} with {chosen.path.name} (a safety snapshot is taken first)?",
            abort=True,
        )
    stop = [s.web_service, s.migrator_service, *s.maintenance_services]
    with ExitStack() as lock:  # never under a running deploy (nor one starting meanwhile)
        take_deploy_lock(target, lock, lock_wait, render.progress)
        report = restore_backup(
            target,
            s.backups_path,
            str(chosen.path),
            snapshot=not no_snapshot,
            stop_services=stop,
            progress=render.progress,
        )
    if as_json:
        render.emit_json(report)
        return
    render.line(
        f"restored {report.restored.path.name} into {report.database} "
        f"(ledger {report.ledger_version or '-'}) in {report.duration_s:.1f}s"
    )
    if report.snapshot:
        render.line(f"safety snapshot of the previous state: {report.snapshot.path}")


# -- deploy / history ------------------------------------------------------------------------------


@app.command(
    epilog="Examples:\n\n  composekit deploy --dry-run\n\n  composekit deploy --env staging\n\n"
    "  composekit deploy --env prod --json --timeout 300"
)
def deploy(
    env: EnvOpt = None,
    dry_run: DryRunOpt = False,
    timeout: TimeoutOpt = 180,
    no_backup: Annotated[bool, typer.Option("--no-backup", help="Do not back up first.")] = False,
    backup_mode: Annotated[
        str, typer.Option("--backup", help="auto (when migrations are pending) | always.")
    ] = "auto",
    lock_wait: LockWaitOpt = 0,
    maintenance: Annotated[
        bool,
        typer.Option(
            "--maintenance",
            help="Stop the web ([deploy] maintenance) from before the backup until the new one is up.",
        ),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Backup → migrate → verify → deploy web (health-gated); undo everything on failure (exit 7)."""
    from composekit.deploy import deploy as run_deploy

    result = run_deploy(
        settings(),
        env=env,
        timeout=timeout,
        backup_mode="never" if no_backup else backup_mode,
        lock_wait=lock_wait,
        maintenance=maintenance,
        dry_run=dry_run,
        progress=render.progress,
    )
    _show_workflow(
        result,
        as_json,
        lambda r: f"deployed: ledger {(r.ledger_after or ['-'])[-1]}, {len(r.steps)} steps ok",
    )


def _show_workflow(result: Any, as_json: bool, summary: Callable[[Any], str]) -> None:
    """A deploy's or rollback's result: the plan (``--dry-run``), JSON, or a one-line summary."""
    if as_json:
        render.emit_json({"plan": result} if isinstance(result, list) else result)
    elif isinstance(result, list):
        for line in result:
            render.line(line)
    else:
        render.line(summary(result))


@app.command(
    epilog="Examples:\n\n  composekit rollback --list\n\n  composekit rollback\n\n"
    "  composekit rollback ck-20261125T101500-3f2a9c1d7e4b --env prod"
)
def rollback(
    to: Annotated[
        str | None,
        typer.Argument(
            help="Kept image tag, reference or ID prefix (default: the newest one not running)."
        ),
    ] = None,
    list_only: Annotated[
        bool, typer.Option("--list", help="List the kept previous web images.")
    ] = False,
    env: EnvOpt = None,
    dry_run: DryRunOpt = False,
    timeout: TimeoutOpt = 180,
    lock_wait: LockWaitOpt = 0,
    as_json: JsonOpt = False,
) -> None:
    """Put the web back on an image an earlier deploy replaced; the database is not touched.
    Health-gated: if it never becomes healthy, the web it replaced comes back (exit 7)."""
    from composekit import rollback as rb
    from composekit.deploy import short

    if list_only:
        kept = rb.list_kept(settings(), env=env)
        if as_json:
            render.emit_json({"images": kept})
            return
        rows = [
            (
                k.tag,
                short(k.image_id),
                k.created,
                "running" if k.running else "",
            )
            for k in kept
        ]
        render.table(rows, ["tag", "image", "created", ""])
        return
    result = rb.rollback(
        settings(),
        to=to,
        env=env,
        timeout=timeout,
        lock_wait=lock_wait,
        dry_run=dry_run,
        progress=render.progress,
    )
    _show_workflow(result, as_json, lambda r: f"rolled back: {r.steps[-1]['detail']}")


@app.command(
    "schema",
    epilog="Examples:\n\n  composekit schema\n\n  composekit schema --write            "
    '# then set [deploy] expected_schema = "schema.sql"\n\n'
    "  composekit schema --write --output db/schema.sql",
)
def schema_cmd(
    write: Annotated[
        bool,
        typer.Option("--write", help="Write it to [deploy] expected_schema (default schema.sql)."),
    ] = False,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="With --write: this file instead.")
    ] = None,
) -> None:
    """The database's schema, normalized (pg_dump --schema-only minus comments, SET lines and
    other noise). With [deploy] expected_schema set, deploy's verify step requires the migrated
    database to match that file."""
    from composekit.deploy import expected_schema_path

    s, target = _db_target()
    text = target.schema()
    if not write:
        sys.stdout.write(text)
        return
    path = s.path(output) if output else expected_schema_path(s)
    path.write_text(text)
    render.line(f"wrote {path} ({len(text.splitlines())} lines)")
    if not s.expected_schema:
        render.line(
            f'deploy compares with it once composekit.toml has: [deploy] expected_schema = "{path.name}"'
        )


@app.command("status")
def status_cmd(as_json: JsonOpt = False) -> None:
    """Services and health, ledger version, pending migrations, last backup, last deploy."""
    from composekit.status import project_status

    st = project_status(settings())
    if as_json:
        render.emit_json(st)
        return
    render.table(
        [(s["service"], s["state"], s["health"] or "-", s["image"]) for s in st.services],
        ["service", "state", "health", "image"],
    )
    render.line(
        f"ledger: {st.ledger_version or 'nothing applied'}; pending: {', '.join(st.pending) or 'none'}"
    )
    b = st.last_backup
    render.line(
        f"last backup: {b['path'] + ' (ledger ' + str(b['ledger_version']) + ')' if b else 'none'}"
    )
    d = st.last_deploy
    if d is None:
        render.line("last deploy: none")
    else:
        result = "ok" if d["ok"] else "FAILED: " + d["error"]
        render.line(f"last {d['kind']}: {d['started'][:19]} {result}")
    for p in st.problems:
        render.line(f"problem: {p}")


@app.command()
def history(as_json: JsonOpt = False) -> None:
    """Past deploys and rollbacks of this project: when, result, ledger versions, failed step."""
    from composekit.deploy import read_history

    records = read_history(settings().project_dir)
    if as_json:
        render.emit_json({"deploys": records})
        return
    rows = []
    for r in records:
        failed = next((st["name"] for st in r["steps"] if st["status"] == "failed"), "")
        before = (r["ledger_before"] or ["-"])[-1]
        after = (r["ledger_after"] or ["-"])[-1]
        rows.append(
            (
                r["started"][:19],
                r.get("kind", "deploy"),
                r["env"] or "-",
                "ok" if r["ok"] else f"FAILED at {failed}",
                f"{before} → {after}",
            )
        )
    render.table(rows, ["started (UTC)", "kind", "env", "result", "ledger"])


def _wants_json(argv: list[str]) -> bool:
    return "--json" in argv


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app and turn every failure into one clear line and an exit code."""
    args = sys.argv[1:] if argv is None else argv
    try:  # Typer >= 0.20 vendors click
        from typer._click.exceptions import ClickException
    except ImportError:  # pragma: no cover - older Typer uses click itself
        from click.exceptions import ClickException  # type: ignore[no-redef]

    from composekit.errors import ComposekitError, ExitCode

    debug = "--debug" in args
    try:
        rv = app(args=args, prog_name="composekit", standalone_mode=False)
        code = rv if isinstance(rv, int) else 0
    except ComposekitError as exc:
        if debug:
            import traceback

            traceback.print_exc()
        render.error(exc, _wants_json(args))
        code = int(exc.exit_code)
    except typer.Exit as exc:
        code = exc.exit_code
    except typer.Abort:
        render.line("interrupted", err=True)
        code = int(ExitCode.INTERRUPTED)
    except ClickException as exc:  # usage errors: bad option, missing argument
        exc.show()
        code = int(ExitCode.USAGE)
    except KeyboardInterrupt:
        render.line("interrupted", err=True)
        code = int(ExitCode.INTERRUPTED)
    except Exception as exc:
        if debug:
            raise
        from composekit.redact import redact

        render.line(f"error: unexpected {type(exc).__name__}: {redact(str(exc))}", err=True)
        render.line("  fix: rerun with --debug and report the traceback", err=True)
        code = int(ExitCode.UNEXPECTED)
    sys.exit(code)


if __name__ == "__main__":
    main()
