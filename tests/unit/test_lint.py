"""composekit lint: each rule flags its dangerous migration at the right line; the safe rewrites
are clean; opt-outs need a reason; contract migrations may do what the old release cannot live
with; the formats of other tools' directories lint; the CLI's formats and exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from composekit.lint import RULES, LintConfig, lint_paths
from composekit.lint.engine import lint_section
from composekit.migrations import Section
from tests.helpers import run_cli

HEAD = "-- a migration\nSELECT 1;\n"  # the dangerous statement is on line 3

DANGEROUS = {
    "ban-drop-column": "ALTER TABLE users DROP COLUMN IF EXISTS name;",
    "ban-drop-table": "DROP TABLE IF EXISTS old;",
    "renaming-column": "ALTER TABLE users RENAME COLUMN a TO b;",
    "renaming-table": "ALTER TABLE users RENAME TO people;",
    "changing-column-type": "ALTER TABLE users ALTER COLUMN id TYPE bigint;",
    "adding-required-field": "ALTER TABLE users ADD COLUMN IF NOT EXISTS email text NOT NULL;",
    "adding-not-nullable-field": "ALTER TABLE users ALTER COLUMN email SET NOT NULL;",
    "adding-field-with-volatile-default":
        "ALTER TABLE users ADD COLUMN IF NOT EXISTS token uuid DEFAULT gen_random_uuid();",
    "adding-serial-primary-key-field": "ALTER TABLE users ADD COLUMN IF NOT EXISTS n bigserial;",
    "adding-generated-stored-column":
        "ALTER TABLE users ADD COLUMN IF NOT EXISTS g bigint GENERATED ALWAYS AS (id * 2) STORED;",
    "adding-foreign-key-constraint":
        "ALTER TABLE orders ADD CONSTRAINT fk FOREIGN KEY (user_id) REFERENCES users (id);",
    "constraint-missing-not-valid": "ALTER TABLE users ADD CONSTRAINT c CHECK (id > 0);",
    "disallowed-unique-constraint": "ALTER TABLE users ADD CONSTRAINT u UNIQUE (email);",
    "adding-primary-key-constraint": "ALTER TABLE users ADD PRIMARY KEY (id);",
    "require-concurrent-index-creation": "CREATE INDEX IF NOT EXISTS i ON users (email);",
    "require-concurrent-index-deletion": "DROP INDEX IF EXISTS i;",
    "require-concurrent-reindex": "REINDEX TABLE users;",
    "concurrently-with-other-statements": "CREATE INDEX CONCURRENTLY IF NOT EXISTS i ON users (email);",
    "ban-vacuum-full": "VACUUM FULL users;",
    "ban-cluster": "CLUSTER users USING users_pkey;",
    "lock-table": "LOCK TABLE users;",
    "ban-alter-domain-with-add-constraint": "ALTER DOMAIN d ADD CONSTRAINT c CHECK (VALUE > 0);",
    "ban-create-domain-with-constraint": "CREATE DOMAIN d AS text CHECK (VALUE <> '');",
    "ban-drop-database": "DROP DATABASE IF EXISTS other;",
    "ban-drop-schema": "DROP SCHEMA IF EXISTS s;",
    "ban-truncate": "TRUNCATE users;",
    "unbatched-update": "UPDATE users SET bio = '';",
    "backfill-not-null-in-expand":
        "-- composekit:backfill not-null=email\nUPDATE users SET email = name;",
    "transaction-nesting": "BEGIN;",
    "prefer-bigint-over-int": "CREATE TABLE IF NOT EXISTS t (n int);",
    "prefer-bigint-over-smallint": "CREATE TABLE IF NOT EXISTS t (n smallint);",
    "prefer-identity": "CREATE TABLE IF NOT EXISTS t (id bigserial);",
    "prefer-text-field": "CREATE TABLE IF NOT EXISTS t (s varchar(10));",
    "ban-char-field": "CREATE TABLE IF NOT EXISTS t (s char(2));",
    "prefer-timestamptz": "CREATE TABLE IF NOT EXISTS t (at timestamp);",
    "require-if-not-exists": "CREATE TABLE t (id bigint);",
    "require-if-exists": "DROP VIEW v;",
    "allow-needs-reason": "-- composekit:allow ban-truncate\nTRUNCATE cache;",
    "unknown-rule": "-- composekit:allow no-such-rule because it is fine",
    "syntax-error": "ALTER TABL users ADD COLUMN x int;",
}  # fmt: skip

SAFE = [
    "ALTER TABLE users ADD COLUMN IF NOT EXISTS email text;",
    "ALTER TABLE users ADD COLUMN IF NOT EXISTS active boolean NOT NULL DEFAULT true;",
    "ALTER TABLE users ADD COLUMN IF NOT EXISTS seen timestamptz DEFAULT now();",
    "CREATE INDEX CONCURRENTLY IF NOT EXISTS users_email ON users (email);",
    "DROP INDEX CONCURRENTLY IF EXISTS users_email;",
    "REINDEX INDEX CONCURRENTLY users_email;",
    "ALTER TABLE orders ADD CONSTRAINT fk FOREIGN KEY (user_id) REFERENCES users (id) NOT VALID;",
    "ALTER TABLE orders VALIDATE CONSTRAINT fk;",
    "ALTER TABLE users ADD CONSTRAINT email_nn CHECK (email IS NOT NULL) NOT VALID;",
    "ALTER TABLE users ADD CONSTRAINT email_uq UNIQUE USING INDEX users_email;",
    "ALTER TABLE users ADD CONSTRAINT users_pk PRIMARY KEY USING INDEX users_id;",
    "CREATE TABLE IF NOT EXISTS t (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, s text, "
    "at timestamptz NOT NULL DEFAULT now(), n bigint NOT NULL);\n"
    "CREATE INDEX IF NOT EXISTS t_at ON t (at);\n"  # a new table: nothing to lock yet
    "ALTER TABLE t ADD CONSTRAINT t_s CHECK (s <> '');\n"
    "ALTER TABLE t ADD COLUMN IF NOT EXISTS u text NOT NULL;",
    "UPDATE users SET bio = '' WHERE id < 1000;",
    "-- composekit:allow ban-truncate because it is a cache nobody reads during a deploy\n"
    "TRUNCATE cache;",
    "-- composekit:allow-file unbatched-update because the table holds 12 rows\n"
    "UPDATE settings SET v = 1;\nUPDATE settings SET w = 2;",
    "-- composekit:backfill batch=1000\nUPDATE users SET email = name;",  # batched: no lock hazard
    "-- composekit:phase contract\n-- composekit:backfill not-null=email\n"
    "UPDATE users SET email = name WHERE email IS NULL;",
]


def lint(sql: str, tmp_path: Path, name: str = "0002_x.sql", **config: object):  # type: ignore[no-untyped-def]
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(sql)
    return lint_section(Section(path, sql, 1), config=LintConfig(**config))  # type: ignore[arg-type]


def test_every_rule_has_a_dangerous_example_and_there_are_at_least_25() -> None:
    assert set(DANGEROUS) == set(RULES)
    assert (
        len([r for r in RULES if r not in ("allow-needs-reason", "unknown-rule", "syntax-error")])
        >= 25
    )
    assert all(r.why and r.instead for r in RULES.values())


@pytest.mark.parametrize("rule", sorted(DANGEROUS))
def test_each_dangerous_migration_is_flagged_by_its_rule_on_its_line(
    rule: str, tmp_path: Path
) -> None:
    findings = lint(HEAD + DANGEROUS[rule] + "\n", tmp_path)
    hits = [f for f in findings if f.rule == rule and f.counts]
    assert hits, f"{rule} not flagged: {[(f.rule, f.line) for f in findings]}"
    assert hits[0].line == 3, (rule, hits[0])
    assert hits[0].severity == RULES[rule].severity
    assert hits[0].col >= 1 and hits[0].path.endswith("0002_x.sql")


@pytest.mark.parametrize("sql", SAFE)
def test_the_safe_rewrites_are_clean(sql: str, tmp_path: Path) -> None:
    findings = lint(sql + "\n", tmp_path)
    assert [(f.rule, f.line, f.message) for f in findings if f.counts] == []


def test_what_breaks_the_old_release_is_allowed_in_a_contract_migration(tmp_path: Path) -> None:
    drop = "ALTER TABLE users DROP COLUMN IF EXISTS name;\n"
    assert [f.severity for f in lint(drop, tmp_path)] == ["error"]
    marked = lint("-- composekit:phase contract\n" + drop, tmp_path)
    assert [(f.rule, f.severity) for f in marked] == [("ban-drop-column", "warning")]
    in_post = lint(drop, tmp_path, name="post/0003_drop_name.sql")
    assert [f.severity for f in in_post] == ["warning"]
    # a lock hazard is no safer after the rollout: still an error in a contract migration
    index = "-- composekit:phase contract\nCREATE INDEX IF NOT EXISTS i ON users (email);\n"
    assert [f.severity for f in lint(index, tmp_path)] == ["error"]


def test_strict_and_disable(tmp_path: Path) -> None:
    sql = "CREATE TABLE IF NOT EXISTS t (n int);\n"
    assert [f.severity for f in lint(sql, tmp_path)] == ["warning"]
    assert [f.severity for f in lint(sql, tmp_path, strict=True)] == ["error"]
    assert lint(sql, tmp_path, disable=frozenset({"prefer-bigint-over-int"})) == []


def test_an_opt_out_covers_only_its_statement(tmp_path: Path) -> None:
    sql = (
        "-- composekit:allow ban-truncate because the cache is rebuilt at start\n"
        "TRUNCATE cache;\n"
        "TRUNCATE users;\n"
    )
    findings = lint(sql, tmp_path)
    assert [(f.line, bool(f.allowed)) for f in findings if f.rule == "ban-truncate"] == [
        (2, True),
        (3, False),
    ]
    assert next(f for f in findings if f.allowed).allowed == "the cache is rebuilt at start"


OTHER_TOOLS = {
    # golang-migrate: NNN_name.up.sql / .down.sql
    "golang": {
        "000001_users.up.sql": "CREATE TABLE IF NOT EXISTS users (id bigint);\n",
        "000001_users.down.sql": "DROP TABLE IF EXISTS users;\n",
        "000002_email.up.sql": "-- add email\n\nALTER TABLE users ADD COLUMN IF NOT EXISTS email text NOT NULL;\n",
        "000002_email.down.sql": "ALTER TABLE users DROP COLUMN IF EXISTS email;\n",
    },
    # dbmate: one file, -- migrate:up / -- migrate:down
    "dbmate": {
        "20240101000000_users.sql": "-- migrate:up\nCREATE TABLE IF NOT EXISTS users (id bigint);\n"
        "-- migrate:down\nDROP TABLE IF EXISTS users;\n",
        "20240102000000_email.sql": "-- migrate:up\n\nALTER TABLE users ADD COLUMN IF NOT EXISTS email text NOT NULL;\n"
        "-- migrate:down\nALTER TABLE users DROP COLUMN IF EXISTS email;\n",
    },
    # Flyway: V<n>__name.sql (and U<n>__ undo files)
    "flyway": {
        "V1__users.sql": "CREATE TABLE IF NOT EXISTS users (id bigint);\n",
        "V2__email.sql": "\n-- email\nALTER TABLE users ADD COLUMN IF NOT EXISTS email text NOT NULL;\n",
        "U2__email.sql": "ALTER TABLE users DROP COLUMN IF EXISTS email;\n",
    },
}  # fmt: skip


@pytest.mark.parametrize("tool", sorted(OTHER_TOOLS))
def test_golang_migrate_dbmate_and_flyway_directories_lint(tool: str, tmp_path: Path) -> None:
    d = tmp_path / tool
    d.mkdir()
    for name, text in OTHER_TOOLS[tool].items():
        (d / name).write_text(text)
    report = lint_paths([d], "auto", LintConfig())
    assert report.files == 2
    hits = [(Path(f.path).name, f.line, f.rule) for f in report.errors]
    # only the up side is linted: the down's DROP COLUMN runs in an undo, not against the old web
    assert len(hits) == 1 and hits[0][2] == "adding-required-field", hits
    assert hits[0][1] == 3, hits


def test_the_cli_formats_and_exit_codes(tmp_path: Path) -> None:
    d = tmp_path / "migrations"
    d.mkdir()
    (d / "0001_ok.sql").write_text("-- migrate:up\nCREATE TABLE IF NOT EXISTS t (id bigint);\n")
    ok = run_cli("-C", str(tmp_path), "lint")
    assert ok.returncode == 0, ok.stderr
    assert "0 error(s), 0 warning(s) in 1 migration file(s)" in ok.stderr
    (d / "0002_bad.sql").write_text(
        "-- migrate:up\nCREATE TABLE IF NOT EXISTS u (n int);\nALTER TABLE t DROP COLUMN IF EXISTS id;\n"
    )
    text = run_cli("-C", str(tmp_path), "lint")
    assert text.returncode == 6 and "Traceback" not in text.stderr
    assert "0002_bad.sql:3:1: error ban-drop-column" in text.stdout
    assert "  instead: stop using the column" in text.stdout
    assert "1 error(s), 1 warning(s) in 2 migration file(s)" in text.stderr
    assert "error: lint found 1 error(s); the first: " in text.stderr and "fix:" in text.stderr
    gh = run_cli("-C", str(tmp_path), "lint", "--format", "github")
    assert gh.returncode == 6
    assert any(
        ln.startswith("::error file=") and "line=3,col=1,title=composekit ban-drop-column::" in ln
        for ln in gh.stdout.splitlines()
    ), gh.stdout
    gl = run_cli("-C", str(tmp_path), "lint", "--format", "gitlab")
    report = json.loads(gl.stdout)
    assert {r["check_name"]: r["severity"] for r in report} == {
        "ban-drop-column": "major",
        "prefer-bigint-over-int": "minor",
    }
    assert all(r["location"]["lines"]["begin"] in (2, 3) and r["fingerprint"] for r in report)
    js = run_cli("-C", str(tmp_path), "lint", "--json")
    assert js.returncode == 6 and json.loads(js.stdout)["ok"] is False
    rules = sorted(f["rule"] for f in json.loads(js.stdout)["findings"])
    assert rules == ["ban-drop-column", "prefer-bigint-over-int"]
    strict = run_cli("-C", str(tmp_path), "lint", "--strict", str(d / "0001_ok.sql"))
    assert strict.returncode == 0  # only the file named
    (tmp_path / "composekit.toml").write_text('[lint]\ndisable = ["ban-drop-column"]\n')
    assert run_cli("-C", str(tmp_path), "lint").returncode == 0
    (tmp_path / "composekit.toml").write_text('[lint]\ndisable = ["no-such-rule"]\n')
    bad = run_cli("-C", str(tmp_path), "lint")
    assert bad.returncode == 2 and "[lint] disable names no rule: no-such-rule" in bad.stderr
    rule_list = run_cli("lint", "--rules", "--json")
    assert len(json.loads(rule_list.stdout)["rules"]) == len(RULES)
