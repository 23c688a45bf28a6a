"""The verify step: nothing pending, every ``verify/*.sql`` check passes, and (optionally) the
migrated schema equals ``[deploy] expected_schema``."""

from __future__ import annotations

import difflib
from pathlib import Path

from composekit.dbtarget import DbTarget, normalize_schema
from composekit.deploy.revert import applied_since
from composekit.deploy.steps import StateStep
from composekit.errors import VerifyError
from composekit.migrations import pending


class Verify(StateStep):
    name = "verify"

    def describe(self) -> str:
        schema = self.s.settings.expected_schema
        return "no pending migrations, no drift; verify/*.sql checks" + (
            f"; schema equals {schema}" if schema else ""
        )

    def run(self) -> str:
        st, target = self.s.settings, self.s.ctx.target
        self.s.ledger_after = self.s.ledger()
        later = self.s.after_rollout(self.s.ledger_after or [])  # contract: after the rollout
        missing = (
            []
            if self.s.ctx.opaque  # an opaque migrator keeps a ledger of its own
            else [
                m.version
                for m in pending(self.s.ctx.source, self.s.ledger_after or [])
                if m.version not in later
            ]
        )
        if missing:
            raise VerifyError(
                f"migrations still pending after the deploy: {', '.join(missing)}",
                hint="see the migrate step's output",
            )
        checks = sorted((st.project_dir / "verify").glob("*.sql"))
        for check in checks:
            out = target.psql(check.read_text()).strip()
            if out not in ("", "t"):
                raise VerifyError(
                    f"check {check.name} failed: it returned {out.splitlines()[0][:120]!r}",
                    hint="a verify check must return no rows, or a single true",
                )
        schema = ""
        if st.expected_schema:
            schema = "; " + compare_schema(target, st.expected_schema_path)
        ours = applied_since(self.s, self.s.ledger_after or [])  # from the ledger itself
        new = f"applied {', '.join(ours)}; " if ours else ""
        after = f"; after the rollout: {', '.join(later)}" if later else ""
        return (
            f"{new}{len(self.s.ledger_after or [])} applied, {len(checks)} check(s) passed"
            f"{schema}{after}"
        )


def compare_schema(target: DbTarget, path: Path) -> str:
    """Raise :class:`VerifyError` with the differing lines unless the database's schema is the one
    in ``path`` (both normalized)."""
    expected = normalize_schema(path.read_text())
    actual = target.schema()
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
