"""The error tree. Each class owns its exit code; every message is one line plus a fix.

The CLI's single top-level handler prints ``error: <message>`` and ``  fix: <hint>`` and exits
with ``exit_code``. Messages must never contain a password: build them with
:func:`composekit.redact.redact` applied to anything that may hold a URL.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    UNEXPECTED = 1
    USAGE = 2
    CONFIG = 3
    DOCKER = 4
    MIGRATION = 5
    VERIFY = 6
    DEPLOY_UNDONE = 7
    UNDO_FAILED = 8
    INTERRUPTED = 130


class ComposekitError(Exception):
    """Base class. ``hint`` tells the user what to do; ``details`` are extra lines (logs...)."""

    exit_code: ExitCode | int = ExitCode.UNEXPECTED
    kind = "error"

    def __init__(self, message: str, hint: str = "", details: list[str] | None = None) -> None:
        from composekit.redact import redact

        super().__init__(redact(message))
        self.message = redact(message)
        self.hint = redact(hint)
        self.details = [redact(d) for d in (details or [])]

    def to_dict(self) -> dict[str, object]:
        return {
            "error": type(self).__name__,
            "exit_code": int(self.exit_code),
            "message": self.message,
            "hint": self.hint,
            "details": self.details,
        }


class UsageError(ComposekitError):
    exit_code = ExitCode.USAGE


class ConfigError(ComposekitError):
    """Bad configuration or input files: compose file, composekit.toml, migration files."""

    exit_code = ExitCode.CONFIG


class DatabaseUnavailable(ComposekitError):
    """The database cannot be reached or refused the login."""

    exit_code = ExitCode.CONFIG


class DockerError(ComposekitError):
    """Docker engine, Compose plugin or a container misbehaved."""

    exit_code = ExitCode.DOCKER


class MigrationError(ComposekitError):
    """A migration failed, or the migration lock could not be had."""

    exit_code = ExitCode.MIGRATION


class LockTimeout(MigrationError):
    pass


class VerifyError(ComposekitError):
    """Files and ledger disagree, a backup is corrupt, a check failed."""

    exit_code = ExitCode.VERIFY


class DeployFailed(ComposekitError):
    """The deploy failed and every completed step was undone."""

    exit_code = ExitCode.DEPLOY_UNDONE


class UndoFailed(ComposekitError):
    """The deploy failed and undoing it failed too: a person must act."""

    exit_code = ExitCode.UNDO_FAILED


class Interrupted(ComposekitError):
    """A signal stopped the command (after its undo ran): exit 128 + the signal's number."""

    exit_code: ExitCode | int = ExitCode.INTERRUPTED

    def __init__(self, message: str, signum: int = 2, **kw: object) -> None:
        super().__init__(message, **kw)  # type: ignore[arg-type]
        self.exit_code = 128 + signum
