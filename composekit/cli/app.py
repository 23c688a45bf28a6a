"""The Typer app, the per-invocation context, and the options several commands share."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from composekit.render import Output

if TYPE_CHECKING:
    from composekit.config import Settings

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


@dataclass
class CliContext:
    """What one invocation carries (``ctx.obj``): where the project is, and where to print —
    through a redactor that learns the database password once the settings are read."""

    project_dir: Path = Path(".")
    debug: bool = False
    out: Output = field(default_factory=Output)

    def settings(self, **flags: Any) -> Settings:
        from composekit.config import load_settings

        s = load_settings(self.project_dir, flags=flags)
        self.out.redactor = self.out.redactor.with_secrets(*s.redactor.secrets)
        return s


def cli(ctx: typer.Context) -> CliContext:
    obj = ctx.find_object(CliContext)
    if obj is None:  # called through Typer's test runner or click directly
        obj = ctx.ensure_object(CliContext)
    return obj


def is_terminal() -> bool:
    return sys.stdin.isatty()


JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout.")]
EnvOpt = Annotated[
    str | None, typer.Option("--env", help="staging | prod: adds compose.<env>.yaml.")
]
DryRunOpt = Annotated[bool, typer.Option("--dry-run", help="Print the steps; change nothing.")]
TimeoutOpt = Annotated[
    float,
    typer.Option(
        "--timeout",
        min=1,
        help="Seconds for the whole run (an undo after a failure gets as long again).",
    ),
]
LockWaitOpt = Annotated[
    float, typer.Option("--lock-wait", min=0, help="Seconds to wait for another deploy's lock.")
]


def _version(value: bool) -> None:
    if value:
        from composekit import __version__

        typer.echo(f"composekit {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
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
    c = cli(ctx)
    c.project_dir = project_dir
    c.debug = debug
    if debug:
        import logging

        logging.basicConfig(level=logging.DEBUG, format="debug: %(name)s: %(message)s")
