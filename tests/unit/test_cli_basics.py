import subprocess
import sys

from composekit import __version__
from composekit.compose import parse_version
from tests.helpers import run_cli


def test_version_fast_path() -> None:
    r = run_cli("--version")
    assert r.returncode == 0 and r.stdout.strip() == f"composekit {__version__}"


def test_help_lists_examples_and_does_not_import_heavy_modules() -> None:
    code = (
        "import sys\n"
        "from composekit import cli\n"
        "try:\n    cli.main(['--help'])\nexcept SystemExit as e:\n    rc = e.code\n"
        "heavy = [m for m in ('psycopg', 'python_on_whales', 'pglast') if m in sys.modules]\n"
        "print('HEAVY', heavy, rc)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert "Examples" in r.stdout
    assert "HEAVY [] 0" in r.stdout


def test_usage_error_exits_2_without_traceback() -> None:
    r = run_cli("doctor", "--no-such-flag")
    assert r.returncode == 2
    assert "Traceback" not in r.stderr and "no-such-flag" in r.stderr


def test_compose_versions_parse_numerically() -> None:
    assert parse_version("Docker Compose version v2.40.3") == (2, 40, 3)
    assert parse_version("5.0.1") > parse_version("2.40.3") > parse_version("2.9.0")
    assert parse_version("2.27.0-desktop.1") == (2, 27, 0)
