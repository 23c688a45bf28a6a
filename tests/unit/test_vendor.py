"""The composekit wheel a project carries in vendor/: installable, reproducible, pinned."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from composekit import __version__
from composekit.errors import ConfigError
from composekit.vendor import build_wheel, check_vendored, pin_requirements, vendor, wheel_name


def test_the_wheel_installs_without_an_index_and_is_the_same_bytes_every_time(
    tmp_path: Path,
) -> None:
    first = build_wheel(tmp_path / "a")
    second = build_wheel(tmp_path / "b")
    assert first.name == wheel_name(__version__) == second.name
    assert first.read_bytes() == second.read_bytes()  # no build time inside: git sees no change
    names = zipfile.ZipFile(first).namelist()
    assert "composekit/migrations/runner.py" in names
    assert not [n for n in names if "__pycache__" in n or "_templates" in n or n.endswith(".pyc")]

    target = tmp_path / "site"
    r = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-index", "--no-deps",
         "--target", str(target), str(first)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr  # pip checks RECORD's hashes and sizes
    code = "import composekit, importlib.metadata as m; print(composekit.__version__, m.version('composekit'), composekit.__file__)"
    r = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(target)},
        cwd=tmp_path,
    )
    assert r.stdout.split()[:2] == [__version__, __version__], r.stderr
    assert r.stdout.split()[2].startswith(str(target))
    assert (target / "bin" / "composekit").is_file()  # the console script


def test_pin_requirements_keeps_other_lines_and_moves_the_pin() -> None:
    assert pin_requirements("composekit>=0.1\npsycopg[binary]>=3.1\n", "1.2.3") == (
        "--find-links ./vendor\ncomposekit==1.2.3\npsycopg[binary]>=3.1\n"
    )
    again = pin_requirements("--find-links ./vendor\ncomposekit==1.2.3\nflask\n", "2.0.0")
    assert again == "--find-links ./vendor\ncomposekit==2.0.0\nflask\n"
    assert pin_requirements("", "1.0") == "--find-links ./vendor\ncomposekit==1.0\n"
    assert pin_requirements("Flask==3\n# composekit is added\n", "1.0").splitlines() == [
        "--find-links ./vendor",
        "composekit==1.0",
        "Flask==3",
        "# composekit is added",
    ]


def test_a_pin_that_is_not_this_composekit_or_has_no_wheel_is_refused(tmp_path: Path) -> None:
    assert check_vendored(tmp_path) is None  # no requirements.txt: nothing to check
    (tmp_path / "requirements.txt").write_text("flask\n")
    assert check_vendored(tmp_path) is None  # composekit not in the image: nothing to check
    (tmp_path / "requirements.txt").write_text("--find-links ./vendor\ncomposekit==0.0.1\n")
    with pytest.raises(ConfigError, match=f"composekit 0.0.1 .* this is composekit {__version__}"):
        check_vendored(tmp_path)
    (tmp_path / "requirements.txt").write_text(f"composekit=={__version__}\n")
    with pytest.raises(ConfigError, match="is missing, so the image build cannot find it"):
        check_vendored(tmp_path)

    (tmp_path / "vendor").mkdir()
    (tmp_path / "vendor" / wheel_name("0.0.1")).write_bytes(b"old")
    result = vendor(tmp_path)
    assert result.removed == [wheel_name("0.0.1")] and result.requirements_changed
    assert [p.name for p in (tmp_path / "vendor").iterdir()] == [wheel_name(__version__)]
    assert check_vendored(tmp_path) == __version__
    assert not vendor(tmp_path).requirements_changed  # idempotent
