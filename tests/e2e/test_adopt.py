"""An existing project adopted as it is: the migration guide's Phase-4 layout (web, db, a migrator
running its own `python migrate.py` with DB_* variables, restart "no", a db with no published
port, no migrations/ directory). Only composekit.toml and .gitignore lines are written."""

from __future__ import annotations

import json
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from composekit.compose import ComposeProject
from composekit.errors import ExitCode
from composekit.images import POSTGRES_IMAGE, PYTHON_IMAGE
from tests.apps import database_state, free_ports
from tests.helpers import run_cli

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

DB_ENV = """      DB_HOST: db
      DB_PORT: 5432
      DB_NAME: appdb
      DB_USER: appuser
      DB_PASSWORD: apppass"""

COMPOSE = f"""services:
  web:
    build: .
    command: ["python", "app.py"]
    ports:
      - "${{WEB_PORT}}:8000"
    environment:
{DB_ENV}
    depends_on:
      db:
        condition: service_healthy
    networks:
      - app-network

  db:
    image: ${{POSTGRES_IMAGE:-postgres:15-alpine}}
    environment:
      POSTGRES_USER: appuser
      POSTGRES_PASSWORD: apppass
      POSTGRES_DB: appdb
    volumes:
      - pgdata:/var/lib/postgresql/data
    healthcheck:
      test: ["CMD-SHELL", "pg_isready -h 127.0.0.1 -U appuser -d appdb"]
      interval: 1s
      retries: 30
    networks:
      - app-network

  migrator:
    build:
      context: .
      dockerfile: Dockerfile
    command: ["python", "migrate.py"]
    environment:
{DB_ENV}
    depends_on:
      db:
        condition: service_healthy
    networks:
      - app-network
    restart: "no"  # One-off job, don't restart

networks:
  app-network:
volumes:
  pgdata:
"""

DOCKERFILE = f"""FROM {PYTHON_IMAGE}
WORKDIR /app
RUN pip install --no-cache-dir "psycopg[binary]>=3.1"
COPY app.py migrate.py ./
CMD ["python", "app.py"]
"""

MIGRATE = """import os
import sys

import psycopg

DB = dict(host=os.getenv("DB_HOST", "db"), port=os.getenv("DB_PORT", "5432"),
          dbname=os.getenv("DB_NAME", "appdb"), user=os.getenv("DB_USER", "appuser"),
          password=os.getenv("DB_PASSWORD", "apppass"))


def main() -> int:
    print("Running migration...")
    with psycopg.connect(**DB, autocommit=True) as conn:
        conn.execute("ALTER TABLE IF EXISTS users ADD COLUMN IF NOT EXISTS profile JSONB")
        # RELEASE-2
    print("Migration completed successfully.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
"""

APP = """import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psycopg

DB = dict(host=os.environ["DB_HOST"], port=os.environ["DB_PORT"], dbname=os.environ["DB_NAME"],
          user=os.environ["DB_USER"], password=os.environ["DB_PASSWORD"])


class Page(BaseHTTPRequestHandler):
    def do_GET(self):
        with psycopg.connect(**DB) as conn:
            cols = [r[0] for r in conn.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = 'users' "
                "ORDER BY ordinal_position")]
            n = conn.execute("SELECT count(*) FROM users").fetchone()[0]
        body = f"columns: {', '.join(cols)}; users: {n}\\n".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


ThreadingHTTPServer(("0.0.0.0", 8000), Page).serve_forever()
"""


@pytest.fixture
def phase4(tmp_path: Path, docker_engine: None) -> Iterator[tuple[Path, ComposeProject, int]]:
    d = tmp_path / f"shop{uuid.uuid4().hex[:8]}"
    d.mkdir()
    port = free_ports(1)[0]
    files = {
        "docker-compose.yml": COMPOSE,
        "Dockerfile": DOCKERFILE,
        "migrate.py": MIGRATE,
        "app.py": APP,
        ".env": f"POSTGRES_IMAGE={POSTGRES_IMAGE}\nWEB_PORT={port}\n",
        ".gitignore": ".env\n",
    }
    for name, text in files.items():
        (d / name).write_text(text)
    project = ComposeProject(project_dir=d, env_file=".env")
    try:
        yield d, project, port
    finally:
        project.down(volumes=True, timeout=3)
        for image in (f"{d.name}-web", f"{d.name}-migrator"):
            project.remove_images(image)


def page(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as r:
        return str(r.read().decode())


def test_the_guides_phase_4_project_is_adopted_without_editing_its_files(phase4) -> None:  # type: ignore[no-untyped-def]
    d, project, port = phase4
    # the team's system as it runs today, with its data
    project.up(["db", "web"], build=True, wait=True, wait_timeout=120)
    project.exec(
        "db",
        ["psql", "-U", "appuser", "-d", "appdb", "-c",
         "CREATE TABLE users (id serial PRIMARY KEY, email text NOT NULL); "
         "INSERT INTO users (email) SELECT 'u' || g || '@example.com' FROM generate_series(1, 25) g"],
    )  # fmt: skip
    theirs = {p.name: p.read_bytes() for p in d.iterdir() if p.is_file() and p.name != ".gitignore"}

    r = run_cli("-C", str(d), "adopt", "--dry-run")
    assert r.returncode == 0, r.stderr
    assert not (d / "composekit.toml").exists()
    r = run_cli("-C", str(d), "adopt")
    assert r.returncode == 0, r.stderr
    assert "database: db (PostgreSQL; user appuser, database appdb)" in r.stdout
    assert "migrator: migrator runs python migrate.py (opaque; gets DB_* variables" in r.stdout
    assert "web has no healthcheck" in r.stdout and "layout: migrator" in r.stdout
    assert {p.name: p.read_bytes() for p in d.iterdir() if p.name in theirs} == theirs
    assert (d / ".gitignore").read_text().splitlines()[-2:] == ["backups/", ".composekit/"]
    assert run_cli("-C", str(d), "adopt").returncode == ExitCode.USAGE  # not twice by accident

    st = run_cli("-C", str(d), "status", "--json")
    assert st.returncode == 0, st.stderr
    assert {s["service"] for s in json.loads(st.stdout)["services"]} >= {"db", "web"}
    text = run_cli("-C", str(d), "status").stdout
    assert "pending: not known here (no migrations directory" in text, text
    b = run_cli("-C", str(d), "backup", "--json")
    assert b.returncode == 0, b.stderr
    assert json.loads(b.stdout)["database"] == "appdb"

    r = run_cli("-C", str(d), "deploy", "--timeout", "180")
    assert r.returncode == 0, r.stderr
    assert "Migration completed successfully." in r.stderr
    assert page(port) == "columns: id, email, profile; users: 25\n"
    good = database_state(project, "appuser", "appdb")

    # the next release's migration fails half-way (autocommit: its first change stays): undone
    migrate = d / "migrate.py"
    migrate.write_text(
        migrate.read_text().replace(
            "        # RELEASE-2\n",
            '        conn.execute("ALTER TABLE users ADD COLUMN broken int")\n'
            '        conn.execute("SELECT no_such_function()")\n',
        )
    )
    r = run_cli("-C", str(d), "deploy", "--timeout", "180")
    assert r.returncode == ExitCode.DEPLOY_UNDONE, r.stderr
    assert "deploy failed at migrate" in r.stderr and "restored" in r.stderr
    assert database_state(project, "appuser", "appdb") == good
    assert page(port) == "columns: id, email, profile; users: 25\n"
