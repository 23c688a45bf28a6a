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
    assert list(jobs) == ["deploy-staging", "deploy-production"]
    assert jobs["deploy-production"]["needs"] == "deploy-staging"
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
    assert ci["stages"] == ["staging", "production"]
    assert ci["deploy-production"]["needs"] == ["deploy-staging"]
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


@pytest.mark.parametrize("ci", ["github", "gitlab"])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_generated_pipelines_validate_and_only_call_composekit_deploy(
    tmp_path: Path, layout: str, ci: str
) -> None:
    """Each job installs the vendored composekit, writes a 0600 .env from the CI's secret store
    and runs one `composekit deploy --env …` (staging, then prod) with its --json report kept."""
    import subprocess

    from composekit import __version__

    r = run_cli("init", str(tmp_path / "p"), "--layout", layout, "--ci", ci)
    assert r.returncode == 0, r.stderr
    path = tmp_path / "p" / (".github/workflows/deploy.yml" if ci == "github" else ".gitlab-ci.yml")
    schema = "vendor.github-workflows" if ci == "github" else "vendor.gitlab-ci"
    checker = Path(sys.executable).with_name("check-jsonschema")
    checked = subprocess.run(
        [str(checker), "--builtin-schema", schema, str(path)], capture_output=True, text=True
    )  # the schemas ship inside check-jsonschema: no network
    assert checked.returncode == 0, checked.stdout + checked.stderr

    text = path.read_text()
    doc = yaml.safe_load(text)
    jobs = (
        doc["jobs"] if ci == "github" else {k: v for k, v in doc.items() if k.startswith("deploy-")}
    )
    runs = []
    for name, job in jobs.items():
        steps = (
            job["steps"]
            if ci == "github"
            else [*doc[".composekit"]["before_script"], *job["script"]]
        )
        lines = [str(st.get("run", "")) if isinstance(st, dict) else str(st) for st in steps]
        deploys = [ln for ln in lines if "composekit deploy" in ln]
        assert len(deploys) == 1, (name, deploys)
        runs.append(deploys[0])
        assert any("install --quiet vendor/composekit-*.whl" in ln for ln in lines)
        assert any("umask 077" in ln for ln in lines)
    assert runs == [
        "composekit deploy --env staging --lock-wait 600 --json > deploy-staging.json",
        "composekit deploy --env prod --lock-wait 600 --json > deploy-production.json",
    ]
    assert "docker compose" not in text and "migrate" not in text.replace("migrates", "")
    assert (tmp_path / "p" / "vendor" / f"composekit-{__version__}-py3-none-any.whl").is_file()
