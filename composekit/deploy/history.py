"""``.composekit/history.jsonl``: one typed record per deploy or rollback, appended."""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from composekit.deploy.runner import StepRecord, StepStatus
from composekit.files import append_private
from composekit.redact import Redactor


class RunKind(StrEnum):
    DEPLOY = "deploy"
    ROLLBACK = "rollback"
    RECOVER = "recover"  # the undo of a killed run, finished later


@dataclass
class HistoryRecord:
    id: str
    kind: RunKind
    env: str | None
    started: str
    finished: str
    ok: bool
    steps: list[StepRecord]
    error: str
    ledger_before: list[str] | None
    ledger_after: list[str] | None
    backup: str | None
    web_before: str | None
    web_after: str | None

    @property
    def failed_step(self) -> str | None:
        return next((s.name for s in self.steps if s.status is StepStatus.FAILED), None)

    def to_dict(self) -> dict[str, Any]:
        d = self.__dict__.copy()
        d["kind"] = str(self.kind)
        d["steps"] = [s.to_dict() for s in self.steps]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> HistoryRecord:
        return cls(
            id=d["id"],
            kind=RunKind(d.get("kind", "deploy")),  # records older than rollback have none
            env=d["env"],
            started=d["started"],
            finished=d["finished"],
            ok=d["ok"],
            steps=[StepRecord.from_dict(s) for s in d["steps"]],
            error=d["error"],
            ledger_before=d["ledger_before"],
            ledger_after=d["ledger_after"],
            backup=d["backup"],
            web_before=d["web_before"],
            web_after=d["web_after"],
        )


def history_path(project_dir: Path) -> Path:
    return project_dir / ".composekit" / "history.jsonl"


def record_history(project_dir: Path, record: HistoryRecord, redactor: Redactor) -> None:
    """Append ``record`` (0600, in a 0700 directory), every text through ``redactor``."""
    append_private(history_path(project_dir), redactor(json.dumps(record.to_dict())))


def read_history(project_dir: Path) -> list[HistoryRecord]:
    p = history_path(project_dir)
    if not p.is_file():
        return []
    return [
        HistoryRecord.from_dict(json.loads(line))
        for line in p.read_text().splitlines()
        if line.strip()
    ]
