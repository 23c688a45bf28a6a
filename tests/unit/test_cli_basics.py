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


def in_a_fresh_python(*lines: str) -> list[str]:
    """What ``lines``, run by a new interpreter (nothing imported yet), print."""
    r = subprocess.run([sys.executable, "-c", "\n".join(lines)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return r.stdout.splitlines()


def test_a_deploy_imports_no_http_client_until_it_probes() -> None:
    """The whole deploy machinery and the CLI load without ``http.client`` (and the email and
    ssl modules it pulls in, 25 ms here): only a web rollout probes over HTTP."""
    assert in_a_fresh_python(
        "import sys",
        "import composekit.cli, composekit.deploy.run, composekit.deploy.swarm",
        "print(sorted(m for m in ('http.client', 'urllib.request', 'ssl') if m in sys.modules))",
        "from composekit.deploy.health import fetch_status",
        "print(fetch_status('http://127.0.0.1:9/', 1))",
    ) == ["[]", "ConnectionRefusedError"]


def test_package_names_load_on_first_use() -> None:
    """``composekit.deploy`` and ``composekit.migrations`` name their API without importing it:
    a restore or a backup does not pay for the deploy machinery (about 0.1 s at every start)."""
    said = in_a_fresh_python(
        "import sys",
        "from composekit import deploy, migrations",
        "from composekit.deploy import take_deploy_lock",
        "from composekit.migrations import Ledger",
        "loaded = sorted(m for m in sys.modules if m.startswith(('composekit.deploy.', "
        "'composekit.migrations.')))",
        "print('LOADED', loaded)",
        "for pkg in (deploy, migrations):",
        "    for name in pkg.__all__:",
        "        getattr(pkg, name)",
        "print('ALL', 'composekit.deploy.recover' in sys.modules, migrations.Migrator.__module__)",
    )
    loaded = said[0]
    assert "composekit.deploy.lock" in loaded and "composekit.migrations.ledger" in loaded
    for heavy in ("deploy.recover", "deploy.run", "deploy.state", "migrations.runner"):
        assert f"composekit.{heavy}'" not in loaded, loaded
    assert said[1] == "ALL True composekit.migrations.runner"
    bad = subprocess.run(
        [sys.executable, "-c", "import composekit.deploy as d; d.no_such_name"],
        capture_output=True,
        text=True,
    )
    assert (
        "AttributeError: module 'composekit.deploy' has no attribute 'no_such_name'" in bad.stderr
    )


def test_usage_error_exits_2_without_traceback() -> None:
    r = run_cli("doctor", "--no-such-flag")
    assert r.returncode == 2
    assert "Traceback" not in r.stderr and "no-such-flag" in r.stderr


def test_compose_versions_parse_numerically() -> None:
    assert parse_version("Docker Compose version v2.40.3") == (2, 40, 3)
    assert parse_version("5.0.1") > parse_version("2.40.3") > parse_version("2.9.0")
    assert parse_version("2.27.0-desktop.1") == (2, 27, 0)


BUG = (
    "from composekit import cli\n"
    "@cli.app.command('explode')\n"
    "def explode() -> None:\n"
    "    raise RuntimeError('lost postgresql://app:Hunter2-secret@db/app')\n"
    "cli.main(__import__('sys').argv[1:])\n"
)


def test_an_unexpected_failure_is_exit_1_one_line_redacted_and_debug_shows_where() -> None:
    """A bug in composekit itself (a command raising what nothing expected): exit 1, one line
    asking for the traceback, the password masked — with --debug the traceback, still masked."""
    r = subprocess.run([sys.executable, "-c", BUG, "explode"], capture_output=True, text=True)
    assert r.returncode == 1, r.stderr
    assert r.stderr.splitlines() == [
        "error: unexpected RuntimeError: lost postgresql://app:***@db/app",
        "  fix: rerun with --debug and report the traceback",
    ]
    r = subprocess.run(
        [sys.executable, "-c", BUG, "--debug", "explode"], capture_output=True, text=True
    )
    assert r.returncode == 1 and "Traceback" in r.stderr and "line 4, in explode" in r.stderr
    assert "Hunter2-secret" not in r.stderr
