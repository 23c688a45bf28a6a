"""``composekit export k8s``: the same project as Kubernetes manifests.

Read from the resolved compose configuration (the one ``docker compose config`` prints, with the
``--env`` overlay), so what runs on the cluster is what runs on one host:

- each long-running service → a Deployment (RollingUpdate, ``maxUnavailable: 0``: a new pod must
  be ready before an old one goes) with a readiness probe made from its compose healthcheck, and
  a Service for the ports it exposes;
- the database → a StatefulSet with a PersistentVolumeClaim per named volume and a headless
  Service of the same name (so ``db:5432`` in DATABASE_URL still resolves), or nothing when the
  database is external (``--external-db``);
- the migrator (migrator layout) → a Job that runs the migrator's own command (``composekit
  migrate up``: the same advisory lock and the same ``schema_migrations`` ledger), after waiting
  for the database; and the same Job as a Helm pre-upgrade hook;
- every secret (a variable whose name says so, or whose value holds a password of the project's)
  → a ``secretKeyRef`` into one Secret, ``<project>-env``, which is never written: the manifests
  carry no password.

The reverse proxy is not exported: a Service sends only to ready pods, which is its job.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from composekit.compose import ComposeProject
from composekit.config import SECRET_KEY, Settings
from composekit.errors import ConfigError

__all__ = ["K8sExport", "Manifest", "export_k8s", "to_yaml", "write_export", "write_secret_file"]

PART_OF = "app.kubernetes.io/part-of"
NAME = "app.kubernetes.io/name"
MANAGED = {"app.kubernetes.io/managed-by": "composekit"}
CONFIGMAP_LIMIT = 1_000_000  # a ConfigMap holds at most 1 MiB
PGDATA_MOUNT = "/var/lib/postgresql/data"
HELM_HOOK = "helm.sh/hook"


@dataclass
class Manifest:
    """One file of the export: its path in the output directory and its documents."""

    path: str
    documents: list[dict[str, Any]]

    def text(self) -> str:
        return "".join("---\n" + to_yaml(d) for d in self.documents)


@dataclass
class K8sExport:
    """What ``export k8s`` made: the files, the Secret the cluster needs, and what it left out."""

    project: str
    layout: str
    manifests: list[Manifest]
    secret: str
    secret_keys: list[str]
    notes: list[str] = field(default_factory=list)
    written: list[str] = field(default_factory=list)
    secret_values: dict[str, str] = field(default_factory=dict, repr=False)
    """The Secret's values as the compose files resolve them: written only to ``--secret-file``
    (mode 0600), never printed."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "project": self.project,
            "layout": self.layout,
            "files": self.files,
            "written": self.written,
            "secret": self.secret,
            "secret_keys": self.secret_keys,
            "notes": self.notes,
        }

    @property
    def files(self) -> list[str]:
        return [m.path for m in self.manifests]


# -- YAML -------------------------------------------------------------------------------------
_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_./-]*$")


def _scalar(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return json.dumps(v)
    return json.dumps(str(v))  # a JSON string is a YAML double-quoted scalar


def _key(k: str) -> str:
    return (
        k if _PLAIN_KEY.match(k) and k not in ("true", "false", "null", "yes", "no") else _scalar(k)
    )


def to_yaml(value: Any, indent: int = 0) -> str:
    """Block YAML for dicts, lists and scalars; every string double-quoted (no YAML surprises:
    ``"no"``, ``"0755"`` and ``"1.10"`` stay strings).

    >>> print(to_yaml({"a": [1, {"b": "no"}]}), end="")
    a:
      - 1
      - b: "no"
    """
    pad = " " * indent
    if isinstance(value, dict):
        if not value:
            return pad + "{}\n"
        out = []
        for k, v in value.items():
            if isinstance(v, dict | list) and v:
                out.append(f"{pad}{_key(str(k))}:\n{to_yaml(v, indent + 2)}")
            else:
                empty = "{}" if isinstance(v, dict) else "[]" if isinstance(v, list) else _scalar(v)
                out.append(f"{pad}{_key(str(k))}: {empty}\n")
        return "".join(out)
    if isinstance(value, list):
        if not value:
            return pad + "[]\n"
        out = []
        for item in value:
            body = to_yaml(item, indent + 2) if isinstance(item, dict | list) and item else ""
            if body:  # the first line goes after the dash
                first, _, rest = body.partition("\n")
                out.append(f"{pad}- {first.lstrip()}\n{rest}")
            else:
                out.append(f"{pad}- {to_yaml(item).strip()}\n")
        return "".join(out)
    return pad + _scalar(value) + "\n"


# -- compose → Kubernetes pieces -------------------------------------------------------------
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s|us|ns)")
_UNIT = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001, "us": 1e-6, "ns": 1e-9}


