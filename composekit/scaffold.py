"""``composekit init``: write a complete, runnable project in one of the three layouts.

Templates live in ``templates/`` (shipped in the wheel as ``composekit/_templates``); the example
app's SQL comes from the top-level ``init-scripts/`` and ``migrations/``. ``{{key}}`` placeholders
for known keys are filled in; everything else (``${VAR}`` for Compose, ``${{ … }}`` for GitHub
Actions) is left as written.
"""

from __future__ import annotations

import os
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from composekit import __version__
from composekit.config import LAYOUTS, Layout
from composekit.errors import UsageError
from composekit.proxy import haproxy_slots
from composekit.vendor import VENDOR_DIR, build_wheel, wheel_name

CI_CHOICES = ("github", "gitlab", "none")
DEFAULT_DB_IMAGE = "postgres:16"
DEFAULT_PYTHON_IMAGE = "python:3.12-slim"
DEFAULT_PROXY_IMAGE = "haproxy:2.6"
EXAMPLE_PASSWORD = "CHANGE-ME-composekit-init-writes-a-random-one"

_NOTES = {
    Layout.INIT_SCRIPTS: (
        "**Layout: init-scripts.** The schema is created by `init-scripts/*.sql` when the database\n"
        "volume is first created — and only then: editing them later changes nothing in an existing\n"
        "database. A failing script leaves the db container unhealthy with the script's error in\n"
        "`docker compose logs db`; fix it, `docker compose down -v`, start again. For changes after\n"
        "the first start, move to the `migrator` layout (`composekit migrate baseline` adopts the schema)."
    ),
    Layout.APP_STARTUP: (
        "**Layout: app-startup.** The web applies pending migrations (`composekit.migrations.upgrade()`)\n"
        "before it serves. The migration lock makes several replicas safe: one migrates, the others\n"
        "wait and find nothing to do. A failing migration stops the container with one clear log line."
    ),
    Layout.MIGRATOR: (
        "**Layout: migrator.** A one-off `migrator` service (same image as the web) applies migrations:\n"
        '`docker compose run --rm migrator`. It is in the `tools` profile with `restart: "no"`, so\n'
        "`docker compose up --wait` never starts it and it never restarts in a loop."
    ),
}

_COMMANDS = {
    Layout.INIT_SCRIPTS: "docker compose up -d --build --wait          # first start runs init-scripts/",
    Layout.APP_STARTUP: (
        "docker compose up -d --build --wait          # the web migrates, then serves\n"
        "docker compose up -d --wait --scale web=3    # three behind the proxy"
    ),
    Layout.MIGRATOR: (
        "docker compose up -d --build --wait db       # the database\n"
        "docker compose run --rm --build migrator     # apply migrations (exit code says how it went)\n"
        "docker compose up -d --build --wait web      # then the new web"
    ),
}


@dataclass
class ScaffoldResult:
    directory: Path
    layout: str
    ci: str
    files: list[str] = field(default_factory=list)


def _resource_dir(name: str) -> Path:
    """``templates/`` etc. in a checkout, ``composekit/_templates`` in an installed wheel."""
    here = Path(__file__).resolve().parent
    for candidate in (here / f"_{name}", here.parent / name):
        if candidate.is_dir():
            return candidate
    raise UsageError(
        f"composekit's {name} are missing from the installation", hint="reinstall composekit"
    )


_PLACEHOLDER = re.compile(r"\{\{\s*([a-z_]+)\s*\}\}")


def render(text: str, values: dict[str, str]) -> str:
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), text)


def compose_project_name(name: str) -> str:
    """A valid Compose project name (lowercase letters, digits, dashes) from a directory name."""
    slug = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")
    return slug or "app"


