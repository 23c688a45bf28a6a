"""Helpers shared by tests (fixtures live in conftest.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def run_cli(
    *args: str,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    input: str | None = None,
    timeout: float = 300,
) -> subprocess.CompletedProcess[str]:
    """Run the real ``composekit`` command in a subprocess (exit codes, stdout, stderr)."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "composekit", *args],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=cwd,
        input=input,
        timeout=timeout,
    )
