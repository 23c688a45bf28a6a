"""composekit in the app image with no package index entry: the stand-in python image has no
composekit (as PyPI has none), so every scaffolded build gets it from the project's vendor/."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from composekit import __version__
from composekit.errors import ExitCode
from composekit.images import PYTHON_IMAGE
from composekit.vendor import build_wheel, wheel_name
from tests.apps import App, fingerprint, migration, web_image
from tests.helpers import run_cli

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
NEW = "9.9.9"


def installed_newer(tmp_path: Path) -> Path:
    """composekit NEW installed from a wheel into a directory of its own (as `pip install -U`
    would put it on the host); returns the directory to put on PYTHONPATH."""
    pkg = tmp_path / "src" / "composekit"
    shutil.copytree(
        Path(__file__).resolve().parents[2] / "composekit",
        pkg,
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    init = pkg / "__init__.py"
    init.write_text(
        init.read_text().replace(f'__version__ = "{__version__}"', f'__version__ = "{NEW}"')
    )
    wheel = build_wheel(tmp_path / "dist", package_dir=pkg, version=NEW)
    site = tmp_path / "host-site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-index", "--no-deps",
         "--target", str(site), str(wheel)],
        check=True,
    )  # fmt: skip
    return site


def image_composekit(app: App) -> str:
    """The composekit version inside the app image the web runs."""
    r = subprocess.run(
        ["docker", "run", "--rm", "--entrypoint", "python", web_image(app), "-c",
         "import composekit; print(composekit.__version__)"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return r.stdout.strip()


def test_no_index_has_composekit_and_an_upgrade_is_refused_until_vendored(
    make_app, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    r = subprocess.run(
        ["docker", "run", "--rm", PYTHON_IMAGE, "pip", "download", "--no-deps", "-d", "/tmp/x",
         "composekit"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert r.returncode != 0 and "No matching distribution found for composekit" in r.stderr

    app = make_app("migrator")
    assert (app.dir / "vendor" / wheel_name(__version__)).is_file()
    r = run_cli("-C", str(app.dir), "deploy", "--timeout", "120")
    assert r.returncode == 0, r.stderr
    assert image_composekit(app) == __version__ and "<th>bio</th>" in app.page()
    # on the host, with no database URL and a db that publishes no port: through its container
    r = run_cli("-C", str(app.dir), "migrate", "status", "--json")
    assert r.returncode == 0, r.stderr
    assert "reading the ledger through the db container" in r.stderr
    assert json.loads(r.stdout)["current_version"] == "0001"
    assert run_cli("-C", str(app.dir), "migrate", "verify").returncode == 0

    # the host's composekit is upgraded; the project still pins the old one
    newer = {"PYTHONPATH": str(installed_newer(tmp_path))}
    assert run_cli("--version", env=newer, cwd=tmp_path).stdout.strip() == f"composekit {NEW}"
    migration(app, "0002_notes.sql", "CREATE TABLE notes (id int);", "DROP TABLE notes;")
    good, image = fingerprint(app), web_image(app)
    backups = sorted((app.dir / "backups").iterdir())
    r = run_cli("-C", str(app.dir), "deploy", "--timeout", "120", env=newer, cwd=tmp_path)
    assert r.returncode == ExitCode.CONFIG, r.stderr
    assert (
        f"the app image would run composekit {__version__} (requirements.txt) but this is composekit {NEW}"
        in r.stderr
    )
    assert "composekit vendor" in r.stderr and "Traceback" not in r.stderr
    assert fingerprint(app) == good and web_image(app) == image
    assert sorted((app.dir / "backups").iterdir()) == backups  # refused before anything ran

    r = run_cli("-C", str(app.dir), "vendor", env=newer, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert [p.name for p in (app.dir / "vendor").iterdir()] == [wheel_name(NEW)]
    assert f"composekit=={NEW}" in (app.dir / "requirements.txt").read_text().splitlines()

    r = run_cli("-C", str(app.dir), "deploy", "--timeout", "120", env=newer, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert image_composekit(app) == NEW  # the migrator ran the same composekit as the host
    assert app.psql("SELECT version FROM schema_migrations ORDER BY version DESC LIMIT 1") == "0002"

    # and the old composekit, run again, refuses to deploy a project pinned to the newer one
    r = run_cli("-C", str(app.dir), "deploy", "--timeout", "120")
    assert r.returncode == ExitCode.CONFIG and f"would run composekit {NEW}" in r.stderr
