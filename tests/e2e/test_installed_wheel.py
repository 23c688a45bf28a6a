"""composekit as a user gets it: a wheel built from this checkout, installed into a fresh venv with
no source tree in sight, runs init, deploy (the migrator migrates) and status."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
import uuid
from pathlib import Path

import pytest

from composekit import __version__
from composekit.compose import ComposeProject
from composekit.images import HAPROXY_IMAGE, POSTGRES_IMAGE, PYTHON_IMAGE, cache_dir, wheelhouse
from composekit.vendor import wheel_name
from tests.apps import free_ports

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]


def run(*argv: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in argv], capture_output=True, text=True, cwd=cwd, timeout=600
    )


def test_a_wheel_in_a_fresh_venv_scaffolds_deploys_and_migrates(
    tmp_path: Path, docker_engine: None
) -> None:
    built = run(
        sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
        "--wheel-dir", tmp_path / "dist", ROOT, cwd=tmp_path,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr
    venv = tmp_path / "venv"
    assert run(sys.executable, "-m", "venv", venv, cwd=tmp_path).returncode == 0
    wheelhouse(lambda msg: None)  # composekit's dependencies, as PyPI would give them
    installed = run(
        venv / "bin" / "pip", "install", "--quiet", "--no-index", "--find-links",
        cache_dir() / "wheels", tmp_path / "dist" / wheel_name(__version__), cwd=tmp_path,
    )  # fmt: skip
    assert installed.returncode == 0, installed.stderr
    ck = venv / "bin" / "composekit"
    where = run(
        venv / "bin" / "python", "-c", "import composekit; print(composekit.__file__)", cwd=tmp_path
    )
    assert where.stdout.startswith(str(venv)), where.stdout  # not this checkout
    assert run(ck, "--version", cwd=tmp_path).stdout.strip() == f"composekit {__version__}"

    name = "ckw" + uuid.uuid4().hex[:8]
    r = run(
        ck, "init", name, "--layout", "migrator", "--ci", "github",
        "--db-image", POSTGRES_IMAGE, "--python-image", PYTHON_IMAGE,
        "--proxy-image", HAPROXY_IMAGE, cwd=tmp_path,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    app = tmp_path / name
    assert (app / "init-scripts" / "001_schema.sql").is_file()
    assert (app / "migrations" / "0001_add_profile.sql").is_file()
    assert (app / "vendor" / wheel_name(__version__)).is_file()
    port = free_ports(1)[0]
    with open(app / ".env", "a") as env:
        env.write(f"WEB_PORT={port}\n")
    project = ComposeProject(project_dir=app, project_name=name, env_file=".env")
    try:
        r = run(ck, "-C", app, "deploy", "--timeout", "180", cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        assert "applied 0001_add_profile" in r.stderr
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as page:
            assert "<th>bio</th>" in page.read().decode()
        st = json.loads(run(ck, "-C", app, "status", "--json", cwd=tmp_path).stdout)
        assert (st["ledger_version"], st["pending"]) == ("0001", [])
        (app / "migrations" / "0002_notes.sql").write_text(
            "-- migrate:up\nCREATE TABLE notes (id int);\n-- migrate:down\nDROP TABLE notes;\n"
        )
        mig = run(ck, "-C", app, "migrate", "status", "--json", cwd=tmp_path)
        assert mig.returncode == 0, mig.stderr
        assert [p["version"] for p in json.loads(mig.stdout)["pending"]] == ["0002"]
        r = run(ck, "-C", app, "deploy", "--timeout", "180", cwd=tmp_path)
        assert r.returncode == 0 and "applied 0002_notes" in r.stderr, r.stderr
    finally:
        project.down(volumes=True, timeout=3)
        project.remove_images(f"{name}-app")
