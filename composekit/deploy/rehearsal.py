"""The rehearse step (``deploy --rehearse`` or ``[deploy] rehearse = true``): the pending
migrations on a throwaway copy of the backup just taken, with the image just built — refused
(exit 6, nothing changed) when one fails there or holds an ACCESS EXCLUSIVE lock on a non-empty
table for longer than ``[deploy] max_lock_ms``."""

from __future__ import annotations

from composekit.deploy.runner import Skipped
from composekit.deploy.steps import StateStep
from composekit.rehearse import engine_runner, refuse, rehearse_migrations


class Rehearse(StateStep):
    name = "rehearse"
    changes_nothing = True  # the copy is dropped as the step ends, whatever happens
    refusal = True

    def describe(self) -> str:
        return (
            "run the pending migrations on a throwaway copy of the backup; refuse a failure or an "
            f"ACCESS EXCLUSIVE lock over {self.s.settings.max_lock_ms} ms"
        )

    def run(self) -> str | Skipped:
        st = self.s.settings
        if not self.s.pending():
            return Skipped("nothing pending")
        run = engine_runner(
            self.s.project,
            st.migrate_service,
            st.migrations_dir_in_image,
            self.s.deadline.remaining,
            self.s.progress,
        )
        report = rehearse_migrations(
            self.s.ctx.target,
            st.backups_path,
            run,
            self.s.backup.path.name if self.s.backup else None,
            expected_schema=st.expected_schema_path if st.expected_schema else None,
            checks_dir=st.project_dir / "verify",
            timeout=self.s.deadline.remaining(),
            progress=self.s.progress,
        )
        refuse(report, st.max_lock_ms)
        e = report.engine
        worst = max((m.blocked_ms for m in e.migrations), default=0)
        return (
            f"{len(e.migrations)} migration(s) rehearsed on a copy in {report.duration_s:.1f}s; "
            f"the old web would wait up to {worst} ms"
        )

    def undo(self) -> str:
        return ""  # the copy is dropped as the step ends, whatever happens