def plan_files(
    layout: str,
    ci: str,
    name: str,
    db_image: str,
    python_image: str,
    password: str,
    proxy_image: str = DEFAULT_PROXY_IMAGE,
) -> dict[str, tuple[str, int]]:
    """Relative path -> (content, mode) for everything ``init`` writes."""
    if layout not in LAYOUTS:
        raise UsageError(f"unknown layout {layout!r}", hint=f"use one of: {', '.join(LAYOUTS)}")
    kind = Layout(layout)
    if ci not in CI_CHOICES:
        raise UsageError(f"unknown CI {ci!r}", hint=f"use one of: {', '.join(CI_CHOICES)}")
    t = _resource_dir("templates")
    values = {
        "name": name,
        "layout": layout,
        "composekit_version": __version__,
        "db_image": db_image,
        "python_image": python_image,
        "proxy_image": proxy_image,
        "proxy_slots": haproxy_slots(),
        "layout_notes": _NOTES[kind],
        "commands": _COMMANDS[kind],
        "migrator_file": ', and `migrator` (profile `tools`, `restart: "no"`)'
        if kind.has_migrator
        else "",
    }
    files: dict[str, tuple[str, int]] = {}

    def add(rel: str, src: Path, mode: int = 0o644) -> None:
        files[rel] = (render(src.read_text(), values), mode)

    add("compose.yaml", t / layout / "compose.yaml")
    for rel, src in (
        ("compose.staging.yaml", "compose.staging.yaml"),
        ("compose.prod.yaml", "compose.prod.yaml"),
        ("Dockerfile", "Dockerfile"),
        ("requirements.txt", "requirements.txt"),
        ("app/app.py", "app/app.py"),
        (".gitignore", "gitignore"),
        (".dockerignore", "dockerignore"),
        (".env.example", "env.example"),
        ("composekit.toml", "composekit.toml"),
        ("README.md", "README.md"),
        ("proxy/haproxy.cfg", "proxy/haproxy.cfg"),
        ("proxy/maintenance.http", "proxy/maintenance.http"),
    ):
        add(rel, t / "common" / src)
    sql = _resource_dir("init-scripts")
    migrations = _resource_dir("migrations")
    files["init-scripts/001_schema.sql"] = ((sql / "001_schema.sql").read_text(), 0o644)
    profile = (migrations / "0001_add_profile.sql").read_text()
    if not kind.runs_migrations:
        from composekit.migrations import parse_native

        up = parse_native(migrations / "0001_add_profile.sql", "0001", "add_profile").up.sql.strip()
        files["init-scripts/002_add_profile.sql"] = (
            f"-- from migrations/0001_add_profile.sql (first start only)\n{up}\n",
            0o644,
        )
        files["migrations/README.md"] = (
            "Empty on purpose: in the init-scripts layout the schema comes from ../init-scripts.\n",
            0o644,
        )
    else:
        files["migrations/0001_add_profile.sql"] = (profile, 0o644)
    if ci == "github":
        add(".github/workflows/deploy.yml", t / "ci" / "github" / "deploy.yml")
    elif ci == "gitlab":
        add(".gitlab-ci.yml", t / "ci" / "gitlab" / "gitlab-ci.yml")
    env = (
        "# Written by composekit init. Keep it out of git (it is in .gitignore).\n"
        f"POSTGRES_USER=app\nPOSTGRES_DB=app\nPOSTGRES_PASSWORD={password}\n"
    )
    files[".env"] = (env, 0o600)
    return files


def scaffold(
    directory: str | Path,
    layout: str,
    *,
    ci: str = "github",
    name: str | None = None,
    db_image: str = DEFAULT_DB_IMAGE,
    python_image: str = DEFAULT_PYTHON_IMAGE,
    proxy_image: str = DEFAULT_PROXY_IMAGE,
    force: bool = False,
    password: str | None = None,
) -> ScaffoldResult:
    """Write the project. Refuses (writing nothing) if any file exists, unless ``force``.

    >>> scaffold("shop", "migrator", ci="gitlab").files[:2]   # doctest: +SKIP
    ['compose.yaml', 'compose.staging.yaml']
    """
    target = Path(directory)
    name = compose_project_name(name or target.resolve().name)
    files = plan_files(
        layout,
        ci,
        name,
        db_image,
        python_image,
        password or secrets.token_urlsafe(32),
        proxy_image,
    )
    wheel = f"{VENDOR_DIR}/{wheel_name(__version__)}"
    existing = sorted(rel for rel in [*files, wheel] if (target / rel).exists())
    if existing and not force:
        raise UsageError(
            f"{target} already has {len(existing)} of the files init writes; nothing was written",
            hint="pass --force to overwrite them, or choose an empty directory",
            details=[f"exists: {rel}" for rel in existing],
        )
    for rel, (content, mode) in files.items():
        path = target / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.unlink(
            missing_ok=True
        )  # so a secret file is never briefly readable with old mode bits
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        with os.fdopen(fd, "w") as f:
            f.write(content)
        path.chmod(mode)  # umask may have cleared bits we asked for
    build_wheel(target / VENDOR_DIR)  # the image gets this very composekit, from no index
    return ScaffoldResult(target, layout, ci, [*files, wheel])
