"""What the engine returns: typed results that the renderers print and ``--json`` serializes."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from composekit.migrations.ledger import LedgerRow
from composekit.migrations.source import Migration, Section


class Direction(StrEnum):
    UP = "up"
    DOWN = "down"
    BASELINE = "baseline"  # recorded as applied without running (Applied only)


class ProblemKind(StrEnum):
    """Why files and ledger disagree; the values are what status and ``--json`` print."""

    EDITED = "edited"
    MISSING = "missing"
    OUT_OF_ORDER = "out-of-order"
    DIRTY = "dirty"


@dataclass(frozen=True)
class Applied:
    version: str
    name: str
    duration_ms: int
    transactional: bool
    direction: Direction = Direction.UP


@dataclass(frozen=True)
class Problem:
    kind: ProblemKind
    version: str
    detail: str

    def describe(self) -> str:
        return f"{self.kind} {self.version}: {self.detail}"


@dataclass
class Status:
    applied: list[LedgerRow]
    pending: list[Migration]
    problems: list[Problem]
    ledger_exists: bool
    format: str
    ignored: list[str] = field(default_factory=list)

    @property
    def current(self) -> str | None:
        return self.applied[-1].version if self.applied else None

    @property
    def up_to_date(self) -> bool:
        return not self.pending and not self.of_kind(ProblemKind.DIRTY)

    def of_kind(self, *kinds: ProblemKind) -> list[Problem]:
        return [p for p in self.problems if p.kind in kinds]

    def to_dict(self) -> dict[str, Any]:
        return {
            "current_version": self.current,
            "up_to_date": self.up_to_date,
            "format": self.format,
            "applied": [r.to_dict() for r in self.applied],
            "pending": [
                {
                    "version": m.version,
                    "name": m.name,
                    "file": m.path.name,
                    "transactional": m.transactional,
                }
                for m in self.pending
            ],
            "problems": [p.__dict__ for p in self.problems],
            "ignored_files": self.ignored,
        }


@dataclass
class RunResult:
    direction: Direction
    done: list[Applied]
    current: str | None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "direction": self.direction,
            "applied" if self.direction == Direction.UP else "reverted": [
                a.__dict__ for a in self.done
            ],
            "current_version": self.current,
            "notes": self.notes,
        }


@dataclass(frozen=True)
class PlannedStep:
    migration: Migration
    direction: Direction
    section: Section

    @property
    def transactional(self) -> bool:
        if self.direction == Direction.UP:
            return self.migration.transactional
        return self.migration.down_transactional

    @property
    def reason(self) -> str:
        """Why this section runs without a transaction ("" when it runs in one)."""
        m = self.migration
        return m.reason if self.direction == Direction.UP else m.down_reason

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.migration.version,
            "name": self.migration.name,
            "direction": self.direction,
            "file": str(self.section.path),
            "transactional": self.transactional,
            "reason": self.reason,
            "no_op": self.direction == Direction.DOWN and self.migration.down_is_noop,
            "sql": self.section.sql.strip(),
        }