def seconds(duration: Any, default: int) -> int:
    """A compose duration (``1m30s``, ``2s``, a number of nanoseconds) as whole seconds, ≥ 1."""
    if duration is None:
        return default
    if isinstance(duration, int | float):
        return max(1, round(duration / 1e9))
    total = sum(float(n) * _UNIT[u] for n, u in _DURATION.findall(str(duration)))
    return max(1, round(total)) if total else default


def _probe(ctx: _Context, name: str, svc: dict[str, Any]) -> dict[str, Any] | None:
    """The readiness probe of a compose healthcheck (None: it has none)."""
    argv = ctx.compose.healthcheck(name)
    if argv is None:
        return None
    hc = svc["healthcheck"]
    probe: dict[str, Any] = {
        "exec": {"command": argv},
        "periodSeconds": seconds(hc.get("interval"), 30),
        "timeoutSeconds": seconds(hc.get("timeout"), 30),
        "failureThreshold": 3,
    }
    if hc.get("start_period"):
        probe["initialDelaySeconds"] = seconds(hc["start_period"], 0)
    return probe


def _ports(svc: dict[str, Any]) -> list[int]:
    found = [int(str(p).split("/")[0].split("-")[0]) for p in svc.get("expose") or []]
    found += [int(p["target"]) for p in svc.get("ports") or [] if p.get("target")]
    return list(dict.fromkeys(found))


def _resources(svc: dict[str, Any]) -> dict[str, Any]:
    res = ((svc.get("deploy") or {}).get("resources")) or {}
    out: dict[str, Any] = {}
    for compose_key, k8s_key in (("limits", "limits"), ("reservations", "requests")):
        part = res.get(compose_key) or {}
        want = {}
        if part.get("cpus"):
            want["cpu"] = str(part["cpus"])
        if part.get("memory"):
            want["memory"] = str(part["memory"])  # compose resolves it to bytes
        if want:
            out[k8s_key] = want
    return out


