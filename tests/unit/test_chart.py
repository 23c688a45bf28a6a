"""`composekit history show`: a run's steps on one time axis, the failed step and its undo."""

from __future__ import annotations

from composekit.cli.chart import BAR, run_chart
from composekit.deploy import HistoryRecord
from composekit.deploy.history import RunKind
from composekit.deploy.runner import StepRecord, StepStatus


def test_a_failed_and_undone_deploy_shows_each_step_then_each_undo_in_time() -> None:
    steps = [
        StepRecord("preflight", StepStatus.OK, 0.0),
        StepRecord("lock", StepStatus.OK, 0.5, "ledger at 0001"),
        StepRecord("build+backup", StepStatus.UNDONE, 4.0, "built", "kept the backup", 0.5),
        StepRecord("migrate", StepStatus.UNDONE, 3.0, "applied 0002", "reverted 0002", 2.0),
        StepRecord("web", StepStatus.FAILED, 10.0, "web never healthy", "web back on abc", 0.0),
    ]
    r = HistoryRecord(
        "abc123", RunKind.DEPLOY, "prod", "2026-11-30T10:00:00+00:00", "2026-11-30T10:00:20+00:00",
        False, steps, "deploy failed at web", ["0001"], ["0001"], "/p/backups/x.dump",
        "sha256:1111111111112222", "sha256:1111111111112222",
    )  # fmt: skip
    lines = run_chart(r, width=40)
    assert lines[0].startswith(
        "deploy abc123  started 2026-11-30T10:00:00 UTC  prod  FAILED at web"
    )
    assert lines[1] == "ledger 0001 → 0001   web 111111111111 → 111111111111   backup x.dump"
    body = {
        ln.split()[0] if not ln.strip().startswith("undo") else " ".join(ln.split()[:2]): ln
        for ln in lines[2:]
    }
    order = [ln.strip().split("  ")[0].strip() for ln in lines[2:-2]]
    assert order == [
        "preflight", "lock", "build+backup", "migrate", "web",
        "undo web", "undo migrate", "undo build+backup",
    ]  # fmt: skip
    total = 0.0 + 0.5 + 4.0 + 3.0 + 10.0 + 0.0 + 2.0 + 0.5
    assert lines[-2].split()[-1] == f"{total:.1f}s"
    # each bar starts where the one before ended: web's is the longest, the undo comes after it
    starts = [ln.index(BAR) for ln in lines[2:-2]]
    assert starts == sorted(starts)
    assert body["web"].count(BAR) == max(ln.count(BAR) for ln in lines[2:-2])
    assert "FAILED — web never healthy" in body["web"]
    assert "undone — reverted 0002" in body["undo migrate"]
    assert lines[-1] == "error: deploy failed at web"
