"""``composekit migrate …``: the engine's verbs."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from composekit import commands
from composekit.cli.app import CliContext, JsonOpt, app, cli

if TYPE_CHECKING:
    from composekit.config import Settings
    from composekit.migrations import PlannedStep, RunResult

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
StepsOpt = Annotated[int | None, typer.Option("--steps", "-n", min=1, help="At most N migrations.")]
PlanOnlyOpt = Annotated[bool, typer.Option("--dry-run", help="Print the plan; change nothing.")]


def _settings(
    c: CliContext,
    url: str | None,
    directory: Path | None,
    table: str | None,
    fmt: str | None,
    **flags: Any,
) -> Settings:
    return c.settings(
        database_url=url,
        migrations_dir=directory,
        ledger_table=table,
        migrations_format=fmt,
        **flags,
    )


def _show(c: CliContext, result: RunResult | list[PlannedStep], as_json: bool) -> None:
    """A run's result, or (``--dry-run``) its plan."""
    if isinstance(result, list):
        _show_plan(c, result, as_json)
        return
    if as_json:
        c.out.emit_json(result)
        return
    for note in result.notes:
        c.out.line(note)
    verb = "applied" if result.direction == "up" else "reverted"
    if result.done:
        c.out.line(
            f"{verb} {len(result.done)} migration(s); now at {result.current or 'nothing applied'}"
        )
    elif result.direction == "down":
        c.out.line(f"nothing to revert; at {result.current or 'nothing applied'}")


def _one_of_target_and_steps(target: str | None, steps: int | None) -> None:
    if target is not None and steps is not None:
        from composekit.errors import UsageError

        raise UsageError(
            "--target and --steps both say how far to go; nothing was changed",
            hint="give one of them",
        )


def _show_plan(c: CliContext, steps: list[PlannedStep], as_json: bool) -> None:
    if as_json:
        c.out.emit_json({"plan": steps})
        return
    if not steps:
        c.out.line("nothing to do")
    for st in steps:
        m = st.migration
        tx = (
            "in a transaction"
            if st.transactional
            else f"WITHOUT a transaction ({st.reason or 'statement by statement'})"
        )
        if st.direction == "down" and m.down_is_noop:
            tx = "no SQL: only its ledger row is removed"
        c.out.line(f"-- {st.direction} {m.version}_{m.name} ({st.section.path.name}), {tx}")
        c.out.line(st.section.sql.strip())
        c.out.line()


