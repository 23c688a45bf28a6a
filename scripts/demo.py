"""Demo driver (see scripts/demo.sh). Uses composekit's own ComposeProject."""

from __future__ import annotations

import shutil
import sys
import tempfile
import uuid
from pathlib import Path

from composekit.compose import ComposeProject
from composekit.images import POSTGRES_IMAGE

ROOT = Path(__file__).resolve().parent.parent

COMPOSE = f"""
services:
  db:
    image: ${{POSTGRES_IMAGE:-{POSTGRES_IMAGE}}}
    environment:
      POSTGRES_USER: app
      POSTGRES_PASSWORD: ${{POSTGRES_PASSWORD}}
      POSTGRES_DB: app
    volumes:
      - pgdata:/var/lib/postgresql/data
      - ./init-scripts:/docker-entrypoint-initdb.d:ro
    healthcheck:
      test: ["CMD-SHELL", "pg_isready -h 127.0.0.1 -U \\"$$POSTGRES_USER\\""]
      interval: 1s
      retries: 30
volumes:
  pgdata:
"""


def main() -> int:
    import secrets

    work = Path(tempfile.mkdtemp(prefix="composekit-demo-"))
    shutil.copytree(ROOT / "init-scripts", work / "init-scripts")
    (work / "compose.yaml").write_text(COMPOSE)
    env = work / ".env"
    env.write_text(f"POSTGRES_PASSWORD={secrets.token_urlsafe(24)}\n")
    env.chmod(0o600)
    project = ComposeProject(
        project_dir=work, project_name="ckdemo" + uuid.uuid4().hex[:6], env_file=".env"
    )
    try:
        print(f"== starting db in {work} (project {project.project_name})", flush=True)
        project.up(wait=True, wait_timeout=90)
        out = project.exec(
            "db",
            [
                "psql",
                "-U",
                "app",
                "-d",
                "app",
                "-c",
                "SELECT id, email, name FROM users ORDER BY id",
            ],
        )
        print(out.stdout, flush=True)
    finally:
        project.down(volumes=True)
        shutil.rmtree(work, ignore_errors=True)
    print("== demo finished: db started, init-scripts ran once, users queried, project removed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