@dataclass
class _Context:
    settings: Settings
    compose: ComposeProject
    project: str
    secret: str
    secret_values: list[str]
    external_db: bool
    registry: str | None
    storage: str
    config: dict[str, Any]
    secret_keys: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def labels(self, name: str) -> dict[str, str]:
        return {NAME: name, PART_OF: self.project}

    def meta(self, name: str, **extra: Any) -> dict[str, Any]:
        return {"name": name, "labels": {**self.labels(name), **MANAGED}, **extra}

    def is_secret(self, key: str, value: Any) -> bool:
        text = "" if value is None else str(value)
        return (
            bool(SECRET_KEY.search(key))
            or "DATABASE_URL" in key.upper()
            or any(s and s in text for s in self.secret_values)
        )

    def env(self, svc: dict[str, Any]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for key, value in sorted((svc.get("environment") or {}).items()):
            if value is None or self.is_secret(key, value):
                if key not in self.secret_keys:
                    self.secret_keys.append(key)
                ref = {"name": self.secret, "key": key}
                out.append({"name": key, "valueFrom": {"secretKeyRef": ref}})
            else:
                out.append({"name": key, "value": str(value)})
        return out

    def image(self, name: str, svc: dict[str, Any]) -> str:
        image = svc.get("image")
        if not image:
            raise ConfigError(
                f"service {name} has a build: but no image: name to push it as",
                hint=f"give {name} an image: (e.g. image: {self.project}-{name}:${{APP_TAG:-latest}})",
            )
        if svc.get("build") and self.registry:
            return f"{self.registry.rstrip('/')}/{image}"
        return str(image)

    def container(self, name: str, svc: dict[str, Any]) -> dict[str, Any]:
        c: dict[str, Any] = {"name": name, "image": self.image(name, svc)}
        if svc.get("build"):
            c["imagePullPolicy"] = "IfNotPresent"
        if svc.get("entrypoint"):
            c["command"] = [str(a) for a in svc["entrypoint"]]
        if svc.get("command"):
            c["args"] = [str(a) for a in svc["command"]]
        if svc.get("working_dir"):
            c["workingDir"] = svc["working_dir"]
        env = self.env(svc)
        if env:
            c["env"] = env
        ports = _ports(svc)
        if ports:
            c["ports"] = [{"containerPort": p, "name": f"p{p}"} for p in ports]
        resources = _resources(svc)
        if resources:
            c["resources"] = resources
        return c

    def wait_for_db(self, svc: dict[str, Any]) -> list[dict[str, Any]]:
        """An init container that waits for the database, as ``depends_on: …
        service_healthy`` does on one host (none for an external database)."""
        db = self.settings.db_service
        if self.external_db or db not in (svc.get("depends_on") or {}):
            return []
        image = str(self.config["services"][db].get("image") or "postgres:16")
        script = f"until pg_isready -h {db} -p 5432 -q; do sleep 1; done"
        return [{"name": f"wait-for-{db}", "image": image, "command": ["sh", "-c", script]}]


def _mounts(
    ctx: _Context, name: str, svc: dict[str, Any]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]], list[str]]:
    """(volumeMounts, pod volumes, ConfigMaps, named volumes) for ``svc``'s volumes: a named
    volume becomes a claim, a read-only bind-mounted folder of small files a ConfigMap."""
    mounts: list[dict[str, Any]] = []
    volumes: list[dict[str, Any]] = []
    maps: list[dict[str, Any]] = []
    claims: list[str] = []
    for i, v in enumerate(svc.get("volumes") or []):
        target = v.get("target")
        if v.get("type") == "volume" and v.get("source"):
            vol = re.sub(r"[^a-z0-9-]", "-", str(v["source"]).lower())
            claims.append(vol)
            mounts.append({"name": vol, "mountPath": target})
            continue
        src = Path(str(v.get("source") or ""))
        if v.get("type") == "bind" and src.is_dir():
            files = {p.name: p for p in sorted(src.iterdir()) if p.is_file()}
            size = sum(p.stat().st_size for p in files.values())
            leaks = any(
                s and s in p.read_text(errors="replace")
                for p in files.values()
                for s in ctx.secret_values
            )
            if size <= CONFIGMAP_LIMIT and not leaks:
                cm = f"{name}-" + (
                    re.sub(r"[^a-z0-9-]", "-", src.name.lower()).strip("-") or str(i)
                )
                data = {k: p.read_text(errors="replace") for k, p in files.items()}
                maps.append(
                    {
                        "apiVersion": "v1",
                        "kind": "ConfigMap",
                        "metadata": ctx.meta(cm),
                        "data": data,
                    }
                )
                volumes.append({"name": cm, "configMap": {"name": cm}})
                mounts.append({"name": cm, "mountPath": target, "readOnly": True})
                continue
        ctx.notes.append(
            f"{name}: the mount {v.get('source') or '(tmpfs)'} → {target} is not exported "
            "(bake the files into the image, or add a volume by hand)"
        )
    return mounts, volumes, maps, claims


def _service(
    ctx: _Context, name: str, ports: list[int], *, headless: bool = False
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "selector": ctx.labels(name),
        "ports": [{"name": f"p{p}", "port": p, "targetPort": p} for p in ports],
    }
    if headless:
        spec["clusterIP"] = "None"
    return {"apiVersion": "v1", "kind": "Service", "metadata": ctx.meta(name), "spec": spec}


def _pod(
    ctx: _Context, name: str, svc: dict[str, Any]
) -> tuple[dict[str, Any], list[Any], list[str]]:
    """(pod template, ConfigMaps, claim names) of a long-running service."""
    container = ctx.container(name, svc)
    probe = _probe(ctx, name, svc)
    if probe:
        container["readinessProbe"] = probe
    mounts, volumes, maps, claims = _mounts(ctx, name, svc)
    if mounts:
        container["volumeMounts"] = mounts
    pod: dict[str, Any] = {"containers": [container]}
    init = ctx.wait_for_db(svc)
    if init:
        pod["initContainers"] = init
    if volumes:
        pod["volumes"] = volumes
    stop = svc.get("stop_grace_period")
    if stop:
        pod["terminationGracePeriodSeconds"] = seconds(stop, 30)
    return {"metadata": {"labels": ctx.labels(name)}, "spec": pod}, maps, claims


