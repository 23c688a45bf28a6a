"""Pure parts of backups: retention per kind, database-level properties as SQL."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from composekit.backup import list_backups, prune
from composekit.dbtarget import DatabaseProps


def make(d: Path, n: int, label: str) -> None:
    created = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=n)
    dump = d / f"{n:03d}_{label}.dump"
    dump.write_bytes(b"x")
    manifest = {
        "name": dump.stem,
        "database": "app",
        "server_version": "15",
        "ledger_version": None,
        "sha256": "0",
        "size": 1,
        "duration_s": 0.1,
        "label": label,
        "compose_project": "shop",
        "created": created.isoformat(),
        "verified": True,
    }
    (d / f"{dump.name}.json").write_text(json.dumps(manifest))


def test_automatic_backups_never_push_out_the_users_own(tmp_path: Path) -> None:
    make(tmp_path, 1, "before-upgrade")  # the user's, oldest of all
    make(tmp_path, 2, "pre-restore-snapshot")
    for n in range(3, 12):
        make(tmp_path, n, "pre-deploy")
    prune(tmp_path, keep=3)
    kept = sorted(b.path.name for b in list_backups(tmp_path))
    assert kept == [
        "001_before-upgrade.dump",
        "002_pre-restore-snapshot.dump",
        "009_pre-deploy.dump",
        "010_pre-deploy.dump",
        "011_pre-deploy.dump",
    ]


def test_database_properties_become_statements_for_the_restored_name() -> None:
    props = DatabaseProps.from_dict(
        {
            "comment": "the shop's data",
            "acl": ["=T/app", "app=CTc/app", "reporting=c/app", "gone=c/app"],
            "settings": ["search_path=app_schema, public", "work_mem=8MB"],
        }
    )
    sql, notes = props.to_sql("appdb", roles={"app", "reporting"})
    assert sql == [
        'ALTER DATABASE "appdb" RESET ALL',
        "ALTER DATABASE \"appdb\" SET \"search_path\" = 'app_schema', 'public'",
        'ALTER DATABASE "appdb" SET "work_mem" = \'8MB\'',
        "COMMENT ON DATABASE \"appdb\" IS 'the shop''s data'",
        'REVOKE ALL ON DATABASE "appdb" FROM PUBLIC',
        'GRANT TEMPORARY ON DATABASE "appdb" TO PUBLIC',
        'GRANT CREATE, TEMPORARY, CONNECT ON DATABASE "appdb" TO "app"',
        'GRANT CONNECT ON DATABASE "appdb" TO "reporting"',
    ]
    assert notes == ["no role gone here: its c on the database not granted"]
    assert DatabaseProps().to_sql("appdb", set())[0][-1] == 'COMMENT ON DATABASE "appdb" IS NULL'


def test_restore_phase_from_pg_restores_query() -> None:
    from composekit.restore import phase_of

    assert phase_of("COPY public.orders (id, total) FROM stdin;") == "data"
    assert phase_of("CREATE INDEX orders_total ON public.orders USING btree (total);") == "indexes"
    assert phase_of("CREATE UNIQUE INDEX u ON public.users (email);") == "indexes"
    pkey = "ALTER TABLE ONLY public.users     ADD CONSTRAINT users_pkey PRIMARY KEY (id);"
    assert phase_of(pkey) == "constraints"
    # the schema section alters tables too: an owner, a column default
    assert phase_of("ALTER TABLE public.users OWNER TO app;") == "schema"
    assert (
        phase_of("ALTER TABLE ONLY public.users ALTER COLUMN id SET DEFAULT nextval(…);")
        == "schema"
    )
    assert phase_of("CREATE TABLE public.users (id integer);") == "schema"
    assert phase_of("") == "" and phase_of("   ") == ""
