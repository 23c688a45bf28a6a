"""Regenerate examples/<layout>/ from `composekit init` (the password replaced by a placeholder).

Run after changing templates: .venv/bin/python scripts/update_examples.py
tests/unit/test_scaffold.py fails when examples/ and the templates disagree.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from composekit.config import LAYOUTS
from composekit.scaffold import EXAMPLE_PASSWORD, scaffold

ROOT = Path(__file__).resolve().parent.parent


def write_example(layout: str, target: Path) -> None:
    scaffold(target, layout, ci="github", name="example", password=EXAMPLE_PASSWORD, force=True)


if __name__ == "__main__":
    for layout in LAYOUTS:
        target = ROOT / "examples" / layout
        shutil.rmtree(target, ignore_errors=True)
        write_example(layout, target)
        print(f"wrote {target}")