def _deployment(ctx: _Context, name: str, svc: dict[str, Any]) -> Manifest:
    template, maps, claims = _pod(ctx, name, svc)
    for claim in claims:
        ctx.notes.append(
            f"{name}: the volume {claim} is not exported for a Deployment (its pods may run on "
            "several nodes); use a PersistentVolumeClaim that allows it, or object storage"
        )
        c = template["spec"]["containers"][0]
        c["volumeMounts"] = [m for m in c["volumeMounts"] if m["name"] != claim]
        if not c["volumeMounts"]:
            del c["volumeMounts"]
    replicas = (svc.get("deploy") or {}).get("replicas") or svc.get("scale") or 1
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": ctx.meta(name),
        "spec": {
            "replicas": int(replicas),
            "selector": {"matchLabels": ctx.labels(name)},
            # a new pod is ready (its probe passes) before an old one is stopped
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
            },
            "template": template,
        },
    }
    docs: list[dict[str, Any]] = [*maps, deployment]
    ports = _ports(svc)
    if ports:
        docs.append(_service(ctx, name, ports))
    return Manifest(f"{name}.yaml", docs)


def _statefulset(ctx: _Context, name: str, svc: dict[str, Any]) -> Manifest:
    template, maps, claims = _pod(ctx, name, svc)
    container = template["spec"]["containers"][0]
    env = container.setdefault("env", [])
    on_pgdata = any(m.get("mountPath") == PGDATA_MOUNT for m in container.get("volumeMounts", []))
    if on_pgdata and not any(e["name"] == "PGDATA" for e in env):
        # a fresh volume's root holds lost+found, which initdb refuses: use a folder in it
        env.append({"name": "PGDATA", "value": f"{PGDATA_MOUNT}/pgdata"})
    set_ = {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": ctx.meta(name),
        "spec": {
            "serviceName": name,
            "replicas": 1,
            "selector": {"matchLabels": ctx.labels(name)},
            "template": template,
            "volumeClaimTemplates": [
                {
                    "metadata": {"name": claim},
                    "spec": {
                        "accessModes": ["ReadWriteOnce"],
                        "resources": {"requests": {"storage": ctx.storage}},
                    },
                }
                for claim in claims
            ],
        },
    }
    return Manifest(
        f"{name}.yaml", [*maps, _service(ctx, name, _ports(svc) or [5432], headless=True), set_]
    )


def _job(ctx: _Context, name: str, svc: dict[str, Any], *, helm: bool) -> Manifest:
    container = ctx.container(name, svc)
    pod: dict[str, Any] = {"restartPolicy": "Never", "containers": [container]}
    init = ctx.wait_for_db(svc)
    if init:
        pod["initContainers"] = init
    meta = ctx.meta(name)
    if helm:
        # in-cluster database: it does not exist before the first install, so upgrade only
        hooks = "pre-install,pre-upgrade" if ctx.external_db else "pre-upgrade"
        meta["annotations"] = {
            HELM_HOOK: hooks,
            "helm.sh/hook-weight": "-5",
            "helm.sh/hook-delete-policy": "before-hook-creation,hook-succeeded",
        }
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": meta,
        "spec": {
            # a failed migration is not retried blindly: the engine already retries lock timeouts
            "backoffLimit": 0,
            "ttlSecondsAfterFinished": 86400,
            "template": {"metadata": {"labels": ctx.labels(name)}, "spec": pod},
        },
    }
    return Manifest(f"helm/{name}-hook.yaml" if helm else f"{name}-job.yaml", [job])


