"""``composekit export k8s``: every layout's manifests validate against the Kubernetes schemas
(strict: an unknown field fails), carry no secret, and keep what the compose files promise — a
rolling update that never drops below the ready pods, the healthcheck as the readiness probe, the
migrator's own ``composekit migrate up`` as a Job. The last test runs that Job's container, as the
manifest describes it, against the project's real database: twice at once, and the migration is
applied once, in the same ledger."""

from __future__ import annotations

import json
import subprocess
import threading
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from composekit.compose import ComposeProject
from composekit.k8s import to_yaml
from composekit.scaffold import scaffold
from tests.apps import App, migration
from tests.helpers import run_cli

K8S_VERSION = "1.30.0"


def _export(project: Path, *args: str) -> dict[str, list[dict[str, Any]]]:
    r = run_cli("-C", str(project), "export", "k8s", "-o", "k8s", *args)
    assert r.returncode == 0, r.stderr
    out = {}
    for f in sorted((project / "k8s").rglob("*.yaml")):
        docs = [d for d in yaml.safe_load_all(f.read_text()) if d]
        for d in docs:
            kubernetes_validate.validate(d, K8S_VERSION, strict=True)  # raises on any error
        out[str(f.relative_to(project / "k8s"))] = docs
    return out


def _kind(files: dict[str, list[dict[str, Any]]], kind: str) -> list[dict[str, Any]]:
    return [d for docs in files.values() for d in docs if d["kind"] == kind]


def _password(project: Path) -> str:
    env = dict(
        line.split("=", 1) for line in (project / ".env").read_text().splitlines() if "=" in line
    )
    return env["POSTGRES_PASSWORD"]


