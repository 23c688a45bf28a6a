"""The ``composekit`` command: parse → settings → ONE call into :mod:`composekit.commands` → render.

No business logic here. One top-level handler (:func:`main`) maps every
:class:`~composekit.errors.ComposekitError` to one line plus a fix and its exit code; ``--debug``
adds the traceback; Ctrl-C exits 130.
"""

from __future__ import annotations

import sys

import typer

from composekit.cli import data, deploy, export, flag, lint, migrate, project, rehearse  # noqa: F401 - they register commands
from composekit.cli.app import CliContext, app

__all__ = ["app", "main"]


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app and turn every failure into one clear line and an exit code."""
    args = sys.argv[1:] if argv is None else argv
    try:  # Typer >= 0.20 vendors click
        from typer._click.exceptions import ClickException
    except ImportError:  # pragma: no cover - older Typer uses click itself
        from click.exceptions import ClickException  # type: ignore[no-redef,assignment,unused-ignore]

    from composekit.errors import ComposekitError, ExitCode
    from composekit.signals import signum_of, stop_on_signals

    ctx = CliContext()
    out = ctx.out
    out.json_progress = "--json" in args
    debug = "--debug" in args
    try:
        with stop_on_signals() as received:  # SIGINT, SIGTERM, SIGHUP: undo, then 128 + signal
            rv = app(args=args, prog_name="composekit", standalone_mode=False, obj=ctx)
        code = rv if isinstance(rv, int) else 0
        if code == ExitCode.INTERRUPTED:  # Typer's answer to a KeyboardInterrupt: which signal?
            out.line("interrupted", err=True)
            code = received.exit_code(code)
    except ComposekitError as exc:
        if debug:
            import traceback

            out.line(traceback.format_exc().rstrip(), err=True)
        out.error(exc, "--json" in args)
        code = int(exc.exit_code)
    except typer.Exit as exc:
        code = exc.exit_code
    except typer.Abort as exc:  # click turns a KeyboardInterrupt (any of our signals) into Abort
        cause = exc.__cause__
        out.line("interrupted", err=True)
        code = 128 + signum_of(cause) if cause is not None else int(ExitCode.INTERRUPTED)
    except ClickException as exc:  # usage errors: bad option, missing argument
        exc.show()
        code = int(ExitCode.USAGE)
    except KeyboardInterrupt as exc:
        out.line("interrupted", err=True)
        code = 128 + signum_of(exc)
    except (
        OSError
    ) as exc:  # a path composekit was pointed at: missing, not a directory, not writable
        from composekit.errors import ConfigError

        where = f" {exc.filename}" if exc.filename else ""
        out.error(
            ConfigError(
                f"cannot use{where}: {exc.strerror or exc}",
                hint="check the path and its permissions (a directory composekit writes to must be "
                "a directory you can write, e.g. [backups] dir)",
            ),
            "--json" in args,
        )
        code = int(ExitCode.CONFIG)
    except Exception as exc:
        if debug:
            import traceback

            out.line(traceback.format_exc().rstrip(), err=True)
        out.line(f"error: unexpected {type(exc).__name__}: {out.redactor(str(exc))}", err=True)
        out.line("  fix: rerun with --debug and report the traceback", err=True)
        code = int(ExitCode.UNEXPECTED)
    from composekit.files import remove_unfinished
    from composekit.signals import shielded

    with shielded(reraise=False):  # a partial file never outlives the command
        remove_unfinished()
    sys.exit(code)
