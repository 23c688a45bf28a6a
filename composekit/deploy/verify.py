"""The verify step: nothing pending, every ``verify/*.sql`` check passes, and (optionally) the
migrated schema equals ``[deploy] expected_schema``."""

from __future__ import annotations

from composekit.checks import compare_schema, run_checks
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
        ctx = self.s.ctx
        if self.s.pending() or ctx.opaque or ctx.alembic or self.s.ledger_before is None:
            self.s.ledger_after = self.s.ledger()
        else:  # nothing to apply, and the deploy lock keeps other deploys out: as the lock read it
            self.s.ledger_after = list(self.s.ledger_before)
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
        checks = run_checks(target, st.project_dir / "verify")
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