@pytest.mark.parametrize("layout", ["migrator", "app-startup", "init-scripts"])
def test_every_layout_exports_valid_manifests_without_secrets(tmp_path: Path, layout: str) -> None:
    project = tmp_path / "shop"
    scaffold(project, layout, ci="github", name="shop")
    files = _export(project)
    text = "".join(p.read_text() for p in (project / "k8s").rglob("*") if p.is_file())
    assert _password(project) not in text

    (web,) = [d for d in _kind(files, "Deployment") if d["metadata"]["name"] == "web"]
    assert web["spec"]["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
    }
    container = web["spec"]["template"]["spec"]["containers"][0]
    want = ComposeProject(project_dir=project, env_file=".env").healthcheck("web")
    assert container["readinessProbe"]["exec"]["command"] == want
    assert container["readinessProbe"]["periodSeconds"] == 2  # the compose interval
    url = next(e for e in container["env"] if e["name"] == "DATABASE_URL")
    assert url["valueFrom"]["secretKeyRef"] == {"name": "shop-env", "key": "DATABASE_URL"}
    assert [s["metadata"]["name"] for s in _kind(files, "Service")] == ["db", "web"]

    (db,) = _kind(files, "StatefulSet")
    claim = db["spec"]["volumeClaimTemplates"][0]
    assert claim["spec"]["resources"]["requests"]["storage"] == "10Gi"
    db_env = {e["name"]: e for e in db["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert "secretKeyRef" in db_env["POSTGRES_PASSWORD"]["valueFrom"]
    assert db_env["PGDATA"]["value"].startswith("/var/lib/postgresql/data/")
    (init,) = _kind(files, "ConfigMap")  # the first-start scripts, mounted where compose had them
    assert init["data"]["001_schema.sql"] == (project / "init-scripts/001_schema.sql").read_text()
    mounts = db["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
    assert {
        "name": init["metadata"]["name"],
        "mountPath": "/docker-entrypoint-initdb.d",
        "readOnly": True,
    } in mounts

    jobs = _kind(files, "Job")
    readme = (project / "k8s/README.md").read_text()
    if layout == "migrator":
        plain, hook = sorted(jobs, key=lambda j: "annotations" in j["metadata"])
        args = plain["spec"]["template"]["spec"]["containers"][0]["args"]
        assert args[:3] == ["composekit", "migrate", "up"]
        assert plain["spec"]["backoffLimit"] == 0
        assert hook["metadata"]["annotations"]["helm.sh/hook"] == "pre-upgrade"
        assert hook["spec"] == plain["spec"]
        # the order: database, then the Job to completion, then the web
        assert readme.index("db.yaml") < readme.index("kubectl wait") < readme.index("web.yaml")
    else:
        assert jobs == []
    assert ("migrates as it starts" in readme) == (layout == "app-startup")
    assert "proxy: not exported" in readme


def test_external_db_registry_overlay_and_stdout(tmp_path: Path) -> None:
    project = tmp_path / "shop"
    scaffold(project, "migrator", ci="github", name="shop")
    files = _export(project, "--external-db", "--registry", "reg.example/team", "--env", "prod")
    assert _kind(files, "StatefulSet") == [] and _kind(files, "ConfigMap") == []
    (web,) = _kind(files, "Deployment")
    c = web["spec"]["template"]["spec"]
    assert c["containers"][0]["image"] == "reg.example/team/shop-app:latest"
    assert "initContainers" not in c  # no database in the cluster to wait for
    assert {"name": "APP_ENV", "value": "production"} in c["containers"][0]["env"]  # the overlay
    assert c["containers"][0]["resources"]["limits"]["cpu"] == "2"
    hook = next(j for j in _kind(files, "Job") if "annotations" in j["metadata"])
    assert hook["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"

    r = run_cli("-C", str(project), "export", "k8s", "-o", "-", "--external-db",
                "--registry", "reg.example/team", "--env", "prod")  # fmt: skip
    assert r.returncode == 0, r.stderr
    streamed = [d for d in yaml.safe_load_all(r.stdout) if d]
    written = [d for path, docs in files.items() if not path.startswith("helm/") for d in docs]

    def key(d: dict[str, Any]) -> tuple[str, str]:
        return d["kind"], d["metadata"]["name"]

    assert sorted(streamed, key=key) == sorted(written, key=key)


def test_secret_file_is_private_and_a_build_without_image_is_refused(tmp_path: Path) -> None:
    project = tmp_path / "shop"
    scaffold(project, "migrator", ci="github", name="shop")
    r = run_cli("-C", str(project), "export", "k8s", "--secret-file", "k8s.env", "--json")
    assert r.returncode == 0, r.stderr
    assert _password(project) not in r.stdout
    secret = project / "k8s.env"
    assert secret.stat().st_mode & 0o777 == 0o600
    values = dict(line.split("=", 1) for line in secret.read_text().splitlines())
    assert set(values) == {"POSTGRES_PASSWORD", "DATABASE_URL"}
    assert values["POSTGRES_PASSWORD"] == _password(project)

    compose = project / "compose.yaml"
    compose.write_text(
        compose.read_text().replace("    image: shop-app:${APP_TAG:-latest}\n", "", 1)
    )
    r = run_cli("-C", str(project), "export", "k8s", "-o", "again")
    assert r.returncode == 3, r.stderr
    assert "service web has a build: but no image:" in r.stderr and "Traceback" not in r.stderr
    assert not (project / "again").exists()


def test_yaml_writer_round_trips_what_yaml_would_misread() -> None:
    data = {
        "plain": "no",
        "octal": "0755",
        "version": "1.10",
        "quote": 'say "hi"\nand $HOME',
        "empty": {},
        "none": [],
        "nested": [{"a": [1, 2.5, True, None]}, [["x"]], "y"],
        "weird key: yes": "on",
    }
    assert yaml.safe_load(to_yaml(data)) == data


@pytest.mark.slow
def test_the_exported_job_runs_migrate_up_in_the_same_ledger_once(make_app: Any) -> None:
    app: App = make_app("migrator")
    r = run_cli("-C", str(app.dir), "deploy", timeout=600)
    assert r.returncode == 0, r.stderr
    migration(
        app,
        "0002_audit.sql",
        "CREATE TABLE audit (n int);\nINSERT INTO audit VALUES (1);",
        "DROP TABLE audit;",
    )
    app.project.build(["migrator"])
    r = run_cli("-C", str(app.dir), "export", "k8s", "--secret-file", "k8s.env")
    assert r.returncode == 0, r.stderr
    (job,) = [d for d in yaml.safe_load_all((app.dir / "k8s/migrator-job.yaml").read_text()) if d]
    spec = job["spec"]["template"]["spec"]["containers"][0]
    secrets = dict(line.split("=", 1) for line in (app.dir / "k8s.env").read_text().splitlines())
    env_args = []
    for e in spec["env"]:  # the Secret as the cluster would hand it to the pod
        value = e.get("value") or secrets[e["valueFrom"]["secretKeyRef"]["key"]]
        env_args += ["-e", f"{e['name']}={value}"]
    argv = ["docker", "run", "--rm", "--network", f"{app.name}_default", *env_args]
    argv += [spec["image"], *spec["args"]]
    results: list[subprocess.CompletedProcess[str]] = []

    def job_pod() -> None:
        results.append(subprocess.run(argv, capture_output=True, text=True, timeout=180))

    pods = [threading.Thread(target=job_pod) for _ in range(2)]  # two Jobs at once: one lock
    for p in pods:
        p.start()
    for p in pods:
        p.join()
    assert [r.returncode for r in results] == [0, 0], [r.stderr for r in results]
    assert app.psql("SELECT count(*) FROM audit") == "1"  # applied once
    assert app.psql("SELECT count(*) FROM schema_migrations WHERE version = '0002'") == "1"
    status = run_cli("-C", str(app.dir), "migrate", "status", "--json")
    assert status.returncode == 0, status.stderr
    report = json.loads(status.stdout)  # the host's view of the same ledger
    assert report["current_version"] == "0002" and report["up_to_date"], report
