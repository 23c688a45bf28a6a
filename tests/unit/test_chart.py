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


def test_history_filters_by_time_result_and_kind_and_shows_step_durations(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import json
    from datetime import UTC, datetime, timedelta

    from composekit.deploy.history import history_path
    from tests.helpers import run_cli

    now = datetime.now(UTC)

    def record(n: int, days_ago: float, ok: bool, kind: RunKind) -> HistoryRecord:
        started = (now - timedelta(days=days_ago)).isoformat()
        steps = [StepRecord("build", StepStatus.OK, 2.0), StepRecord("migrate", StepStatus.OK, 1.5)]
        return HistoryRecord(f"run{n:09d}", kind, None, started, started, ok, steps,
                             "" if ok else "deploy failed at migrate", ["0001"], ["0002"], None,
                             None, None)  # fmt: skip

    path = history_path(tmp_path)
    path.parent.mkdir(parents=True)
    records = [
        record(1, 30, True, RunKind.DEPLOY),
        record(2, 3, False, RunKind.DEPLOY),
        record(3, 2, True, RunKind.ROLLBACK),
        record(4, 0.1, True, RunKind.DEPLOY),
    ]
    path.write_text("".join(json.dumps(r.to_dict()) + "\n" for r in records))

    def ids(*args: str) -> list[str]:
        r = run_cli("-C", str(tmp_path), "history", "--json", *args)
        assert r.returncode == 0, r.stderr
        return [d["id"] for d in json.loads(r.stdout)["deploys"]]

    assert ids() == [r.id for r in records]
    assert ids("--since", "7d") == ["run000000002", "run000000003", "run000000004"]
    assert ids("--since", "7d", "--result", "ok") == ["run000000003", "run000000004"]
    assert ids("--result", "failed") == ["run000000002"]
    assert ids("--kind", "rollback") == ["run000000003"]
    assert ids("--since", (now - timedelta(days=1)).date().isoformat()) == ["run000000004"]
    text = run_cli("-C", str(tmp_path), "history", "--since", "1d", "--steps").stdout
    row = text.splitlines()[2]
    assert row.startswith("4 ") and "3.5s" in row and "build 2.0s, migrate 1.5s" in row
    bad = run_cli("-C", str(tmp_path), "history", "--since", "last tuesday")
    assert bad.returncode == 2 and "neither a duration nor a date" in bad.stderr


def test_a_meter_shows_the_phase_of_a_long_operation_and_ends_at_100(capsys) -> None:  # type: ignore[no-untyped-def]
    import json
    import time

    from composekit.progress import metering
    from composekit.render import Output

    out = Output()
    out.json_progress = True
    pos = [0]

    def position() -> int:
        pos[0] = min(pos[0] + 100, 1000)
        return pos[0]

    with metering(out.meter, "restoring x.dump", 1000, position, every=0.05,
                  phase=lambda: "indexes", phase_every=0.05):  # fmt: skip
        time.sleep(0.5)
    events = [json.loads(ln) for ln in capsys.readouterr().err.splitlines()]
    assert events[0]["phase"] == "indexes" and events[0]["what"] == "restoring x.dump"
    assert events[-1] == {"event": "progress", "what": "restoring x.dump", "done": 1000,
                          "total": 1000, "percent": 100.0, "eta_s": 0.0}  # fmt: skip
    assert sum(1 for e in events if e["percent"] == 100.0) == 1
