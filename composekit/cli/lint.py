"""``composekit lint``."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from composekit import commands
from composekit.cli.app import CliContext, JsonOpt, app, cli

if TYPE_CHECKING:
    from composekit.lint import Finding, LintReport

FORMATS = ("text", "github", "gitlab")


@app.command(
    epilog="Examples:\n\n  composekit lint\n\n  composekit lint migrations/0042_add_email.sql\n\n"
    "  composekit lint --format github     # annotations in a GitHub Actions log\n\n"
    "  composekit lint --format gitlab > gl-code-quality-report.json\n\n"
    "  composekit lint --rules"
)
def lint(
    ctx: typer.Context,
    paths: Annotated[
        list[Path] | None,
        typer.Argument(help="Migration files or folders (default: the migrations folder)."),
    ] = None,
    fmt: Annotated[
        str, typer.Option("--format", help="text | github (annotations) | gitlab (Code Quality).")
    ] = "text",
    strict: Annotated[
        bool, typer.Option("--strict", help="Warnings count as errors ([lint] strict).")
    ] = False,
    rules: Annotated[bool, typer.Option("--rules", help="List the rules and exit.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Check migrations for what locks or rewrites a live table, or breaks the release still
    serving; exit 6 on any error (warnings alone: 0). Opt out per statement with
    `-- composekit:allow RULE because <reason>`."""
    from composekit.errors import UsageError, VerifyError

    c = cli(ctx)
    if fmt not in FORMATS:
        raise UsageError(f"unknown --format {fmt!r}", hint=f"use one of: {', '.join(FORMATS)}")
    if rules:
        _show_rules(c, as_json)
        return
    report = commands.lint(c.settings(), paths or [], strict=strict)
    if as_json:  # one document; the exit code says whether there were errors
        c.out.emit_json(
            {"ok": not report.errors, "findings": report.findings, "summary": report.summary()}
        )
        if report.errors:
            raise typer.Exit(int(VerifyError.exit_code))
        return
    if fmt == "github":
        for f in report.findings:
            if f.counts:
                c.out.line(_github(f))
    elif fmt == "gitlab":
        c.out.line(json.dumps(_gitlab(report), indent=2))
    else:
        _text(c, report)
    c.out.line(report.summary(), err=True)
    if report.errors:
        first = report.errors[0]
        raise VerifyError(
            f"lint found {len(report.errors)} error(s); the first: {first.path}:{first.line} "
            f"{first.rule}",
            hint="write it the safe way (see `instead:`), or allow it: "
            "-- composekit:allow RULE because <reason>",
        )


def _text(c: CliContext, report: LintReport) -> None:
    for f in report.findings:
        tag = f"allowed ({f.allowed})" if f.allowed else str(f.severity)
        c.out.line(f"{f.path}:{f.line}:{f.col}: {tag} {f.rule}: {f.message}")
        if f.counts:
            c.out.line(f"  why: {f.why}")
            c.out.line(f"  instead: {f.instead}")


def _github(f: Finding) -> str:
    """A workflow command: GitHub shows it on the file's line in the pull request."""
    level = "error" if f.severity == "error" else "warning"
    text = f"{f.message}: {f.why}. Instead: {f.instead}".replace("%", "%25").replace("\n", "%0A")
    return f"::{level} file={f.path},line={f.line},col={f.col},title=composekit {f.rule}::{text}"


def _gitlab(report: LintReport) -> list[dict[str, object]]:
    """GitLab's Code Quality report (a JSON array; artifacts:reports:codequality)."""
    out: list[dict[str, object]] = []
    for f in report.findings:
        if not f.counts:
            continue
        key = f"{f.rule}:{f.path}:{f.line}:{f.message}"
        out.append(
            {
                "description": f"{f.rule}: {f.message} — {f.why}. Instead: {f.instead}",
                "check_name": f.rule,
                "fingerprint": hashlib.sha256(key.encode()).hexdigest()[:32],
                "severity": "major" if f.severity == "error" else "minor",
                "location": {"path": f.path, "lines": {"begin": f.line}},
            }
        )
    return out


def _show_rules(c: CliContext, as_json: bool) -> None:
    from composekit.lint import RULES

    if as_json:
        c.out.emit_json({"rules": list(RULES.values())})
        return
    c.out.table(
        [
            (r.id, str(r.severity), "contract only" if r.breaks_old_web else "", r.why)
            for r in RULES.values()
        ],
        ["rule", "severity", "", "why"],
    )
