"""Hooks: executables in ``.composekit/hooks/`` that composekit runs at fixed points.

=================  ===========================================  ==============================
hook               runs                                          when it fails
=================  ===========================================  ==============================
``pre-deploy``     after the deploy lock, before build/backup    the deploy stops, exit 6,
                                                                 nothing changed
``post-migrate``   after the migrations are applied and verified reported; the deploy goes on
``post-deploy``    after a deploy that succeeded                 reported
``on-failure``     after a deploy or rollback that failed (and   reported
                   was undone, or not)
``pre-restore``    before a restore changes anything             the restore stops, exit 6
``post-restore``   after a restore (succeeded or failed)         reported
``post-rollback``  after a rollback (succeeded or failed)        reported
=================  ===========================================  ==============================

Each runs in the project directory, with composekit's environment plus the ``COMPOSEKIT_*``
variables of :class:`HookEvent` (never a password), within ``[hooks] timeout`` seconds (60); its
output goes to composekit's, redacted like everything else. A hook is any executable (a shell
script with ``#!/bin/sh``, a binary); a file there that is not executable is an error.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from composekit import proc
from composekit.errors import ComposekitError, ConfigError, VerifyError
from composekit.progress import Progress, silent

HOOKS = (
    "pre-deploy",
    "post-migrate",
    "post-deploy",
    "on-failure",
    "pre-restore",
    "post-restore",
    "post-rollback",
)
PRE = ("pre-deploy", "pre-restore")


def hooks_dir(project_dir: Path) -> Path:
    return project_dir / ".composekit" / "hooks"


@dataclass
class HookEvent:
    """What a hook is told, as ``COMPOSEKIT_<FIELD>`` variables (empty when unknown)."""

    command: str  # deploy | rollback | restore
    project: str
    env: str = ""  # staging | prod | ""
    run_id: str = ""
    result: str = ""  # ok | failed | undone | undo-failed | interrupted ("" before the end)
    failed_step: str = ""
    error: str = ""
    ledger_before: str = ""
    ledger_after: str = ""
    backup: str = ""
    web_before: str = ""
    web_after: str = ""
    duration_s: str = ""
    extra: dict[str, str] = field(default_factory=dict)

    def variables(self, hook: str) -> dict[str, str]:
        out = {"COMPOSEKIT_HOOK": hook}
        for name, value in self.__dict__.items():
            if name != "extra":
                out[f"COMPOSEKIT_{name.upper()}"] = str(value or "")
        out |= {f"COMPOSEKIT_{k.upper()}": v for k, v in self.extra.items()}
        return out


@dataclass(frozen=True)
class HookRun:
    hook: str
    path: Path
    returncode: int
    last_line: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def describe(self) -> str:
        if self.ok:
            return f"hook {self.hook} ok"
        why = f": {self.last_line}" if self.last_line else ""
        return f"hook {self.hook} failed (exit {self.returncode}){why}"


def find_hook(project_dir: Path, hook: str) -> Path | None:
    """The hook's file, or None; a file that is not executable is a :class:`ConfigError`."""
    assert hook in HOOKS, hook
    path = hooks_dir(project_dir) / hook
    if not path.is_file():
        return None
    if not os.access(path, os.X_OK):
        raise ConfigError(f"hook {path} is not executable", hint=f"chmod +x {path} (or remove it)")
    return path


def check_hooks(project_dir: Path) -> None:
    """Every hook the project has must be executable (else :class:`ConfigError`, exit 3): found
    before a command changes anything, not when the hook's turn comes."""
    for hook in HOOKS:
        find_hook(project_dir, hook)


def run_hook(
    project_dir: Path,
    hook: str,
    event: HookEvent,
    *,
    timeout: float = 60,
    progress: Progress = silent,
) -> HookRun | None:
    """Run ``hook`` if the project has it; a ``pre-*`` hook that fails raises
    :class:`VerifyError` (exit 6), the others return their result for the caller to report
    (see :func:`run_reported`). Commands call :func:`check_hooks` first, so a hook that is not
    executable is a :class:`ConfigError` before anything ran."""
    path = find_hook(project_dir, hook)
    if path is None:
        return None
    env: Mapping[str, str] = event.variables(hook)
    try:
        done = proc.stream(
            [path],
            timeout=timeout,
            on_line=lambda line: progress(f"  {hook} | {line}"),
            env=env,
            cwd=project_dir,
        )
        lines = [ln for ln in done.stdout.splitlines() if ln.strip()]
        run = HookRun(hook, path, done.returncode, lines[-1][:200] if lines else "")
    except proc.CommandTimeout:
        run = HookRun(hook, path, 124, f"did not finish within {timeout:g}s ([hooks] timeout)")
    except (proc.CommandNotFound, OSError) as exc:
        run = HookRun(hook, path, 126, f"cannot run it: {exc}")
    if not run.ok and hook in PRE:
        what = hook.removeprefix("pre-")
        raise VerifyError(
            f"{run.describe()}; the {what} was stopped before anything changed",
            hint=f"fix what {path.relative_to(project_dir)} checks, or remove the hook",
        )
    if not run.ok:
        progress(run.describe())
    return run


def run_reported(
    project_dir: Path, hook: str, event: HookEvent, *, timeout: float, progress: Progress
) -> None:
    """A hook that runs once a command's result is known (``post-*``, ``on-failure``): its
    outcome is reported, and nothing it does changes that result."""
    try:
        done = run_hook(project_dir, hook, event, timeout=timeout, progress=progress)
    except ComposekitError as exc:  # e.g. made not executable while the command ran
        progress(f"hook {hook}: {exc.message}")
        return
    if done is not None and done.ok:
        progress(f"hook {hook}: ok")
