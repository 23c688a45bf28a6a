"""``doctor``, ``init``, ``status``, ``history``, ``schema``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from composekit import commands
from composekit.cli.app import JsonOpt, app, cli, is_terminal

if TYPE_CHECKING:
    from composekit.deploy.runner import StepRecord


@app.command(
    epilog="Examples:\n\n  composekit doctor\n\n  composekit doctor --fix   # install/start what is missing (Debian, root)"
)
def doctor(
    ctx: typer.Context,
    fix: Annotated[
        bool, typer.Option("--fix", help="Install and start what is missing; build offline images.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Check Docker engine, Compose plugin, images and disk; print one fix per problem."""
    c = cli(ctx)
    report = commands.doctor(c.project_dir, fix=fix, progress=c.out.progress)
    if as_json:
        c.out.emit_json(report)
    else:
        for chk in report.checks:
            c.out.line(
                f"{'ok  ' if chk.ok else 'FAIL'}  {chk.name}: {chk.detail}"
                + ("" if chk.ok else f" — fix: {chk.fix}")
            )
        c.out.line(f"{'ready' if report.ok else 'not ready'} ({report.seconds:.1f}s)")
    if not report.ok:
        raise typer.Exit(4)


@app.command(
    epilog="Examples:\n\n  composekit init shop --layout migrator\n\n"
    "  composekit init . --layout app-startup --ci gitlab\n\n"
    "  composekit init demo --layout init-scripts --ci none --db-image postgres:15\n\n"
    "  composekit init offline --layout migrator --db-image composekit/postgres:15 "
    "--python-image composekit/python:3.11 --proxy-image composekit/haproxy:2.6"
)
def init(
    ctx: typer.Context,
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
    python_image: Annotated[
        str,
        typer.Option(
            "--python-image",
            help="Base image of the app (e.g. composekit/python:3.11, the offline stand-in).",
        ),
    ] = "python:3.12-slim",
    proxy_image: Annotated[
        str,
        typer.Option(
            "--proxy-image",
            help="HAProxy image of the reverse proxy (e.g. composekit/haproxy:2.6, the offline stand-in).",
        ),
    ] = "haproxy:2.6",
    force: Annotated[bool, typer.Option("--force", help="Overwrite existing files.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Scaffold a runnable web + PostgreSQL project in one of the three migration layouts."""
    from composekit.config import LAYOUTS
    from composekit.errors import UsageError

    c = cli(ctx)
    if layout is None:
        if not is_terminal():
            raise UsageError("no --layout given", hint=f"pass --layout {' | '.join(LAYOUTS)}")
        layout = typer.prompt(f"Layout ({', '.join(LAYOUTS)})", default="migrator")
    result = commands.init(
        directory,
        layout,
        ci=ci,
        name=name,
        db_image=db_image,
        python_image=python_image,
        proxy_image=proxy_image,
        force=force,
    )
    if as_json:
        c.out.emit_json(result)
        return
    for f in result.files:
        c.out.line(f"wrote {directory / f}")
    c.out.line(f"next: cd {directory} && read README.md (layout {layout})")


@app.command(
    epilog="Examples:\n\n  composekit adopt --dry-run        # what it finds, nothing written\n\n"
    "  composekit -C ~/shop adopt\n\n  composekit adopt --db postgres --migrator migrate --json"
)
def adopt(
    ctx: typer.Context,
    db: Annotated[str | None, typer.Option("--db", help="The PostgreSQL service.")] = None,
    web: Annotated[str | None, typer.Option("--web", help="The web service.")] = None,
    migrator: Annotated[
        str | None, typer.Option("--migrator", help="The one-off migrator service.")
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show, write nothing.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Replace composekit.toml.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Take an existing Compose project as it is: find its db, web and migrator, write only
    composekit.toml (and .gitignore lines); the compose files are never changed."""
    c = cli(ctx)
    a = commands.adopt(
        c.project_dir, db=db, web=web, migrator=migrator, dry_run=dry_run, force=force
    )
    if as_json:
        c.out.emit_json(a)
        return
    c.out.line(f"compose files: {', '.join(a.compose_files)}")
    c.out.line(f"database: {a.db} (PostgreSQL; user {a.db_user}, database {a.db_name})")
    c.out.line(f"web: {a.web or '-'}" + (f" (gets {a.settings_from[a.web]})" if a.web else ""))
    if a.migrator:
        c.out.line(
            f"migrator: {a.migrator} runs {a.migrator_command} ({a.migrator_kind}; "
            f"gets {a.settings_from[a.migrator]})"
        )
    c.out.line(f"layout: {a.layout}")
    for note in a.notes:
        c.out.line(f"note: {note}")
    if dry_run:
        c.out.line("dry run: nothing written; composekit.toml would be:")
        c.out.line(a.toml.rstrip())
        return
    c.out.line(
        f"wrote {', '.join(a.written)}; next: composekit status, then composekit deploy --dry-run"
    )


@app.command(
    epilog="Examples:\n\n  composekit vendor            # after upgrading composekit: then commit vendor/\n\n"
    "  composekit -C shop vendor --json"
)
def vendor(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Put this composekit into vendor/ as a wheel and pin it in requirements.txt, so the app
    image (migrator, app-startup web) runs exactly this version — no package index needed."""
    c = cli(ctx)
    result = commands.vendor(c.project_dir)
    if as_json:
        c.out.emit_json(result)
        return
    c.out.line(f"wrote {result.wheel} (composekit {result.version})")
    for old in result.removed:
        c.out.line(f"removed vendor/{old}")
    if result.requirements_changed:
        c.out.line(f"pinned composekit=={result.version} in requirements.txt")
    c.out.line(
        "next: commit vendor/ and requirements.txt; the next deploy builds the image with it"
    )


@app.command("status")
def status_cmd(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Services and health, ledger version, pending migrations, last backup, last deploy."""
    c = cli(ctx)
    st = commands.status(c.settings())
    if as_json:
        c.out.emit_json(st)
        return
    if st.proxy is None:
        c.out.table(
            [(s.service, s.state, s.health or "-", s.image) for s in st.services],
            ["service", "state", "health", "image"],
        )
    else:
        mark = {True: "serving", False: "no traffic", None: ""}
        c.out.table(
            [
                (s.service, s.container, s.state, s.health or "-", s.image, mark[s.traffic])
                for s in st.services
            ],
            ["service", "container", "state", "health", "image", "traffic"],
        )
        if st.proxy.maintenance:
            c.out.line("proxy: the maintenance page is on (503, Retry-After)")
    if st.pending is None and any(p.startswith("database:") for p in st.problems):
        c.out.line("ledger: unknown; pending: unknown (the database could not be read)")
    elif st.pending is None:  # no migrations directory: the project's own migrator keeps them
        c.out.line(
            f"ledger: {st.ledger_version or 'none of composekit'}; pending: not known here "
            "(no migrations directory: the project's own migrator keeps its migrations)"
        )
    else:
        pending = ", ".join(st.pending) or "none"
        c.out.line(f"ledger: {st.ledger_version or 'nothing applied'}; pending: {pending}")
    b = st.last_backup
    c.out.line(f"last backup: {f'{b.path} (ledger {b.ledger_version})' if b else 'none'}")
    d = st.last_deploy
    if d is None:
        c.out.line("last deploy: none")
    else:
        result = "ok" if d.ok else "FAILED: " + d.error
        c.out.line(f"last {d.kind}: {d.started[:19]} {result}")
    if st.run is not None and st.running:
        c.out.line(f"in progress: {st.run.describe()}")
    for p in st.problems:
        c.out.line(f"problem: {p}")


history_app = typer.Typer(
    help="Past deploys and rollbacks of this project: when, result, ledger versions, failed step.",
    epilog="Examples:\n\n  composekit history\n\n  composekit history show --last      "
    "# where the last run spent its time, its undo\n\n  composekit history show 3",
    invoke_without_command=True,
    no_args_is_help=False,
)
app.add_typer(history_app, name="history")


@history_app.callback(invoke_without_command=True)
def history(
    ctx: typer.Context,
    since: Annotated[
        str | None,
        typer.Option("--since", help="Only runs since: 7d, 12h, 30min, or a date (2026-11-30)."),
    ] = None,
    result: Annotated[str | None, typer.Option("--result", help="Only ok or failed runs.")] = None,
    kind: Annotated[
        str | None, typer.Option("--kind", help="Only deploy, rollback or recover runs.")
    ] = None,
    steps: Annotated[
        bool, typer.Option("--steps", help="Each run's steps and how long each took.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Past deploys and rollbacks of this project: when, result, ledger versions, failed step."""
    if ctx.invoked_subcommand is not None:
        return
    c = cli(ctx)
    numbered = commands.history_filtered(c.settings(), since=since, result=result, kind=kind)
    if as_json:
        c.out.emit_json({"deploys": [r for _, r in numbered]})
        return
    rows = [
        (
            str(n),
            r.started[:19],
            r.kind,
            r.env or "-",
            "ok" if r.ok else f"FAILED at {r.failed_step or ''}",
            f"{(r.ledger_before or ['-'])[-1]} → {(r.ledger_after or ['-'])[-1]}",
            f"{sum(st.seconds + (st.undo_seconds or 0) for st in r.steps):.1f}s",
        )
        + (
            (", ".join(_step(st) for st in r.steps if st.seconds >= 0.05 or _notable(st)),)
            if steps
            else ()
        )  # fmt: skip
        for n, r in numbered
    ]
    headers = ["#", "started (UTC)", "kind", "env", "result", "ledger", "took"]
    c.out.table(rows, headers + (["steps"] if steps else []))


def _notable(st: StepRecord) -> bool:
    """A step that failed or was undone is shown however short it was."""
    return str(st.status) not in ("ok", "skipped")


def _step(st: StepRecord) -> str:
    return f"{st.name} {st.seconds:.1f}s" + (f" {st.status}" if _notable(st) else "")


@history_app.command("show")
def history_show(
    ctx: typer.Context,
    number: Annotated[
        int | None, typer.Argument(help="Which run (the # column of `composekit history`).")
    ] = None,
    last: Annotated[bool, typer.Option("--last", help="The newest run.")] = False,
) -> None:
    """One run's steps as a bar chart: where the time went, the failed step, the undo."""
    from composekit.cli.chart import run_chart
    from composekit.errors import UsageError

    c = cli(ctx)
    records = commands.history(c.settings())
    if not records:
        raise UsageError("no deploy or rollback on record yet", hint="run composekit deploy")
    if number is None or last:
        number = len(records)
    if not 1 <= number <= len(records):
        raise UsageError(
            f"no run #{number}: there are {len(records)}",
            hint="see the # column of `composekit history`",
        )
    for line in run_chart(records[number - 1]):
        c.out.line(line)


@app.command(
    "schema",
    epilog="Examples:\n\n  composekit schema\n\n  composekit schema --write            "
    '# then set [deploy] expected_schema = "schema.sql"\n\n'
    "  composekit schema --write --output db/schema.sql",
)
def schema_cmd(
    ctx: typer.Context,
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
    c = cli(ctx)
    if not write:
        sys.stdout.write(commands.schema(c.settings()))
        return
    written = commands.write_schema(c.settings(), output)
    c.out.line(f"wrote {written.path} ({written.lines} lines)")
    if not written.configured:
        c.out.line(
            "deploy compares with it once composekit.toml has: "
            f'[deploy] expected_schema = "{written.path.name}"'
        )
