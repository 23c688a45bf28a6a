"""Console-script entry point. Answers ``--version`` before importing Typer or anything heavy."""

from __future__ import annotations

import sys


def main() -> None:
    if sys.argv[1:] in (["--version"], ["-V"]):
        from composekit import __version__

        sys.stdout.write(f"composekit {__version__}\n")
        return
    from composekit.cli import main as cli_main

    cli_main()
