"""What a migrated database must pass — in deploy's verify step, and on a rehearsal's copy: the
project's ``verify/*.sql`` checks and the expected-schema compare."""

from __future__ import annotations

import difflib
from pathlib import Path

from composekit.dbtarget import DbTarget, normalize_schema
from composekit.errors import VerifyError


def run_checks(target: DbTarget, checks_dir: Path, database: str | None = None) -> list[str]:
    """Run each ``*.sql`` of ``checks_dir`` (in name order) in ``database`` (default: the app's);
    each must return no rows or a single true, else :class:`VerifyError`. Returns their names."""
    names = []
    for check in sorted(checks_dir.glob("*.sql")):
        out = target.psql(check.read_text(), database=database).strip()
        if out not in ("", "t"):
            raise VerifyError(
                f"check {check.name} failed: it returned {out.splitlines()[0][:120]!r}",
                hint="a verify check must return no rows, or a single true",
            )
        names.append(check.name)
    return names


def compare_schema(target: DbTarget, path: Path, database: str | None = None) -> str:
    """Raise :class:`VerifyError` with the differing lines unless the schema of ``database``
    (default: the app's) is the one in ``path`` (both normalized)."""
    expected = normalize_schema(path.read_text())
    actual = target.schema(database)
    if actual == expected:
        return f"schema equals {path.name}"
    changed = [
        ln
        for ln in difflib.unified_diff(
            expected.splitlines(), actual.splitlines(), "expected", "database", lineterm="", n=0
        )
        if ln[:1] in "+-" and not ln.startswith(("+++", "---"))
    ]
    raise VerifyError(
        f"the database schema differs from {path.name} in {len(changed)} line(s): "
        f"{changed[0][:160] if changed else 'ordering'}",
        hint="if the migrations are right, refresh the file from the migrated database: "
        "composekit schema --write",
        details=changed[1:12],
    )
