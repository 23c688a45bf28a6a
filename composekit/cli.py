"""The ``composekit`` command: parse → settings → ONE library call → render.

No business logic here. One top-level handler (:func:`main`) maps every
:class:`~composekit.errors.ComposekitError` to one line plus a fix and its exit code; ``--debug``
adds the traceback; Ctrl-C exits 130.
"""

from __future__ import annotations

import sys
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
