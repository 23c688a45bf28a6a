"""The migration engine. What apps and the migrator container call::

from composekit import migrations

migrations.upgrade(os.environ["DATABASE_URL"], "migrations")   # safe with many replicas
if not migrations.is_up_to_date(url, "migrations"): ...

Everything outside this package imports from here, never from the submodules. Importing it is
cheap: each name's submodule loads when the name is first used, and psycopg and pglast only when
a database or a SQL file is touched.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from composekit.lazy import exports

if TYPE_CHECKING:  # the same names, for the type checker; at run time __getattr__ imports each
    from composekit.migrations.drift import compare, drift_error, pending
    from composekit.migrations.ledger import Ledger, LedgerRow
    from composekit.migrations.rehearsal import (
        REHEARSAL_PREFIX,
        LockHeld,
        MigrationRehearsal,
        Rehearsal,
    )
    from composekit.migrations.results import (
        Applied,
        Direction,
        PlannedStep,
        Problem,
        ProblemKind,
        RunResult,
        Status,
    )
    from composekit.migrations.runner import Migrator
    from composekit.migrations.source import (
        BACKFILL,
        CONTRACT_DIR,
        FORMATS,
        PHASE,
        PHASES,
        Backfill,
        Migration,
        Section,
        Source,
        load_source,
        parse_native,
        version_key,
    )
    from composekit.migrations.writer import new_migration, next_version

__getattr__ = exports(
    __name__,
    {
        "drift": "compare drift_error pending",
        "ledger": "Ledger LedgerRow",
        "rehearsal": "REHEARSAL_PREFIX LockHeld MigrationRehearsal Rehearsal",
        "results": "Applied Direction PlannedStep Problem ProblemKind RunResult Status",
        "runner": "Migrator",
        "source": "BACKFILL CONTRACT_DIR FORMATS PHASE PHASES Backfill Migration Section Source "
        "load_source parse_native version_key",
        "writer": "new_migration next_version",
    },
)

__all__ = [
    "BACKFILL",
    "REHEARSAL_PREFIX",
    "CONTRACT_DIR",
    "FORMATS",
    "PHASE",
    "PHASES",
    "Applied",
    "Backfill",
    "Direction",
    "Ledger",
    "LockHeld",
    "LedgerRow",
    "Migration",
    "MigrationRehearsal",
    "Migrator",
    "PlannedStep",
    "Problem",
    "ProblemKind",
    "Rehearsal",
    "RunResult",
    "Section",
    "Source",
    "Status",
    "compare",
    "drift_error",
    "is_up_to_date",
    "load_source",
    "new_migration",
    "next_version",
    "parse_native",
    "pending",
    "status",
    "upgrade",
    "version_key",
]


def upgrade(database_url: str, directory: str | Path = "migrations", **options: Any) -> RunResult:
    """Apply every pending migration under the migration lock; returns what was applied.

    >>> upgrade("postgresql://app:secret@db/app", "migrations").current   # doctest: +SKIP
    '0002'
    """
    target = options.pop("target", None)
    steps = options.pop("steps", None)
    atomic = options.pop("atomic", False)
    # a web that migrates as it starts runs expand migrations only when its environment says
    # COMPOSEKIT_PHASE=expand (the scaffolded app-startup web does): the deploy runs the rest
    phase = options.pop("phase", None) or os.environ.get("COMPOSEKIT_PHASE") or "all"
    from composekit.migrations.runner import Migrator

    return Migrator(database_url, directory, **options).upgrade(
        target=target, steps=steps, atomic=atomic, phase=phase
    )


def status(database_url: str, directory: str | Path = "migrations", **options: Any) -> Status:
    """Applied, pending and drift, without changing anything."""
    from composekit.migrations.runner import Migrator

    return Migrator(database_url, directory, **options).status()


def is_up_to_date(database_url: str, directory: str | Path = "migrations", **options: Any) -> bool:
    """True when nothing is pending and nothing is dirty."""
    from composekit.migrations.runner import Migrator

    return Migrator(database_url, directory, **options).is_up_to_date()
