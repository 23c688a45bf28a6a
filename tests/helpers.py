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


class Running:
    """The real ``composekit`` running in the background, its stderr read as it comes (to act at
    a given step), in a process group of its own — as a CI runner starts a job, so a signal can go
    to the whole group the way the runner sends it. Whatever still runs when the test ends is
    killed by the ``no_leftover_processes`` fixture (conftest.py)."""

    started: list[Running] = []

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        import threading

        Running.started.append(self)

        self.p = subprocess.Popen(
            [sys.executable, "-m", "composekit", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_env(env),
            start_new_session=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.p.stderr is not None
        for line in self.p.stderr:
            self.lines.append(line)

    def wait_for(self, needle: str, limit: float = 120) -> None:
        """Until a line of its stderr holds ``needle`` (failing if it exits first)."""
        import time

        deadline = time.monotonic() + limit
        while not any(needle in ln for ln in self.lines):
            assert self.p.poll() is None, f"ended before {needle!r}:\n{''.join(self.lines)}"
            assert time.monotonic() < deadline, f"no {needle!r} in:\n{''.join(self.lines)}"
            time.sleep(0.1)

    def signal_group(self, signum: int) -> None:
        import os

        os.killpg(self.p.pid, signum)

    def finish(self, timeout: float = 300) -> tuple[int, str]:
        """Its exit code and whole stderr."""
        self.p.wait(timeout=timeout)
        self._reader.join(timeout=10)
        return self.p.returncode, "".join(self.lines)


def on_a_terminal(*args: str, answer: bytes | None = None) -> tuple[int, str]:
    """Run the real ``composekit`` with a pseudo-terminal as stdin, stdout and stderr (as a person
    at a shell); with ``answer``, type it once it asks ``[y/N]``. Its exit code and all it showed."""
    import pty

    main, tty = pty.openpty()
    p = subprocess.Popen(
        [sys.executable, "-m", "composekit", *args], stdin=tty, stdout=tty, stderr=tty
    )
    os.close(tty)
    seen = b""
    if answer is not None:
        while b"[y/N]" not in seen:
            seen += os.read(main, 1024)
        os.write(main, answer + b"\n")
    try:
        while chunk := os.read(main, 4096):
            seen += chunk
    except OSError:  # the terminal closed with the process
        pass
    os.close(main)
    return p.wait(timeout=120), seen.decode(errors="replace")
