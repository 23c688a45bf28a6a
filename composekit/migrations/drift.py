"""Files against ledger: what is pending, and what disagrees (edited, missing, out of order, dirty)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from composekit.errors import VerifyError
from composekit.migrations.ledger import LedgerRow
from composekit.migrations.results import Problem, ProblemKind
from composekit.migrations.source import Migration, Source, version_key

_HINTS = {
    ProblemKind.EDITED: "put the file back as it was applied (git checkout) and make the change in a new migration",
    ProblemKind.MISSING: "restore the file; if it was removed on purpose: `composekit migrate repair --forget VERSION`",
    ProblemKind.OUT_OF_ORDER: "renumber the migration after the newest applied one, or pass --allow-out-of-order",
    ProblemKind.DIRTY: "run `composekit migrate repair`, then `composekit migrate up`",
}


def pending(source: Source, applied_versions: Iterable[str]) -> list[Migration]:
    """The migrations of ``source`` not in the ledger, oldest first (versions compare numerically).

    >>> [m.version for m in pending(load_source("migrations"), ["1", "0002"])]  # doctest: +SKIP
    ['0003']
    """
    applied = {version_key(v) for v in applied_versions}
    return [m for m in source.migrations if m.key not in applied]


def compare(rows: list[LedgerRow], src: Source) -> tuple[list[Migration], list[Problem]]:
    """Pending migrations, and the problems between the ledger rows (sorted) and the files."""
    files = {m.key: m for m in src.migrations}
    problems: list[Problem] = []
    for r in rows:
        m = files.get(r.key)
        if r.dirty:
            name = m.path.name if m else r.version
            if m is not None and m.backfill is not None:
                where = f"after key {r.resume_at}" if r.resume_at else "before its first batch"
                detail = f"backfill {name} stopped {where}: `composekit migrate up` resumes it"
            else:
                detail = f"{name} was interrupted or failed part-way (non-transactional)"
            problems.append(Problem(ProblemKind.DIRTY, r.version, detail))
        if m is None:
            problems.append(
                Problem(
                    ProblemKind.MISSING,
                    r.version,
                    f"applied {r.name or ''} but no file in {src.directory}",
                )
            )
        elif r.checksum and r.checksum != m.checksum and not r.dirty:
            problems.append(
                Problem(
                    ProblemKind.EDITED, r.version, f"{m.path.name} changed after it was applied"
                )
            )
    todo = pending(src, (r.version for r in rows))
    top = max((r.key for r in rows), default=None)
    for m in todo:
        if top is not None and m.key < top:
            problems.append(
                Problem(
                    ProblemKind.OUT_OF_ORDER,
                    m.version,
                    f"{m.path.name} is pending but older than applied {rows[-1].version}",
                )
            )
    return todo, problems


def problem_hint(kind: ProblemKind) -> str:
    return _HINTS.get(kind, "see `composekit migrate status`")


def drift_error(problems: list[Problem], directory: Path, table: str) -> VerifyError:
    """One error for a list of problems: the first in the message, the rest as details."""
    first = problems[0]
    return VerifyError(
        f"{len(problems)} problem(s) between {directory} and {table}: {first.describe()}",
        hint=problem_hint(first.kind),
        details=[p.describe() for p in problems[1:]],
    )