@migrate_app.command("status")
def migrate_status(
    ctx: typer.Context,
    url: UrlOpt = None,
    directory: DirOpt = None,
    table: TableOpt = None,
    fmt: FormatOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Applied and pending migrations, and drift between files and ledger."""
    c = cli(ctx)
    st = commands.migrate_status(_settings(c, url, directory, table, fmt), progress=c.out.progress)
    if as_json:
        c.out.emit_json(st)
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
    c.out.table(rows, ["version", "name", "state", "applied at"])
    for p in st.problems:
        c.out.line(f"{p.kind}: {p.version}: {p.detail}")
    for ig in st.ignored:
        c.out.line(f"note: ignored {ig} (not a migration file)")
    c.out.line(
        f"current: {st.current or 'none'}; {len(st.pending)} pending"
        + ("" if st.problems else "; no drift")
    )


@migrate_app.command(
    "up",
    epilog="Examples:\n\n  composekit migrate up\n\n  composekit migrate up --steps 1\n\n  composekit migrate up --target 20260101120000 --json",
)
def migrate_up(
    ctx: typer.Context,
    url: UrlOpt = None,
    directory: DirOpt = None,
    table: TableOpt = None,
    fmt: FormatOpt = None,
    target: TargetOpt = None,
    steps: StepsOpt = None,
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
        typer.Option(
            "--lock-wait", min=0, help="Seconds to wait for another migrator (default 60)."
        ),
    ] = None,
    lock_timeout: Annotated[
        float | None,
        typer.Option(
            "--lock-timeout", min=0.001, help="Per-migration lock_timeout in seconds (default 5)."
        ),
    ] = None,
    statement_timeout: Annotated[
        float | None,
        typer.Option("--statement-timeout", min=0.001, help="Per-statement timeout in seconds."),
    ] = None,
    phase: Annotated[
        str,
        typer.Option(
            "--phase",
            envvar="COMPOSEKIT_PHASE",
            help="expand: stop before the first contract migration (a deploy runs the rest "
            "after the web rollout) | contract | all.",
        ),
    ] = "all",
    dry_run: PlanOnlyOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Apply pending migrations, each in its own transaction with its ledger row."""
    c = cli(ctx)
    _one_of_target_and_steps(target, steps)
    s = _settings(
        c,
        url,
        directory,
        table,
        fmt,
        lock_wait=lock_wait,
        lock_timeout=lock_timeout,
        statement_timeout=statement_timeout,
    )
    result = commands.migrate_up(
        s,
        target=target,
        steps=steps,
        atomic=atomic,
        allow_out_of_order=allow_out_of_order,
        phase=phase,
        dry_run=dry_run,
        progress=c.out.progress,
    )
    _show(c, result, as_json)


@migrate_app.command(
    "down",
    epilog="Examples:\n\n  composekit migrate down            # the newest one\n\n  composekit migrate down --target 0  # all of them",
)
def migrate_down(
    ctx: typer.Context,
    url: UrlOpt = None,
    directory: DirOpt = None,
    table: TableOpt = None,
    fmt: FormatOpt = None,
    target: Annotated[
        str | None, typer.Option("--target", help="Revert everything above this version (0: all).")
    ] = None,
    steps: Annotated[
        int | None, typer.Option("--steps", "-n", min=1, help="Revert the newest N (default 1).")
    ] = None,
    dry_run: PlanOnlyOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Revert applied migrations with their down sections, newest first."""
    c = cli(ctx)
    _one_of_target_and_steps(target, steps)
    s = _settings(c, url, directory, table, fmt)
    result = commands.migrate_down(
        s, target=target, steps=steps, dry_run=dry_run, progress=c.out.progress
    )
    _show(c, result, as_json)


@migrate_app.command("plan")
def migrate_plan(
    ctx: typer.Context,
    url: UrlOpt = None,
    directory: DirOpt = None,
    table: TableOpt = None,
    fmt: FormatOpt = None,
    target: TargetOpt = None,
    down: Annotated[bool, typer.Option("--down", help="Plan a revert instead.")] = False,
    steps: StepsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Dry run: the SQL that would run, and whether each runs in a transaction."""
    c = cli(ctx)
    _one_of_target_and_steps(target, steps)
    s = _settings(c, url, directory, table, fmt)
    plan = commands.migrate_plan(s, down=down, target=target, steps=steps, progress=c.out.progress)
    _show_plan(c, plan, as_json)


@migrate_app.command("verify")
def migrate_verify(
    ctx: typer.Context,
    url: UrlOpt = None,
    directory: DirOpt = None,
    table: TableOpt = None,
    fmt: FormatOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Files vs ledger: edited after apply, applied but missing, out-of-order, dirty (exit 6)."""
    c = cli(ctx)
    st = commands.migrate_verify(_settings(c, url, directory, table, fmt), progress=c.out.progress)
    if as_json:
        c.out.emit_json(st)
    else:
        c.out.line(
            f"ok: {len(st.applied)} applied migrations match their files; {len(st.pending)} pending"
        )


@migrate_app.command("new")
def migrate_new(
    ctx: typer.Context,
    name: Annotated[
        str, typer.Argument(help="What the migration does, e.g. add_users_email_index.")
    ],
    directory: DirOpt = None,
    fmt: FormatOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create the next migration file in the directory's own format and numbering."""
    c = cli(ctx)
    paths = commands.migrate_new(c.settings(migrations_dir=directory, migrations_format=fmt), name)
    if as_json:
        c.out.emit_json({"created": [str(p) for p in paths]})
    else:
        for p in paths:
            c.out.line(f"created {p}")


@migrate_app.command("baseline")
def migrate_baseline(
    ctx: typer.Context,
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
    c = cli(ctx)
    s = _settings(c, url, directory, table, fmt)
    _show(c, commands.migrate_baseline(s, version, progress=c.out.progress), as_json)


@migrate_app.command("repair")
def migrate_repair(
    ctx: typer.Context,
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
    c = cli(ctx)
    s = _settings(c, url, directory, table, fmt)
    actions = commands.migrate_repair(s, forget=forget or [], progress=c.out.progress)
    if as_json:
        c.out.emit_json({"actions": actions})
    else:
        for a in actions:
            c.out.line(a)


REHEARSAL_LINE = "composekit-rehearsal: "
"""How the engine's report leaves a container: one line, this prefix, then JSON."""


@migrate_app.command("rehearse", hidden=True)
def migrate_rehearse(
    ctx: typer.Context,
    database: Annotated[
        str, typer.Option("--database", help="The throwaway copy (composekit_rehearse_*).")
    ],
    url: UrlOpt = None,
    directory: DirOpt = None,
    table: TableOpt = None,
    fmt: FormatOpt = None,
    no_downs: Annotated[bool, typer.Option("--no-downs", help="Skip the down check.")] = False,
    downs_to: Annotated[
        str | None,
        typer.Option("--downs-to", help="Only revert to this version (0: all) and compare."),
    ] = None,
    schema_before: Annotated[
        str, typer.Option("--schema-before", help="The schema digest to compare with.")
    ] = "",
) -> None:
    """(Used by `composekit rehearse`, inside the app's image.) Apply the pending migrations to
    the throwaway copy DATABASE, measuring locks, rows, rewrites; then check the down sections."""
    import json

    c = cli(ctx)
    s = _settings(c, url, directory, table, fmt)
    back = (None if downs_to == "0" else downs_to, schema_before) if downs_to else None
    report = commands.migrate_rehearse(
        s, database, check_downs=not no_downs, downs_to=back, progress=c.out.progress
    )
    if isinstance(report, tuple):
        ok, notes = report
        c.out.line(REHEARSAL_LINE + json.dumps({"downs_restore_schema": ok, "down_notes": notes}))
    else:
        c.out.line(REHEARSAL_LINE + json.dumps(report.to_dict()))