def export_k8s(
    settings: Settings,
    project: ComposeProject,
    *,
    external_db: bool = False,
    registry: str | None = None,
    storage: str = "10Gi",
) -> K8sExport:
    """The project as Kubernetes manifests (nothing written: see :func:`write_export`)."""
    config = project.config()
    services: dict[str, dict[str, Any]] = config.get("services") or {}
    project.require_services(settings.db_service, settings.web_service)
    name = re.sub(r"[^a-z0-9-]", "-", project.name.lower()).strip("-") or "app"
    from composekit.redact import secrets_of_url

    ctx = _Context(
        settings=settings,
        compose=project,
        project=name,
        secret=f"{name}-env",
        secret_values=[*settings.secrets, *secrets_of_url(settings.database_url)],
        external_db=external_db,
        registry=registry,
        storage=storage,
        config=config,
    )
    manifests: list[Manifest] = []
    migrator = settings.migrator_service if settings.layout.has_migrator else None
    for svc_name, svc in services.items():
        if svc_name == settings.db_service:
            if external_db:
                ctx.notes.append(
                    f"{svc_name}: not exported (--external-db): put the database's URL in the "
                    f"Secret {ctx.secret} under DATABASE_URL"
                )
            else:
                manifests.insert(0, _statefulset(ctx, svc_name, svc))  # applied first
        elif svc_name == migrator:
            manifests.append(_job(ctx, svc_name, svc, helm=False))
            manifests.append(_job(ctx, svc_name, svc, helm=True))
        elif svc_name == settings.proxy_service:
            ctx.notes.append(
                f"{svc_name}: not exported: a Service sends only to ready pods, and the "
                "Deployment's rolling update replaces the proxy's switch (add an Ingress for "
                "outside traffic)"
            )
        elif svc.get("profiles"):
            ctx.notes.append(
                f"{svc_name}: not exported (a one-off tool in profiles {svc['profiles']})"
            )
        else:
            manifests.append(_deployment(ctx, svc_name, svc))
    if settings.layout.web_migrates:
        ctx.notes.append(
            f"{settings.web_service}: migrates as it starts (app-startup): each new pod runs "
            "`composekit migrate up` first; its lock lets one pod migrate while the others wait"
        )
    built = sorted({str(s.get("image")) for s in services.values() if s.get("build")})
    if built and not registry:
        ctx.notes.append(
            f"images built here ({', '.join(built)}): push them to a registry the cluster pulls "
            "from, and pass --registry"
        )
    values: dict[str, str] = {}
    for svc in services.values():
        for key, value in (svc.get("environment") or {}).items():
            if key in ctx.secret_keys and value is not None:
                values.setdefault(key, str(value))
    return K8sExport(
        project=name,
        layout=str(settings.layout),
        manifests=manifests,
        secret=ctx.secret,
        secret_keys=ctx.secret_keys,
        notes=ctx.notes,
        secret_values=values,
    )


def write_secret_file(export: K8sExport, path: Path) -> None:
    """The Secret's values as ``KEY=VALUE`` lines for ``kubectl create secret generic NAME
    --from-env-file=PATH`` (mode 0600). Before, point DATABASE_URL's host at the cluster's
    database if it is not the ``db`` Service."""
    from composekit.files import write_private

    lines = []
    for key in export.secret_keys:
        value = export.secret_values.get(key, "")
        if "\n" in value:
            raise ConfigError(
                f"the value of {key} spans several lines, which an env file cannot hold",
                hint=f"create the Secret {export.secret} by hand (kubectl create secret generic)",
            )
        lines.append(f"{key}={value}\n")
    write_private(path, "".join(lines))


def write_export(export: K8sExport, out_dir: Path) -> list[str]:
    """Write the manifests under ``out_dir`` (they hold no secret) and a README with the order to
    apply them in; returns the paths written."""
    written = []
    for m in export.manifests:
        path = out_dir / m.path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(m.text())
        written.append(str(path))
    readme = out_dir / "README.md"
    readme.write_text(_readme(export))
    written.append(str(readme))
    return written


def _readme(e: K8sExport) -> str:
    keys = " ".join(f"--from-literal={k}=…" for k in e.secret_keys)
    jobs = [m for m in e.manifests if m.path.endswith("-job.yaml")]
    lines = [
        f"# {e.project} on Kubernetes (made by `composekit export k8s`, layout {e.layout})",
        "",
        "The manifests hold no secret. Create the Secret first (the values as in .env; in",
        "DATABASE_URL the host is the database's Service name), by hand or from the file that",
        "`composekit export k8s --secret-file FILE` writes (mode 0600; keep it out of git):",
        "",
        f"    kubectl create secret generic {e.secret} {keys}",
        f"    kubectl create secret generic {e.secret} --from-env-file=FILE",
        "",
        "Then, for each release, in this order:",
        "",
    ]
    rest = [m for m in e.manifests if not m.path.startswith("helm/") and m not in jobs]
    if rest and rest[0].documents[-1]["kind"] == "StatefulSet":  # the database first
        lines.append(f"    kubectl apply -f {rest.pop(0).path}")
    for job in jobs:
        name = job.documents[0]["metadata"]["name"]
        lines += [
            f"    kubectl delete job {name} --ignore-not-found",
            f"    kubectl apply -f {job.path}",
            f"    kubectl wait --for=condition=complete job/{name} --timeout=15m",
        ]
    lines += [f"    kubectl apply -f {m.path}" for m in rest]
    lines += [
        "",
        "The migration Job runs the migrator's own command, `composekit migrate up`: the same",
        "advisory lock (two Jobs never migrate at once) and the same schema_migrations ledger as",
        "on one host. With Helm, use helm/*-hook.yaml instead: the Job runs before each upgrade.",
        "",
    ]
    lines += [f"- {n}" for n in e.notes]
    return "\n".join(lines) + "\n"
