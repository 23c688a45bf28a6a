"""Hooks run as real processes: a timeout ends the whole process group, not only the hook."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from composekit.errors import ConfigError, ExitCode
from composekit.hooks import HookEvent, check_hooks, run_hook


def hook(project: Path, name: str, body: str) -> Path:
    d = project / ".composekit" / "hooks"
    d.mkdir(parents=True, exist_ok=True)
    path = d / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return path


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_hook_past_its_timeout_is_killed_with_its_children(tmp_path: Path) -> None:
    hook(tmp_path, "post-deploy", 'sleep 30 &\necho $! > "$(dirname "$0")/child"\nwait\n')
    said: list[str] = []
    t0 = time.monotonic()
    run = run_hook(
        tmp_path, "post-deploy", HookEvent("deploy", "p"), timeout=1, progress=said.append
    )
    assert run is not None and run.returncode == 124 and time.monotonic() - t0 < 10
    assert "did not finish within 1s" in said[-1]
    child = int((tmp_path / ".composekit" / "hooks" / "child").read_text())
    deadline = time.monotonic() + 5
    while alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(child), "the hook's child outlived its timeout"


def test_a_failing_pre_hook_stops_and_others_only_report(tmp_path: Path) -> None:
    hook(tmp_path, "pre-restore", "echo no restores on fridays\nexit 2\n")
    with pytest.raises(Exception) as e:
        run_hook(tmp_path, "pre-restore", HookEvent("restore", "p"))
    assert getattr(e.value, "exit_code", None) == ExitCode.VERIFY
    assert "hook pre-restore failed (exit 2): no restores on fridays" in str(e.value)
    hook(tmp_path, "post-restore", "exit 1\n")
    run = run_hook(tmp_path, "post-restore", HookEvent("restore", "p"))
    assert run is not None and not run.ok
    (tmp_path / ".composekit" / "hooks" / "post-restore").chmod(0o644)
    with pytest.raises(ConfigError, match="is not executable"):
        check_hooks(tmp_path)
