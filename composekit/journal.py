"""The journal of the run in flight: what SIGKILL or a power cut leaves behind is found by the next
run (under the deploy lock), and :mod:`composekit.deploy.recover` finishes the undo.

``.composekit/journal.json`` (0600, fsynced) is written before each step of a deploy or rollback,
and before a restore stops anything, with what an undo needs: the ledger before, the pre-deploy
backup, the web's image name and IDs, the services stopped. It is removed when the run ends — done,
or fully undone. One left behind with no run holding the deploy lock is an interrupted run.
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from composekit.files import write_private


@dataclass
class JournalEntry:
    id: str
    kind: str  # deploy | rollback | restore
    started: str
    pid: int = field(default_factory=os.getpid)
    host: str = field(default_factory=socket.gethostname)
    step: str = ""
    env: str | None = None
    ledger_before: list[str] | None = None
    backup: str | None = None
    web_name: str = ""
    web_previous: str | None = None
    web_new: str | None = None
    stopped: list[str] = field(default_factory=list)
    web_old: list[str] | None = None  # containers serving before a rollout (None: none began)
    web_started: list[str] = field(default_factory=list)  # containers the rollout started
    switched: bool = False  # the proxy sent to web_started
    retired: bool = False  # web_old were removed: only a new rollout brings the previous back
    scratch_database: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> JournalEntry:
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in d.items() if k in known})

    @property
    def alive(self) -> bool:
        """Whether the process that wrote it still runs (on this machine; from another one the
        deploy lock decides)."""
        return self.host == socket.gethostname() and composekit_alive(self.pid)

    def describe(self) -> str:
        at = f" at step {self.step}" if self.step else ""
        return (
            f"{self.kind} {self.id} (started {self.started[:19]}, pid {self.pid}@{self.host}{at})"
        )


def composekit_alive(pid: int) -> bool:
    """Whether ``pid`` is a composekit process running on this machine."""
    try:
        return b"composekit" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def journal_path(project_dir: Path) -> Path:
    return project_dir / ".composekit" / "journal.json"


class Journal:
    """Write-ahead record of one run."""

    def __init__(self, project_dir: Path, entry: JournalEntry) -> None:
        self.path = journal_path(project_dir)
        self.entry = entry

    @classmethod
    def start(cls, project_dir: Path, kind: str, **facts: Any) -> Journal:
        now = datetime.now(UTC)
        entry = JournalEntry(
            id=f"{now:%Y%m%dT%H%M%S}-{os.getpid()}", kind=kind, started=now.isoformat(), **facts
        )
        journal = cls(project_dir, entry)
        journal.write()
        return journal

    def write(self, **facts: Any) -> None:
        for key, value in facts.items():
            setattr(self.entry, key, value)
        write_private(self.path, json.dumps(self.entry.to_dict(), indent=2) + "\n")

    def close(self) -> None:
        """The run ended cleanly (done, or fully undone): nothing to recover."""
        self.path.unlink(missing_ok=True)


def read_journal(project_dir: Path) -> JournalEntry | None:
    path = journal_path(project_dir)
    try:
        return JournalEntry.from_dict(json.loads(path.read_text()))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError):  # half-written by a crash: still a run in flight
        return JournalEntry(id="unreadable", kind="deploy", started="?", pid=0)
