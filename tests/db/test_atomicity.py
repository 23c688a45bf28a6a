"""A migration and its ledger row commit together or not at all: if the ledger INSERT fails, the
migration's own changes must be gone too (a runner that committed them separately would leave the
table behind, applied but unrecorded — the next run would apply it twice)."""

from __future__ import annotations

from pathlib import Path

from composekit.errors import ExitCode
from tests.db.test_migrate import cli, execute, five, query


def test_a_failing_ledger_insert_takes_the_migration_with_it(db_url: str, tmp_path: Path) -> None:
    d = five(tmp_path)
    assert cli(db_url, "migrate", "up", "--target", "0001", "--dir", str(d)).returncode == 0
    execute(
        db_url,
        "CREATE FUNCTION refuse_0003() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "IF NEW.version = '0003' THEN RAISE EXCEPTION 'ledger refuses 0003'; END IF; "
        "RETURN NEW; END $$; "
        "CREATE TRIGGER refuse BEFORE INSERT ON schema_migrations "
        "FOR EACH ROW EXECUTE FUNCTION refuse_0003()",
    )
    r = cli(db_url, "migrate", "up", "--dir", str(d))
    assert r.returncode == ExitCode.MIGRATION, r.stderr
    assert "ledger refuses 0003" in r.stderr
    tables = {
        t for (t,) in query(db_url, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    }
    assert "t2" in tables and "t3" not in tables  # 0002 done; 0003's table rolled back with its row
    assert [v for (v,) in query(db_url, "SELECT version FROM schema_migrations ORDER BY 1")] == [
        "0001",
        "0002",
    ]
