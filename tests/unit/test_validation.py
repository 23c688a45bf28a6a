"""Bad numbers, URLs and paths: one line with the valid range or the fix, exit 2 (a flag) or 3 (a
setting), and no password echoed — before anything is touched."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from composekit.config import load_settings
from composekit.errors import ConfigError, ExitCode, UsageError
from tests.helpers import run_cli

NOWHERE = "postgresql://app:pw-not-used@127.0.0.1:1/app"


@pytest.mark.parametrize(
    "args",
    [
        ["migrate", "up", "--steps", "0"],
        ["migrate", "up", "--steps", "-1"],
        ["migrate", "down", "--steps", "-3"],
        ["migrate", "up", "--lock-wait", "-1"],
        ["deploy", "--timeout", "0"],
        ["backup", "--keep", "0"],
    ],
)
def test_bad_numbers_on_the_command_line_exit_2_with_the_range(args: list[str]) -> None:
    r = run_cli(*args, env={"DATABASE_URL": NOWHERE})
    assert r.returncode == ExitCode.USAGE, r.stderr
    # the valid range, in click's words (Typer < 0.29) or pydantic's (0.29, which we do not pin)
    said = ("is not in the range x>=", "should be greater than or equal to")
    assert any(s in r.stderr for s in said) and "Traceback" not in r.stderr, r.stderr


@pytest.mark.parametrize(
    ("toml", "needle"),
    [
        ("[web]\nkeep_images = -1\n", "keep_images = -1 from"),
        ("[backups]\nkeep = -5\n", "keep_backups = -5 from"),
        ("lock_wait = true\n", "lock_wait = True from"),
        ('[web]\nhealth_url = "not a url"\n', "is not an http(s) URL"),
        ("lock_timeout = 0\n", "lock_timeout = 0.0 from"),
    ],
)
def test_bad_settings_exit_3_naming_the_file_and_range(
    tmp_path: Path, toml: str, needle: str
) -> None:
    (tmp_path / "composekit.toml").write_text(toml)
    with pytest.raises(ConfigError) as exc:
        load_settings(tmp_path, env={})
    assert needle in exc.value.message and str(tmp_path / "composekit.toml") in exc.value.message
    r = run_cli("-C", str(tmp_path), "migrate", "status", env={"DATABASE_URL": NOWHERE})
    assert r.returncode == ExitCode.CONFIG and needle in r.stderr, r.stderr


RAW = "postgresql://u:Sec@ret#X@db.example/app"


def test_a_raw_at_in_the_password_is_refused_and_never_echoed(tmp_path: Path) -> None:
    with pytest.raises(UsageError):
        load_settings(tmp_path, flags={"database_url": RAW}, env={})
    for r, code in (
        (run_cli("migrate", "status", "--database-url", RAW), ExitCode.USAGE),
        (run_cli("migrate", "status", "--json", env={"DATABASE_URL": RAW}), ExitCode.CONFIG),
        (run_cli("--debug", "migrate", "status", env={"DATABASE_URL": RAW}), ExitCode.CONFIG),
    ):
        assert r.returncode == code, r.stderr
        out = r.stdout + r.stderr
        assert "%40" in out  # the fix: percent-encode it
        for piece in ("Sec", "ret#X", "Sec@ret"):
            assert piece not in out


def test_encoded_passwords_with_every_odd_character_never_show(tmp_path: Path) -> None:
    raw = "S@c:r#t%/?x y"
    encoded = "S%40c:r%23t%25%2F%3Fx%20y"
    url = f"postgresql://app:{encoded}@127.0.0.1:1/app"
    for args in (
        ("migrate", "status"),
        ("migrate", "up", "--json"),
        ("--debug", "migrate", "status"),
    ):
        r = run_cli(*args, env={"DATABASE_URL": url})
        assert r.returncode == ExitCode.CONFIG and "cannot reach the database" in (
            r.stderr + r.stdout
        ), r.stderr
        out = r.stdout + r.stderr
        assert encoded not in out and raw not in out and "c:r" not in out
        if "--json" in args:
            assert json.loads(r.stdout)["exit_code"] == ExitCode.CONFIG


def test_a_password_from_the_env_file_is_masked_in_any_text(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("POSTGRES_PASSWORD='Zq9-from-dotenv'\nOTHER=visible\n")
    s = load_settings(tmp_path, env={"SOME_API_TOKEN": "tok-1234-abcd"})
    assert "Zq9-from-dotenv" not in repr(s)
    masked = s.redactor("docker: invalid port Zq9-from-dotenv, token tok-1234-abcd, OTHER visible")
    assert masked == "docker: invalid port ***, token ***, OTHER visible"


def test_an_unusable_path_is_one_line_exit_3(tmp_path: Path) -> None:
    (tmp_path / "migrations").write_text("a file where a directory belongs\n")
    r = run_cli("-C", str(tmp_path), "migrate", "new", "add_x")
    assert r.returncode == ExitCode.CONFIG, r.stderr
    assert "Traceback" not in r.stderr and "unexpected" not in r.stderr
    assert str(tmp_path / "migrations") in r.stderr
