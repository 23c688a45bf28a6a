"""``composekit export k8s``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from composekit import commands
from composekit.cli.app import EnvOpt, JsonOpt, app, cli

export_app = typer.Typer(
    help="The same project for a cluster: Kubernetes manifests from the compose files.",
    no_args_is_help=True,
    epilog="Examples:\n\n  composekit export k8s                        # into k8s/\n\n"
    "  composekit export k8s --env prod -o deploy/k8s --registry registry.example.com/shop\n\n"
    "  composekit export k8s -o - | kubectl apply --dry-run=client -f -\n\n"
    "  composekit export k8s --external-db          # a managed database: no StatefulSet",
)
app.add_typer(export_app, name="export")


@export_app.command("k8s")
def k8s(
    ctx: typer.Context,
    output: Annotated[
        str,
        typer.Option(
            "--output", "-o", help="Folder to write to; - prints the manifests (not the Helm hook)."
        ),
    ] = "k8s",
    env: EnvOpt = None,
    external_db: Annotated[
        bool,
        typer.Option("--external-db", help="The database is outside the cluster: no StatefulSet."),
    ] = False,
    registry: Annotated[
        str | None,
        typer.Option(
            "--registry", help="Prefix for the images built here (where the cluster pulls)."
        ),
    ] = None,
    storage: Annotated[
        str, typer.Option("--storage", help="Size of the database's volume claim.")
    ] = "10Gi",
    secret_file: Annotated[
        Path | None,
        typer.Option(
            "--secret-file",
            help="Also write the Secret's values here (KEY=VALUE, mode 0600) for "
            "kubectl create secret generic NAME --from-env-file=FILE.",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Deployment (rolling, readiness probe from the healthcheck), Service, the migrator as a Job
    (and as a Helm pre-upgrade hook), the database as a StatefulSet; Secrets referenced, never
    written."""
    c = cli(ctx)
    settings = c.settings()
    out_dir = None if output == "-" else settings.path(Path(output))
    result = commands.export_k8s(
        settings,
        out_dir,
        env=env,
        external_db=external_db,
        registry=registry,
        storage=storage,
        secret_file=settings.path(secret_file) if secret_file else None,
    )
    if as_json:
        c.out.emit_json(result)
        return
    if out_dir is None:
        plain = [m for m in result.manifests if not m.path.startswith("helm/")]
        c.out.line("".join(m.text() for m in plain).rstrip())
        return
    for path in result.written:
        c.out.line(f"wrote {path}")
    c.out.line(f"secret: {result.secret} with keys {', '.join(result.secret_keys) or '-'}")
    for note in result.notes:
        c.out.line(f"note: {note}")
    c.out.line(f"next: read {out_dir / 'README.md'} (the order to apply them in)")
