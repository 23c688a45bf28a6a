"""The init-scripts layout's guard: the scripts ran once, when the volume was empty, and never
run again. Their checksums are recorded per database (its cluster's system identifier) in
``.composekit/init-scripts.json`` on the first deploy; a later change refuses the deploy, since
it would silently never reach this database."""

from __future__ import annotations

import json

from composekit.backup import sha256_file
from composekit.deploy.state import DeployState
from composekit.deploy.steps import StateStep
from composekit.errors import VerifyError
from composekit.files import write_private


class InitScripts(StateStep):
    name = "init-scripts"
    changes_nothing = True

    def __init__(self, s: DeployState) -> None:
        super().__init__(s)
        self.dir = s.settings.project_dir / "init-scripts"
        self.record = s.settings.project_dir / ".composekit" / "init-scripts.json"

    def describe(self) -> str:
        return (
            "no migrations: init-scripts/ ran when the volume was created; check they are unchanged"
        )

    def run(self) -> str:
        scripts = sorted(p for p in self.dir.glob("*") if p.is_file()) if self.dir.is_dir() else []
        now = {p.name: sha256_file(p) for p in scripts}
        db = self.s.ctx.target.system_identifier()
        recorded = json.loads(self.record.read_text()) if self.record.is_file() else {}
        if db not in recorded:
            recorded[db] = now
            write_private(self.record, json.dumps(recorded, indent=2) + "\n")
            return (
                f"recorded {len(now)} init script(s) for this database; they never run again "
                "on it (later schema changes need migrations)"
            )
        before = recorded[db]
        changed = sorted(
            [f"{n} (changed)" for n in now if n in before and now[n] != before[n]]
            + [f"{n} (new)" for n in now if n not in before]
            + [f"{n} (removed)" for n in before if n not in now]
        )
        if changed:
            raise VerifyError(
                f"init-scripts changed since this database was initialised: {', '.join(changed)}; "
                "they never run again on an existing volume, so the change would never reach it",
                hint="undo the change and make it a migration (migrator layout; `composekit migrate "
                "baseline` adopts the schema), or start from an empty volume with "
                "`docker compose down -v` (deletes every row)",
            )
        return f"{len(now)} init script(s) unchanged since this database was initialised"
