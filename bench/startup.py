"""Start-up time: `composekit --version` and `--help` against `python -c pass`, same run.

Run: .venv/bin/python bench/startup.py [--repeat 20]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import report, timed

EXE = Path(sys.executable).parent / "composekit"


def run(argv: list[str]) -> None:
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=20)
    n = ap.parse_args().repeat
    rows = [
        ("python -c pass (baseline)", timed(lambda: run([sys.executable, "-c", "pass"]), n)),
        ("composekit --version", timed(lambda: run([str(EXE), "--version"]), n)),
        ("composekit --help", timed(lambda: run([str(EXE), "--help"]), n)),
    ]
    report(f"start-up, {n} runs each", rows, baseline="python -c pass (baseline)")


if __name__ == "__main__":
    main()
