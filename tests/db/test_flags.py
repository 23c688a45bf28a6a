"""Feature flags against a real PostgreSQL: a rollout's share of keys, the same in every process;
raising it keeps the keys already on; every change in the history; bad input changes nothing."""

from __future__ import annotations

import json
import subprocess
import sys

import psycopg

from composekit import flags
from composekit.errors import ExitCode
from tests.db.test_migrate import cli, query

KEYS = [f"user-{i}" for i in range(10_000)]

# another interpreter, another hash seed: what it finds on must be what this process finds on
OTHER_PROCESS = """
import json, sys, psycopg
from composekit import flags
with psycopg.connect(sys.argv[1]) as conn:
    on = [k for k in json.load(sys.stdin) if flags.enabled(conn, sys.argv[2], key=k)]
print(json.dumps(on))
"""


def keys_on(db_url: str, name: str, keys: list[str] = KEYS) -> set[str]:
    """The keys the app's helper answers on for: one query per key, as an app asks."""
    with psycopg.connect(db_url) as conn:
        return {k for k in keys if flags.enabled(conn, name, key=k)}


def keys_on_now(db_url: str, name: str) -> set[str]:
    """The same from one read of the flag (quicker for the later checks)."""
    with psycopg.connect(db_url) as conn:
        pct = flags.percent(conn, name)
    assert pct is not None
    return {k for k in KEYS if flags.on_for(name, pct, k)}


def keys_on_elsewhere(db_url: str, name: str, seed: str) -> set[str]:
    r = subprocess.run(
        [sys.executable, "-c", OTHER_PROCESS, db_url, name],
        input=json.dumps(KEYS),
        capture_output=True,
        text=True,
        env={"PYTHONHASHSEED": seed, "PATH": "/usr/bin:/bin"},
        timeout=120,
        check=True,
    )
    return set(json.loads(r.stdout))


def test_a_rollout_turns_on_its_share_of_keys_the_same_in_every_process(db_url: str) -> None:
    r = cli(db_url, "flag", "rollout", "new-checkout", "10", "--json")
    assert r.returncode == 0, r.stderr
    change = json.loads(r.stdout)
    assert (change["name"], change["before"], change["after"]) == ("new-checkout", None, 10.0)

    ten = keys_on(db_url, "new-checkout")
    assert 900 <= len(ten) <= 1100, len(ten)  # ≈ 10 % of 10,000
    assert keys_on(db_url, "new-checkout", KEYS[:2000]) == ten & set(KEYS[:2000])  # every call
    assert keys_on_now(db_url, "new-checkout") == ten
    assert keys_on_elsewhere(db_url, "new-checkout", "12345") == ten  # and in another process

    # raising it adds keys and keeps those already on
    assert cli(db_url, "flag", "rollout", "new-checkout", "25%").returncode == 0
    quarter = keys_on_now(db_url, "new-checkout")
    assert ten < quarter and 2300 <= len(quarter) <= 2700, len(quarter)
    # another flag at the same share picks other keys
    assert cli(db_url, "flag", "rollout", "dark-mode", "10").returncode == 0
    other = keys_on_now(db_url, "dark-mode")
    assert 900 <= len(other) <= 1100 and len(other & ten) < 200

    r = cli(db_url, "flag", "set", "new-checkout", "off")
    assert r.returncode == 0 and "new-checkout: 25% → 0%" in r.stdout, r.stdout
    assert keys_on_now(db_url, "new-checkout") == set()
    assert cli(db_url, "flag", "set", "new-checkout", "on").returncode == 0
    assert keys_on(db_url, "new-checkout", KEYS[:500]) == set(KEYS[:500])

    listed = json.loads(cli(db_url, "flag", "list", "--json").stdout)["flags"]
    assert [(f["name"], f["percent"]) for f in listed] == [
        ("dark-mode", 10.0),
        ("new-checkout", 100.0),
    ]
    history = json.loads(cli(db_url, "flag", "history", "new-checkout", "--json").stdout)["changes"]
    assert [(h["before"], h["after"]) for h in history] == [
        (None, 10.0), (10.0, 25.0), (25.0, 0.0), (0.0, 100.0),
    ]  # fmt: skip
    assert all("@" in h["by"] and h["at"] for h in history)
    text = cli(db_url, "flag", "history").stdout
    assert "dark-mode" in text and "new-checkout" in text

    again = cli(db_url, "flag", "set", "new-checkout", "on")  # already so: nothing recorded
    assert again.returncode == 0 and "already at 100%: nothing changed" in again.stdout
    gone = cli(db_url, "flag", "delete", "dark-mode")
    assert gone.returncode == 0 and "dark-mode: 10% → deleted" in gone.stdout, gone.stderr
    assert keys_on(db_url, "dark-mode", KEYS[:100]) == set()  # unknown now: off
    history = json.loads(cli(db_url, "flag", "history", "--json").stdout)["changes"]
    assert len(history) == 6 and history[-1]["after"] is None
    missing = cli(db_url, "flag", "delete", "dark-mode")
    assert missing.returncode == ExitCode.USAGE and "there is no flag 'dark-mode'" in missing.stderr
    none = cli(db_url, "flag", "history", "nosuch")
    assert none.returncode == 0 and "no changes of nosuch on record" in none.stdout


def test_an_unknown_flag_or_no_table_is_off_and_keeps_the_callers_transaction(
    db_url: str,
) -> None:
    with psycopg.connect(db_url) as conn:  # not autocommit: an app's usual connection
        conn.execute("CREATE TABLE t (x int)")
        assert flags.enabled(conn, "nothing-yet", key=1) is False
        assert flags.enabled(conn, "nothing-yet", key=1, default=True) is True
        conn.execute("INSERT INTO t VALUES (1)")  # the transaction is still usable
    assert query(db_url, "SELECT count(*) FROM t") == [(1,)]
    r = cli(db_url, "flag", "list")
    assert r.returncode == 0 and "no flags yet" in r.stdout
    assert query(db_url, "SELECT to_regclass('composekit_flags') IS NULL") == [(True,)]


def test_bad_flag_input_is_a_usage_error_that_changes_nothing(db_url: str) -> None:
    for args, message in [
        (("rollout", "beta", "150"), "percent '150' is not a percentage from 0 to 100"),
        (("rollout", "beta", "ten"), "percent 'ten' is not a percentage"),
        (("rollout", "beta", "1.234"), "percent '1.234' has more than two decimals"),
        (("set", "beta", "maybe"), "flag set takes on or off, not 'maybe'"),
        (("rollout", "New Flag", "10"), "bad flag name 'New Flag'"),
    ]:
        r = cli(db_url, "flag", *args)
        assert r.returncode == ExitCode.USAGE and message in r.stderr, (args, r.stderr)
        assert "Traceback" not in r.stderr
    assert query(db_url, "SELECT to_regclass('composekit_flags') IS NULL") == [(True,)]
