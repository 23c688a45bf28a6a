"""The postgres stand-in honours the official image's contract, on the real engine."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from composekit.errors import DockerError
from composekit.images import POSTGRES_IMAGE

pytestmark = pytest.mark.e2e

DB = f"""
services:
  db:
    image: {POSTGRES_IMAGE}
    environment:
      POSTGRES_USER: app
      POSTGRES_PASSWORD: app-secret-pw
      POSTGRES_DB: appdb
    volumes:
      - pgdata:/var/lib/postgresql/data
      - ./init-scripts:/docker-entrypoint-initdb.d:ro
    healthcheck:
      test: ["CMD-SHELL", "pg_isready -h 127.0.0.1 -U \\"$$POSTGRES_USER\\""]
      interval: 1s
      timeout: 3s
      retries: 30
volumes:
  pgdata:
"""


def psql(project: object, sql: str) -> str:
    r = project.exec("db", ["psql", "-U", "app", "-d", "appdb", "-tAXc", sql])  # type: ignore[attr-defined]
    return str(r.stdout).strip()


def test_init_scripts_run_sorted_once_with_sh_and_gz(
    compose_factory: Callable[..., object],
) -> None:
    import gzip

    project = compose_factory(
        DB,
        files={
            "init-scripts/001_schema.sql": "CREATE TABLE runs (id serial, what text);\n"
            "INSERT INTO runs (what) VALUES ('sql');\n",
            "init-scripts/002_exec.sh": '#!/bin/bash\nset -e\npsql -v ON_ERROR_STOP=1 -U "$POSTGRES_USER" -d "$POSTGRES_DB" '
            "-c \"INSERT INTO runs (what) VALUES ('sh')\"\n",
            "init-scripts/README.txt": "not a script",
        },
    )
    gz = project.project_dir / "init-scripts" / "003_data.sql.gz"  # type: ignore[attr-defined]
    gz.write_bytes(gzip.compress(b"INSERT INTO runs (what) VALUES ('gz');\n"))
    project.up(wait=True, wait_timeout=60)  # type: ignore[attr-defined]
    assert psql(project, "SELECT string_agg(what, ',' ORDER BY id) FROM runs") == "sql,sh,gz"

    # second start on the same volume: the scripts must not run again
    project.down(volumes=False)  # type: ignore[attr-defined]
    project.up(wait=True, wait_timeout=60)  # type: ignore[attr-defined]
    assert psql(project, "SELECT count(*) FROM runs") == "3"
    states = project.ps()  # type: ignore[attr-defined]
    assert [(s.service, s.state, s.health) for s in states] == [("db", "running", "healthy")]


def test_failing_init_script_never_yields_a_usable_database(
    compose_factory: Callable[..., object],
) -> None:
    project = compose_factory(
        DB,
        files={
            "init-scripts/001_ok.sql": "CREATE TABLE a (id int);\n",
            "init-scripts/002_broken.sql": "CREATE TABLE b (id int;\n",
        },
    )
    with pytest.raises(DockerError):
        project.up(wait=True, wait_timeout=30)  # type: ignore[attr-defined]
    assert project.health("db") == "exited"  # type: ignore[attr-defined]
    logs = project.logs("db")  # type: ignore[attr-defined]
    assert "002_broken.sql" in logs and "syntax error" in logs

    # restarting must refuse loudly, not serve the half-initialised database
    with pytest.raises(DockerError):
        project.up(wait=True, wait_timeout=15)  # type: ignore[attr-defined]
    assert "initialisation failed earlier" in project.logs("db")  # type: ignore[attr-defined]


def test_healthcheck_gates_depends_on(compose_factory: Callable[..., object]) -> None:
    # a slow init script: a dependent that started early would find no table
    compose = DB.replace(
        "volumes:\n  pgdata:",
        f"""  client:
    image: {POSTGRES_IMAGE}
    depends_on:
      db:
        condition: service_healthy
    environment:
      PGPASSWORD: app-secret-pw
    entrypoint: ["psql", "-h", "db", "-U", "app", "-d", "appdb", "-tAXc", "SELECT count(*) FROM late"]
volumes:
  pgdata:""",
    )
    project = compose_factory(
        compose,
        files={
            "init-scripts/001_slow.sh": "#!/bin/bash\nsleep 3\n"
            'psql -U "$POSTGRES_USER" -d "$POSTGRES_DB" -c \'CREATE TABLE late AS SELECT 1 AS x\'\n'
        },
    )
    result = project.run("client")  # type: ignore[attr-defined]
    assert result.returncode == 0, result.stdout
    assert result.stdout.strip().splitlines()[-1] == "1"
    # tcp login with the password works (scram on the network), and the password is required
    denied = project.exec(  # type: ignore[attr-defined]
        "db",
        ["psql", "-h", "127.0.0.1", "-U", "app", "-d", "appdb", "-w", "-c", "select 1"],
        check=False,
    )
    assert denied.returncode != 0 and "password" in denied.stderr
