"""Framework migrations: a real Alembic project (alembic + SQLAlchemy from the wheelhouse, as from
PyPI), in the migrator layout (adopted) and the app-startup layout. A deploy runs Alembic after a
verified backup; a failed deploy is undone with `alembic downgrade` to the revision before it —
or, when a downgrade fails, by restoring the backup — and checked either way."""

from __future__ import annotations

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

ENV_PY = """import os

from alembic import context
from sqlalchemy import create_engine

url = os.environ["DATABASE_URL"].replace("postgresql://", "postgresql+psycopg://", 1)
with create_engine(url).connect() as connection:
    context.configure(connection=connection, target_metadata=None)
    with context.begin_transaction():
        context.run_migrations()
"""

REVISION = """from alembic import op

revision = "{rev}"
down_revision = {down}


def upgrade() -> None:
    op.execute("{up}")


def downgrade() -> None:
    {downgrade}
"""

APP = """import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psycopg

URL = os.environ["DATABASE_URL"]
# RELEASE


class Page(BaseHTTPRequestHandler):
    def do_GET(self):
        with psycopg.connect(URL) as conn:
            cols = [r[0] for r in conn.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = 'users' "
                "ORDER BY ordinal_position")]
        body = f"columns: {', '.join(cols)}\\n".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


ThreadingHTTPServer(("0.0.0.0", 8000), Page).serve_forever()
"""

DOCKERFILE = f"""FROM {PYTHON_IMAGE}
WORKDIR /app
RUN pip install --no-cache-dir "alembic>=1.13" "SQLAlchemy>=2.0" "psycopg[binary]>=3.1"
COPY . .
CMD ["python", "app.py"]
"""


def compose(name: str, port: int, app_startup: bool) -> str:
    url = "postgresql://app:alembic-pw@db:5432/app"
    web_command = (
        '["sh", "-c", "alembic upgrade head && exec python app.py"]'
        if app_startup
        else '["python", "app.py"]'
    )
    migrator = (
        ""
        if app_startup
        else f"""  migrator:
    image: {name}-app:latest
    command: ["alembic", "upgrade", "head"]
    restart: "no"
    profiles: [tools]
    environment:
      DATABASE_URL: {url}
    depends_on:
      db:
        condition: service_healthy
"""
    )
    return f"""services:
  db:
    image: {POSTGRES_IMAGE}
    environment:
      POSTGRES_USER: app
      POSTGRES_PASSWORD: alembic-pw
      POSTGRES_DB: app
    volumes: [pgdata:/var/lib/postgresql/data]
    healthcheck:
      test: ["CMD-SHELL", "pg_isready -h 127.0.0.1 -U app"]
      interval: 1s
      retries: 30
  web:
    build: .
    image: {name}-app:latest
    command: {web_command}
    ports: ["{port}:8000"]
    environment:
      DATABASE_URL: {url}
    healthcheck:
      test: ["CMD", "python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/', timeout=3)"]
      interval: 2s
      retries: 30
    depends_on:
      db:
        condition: service_healthy
{migrator}volumes:
  pgdata:
"""


class AlembicApp:
    def __init__(self, root: Path, app_startup: bool) -> None:
        self.name = "cka" + uuid.uuid4().hex[:8]
        self.dir = root / self.name
        self.port = free_ports(1)[0]
        versions = self.dir / "alembic" / "versions"
        versions.mkdir(parents=True)
        files = {
            "compose.yaml": compose(self.name, self.port, app_startup),
            "Dockerfile": DOCKERFILE,
            "app.py": APP,
            "alembic.ini": "[alembic]\nscript_location = alembic\n",
            "alembic/env.py": ENV_PY,
        }
        for rel, text in files.items():
            (self.dir / rel).write_text(text)
        self.revision(
            "a1",
            None,
            "CREATE TABLE users (id serial PRIMARY KEY, email text NOT NULL); "
            "INSERT INTO users (email) SELECT 'u' || g FROM generate_series(1, 5) g",
            'op.execute("DROP TABLE users")',
        )
        self.project = ComposeProject(project_dir=self.dir, project_name=self.name)

    def revision(self, rev: str, down: str | None, up: str, downgrade: str) -> None:
        text = REVISION.format(rev=rev, down=repr(down), up=up, downgrade=downgrade)
        (self.dir / "alembic" / "versions" / f"{rev}.py").write_text(text)

    def deploy(self) -> tuple[int, str]:
        r = run_cli("-C", str(self.dir), "deploy", "--timeout", "180")
        return r.returncode, r.stderr

    def state(self) -> dict[str, str]:
        return database_state(self.project, "app", "app")

    def page(self) -> str:
        import urllib.request

        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/", timeout=5) as r:
            return str(r.read().decode())

    def close(self) -> None:
        self.project.down(volumes=True, timeout=3)
        self.project.remove_images(f"{self.name}-app")


