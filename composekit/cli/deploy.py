"""``composekit deploy`` and ``composekit rollback``."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated

import typer

from composekit import commands
from composekit.cli.app import (
    CliContext,
    DryRunOpt,
    EnvOpt,
    JsonOpt,
    LockWaitOpt,
    TimeoutOpt,
    app,
    cli,
)

if TYPE_CHECKING:
    from composekit.deploy import HistoryRecord


def _show(
    c: CliContext,
    result: HistoryRecord | list[str],
    as_json: bool,
    summary: Callable[[HistoryRecord], str],
) -> None:
    """A deploy's or rollback's result: the plan (``--dry-run``), JSON, or a one-line summary."""
    if as_json:
        c.out.emit_json({"plan": result} if isinstance(result, list) else result)
    elif isinstance(result, list):
        for line in result:
            c.out.line(line)
    else:
        c.out.line(summary(result))


def _scale(value: str, web: str) -> int:
    """``web=3`` (or just ``3``) → 3; anything else is a usage error."""
    from composekit.errors import UsageError

    service, _, n = value.rpartition("=")
    if service not in ("", web) or not n.isdigit() or int(n) < 1:
        raise UsageError(
            f"--scale {value!r} is not {web}=N with N ≥ 1",
            hint=f"e.g. --scale {web}=3 (only the web service is scaled by a deploy)",
        )
    return int(n)


@app.command(
    epilog="Examples:\n\n  composekit deploy --dry-run\n\n  composekit deploy --env staging\n\n"
    "  composekit deploy --env prod --json --timeout 300\n\n  composekit deploy --scale web=3\n\n"
    "  composekit deploy --engine swarm"
)
def deploy(
    ctx: typer.Context,
    env: EnvOpt = None,
    dry_run: DryRunOpt = False,
    timeout: TimeoutOpt = 900,
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
    scale: Annotated[
        str | None,
        typer.Option(
            "--scale",
            metavar="WEB=N",
            help="Run N web containers (default: deploy.replicas, else as many as run now).",
        ),
    ] = None,
    allow_lint: Annotated[
        bool,
        typer.Option(
            "--allow-lint", help="Deploy even when lint finds errors in the pending migrations."
        ),
    ] = False,
    rehearse: Annotated[
        bool,
        typer.Option(
            "--rehearse",
            help="Rehearse the pending migrations on a throwaway copy first ([deploy] rehearse); "
            "refuse a failure or an ACCESS EXCLUSIVE lock over [deploy] max_lock_ms (exit 6).",
        ),
    ] = False,
    engine: Annotated[
        str | None,
        typer.Option(
            "--engine",
            help="compose (this host) | swarm (the stack on the swarm this engine manages); "
            "default: [deploy] engine, else compose.",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Backup → migrate → verify → deploy web (health-gated); undo everything on failure (exit 7)."""
    from composekit.config import BackupMode
    from composekit.errors import UsageError

    if backup_mode not in ("auto", "always"):
        raise UsageError(f"unknown --backup {backup_mode!r}", hint="use --backup auto or always")
    c = cli(ctx)
    replicas = _scale(scale, c.settings().web_service) if scale is not None else None
    result = commands.deploy(
        c.settings(rehearse=True if rehearse else None, engine=engine),
        env=env,
        timeout=timeout,
        backup_mode=BackupMode.NEVER if no_backup else BackupMode(backup_mode),
        lock_wait=lock_wait,
        maintenance=maintenance,
        scale=replicas,
        allow_lint=allow_lint,
        dry_run=dry_run,
        progress=c.out.progress,
    )
    _show(
        c,
        result,
        as_json,
        lambda r: f"deployed: ledger {(r.ledger_after or ['-'])[-1]}, {len(r.steps)} steps ok",
    )


@app.command(
    epilog="Examples:\n\n  composekit rollback --list\n\n  composekit rollback\n\n"
    "  composekit rollback ck-20261125T101500-3f2a9c1d7e4b --env prod"
)
def rollback(
    ctx: typer.Context,
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
    timeout: TimeoutOpt = 900,
    lock_wait: LockWaitOpt = 0,
    as_json: JsonOpt = False,
) -> None:
    """Put the web back on an image an earlier deploy replaced; the database is not touched.
    Health-gated: if it never becomes healthy, the web it replaced comes back (exit 7)."""
    from composekit.deploy import short

    c = cli(ctx)
    if list_only:
        kept = commands.rollback_list(c.settings(), env=env)
        if as_json:
            c.out.emit_json({"images": kept})
            return
        rows = [(k.tag, short(k.image_id), k.created, "running" if k.running else "") for k in kept]
        c.out.table(rows, ["tag", "image", "created", ""])
        return
    result = commands.rollback(
        c.settings(),
        to=to,
        env=env,
        timeout=timeout,
        lock_wait=lock_wait,
        dry_run=dry_run,
        progress=c.out.progress,
    )
    _show(
        c,
        result,
        as_json,
        lambda r: f"rolled back: {next(st.detail for st in r.steps if st.name == 'web')}",
    )


@app.command(
    epilog="Examples:\n\n  composekit status          # says whether a run was interrupted\n\n"
    "  composekit recover\n\n  composekit recover --lock-wait 60 --json"
)
def recover(
    ctx: typer.Context,
    timeout: TimeoutOpt = 900,
    lock_wait: LockWaitOpt = 0,
    as_json: JsonOpt = False,
) -> None:
    """Finish the undo of a deploy, rollback or restore that was killed (SIGKILL, a power cut):
    migrator container removed, database and web back as they were, stopped services started,
    scratch databases and partial backups removed. The next deploy does this by itself too."""
    c = cli(ctx)
    done = commands.recover(
        c.settings(), lock_wait=lock_wait, timeout=timeout, progress=c.out.progress
    )
    if as_json:
        c.out.emit_json({"recovered": bool(done), "actions": done})
    elif not done:
        c.out.line("nothing to recover: no run was interrupted")
    else:
        c.out.line(f"recovered: {'; '.join(done)}")
