"""``composekit backup [list]`` and ``composekit restore``."""

from __future__ import annotations

from typing import Annotated

import typer

from composekit import commands
from composekit.cli.app import JsonOpt, LockWaitOpt, app, cli, is_terminal

backup_app = typer.Typer(
    help="Take, list and prune verified backups (pg_dump -Fc inside the db container).",
    invoke_without_command=True,
    epilog="Examples:\n\n  composekit backup --label before-upgrade\n\n  composekit backup list --json",
)
app.add_typer(backup_app, name="backup")


@backup_app.callback()
def backup(
    ctx: typer.Context,
    label: Annotated[
        str, typer.Option("--label", "-l", help="A word to find it by later.")
    ] = "manual",
    keep: Annotated[
        int | None, typer.Option("--keep", min=1, help="Keep the N newest backups (default 10).")
    ] = None,
    lock_wait_timeout: Annotated[
        float,
        typer.Option("--lock-wait-timeout", min=0, help="Seconds pg_dump waits for a table lock."),
    ] = 30,
    as_json: JsonOpt = False,
) -> None:
    """Back up the database now: dump, verify (sha256 + pg_restore --list), keep the N newest."""
    if ctx.invoked_subcommand is not None:
        return
    c = cli(ctx)
    b = commands.backup(
        c.settings(),
        label=label,
        keep=keep,
        lock_wait_timeout=lock_wait_timeout,
        progress=c.out.progress,
        meter=c.out.meter,
    )
    if as_json:
        c.out.emit_json(b)
    else:
        c.out.line(f"backup {b.path} ({b.size} bytes, ledger {b.ledger_version or '-'}, verified)")


@backup_app.command("list")
def backup_list(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Backups, newest first: label, age, size, ledger version, verified."""
    c = cli(ctx)
    backups = commands.backup_list(c.settings())
    if as_json:
        c.out.emit_json({"backups": backups})
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
    c.out.table(rows, ["file", "label", "age", "bytes", "ledger", "verified"])


def _age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"


def _ask(backup: str, database: str) -> None:
    from composekit.errors import UsageError

    if not is_terminal():
        raise UsageError(
            f"refusing to restore {backup} over database {database} without --yes",
            hint="rerun with --yes (no terminal to ask on)",
        )
    if not typer.confirm(
        f"Replace database {database} with {backup} (a safety snapshot is taken first)?"
    ):
        raise UsageError(
            f"restore of {backup} cancelled; nothing was changed",
            hint="answer y to restore, or pass --yes",
        )


@app.command(
    epilog="Examples:\n\n  composekit restore --latest --yes\n\n  composekit restore 20261125T101500Z_manual.dump\n\n"
    "  composekit restore ./backup.sql --yes --foreign   # the old shell script's plain dump"
)
def restore(
    ctx: typer.Context,
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
    foreign: Annotated[
        bool,
        typer.Option(
            "--foreign",
            help="Restore a dump from elsewhere (no manifest, another project, database or cluster).",
        ),
    ] = False,
    snapshots: Annotated[
        bool,
        typer.Option("--snapshot", help="The newest may be a pre-restore safety snapshot."),
    ] = False,
    lock_wait: LockWaitOpt = 0,
    as_json: JsonOpt = False,
) -> None:
    """Restore a backup: verify it, restore into a scratch database, stop the services using the
    database, snapshot it, then swap the restored one in. Holds the deploy lock throughout."""
    from composekit.errors import UsageError

    if name and latest:
        raise UsageError(
            "give a backup name or --latest, not both", hint="see `composekit backup list`"
        )
    c = cli(ctx)
    report = commands.restore(
        c.settings(),
        name,
        snapshot=not no_snapshot,
        lock_wait=lock_wait,
        confirm=None if yes else _ask,
        foreign=foreign,
        snapshots=snapshots,
        progress=c.out.progress,
        meter=c.out.meter,
    )
    if as_json:
        c.out.emit_json(report)
        return
    c.out.line(
        f"restored {report.restored.path.name} into {report.database} "
        f"(ledger {report.ledger_version or '-'}) in {report.duration_s:.1f}s"
    )
    if report.snapshot:
        c.out.line(f"safety snapshot of the previous state: {report.snapshot.path}")
