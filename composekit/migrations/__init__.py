"""The migration engine. What apps and the migrator container call::

from composekit import migrations

migrations.upgrade(os.environ["DATABASE_URL"], "migrations")   # safe with many replicas
if not migrations.is_up_to_date(url, "migrations"): ...
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from composekit.migrations.runner import Applied, Migrator, Problem, RunResult, Status
from composekit.migrations.source import Migration, Source, load_source
from composekit.migrations.writer import new_migration

__all__ = [
    "Applied",
    "Migration",
    "Migrator",
    "Problem",
    "RunResult",
    "Source",
    "Status",
    "is_up_to_date",
    "load_source",
    "new_migration",
    "status",
    "upgrade",
]


def upgrade(database_url: str, directory: str | Path = "migrations", **options: Any) -> RunResult:
    """Apply every pending migration under the migration lock; returns what was applied.

    >>> upgrade("postgresql://app:secret@db/app", "migrations").current   # doctest: +SKIP
    '0002'
    """
    target = options.pop("target", None)
    steps = options.pop("steps", None)
    atomic = options.pop("atomic", False)
    return Migrator(database_url, directory, **options).upgrade(
        target=target, steps=steps, atomic=atomic
    )


def status(database_url: str, directory: str | Path = "migrations", **options: Any) -> Status:
    """Applied, pending and drift, without changing anything."""
    return Migrator(database_url, directory, **options).status()


def is_up_to_date(database_url: str, directory: str | Path = "migrations", **options: Any) -> bool:
    """True when nothing is pending and nothing is dirty."""
    return Migrator(database_url, directory, **options).is_up_to_date()
