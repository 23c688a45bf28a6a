"""The layering is a contract CI checks (import-linter, see pyproject.toml): it holds for the
package as it is, and a change that breaks it fails."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT = Path(sys.executable).with_name("lint-imports")


def lint(tree: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT), "--no-cache"],
        cwd=tree,
        env={"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A copy of the package and its contract, importable on its own."""
    shutil.copytree(ROOT / "composekit", tmp_path / "composekit")
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    return tmp_path


def test_the_package_keeps_its_contracts(tree: Path) -> None:
    r = lint(tree)
    assert r.returncode == 0, r.stdout[-2000:]
    assert "4 kept, 0 broken" in r.stdout


@pytest.mark.parametrize(
    ("module", "violation", "contract"),
    [
        ("errors.py", "import composekit.cli\n", "Layers"),  # the ground floor reaching up
        ("backup.py", "import composekit.deploy\n", "Layers"),  # a capability using deploy
        ("deploy/steps.py", "import subprocess\n", "Only proc starts processes"),
        ("status.py", "import python_on_whales\n", "Only compose talks to python-on-whales"),
        ("dbtarget.py", "import composekit.migrations.runner\n", "public names"),
    ],
)
def test_a_deliberate_violation_fails(
    tree: Path, module: str, violation: str, contract: str
) -> None:
    path = tree / "composekit" / module
    path.write_text(path.read_text() + "\n" + violation)
    r = lint(tree)
    assert r.returncode != 0
    broken = r.stdout.split("Broken contracts", 1)[-1]
    assert contract in broken, r.stdout[-2000:]
