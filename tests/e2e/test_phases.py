"""Expand and contract on the real engine: lint refuses a migration the old release cannot live
with before anything changes; marked as a contract migration it runs after the web rollout; a
failing contract migration is undone and the previous web rolled back out — with visitors
requesting the site all the time and not one failed request."""

from __future__ import annotations

import json

import pytest

from composekit.errors import ExitCode
from tests.apps import App, Traffic, fingerprint, migration, release, web_image
from tests.helpers import run_cli

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def deploy(app: App, *args: str):  # type: ignore[no-untyped-def]
    return run_cli("-C", str(app.dir), "deploy", "--timeout", "90", *args)


def steps(app: App) -> list[tuple[str, str]]:
    last = json.loads(run_cli("-C", str(app.dir), "history", "--json").stdout)["deploys"][-1]
    return [(s["name"], s["status"]) for s in last["steps"]]


def columns(app: App) -> str:
    return app.psql(
        "SELECT string_agg(column_name, ',' ORDER BY ordinal_position) "
        "FROM information_schema.columns WHERE table_name = 'users'"
    )


DROP_BIO = (
    "ALTER TABLE users DROP COLUMN bio;",
    "ALTER TABLE users ADD COLUMN bio text NOT NULL DEFAULT '';",
)


@pytest.mark.parametrize("layout", ["migrator", "app-startup"])
def test_a_contract_migration_runs_after_the_rollout_and_is_undone_before_the_web(
    make_app, layout: str
) -> None:  # type: ignore[no-untyped-def]
    app = make_app(layout)
    release(app, 1)
    assert deploy(app).returncode == 0
    assert "bio" in columns(app)
    db, image = fingerprint(app), web_image(app)
    backups = sorted((app.dir / "backups").glob("*.dump"))

    # an ordinary migration dropping a column the running release may use: refused by lint
    release(app, 2)
    migration(app, "0002_drop_bio.sql", *DROP_BIO)
    r = deploy(app)
    assert r.returncode == ExitCode.VERIFY, r.stderr
    assert (
        "lint: 1 error(s) in the pending migrations; the first: 0002_drop_bio.sql:2 ban-drop-column"
        in r.stderr
    )
    assert "composekit:phase contract" in r.stderr  # the fix names the way out
    assert fingerprint(app) == db and web_image(app) == image
    assert sorted((app.dir / "backups").glob("*.dump")) == backups  # refused before the backup

    # the same migration as a contract one: applied once the new web serves and the old is gone
    # with it, the full cycle: expand (a nullable column) → backfill in batches, then NOT NULL →
    # contract (drop what only the old release used)
    path = app.dir / "migrations" / "0002_drop_bio.sql"
    path.write_text("-- composekit:phase contract\n" + path.read_text())
    path.rename(app.dir / "migrations" / "0004_drop_bio.sql")
    migration(app, "0002_handle.sql", "ALTER TABLE users ADD COLUMN handle text;",
              "ALTER TABLE users DROP COLUMN handle;")  # fmt: skip
    (app.dir / "migrations" / "post").mkdir()
    (app.dir / "migrations" / "post" / "0003_fill_handle.sql").write_text(
        "-- migrate:up\n-- composekit:backfill batch=2 pause=10ms not-null=handle\n"
        "UPDATE users SET handle = lower(split_part(email, '@', 1)) WHERE handle IS NULL;\n"
        "-- migrate:down\nALTER TABLE users ALTER COLUMN handle DROP NOT NULL;\n"
    )
    with Traffic(app.ports[0]) as traffic:
        r = deploy(app)
    assert r.returncode == 0, r.stderr
    assert not traffic.failed(), traffic.failed()[:3]
    names = [n for n, _ in steps(app)]
    assert names[-1] == "contract" and names.index("web") < names.index("retire"), names
    assert "contract: ok" in r.stderr and "applied 0003, 0004 after the rollout" in r.stderr
    assert "backfill done: 3 rows updated" in r.stderr and "users.handle is NOT NULL" in r.stderr
    assert "bio" not in columns(app) and "handle" in columns(app) and "Users r2" in app.page()
    assert app.psql("SELECT string_agg(handle, ',' ORDER BY id) FROM users") == "ada,grace,edsger"
    good, image = fingerprint(app), web_image(app)

    # an expand migration and a failing contract one (in post/): all undone, r2 rolled back out
    release(app, 3)
    migration(app, "0005_nick.sql", "ALTER TABLE users ADD COLUMN nick text;",
              "ALTER TABLE users DROP COLUMN nick;")  # fmt: skip
    (app.dir / "migrations" / "post" / "0006_bad.sql").write_text(
        "-- migrate:up\nALTER TABLE nope DROP COLUMN x;\n-- migrate:down\nSELECT 1;\n"
    )
    with Traffic(app.ports[0]) as traffic:
        r = deploy(app)  # (post/: a contract migration, its DROP COLUMN only a warning)
    assert r.returncode == ExitCode.DEPLOY_UNDONE, r.stderr
    assert "deploy failed at contract" in r.stderr
    assert not traffic.failed(), traffic.failed()[:3]
    assert fingerprint(app) == good, "the database is not as it was"
    assert web_image(app) == image and "Users r2" in app.page()
    assert len(app.project.ps(["web"])) == 1
