"""``composekit rehearse``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from composekit import commands
from composekit.cli.app import CliContext, EnvOpt, JsonOpt, TimeoutOpt, app, cli

if TYPE_CHECKING:
    from composekit.rehearse import RehearseReport

MODES = {
    "AccessExclusiveLock": "ACCESS EXCLUSIVE",
    "ExclusiveLock": "EXCLUSIVE",
    "ShareRowExclusiveLock": "SHARE ROW EXCLUSIVE",
    "ShareLock": "SHARE",
    "ShareUpdateExclusiveLock": "SHARE UPDATE EXCLUSIVE",
    "RowExclusiveLock": "ROW EXCLUSIVE",
    "RowShareLock": "ROW SHARE",
    "AccessShareLock": "ACCESS SHARE",
}


@app.command(
    epilog="Examples:\n\n  composekit rehearse                  # the newest backup\n\n"
    "  composekit rehearse --backup 20261130T101500Z_pre-deploy.dump --json\n\n"
    "  composekit deploy --rehearse         # rehearse first, refuse what locks too long"
)
def rehearse(
    ctx: typer.Context,
    backup: Annotated[
        str | None,
        typer.Option("--backup", help="The backup to rehearse on (default: the newest)."),
    ] = None,
    latest: Annotated[bool, typer.Option("--latest", help="The newest backup (default).")] = False,
    env: EnvOpt = None,
    timeout: TimeoutOpt = 3600,
    as_json: JsonOpt = False,
) -> None:
    """Run the pending migrations on a throwaway copy of production (restored from a backup) and
    report per migration: time, locks and how long, what they block, rows, rewrites; then whether
    the down sections bring the schema back. The live database is not touched; the copy is
    always dropped."""
    from composekit.errors import UsageError

    if backup and latest:
        raise UsageError("--backup and --latest pick the backup both", hint="give one of them")
    c = cli(ctx)
    report = commands.rehearse(
        c.settings(), backup=backup, env=env, timeout=timeout, progress=c.out.progress,
        meter=c.out.meter,
    )  # fmt: skip
    if as_json:
        c.out.emit_json(report.to_dict())
    else:
        show(c, report)
    failed = report.engine.failed
    if failed is not None:
        from composekit.errors import MigrationError

        raise MigrationError(
            f"{failed.version}_{failed.name} fails on the copy: {failed.error}",
            hint="fix the migration; nothing was changed (the copy is gone)",
        )
    if report.check_failed:
        from composekit.errors import VerifyError

        raise VerifyError(report.check_failed, hint="see the verify checks and expected schema")


def show(c: CliContext, report: RehearseReport) -> None:
    e = report.engine
    c.out.line(
        f"rehearsed {len(e.migrations)} migration(s) on a copy of {report.backup.path.name} "
        f"(restored in {report.restore_s:.1f}s; {report.where})"
    )
    for note in report.notes:
        c.out.line(f"note: {note}")
    for m in e.migrations:
        status = f"FAILED: {m.error}" if m.error else f"{m.duration_ms} ms"
        c.out.line(f"  {m.version}_{m.name}: {status}")
        shown: set[str] = set()
        for lk in m.locks:  # strongest first: a weaker lock on the same table inside it is noise
            if lk.relation in shown:
                continue
            if lk.blocks or lk.mode == "ShareUpdateExclusiveLock":
                shown.add(lk.relation)
                what = f"blocks {lk.blocks}" if lk.blocks and lk.rows else "blocks nothing"
                rows = f"{lk.rows:,} rows" if lk.rows else "empty or new"
                c.out.line(f"    {MODES.get(lk.mode, lk.mode)} on {lk.relation} ({rows}) "
                           f"{lk.ms} ms — {what}")  # fmt: skip
        if m.rewrites:
            c.out.line(f"    rewrote {', '.join(m.rewrites)}")
        if m.rows_touched:
            c.out.line(f"    {m.rows_touched:,} rows inserted, updated or deleted")
        if m.invalid_indexes:
            c.out.line(f"    left INVALID: {', '.join(m.invalid_indexes)}")
    worst = max(e.migrations, key=lambda m: m.blocked_ms, default=None)
    if worst is not None and worst.blocked_ms:
        c.out.line(f"the old web would wait up to {worst.blocked_ms} ms (at {worst.version})")
    elif e.migrations and not e.failed:
        c.out.line("the old web would not wait on any of them")
    for check in report.checks:
        c.out.line(f"check: {check}")
    if report.check_failed:
        c.out.line(f"check FAILED: {report.check_failed}")
    downs = {
        True: "bring the schema back",
        False: "do NOT bring the schema back",
        None: "not checked",
    }
    c.out.line(f"down sections: {downs[e.downs_restore_schema]}"
               + (f" ({'; '.join(e.down_notes)})" if e.down_notes else ""))  # fmt: skip
    c.out.line(f"the copy {report.database} was dropped; the live database was not touched")
