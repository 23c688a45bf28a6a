"""proc.run_tee with real child processes: the bytes reach the file and the checker alike."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import pytest

from composekit import proc

PY = sys.executable
BLOB = "import sys; sys.stdout.buffer.write(bytes(range(256)) * 40000)"  # 10 MB, every byte value


def test_file_and_checker_get_the_same_bytes(tmp_path: Path) -> None:
    out = tmp_path / "dump"
    count = "import sys, hashlib; print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest())"
    with open(out, "wb") as f:
        digest, check = proc.run_tee([PY, "-c", BLOB], f, [PY, "-c", count], timeout=60)
    expected = hashlib.sha256(bytes(range(256)) * 40000).hexdigest()
    assert digest == expected == hashlib.sha256(out.read_bytes()).hexdigest()
    assert check.returncode == 0 and check.stdout.strip() == expected


def test_a_checker_that_stops_reading_early_does_not_cut_the_file(tmp_path: Path) -> None:
    out = tmp_path / "dump"
    head = "import sys; print(len(sys.stdin.buffer.read(1000)))"  # like pg_restore --list: TOC only
    with open(out, "wb") as f:
        _, check = proc.run_tee([PY, "-c", BLOB], f, [PY, "-c", head], timeout=60)
    assert check.stdout.strip() == "1000"
    assert out.stat().st_size == 256 * 40000


def test_a_failing_source_or_a_hang_raise(tmp_path: Path) -> None:
    with open(tmp_path / "x", "wb") as f:
        with pytest.raises(proc.CommandFailed, match="no such table"):
            proc.run_tee(
                [PY, "-c", "import sys; sys.exit('no such table')"],
                f,
                [PY, "-c", "pass"],
                timeout=60,
            )
        with pytest.raises(proc.CommandTimeout):
            proc.run_tee(
                [PY, "-c", "import time; time.sleep(30)"], f, [PY, "-c", "pass"], timeout=1
            )


def test_later_runs_beside_the_caller_and_hands_back_its_value_or_error() -> None:
    import threading

    from composekit.proc import Later

    go = threading.Event()
    waiting = Later(lambda: go.wait(30) and "read")  # blocks until the caller, running on, says go
    go.set()
    assert waiting.result() == "read"

    def fails() -> str:
        raise proc.CommandFailed(["docker", "compose", "config"], 1, "no such service")

    failing = Later(fails)
    with pytest.raises(proc.CommandFailed):
        failing.result()
