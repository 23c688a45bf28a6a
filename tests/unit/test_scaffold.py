import filecmp
import stat
import sys
from pathlib import Path

import pytest
import yaml

from composekit.config import LAYOUTS
from composekit.errors import ExitCode
from tests.helpers import run_cli

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
from update_examples import write_example  # noqa: E402


@pytest.mark.parametrize("layout", LAYOUTS)
def test_examples_match_what_init_writes(tmp_path: Path, layout: str) -> None:
    write_example(layout, tmp_path / layout)
    # the composekit wheel in vendor/ is built, not kept in git (examples/*/vendor/ is ignored)
    cmp = filecmp.dircmp(
        tmp_path / layout, ROOT / "examples" / layout, ignore=[*filecmp.DEFAULT_IGNORES, "vendor"]
    )

    def diffs(c: filecmp.dircmp) -> list[str]:  # type: ignore[type-arg]
        out = c.left_only + c.right_only + c.diff_files
        for sub in c.subdirs.values():
            out += diffs(sub)
        return out

    assert diffs(cmp) == [], "examples/ is stale: run .venv/bin/python scripts/update_examples.py"


def test_init_secrets_ci_and_refusal(tmp_path: Path) -> None:
    r = run_cli("init", str(tmp_path / "shop"), "--layout", "migrator", "--ci", "github")
    assert r.returncode == 0, r.stderr
    d = tmp_path / "shop"
    env = d / ".env"
    assert stat.S_IMODE(env.stat().st_mode) == 0o600
    password = next(
        ln.split("=", 1)[1]
        for ln in env.read_text().splitlines()
        if ln.startswith("POSTGRES_PASSWORD=")
    )
    assert len(password) >= 40  # 32 random bytes, url-safe
    for f in d.rglob("*"):
        if f.is_file() and f != env:
            assert password.encode() not in f.read_bytes(), f
    assert (
        ".env" in (d / ".gitignore").read_text().split()
        and ".env" in (d / ".dockerignore").read_text().split()
    )
    wf = yaml.safe_load((d / ".github/workflows/deploy.yml").read_text())
    jobs = wf["jobs"]
    assert jobs["deploy-staging"]["needs"] == "migrate-staging"
    assert jobs["migrate-production"]["needs"] == "deploy-staging"
    assert jobs["deploy-production"]["needs"] == "migrate-production"
    assert "docker compose run --rm --build migrator" in str(jobs["migrate-staging"]["steps"])
    compose = yaml.safe_load((d / "compose.yaml").read_text())
    mig = compose["services"]["migrator"]
    assert mig["restart"] == "no" and mig["profiles"] == ["tools"]
    assert not any("container_name" in s for s in compose["services"].values())
    assert "ports" not in compose["services"]["db"]

    before = {p: p.read_bytes() for p in d.rglob("*") if p.is_file()}
    r = run_cli("init", str(d), "--layout", "app-startup")
    assert (
        r.returncode == ExitCode.USAGE
        and "nothing was written" in r.stderr
        and "compose.yaml" in r.stderr
    )
    assert {p: p.read_bytes() for p in d.rglob("*") if p.is_file()} == before


def test_init_gitlab_and_no_layout_without_terminal(tmp_path: Path) -> None:
    r = run_cli("init", str(tmp_path / "g"), "--layout", "app-startup", "--ci", "gitlab")
    assert r.returncode == 0, r.stderr
    ci = yaml.safe_load((tmp_path / "g" / ".gitlab-ci.yml").read_text())
    assert ci["stages"].index("migrate-staging") < ci["stages"].index("deploy-staging")
    assert ci["deploy-production"]["needs"] == ["migrate-production"]
    r = run_cli("init", str(tmp_path / "x"))
    assert r.returncode == ExitCode.USAGE and "--layout" in r.stderr
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("layout", LAYOUTS)
def test_generated_python_compiles(tmp_path: Path, layout: str) -> None:
    write_example(layout, tmp_path)
    for py in tmp_path.rglob("*.py"):
        compile(
            py.read_text(), str(py), "exec"
        )  # the image runs Python 3.11, like this interpreter
