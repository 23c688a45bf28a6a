"""Helpers shared by tests (fixtures live in conftest.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def _env(extra: dict[str, str] | None) -> dict[str, str]:
    full_env = dict(os.environ)
    full_env.update(extra or {})
    return full_env


def start_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """Start the real ``composekit`` command in the background (to signal or kill it mid-run);
    its output is captured, read it with ``communicate()``."""
    return subprocess.Popen(
        [sys.executable, "-m", "composekit", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(env),
    )


def run_cli(
    *args: str,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    input: str | None = None,
    timeout: float = 300,
) -> subprocess.CompletedProcess[str]:
    """Run the real ``composekit`` command in a subprocess (exit codes, stdout, stderr)."""
    return subprocess.run(
        [sys.executable, "-m", "composekit", *args],
        capture_output=True,
        text=True,
        env=_env(env),
        cwd=cwd,
        input=input,
        timeout=timeout,
    )