@pytest.fixture
def make_alembic(tmp_path: Path, docker_engine: None) -> Iterator[object]:
    made: list[AlembicApp] = []

    def make(app_startup: bool) -> AlembicApp:
        made.append(AlembicApp(tmp_path, app_startup))
        return made[-1]

    yield make
    for app in made:
        app.close()


def test_an_adopted_alembic_migrator_is_undone_by_downgrade_or_by_restore(make_alembic) -> None:  # type: ignore[no-untyped-def]
    app = make_alembic(False)
    r = run_cli("-C", str(app.dir), "adopt")
    assert r.returncode == 0, r.stderr
    assert "migrator: migrator runs alembic upgrade head (alembic;" in r.stdout
    code, err = app.deploy()
    assert code == 0, err
    assert "alembic revision a1" in err and app.page() == "columns: id, email\n"
    good = app.state()
    assert (
        good["alembic_version"]
        and "a1"
        in app.project.exec(
            "db", ["psql", "-U", "app", "-tAc", "SELECT version_num FROM alembic_version"]
        ).stdout
    )

    # a2 applies, a verify check fails: alembic downgrade a1 puts it back
    app.revision(
        "a2",
        "a1",
        "ALTER TABLE users ADD COLUMN bio text",
        'op.execute("ALTER TABLE users DROP COLUMN bio")',
    )
    (app.dir / "verify").mkdir()
    (app.dir / "verify" / "not_yet.sql").write_text("SELECT false;\n")
    code, err = app.deploy()
    assert code == ExitCode.DEPLOY_UNDONE, err
    assert "alembic downgrade a1 (from a2)" in err and "schema and ledger as before" in err
    assert "restored" not in err
    assert app.state() == good and app.page() == "columns: id, email\n"

    # a2 whose downgrade fails: the pre-deploy backup is restored instead
    app.revision(
        "a2", "a1", "ALTER TABLE users ADD COLUMN bio text", "raise NotImplementedError('one way')"
    )
    code, err = app.deploy()
    assert code == ExitCode.DEPLOY_UNDONE, err
    assert "alembic downgrade failed; restoring the pre-deploy backup instead" in err
    assert app.state() == good and app.page() == "columns: id, email\n"

    (app.dir / "verify" / "not_yet.sql").unlink()
    code, err = app.deploy()
    assert code == 0, err
    assert app.page() == "columns: id, email, bio\n"
    # no proxy in this project: the web was recreated in place, and the deploy says what that costs
    assert "not zero-downtime: the project has no proxy service" in err


def test_an_alembic_app_startup_web_that_fails_is_undone_by_downgrade(make_alembic) -> None:  # type: ignore[no-untyped-def]
    app = make_alembic(True)
    (app.dir / "composekit.toml").write_text(
        'layout = "app-startup"\n\n[deploy]\nmigrator = "alembic"\n'
    )
    code, err = app.deploy()
    assert code == 0, err
    assert app.page() == "columns: id, email\n"
    good = app.state()

    # the new web migrates to a2 as it starts, then dies: the old web back, a2 downgraded
    app.revision(
        "a2",
        "a1",
        "ALTER TABLE users ADD COLUMN bio text",
        'op.execute("ALTER TABLE users DROP COLUMN bio")',
    )
    app_py = app.dir / "app.py"
    app_py.write_text(app_py.read_text().replace("# RELEASE", "sys.exit('release 2 cannot start')"))
    code, err = app.deploy()
    assert code == ExitCode.DEPLOY_UNDONE, err
    assert "deploy failed at web" in err and "alembic downgrade a1 (from a2)" in err
    assert app.state() == good and app.page() == "columns: id, email\n"
