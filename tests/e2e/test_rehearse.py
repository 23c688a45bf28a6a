"""`composekit rehearse` on the real engine: a backup of a database with a 1M-row table restored
into a throwaway copy, the pending migrations measured there (a rewrite holding ACCESS EXCLUSIVE
for a long time, a plain CREATE INDEX blocking writes, CREATE INDEX CONCURRENTLY blocking
nothing); the live database untouched; the copy gone, after SIGTERM too; and `deploy --rehearse`
refusing the rewrite with max_lock_ms = 500 before anything changes."""

from __future__ import annotations

import json
import signal

import pytest

from composekit.errors import ExitCode
from tests.apps import App, fingerprint, migration, release, web_image
from tests.helpers import Running, run_cli

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ROWS = 1_000_000
ALLOW = "-- composekit:allow {rule} because the rehearsal test measures it\n"


def copies(app: App) -> list[str]:
    return app.psql(
        "SELECT datname FROM pg_database WHERE datname LIKE 'composekit\\_rehearse\\_%'"
    ).split()


def pending_migrations(app: App) -> None:
    migration(
        app,
        "0002_seen.sql",
        ALLOW.format(rule="adding-field-with-volatile-default")
        + "ALTER TABLE big ADD COLUMN seen timestamptz DEFAULT clock_timestamp();",
        "ALTER TABLE big DROP COLUMN seen;",
    )
    migration(
        app,
        "0003_big_n.sql",
        ALLOW.format(rule="require-concurrent-index-creation") + "CREATE INDEX big_n ON big (n);",
        "DROP INDEX big_n;",
    )
    migration(
        app,
        "0004_big_m.sql",
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS big_m ON big (m);",
        "DROP INDEX big_m;",
    )


def test_rehearse_measures_locks_on_a_copy_and_deploy_refuses_a_long_one(make_app) -> None:  # type: ignore[no-untyped-def]
    app = make_app("migrator")
    release(app, 1)
    assert run_cli("-C", str(app.dir), "deploy", "--timeout", "120").returncode == 0
    app.psql(
        "CREATE TABLE big (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, n int, m int); "
        f"INSERT INTO big (n, m) SELECT g, g FROM generate_series(1, {ROWS}) g"
    )
    assert run_cli("-C", str(app.dir), "backup").returncode == 0
    pending_migrations(app)
    live = fingerprint(app)
    image = app.project.image_name("migrator")
    tagged = app.project.image_id(image)
    release(app, 9)  # a change the rehearsal's build picks up: it must not reach the tag

    r = run_cli("-C", str(app.dir), "rehearse", "--json", timeout=600)
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    by = {m["version"]: m for m in rep["migrations"]}

    def lock(version: str, mode: str) -> dict | None:  # type: ignore[type-arg]
        held = [lk for lk in by[version]["locks"] if lk["relation"] == "public.big"]
        return next((lk for lk in held if lk["mode"] == mode), None)

    rewrite = lock("0002", "AccessExclusiveLock")
    assert rewrite and rewrite["ms"] >= 200 and rewrite["rows"] >= ROWS * 0.9, by["0002"]
    assert rewrite["blocks"] == "reads and writes" and "public.big" in by["0002"]["rewrites"]
    index = lock("0003", "ShareLock")
    assert index and index["ms"] >= 50 and index["blocks"] == "writes", by["0003"]
    assert lock("0003", "AccessExclusiveLock") is None
    assert lock("0004", "ShareUpdateExclusiveLock") and by["0004"]["blocked_ms"] == 0
    assert rep["downs_restore_schema"] is True and rep["ledger_after"] == "0004"
    assert "running db container" in rep["where"]
    assert fingerprint(app) == live, "the rehearsal changed the live database"
    assert copies(app) == [] and rep["copy_dropped"] is True and rep["notes"] == []
    assert app.project.image_id(image) == tagged, "the rehearsal moved the image tag"

    text = run_cli("-C", str(app.dir), "rehearse", timeout=600)
    assert text.returncode == 0, text.stderr
    assert (
        "ACCESS EXCLUSIVE on public.big" in text.stdout and "blocks reads and writes" in text.stdout
    )
    assert "down sections: bring the schema back" in text.stdout

    # SIGTERM in the middle of the migrations on the copy: the copy is dropped all the same
    run = Running("-C", str(app.dir), "rehearse")
    run.wait_for("rehearsing 0002", limit=300)
    run.signal_group(signal.SIGTERM)
    code, err = run.finish()
    assert code == 128 + signal.SIGTERM, err
    assert copies(app) == [] and fingerprint(app) == live
    assert not [s for s in app.project.ps() if s.service == "migrator"]

    # deploy --rehearse with max_lock_ms = 500: refused, exit 6, nothing changed
    with open(app.dir / "composekit.toml", "a") as toml:
        toml.write("\n[deploy]\nmax_lock_ms = 500\n")
    web = web_image(app)
    release(app, 2)
    r = run_cli("-C", str(app.dir), "deploy", "--rehearse", "--timeout", "600", timeout=700)
    assert r.returncode == ExitCode.VERIFY, r.stderr
    assert (
        "the rehearsal refuses this deploy: 0002_seen holds ACCESS EXCLUSIVE on public.big"
        in r.stderr
    )
    assert "over max_lock_ms = 500" in r.stderr
    assert fingerprint(app) == live and web_image(app) == web and copies(app) == []
    assert "Users r1" in app.page()
