from pathlib import Path

import pytest

from composekit.config import load_settings
from composekit.errors import ConfigError, ExitCode


def test_precedence_flag_over_env_over_file_over_default(tmp_path: Path) -> None:
    (tmp_path / "composekit.toml").write_text(
        'ledger_table = "from_file"\nlock_wait = 7\n[services]\nweb = "frontend"\n'
    )
    s = load_settings(tmp_path, env={})
    assert (s.ledger_table, s.lock_wait, s.web_service, s.db_service) == (
        "from_file",
        7.0,
        "frontend",
        "db",
    )
    assert s.source["ledger_table"].startswith("file:")
    s = load_settings(tmp_path, env={"COMPOSEKIT_LEDGER_TABLE": "from_env"})
    assert (
        s.ledger_table == "from_env" and s.source["ledger_table"] == "env:COMPOSEKIT_LEDGER_TABLE"
    )
    s = load_settings(
        tmp_path, flags={"ledger_table": "from_flag"}, env={"COMPOSEKIT_LEDGER_TABLE": "x"}
    )
    assert s.ledger_table == "from_flag"


def test_database_url_env_and_composekit_override(tmp_path: Path) -> None:
    assert (
        load_settings(tmp_path, env={"DATABASE_URL": "postgresql://a@h/d"}).database_url
        == "postgresql://a@h/d"
    )
    s = load_settings(
        tmp_path,
        env={"DATABASE_URL": "postgresql://a@h/d", "COMPOSEKIT_DATABASE_URL": "postgresql://b@h/d"},
    )
    assert s.database_url == "postgresql://b@h/d"


def test_pyproject_tool_section(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[tool.composekit]\nmigrations_dir = "db/migrations"\n'
    )
    assert load_settings(tmp_path, env={}).migrations_path == tmp_path / "db/migrations"


def test_unknown_key_and_bad_toml_are_config_errors(tmp_path: Path) -> None:
    (tmp_path / "composekit.toml").write_text("tabel = 1\n")
    with pytest.raises(ConfigError, match="unknown setting 'tabel'") as e:
        load_settings(tmp_path, env={})
    assert e.value.exit_code == ExitCode.CONFIG
    (tmp_path / "composekit.toml").write_text("ledger_table = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(tmp_path, env={})


def test_bad_value_names_its_origin(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="COMPOSEKIT_LOCK_WAIT"):
        load_settings(tmp_path, env={"COMPOSEKIT_LOCK_WAIT": "soon"})


def test_missing_database_url_has_a_fix(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as e:
        load_settings(tmp_path, env={}).require_database_url()
    assert "DATABASE_URL" in e.value.hint


def test_deploy_sections(tmp_path: Path) -> None:
    (tmp_path / "composekit.toml").write_text(
        '[web]\nhealth_url = "http://127.0.0.1:8000/healthz"\nkeep_images = 5\n'
        '[deploy]\nmaintenance = ["web", "worker"]\n[backups]\nkeep = 4\n'
    )
    s = load_settings(tmp_path, env={})
    assert (s.health_url, s.keep_images, s.maintenance_services, s.keep_backups) == (
        "http://127.0.0.1:8000/healthz",
        5,
        ("web", "worker"),
        4,
    )
    assert load_settings(tmp_path, env={"COMPOSEKIT_KEEP_IMAGES": "1"}).keep_images == 1


def test_compose_files_are_found_as_docker_compose_finds_them(tmp_path: Path) -> None:
    from composekit.compose import default_files

    assert default_files(tmp_path) == []
    (tmp_path / "docker-compose.yml").write_text("services: {}\n")
    assert default_files(tmp_path) == [tmp_path / "docker-compose.yml"]
    (tmp_path / "docker-compose.override.yml").write_text("services: {}\n")
    assert default_files(tmp_path) == [
        tmp_path / "docker-compose.yml",
        tmp_path / "docker-compose.override.yml",
    ]
    (tmp_path / "compose.yaml").write_text("services: {}\n")  # compose.yaml comes first
    (tmp_path / "compose.override.yaml").write_text("services: {}\n")
    assert default_files(tmp_path) == [
        tmp_path / "compose.yaml",
        tmp_path / "compose.override.yaml",
    ]


def test_documented_defaults(tmp_path: Path) -> None:
    """README's defaults: 10 backups of each kind, 3 kept web images, a 900 s deploy deadline."""
    from tests.helpers import run_cli

    s = load_settings(tmp_path, env={})
    assert (s.keep_backups, s.keep_images, s.lock_wait) == (10, 3, 60.0)
    for verb in ("deploy", "rollback"):
        text = " ".join(run_cli(verb, "--help").stdout.split())
        assert "--timeout" in text and "[default: 900" in text, text


def test_adopt_takes_the_postgres_server_not_a_one_off_using_its_image() -> None:
    from composekit.adopt import databases

    pg = {"image": "postgres:16"}
    services = {
        "db": {**pg, "healthcheck": {"test": ["CMD-SHELL", "pg_isready"]}},
        "migrate": {**pg, "restart": "no", "command": ["psql", "-c", "SELECT 1"]},
        "schema-migrator": {**pg, "command": ["psql"]},
        "web": {"image": "python:3.12-slim"},
        "cache": {"image": "redis:7", "healthcheck": {"test": ["CMD", "redis-cli", "ping"]}},
    }
    assert databases(services) == ["db"]
    assert databases({"pg": {"image": "docker.io/library/postgres:15-alpine"}, **{"x": {}}}) == [
        "pg"
    ]
    assert databases({"a": pg, "b": {"image": "postgis/postgis:16-3.4"}}) == ["a", "b"]  # ask


def test_the_sections_of_the_newer_settings(tmp_path: Path) -> None:
    (tmp_path / "composekit.toml").write_text(
        "[migrations]\nstatement_timeout = 300\nlock_timeout = 2\n"
        "[deploy]\nrehearse = true\nmax_lock_ms = 500\n[hooks]\ntimeout = 5\n"
        '[notify]\nwebhook = "https://hooks.example.com/x?token=abc"\ncommand = "page-me"\n'
    )
    s = load_settings(tmp_path, env={})
    assert (s.statement_timeout, s.lock_timeout, s.rehearse, s.max_lock_ms) == (
        300.0,
        2.0,
        True,
        500,
    )
    assert (s.hooks_timeout, s.notify_command) == (5.0, "page-me")
    assert s.notify_webhook == "https://hooks.example.com/x?token=abc"
    (tmp_path / "composekit.toml").write_text('[notify]\nwebhook = "ftp://x?token=abc"\n')
    with pytest.raises(ConfigError) as e:
        load_settings(tmp_path, env={})
    assert "notify_webhook" in e.value.message and "token" not in e.value.message
