"""Finish the undo of a run that was killed (SIGKILL, a power cut, a lost machine): found by its
journal, done under the deploy lock by ``composekit recover`` — or first thing by the next deploy,
rollback or restore, which say so.

Each action is one the run's own undo would have taken, from the facts the journal holds: the
one-off migrator container removed, the database back (down sections, else the pre-deploy
backup), the web back on its previous image, stopped services started, scratch databases and
partial backup files removed.
"""

from __future__ import annotations

import re
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from composekit.backup import find_backup
from composekit.dbtarget import quote_ident
from composekit.deadline import Deadline
from composekit.deploy.history import HistoryRecord, RunKind, record_history
from composekit.deploy.revert import revert_database
from composekit.deploy.rollout import switch_back
from composekit.deploy.runner import StepRecord, StepStatus
from composekit.deploy.state import DeployState, Generations, WebImages
from composekit.deploy.web import point_back, previous_web_back, short
from composekit.journal import Journal, JournalEntry, composekit_alive, read_journal
from composekit.restore import side_databases
from composekit.swarm import SwarmStack

_PARTIAL = re.compile(r"^\..*\.(?P<pid>\d+)\.partial$")


def recover_leftover(s: DeployState) -> list[str]:
    """If a run was killed, finish its undo (the deploy lock must be held), record it in the
    history, and remove its journal. Returns what was done (nothing: no run was killed)."""
    st = s.settings
    entry = read_journal(st.project_dir)
    if entry is None:
        return []
    s.progress(f"found an interrupted {entry.describe()}: finishing its undo first")
    started, t0 = datetime.now(UTC).isoformat(), time.monotonic()
    done = recover_run(s, entry)
    for line in done:
        s.progress(f"recover: {line}")
    record = HistoryRecord(
        id=uuid.uuid4().hex[:12],
        kind=RunKind.RECOVER,
        env=entry.env,
        started=started,
        finished=datetime.now(UTC).isoformat(),
        ok=True,
        steps=[StepRecord("recover", StepStatus.OK, time.monotonic() - t0, "; ".join(done))],
        error=f"the {entry.describe()} was interrupted; its undo is finished",
        ledger_before=entry.ledger_before,
        ledger_after=s.ledger(),
        backup=entry.backup,
        web_before=entry.web_new,
        web_after=entry.web_previous,
    )
    record_history(st.project_dir, record, st.redactor)
    Journal(st.project_dir, entry).close()
    return done


def recover_run(s: DeployState, entry: JournalEntry) -> list[str]:
    """Undo what ``entry``'s run left half-done; ``s`` is a fresh state of the same project, its
    deploy lock held. Returns what was done, one line each."""
    st = s.settings
    t = DeployState(s.ctx, Deadline(s.ctx.timeout))  # the interrupted run's facts, not ours
    t.ledger_before = entry.ledger_before
    t.web = WebImages(entry.web_name, entry.web_previous, entry.web_new)
    if entry.backup:
        t.backup = find_backup(st.backups_path, entry.backup)
    done: list[str] = []
    # a rollout behind the proxy began: the old web (still running) serves again, the new goes
    rollout = (  # (once the old were retired, only a new rollout brings the previous back)
        entry.kind in ("deploy", "rollback")
        and entry.web_old is not None
        and not entry.retired
        and t.proxy is not None
    )
    if rollout:
        t.gen = Generations(entry.web_old, entry.web_started, entry.switched)
        done.append(switch_back(t))
    if entry.kind == "deploy" and t.ledger_before is not None:
        if st.layout.web_migrates and t.web.new and not rollout:
            s.project.stop([st.web_service])  # it would migrate again on a restart
        done.append(revert_database(t))
    elif s.project.remove_oneoffs(st.migrate_service):
        done.append(f"removed a {st.migrate_service} container the run left")
    if rollout:
        if not s.project.ps([st.web_service], all=False) and t.web.previous:
            done.append(previous_web_back(t))  # nothing old alive (--maintenance)
        elif point_back(t):
            done.append(f"{t.web.name} points at {short(t.web.previous)} again")
    elif entry.kind in ("deploy", "rollback") and isinstance(s.project, SwarmStack):
        back = s.project.web_back(st.web_service, t.web.previous, t.web.new)
        done += [back] if back else []
    elif entry.kind in ("deploy", "rollback") and t.web.name:
        current = s.project.image_of(st.web_service)
        if current is not None and current != (t.web.previous or current):
            done.append(previous_web_back(t))
        elif t.web.previous is None and current is not None and current == t.web.new:
            done.append(previous_web_back(t))  # a first deploy: there was no web before
        elif point_back(t):
            done.append(f"{t.web.name} points at {short(t.web.previous)} again")
    if entry.stopped:  # by --maintenance, or by a restore for its swap
        s.project.start(entry.stopped)
        done.append(f"started {', '.join(entry.stopped)} again")
    if t.proxy is not None and s.project.ps([t.proxy.service], all=False):
        serving = [c.name for c in s.project.ps([st.web_service], all=False)]
        t.proxy.set(serving, maintenance=False)  # no probe, drain or maintenance route left
    done += drop_scratch_databases(s)
    done += remove_partial_backups(st.backups_path)
    return done or ["nothing was left to undo"]


def drop_scratch_databases(s: DeployState) -> list[str]:
    """A restore's scratch copy (and a replaced database a swap had not dropped yet)."""
    target = s.ctx.target
    names = side_databases(target.database)
    found = target.psql(
        "SELECT datname FROM pg_database WHERE datname IN ("
        + ", ".join("'" + n.replace("'", "''") + "'" for n in names)
        + ")",
        database="postgres",
    ).split()
    for name in found:
        target.psql(
            f"DROP DATABASE IF EXISTS {quote_ident(name)} WITH (FORCE)", database="postgres"
        )
    return [f"dropped the scratch database {n}" for n in found]


def remove_partial_backups(backups_dir: Path) -> list[str]:
    """Partial dump files whose writer is gone (their names hold its pid)."""
    if not backups_dir.is_dir():
        return []
    removed = []
    for p in backups_dir.iterdir():
        m = _PARTIAL.match(p.name)
        if m and not composekit_alive(int(m.group("pid"))):
            p.unlink(missing_ok=True)
            removed.append(f"removed the partial backup file {p.name}")
    return removed
