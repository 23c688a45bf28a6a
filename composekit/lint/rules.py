"""The rules: what each one flags, why it hurts on a live database, and what to write instead.

Severity is tied to the rollout. Behind the proxy the old web keeps serving while (and after) the
migrations of a deploy run, so a change the *running* release cannot live with — a dropped or
renamed column or table, a changed type, a NOT NULL the old code does not fill — is an error in an
ordinary (expand) migration and only allowed in a **contract** migration, which the deploy runs
after the new web serves and the old is retired (``breaks_old_web``).

What the engine already does is not asked of the files: it sets ``lock_timeout`` for every
migration (squawk's require-timeout-settings), and runs a file holding ``CONCURRENTLY`` outside a
transaction by itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True)
class Rule:
    id: str
    severity: Severity
    why: str
    instead: str
    breaks_old_web: bool = False  # an error in expand migrations, allowed in contract ones


E, W = Severity.ERROR, Severity.WARNING

_RULES = [
    # -- changes the running (old) release cannot live with: contract migrations only ----------
    Rule(
        "ban-drop-column", E,
        "the release still running reads and writes the column: its queries fail from the commit on",
        "stop using the column in a release first, then drop it in a contract migration "
        "(-- composekit:phase contract) of a later one",
        breaks_old_web=True,
    ),
    Rule(
        "ban-drop-table", E,
        "the release still running uses the table; its data is gone with it",
        "stop using it in one release, drop it in a contract migration of a later one",
        breaks_old_web=True,
    ),
    Rule(
        "renaming-column", E,
        "the release still running asks for the old name and fails",
        "add the new column, write both, backfill, switch reads, drop the old one in a contract "
        "migration (expand → contract)",
        breaks_old_web=True,
    ),
    Rule(
        "renaming-table", E,
        "the release still running asks for the old name and fails",
        "create the new table (or a view with the old name), move the code, drop the old one in a "
        "contract migration",
        breaks_old_web=True,
    ),
    Rule(
        "changing-column-type", E,
        "rewrites the whole table under an ACCESS EXCLUSIVE lock, and the running release may not "
        "handle the new type",
        "add a column of the new type, write both, backfill in batches, switch, drop the old one "
        "in a contract migration",
        breaks_old_web=True,
    ),
    Rule(
        "adding-required-field", E,
        "a NOT NULL column without a default: fails on a table with rows, and every insert of the "
        "running release (which does not set it) fails",
        "add it nullable (or with a constant default), backfill, then SET NOT NULL the safe way in "
        "a contract migration",
        breaks_old_web=True,
    ),
    Rule(
        "adding-not-nullable-field", E,
        "SET NOT NULL scans the whole table under an ACCESS EXCLUSIVE lock, and the running "
        "release's inserts of NULL start failing",
        "ADD CONSTRAINT … CHECK (col IS NOT NULL) NOT VALID; VALIDATE CONSTRAINT; then SET NOT NULL "
        "(PostgreSQL uses the valid check and skips the scan) — in a contract migration",
        breaks_old_web=True,
    ),
    # -- locks and rewrites -------------------------------------------------------------------
    Rule(
        "adding-field-with-volatile-default", E,
        "a volatile default (random(), now()-like clock functions, gen_random_uuid(), nextval) "
        "rewrites every row under an ACCESS EXCLUSIVE lock",
        "add the column without a default (or a constant one), set the default, backfill in "
        "batches",
    ),
    Rule(
        "adding-serial-primary-key-field", E,
        "a serial/identity or PRIMARY KEY column added to an existing table rewrites it (and "
        "builds the index) under an ACCESS EXCLUSIVE lock",
        "add a nullable column, backfill, CREATE UNIQUE INDEX CONCURRENTLY, then ADD CONSTRAINT … "
        "PRIMARY KEY USING INDEX",
    ),
    Rule(
        "adding-generated-stored-column", E,
        "a STORED generated column is computed for every row: a table rewrite under ACCESS EXCLUSIVE",
        "add a plain column, fill it by trigger and batched backfill, or compute it in a view",
    ),
    Rule(
        "adding-foreign-key-constraint", E,
        "validating a new foreign key scans the table while holding locks on both tables",
        "ADD CONSTRAINT … FOREIGN KEY … NOT VALID, then VALIDATE CONSTRAINT in another migration",
    ),
    Rule(
        "constraint-missing-not-valid", E,
        "a new CHECK constraint is validated against every row under an ACCESS EXCLUSIVE lock",
        "ADD CONSTRAINT … CHECK (…) NOT VALID, then VALIDATE CONSTRAINT in another migration",
    ),
    Rule(
        "disallowed-unique-constraint", E,
        "ADD CONSTRAINT … UNIQUE builds its index under an ACCESS EXCLUSIVE lock",
        "CREATE UNIQUE INDEX CONCURRENTLY, then ADD CONSTRAINT … UNIQUE USING INDEX",
    ),
    Rule(
        "adding-primary-key-constraint", E,
        "ADD PRIMARY KEY builds its index (and may check NOT NULL) under an ACCESS EXCLUSIVE lock",
        "CREATE UNIQUE INDEX CONCURRENTLY, then ADD CONSTRAINT … PRIMARY KEY USING INDEX",
    ),
    Rule(
        "require-concurrent-index-creation", E,
        "CREATE INDEX blocks every write to the table until the index is built",
        "CREATE INDEX CONCURRENTLY, alone in its migration file (composekit runs it outside a "
        "transaction)",
    ),
    Rule(
        "require-concurrent-index-deletion", E,
        "DROP INDEX takes an ACCESS EXCLUSIVE lock on the table",
        "DROP INDEX CONCURRENTLY, alone in its migration file",
    ),
    Rule(
        "require-concurrent-reindex", E,
        "REINDEX blocks writes (and reads that use the index) until it ends",
        "REINDEX … CONCURRENTLY, alone in its migration file",
    ),
    Rule(
        "concurrently-with-other-statements", E,
        "CONCURRENTLY cannot run in a transaction, so composekit runs this whole file without one: "
        "if a later statement fails, the earlier ones stay applied",
        "give the CONCURRENTLY statement a migration file of its own",
    ),
    Rule(
        "ban-vacuum-full", E,
        "VACUUM FULL rewrites the table under an ACCESS EXCLUSIVE lock",
        "plain VACUUM, or pg_repack outside the deploy",
    ),
    Rule(
        "ban-cluster", E,
        "CLUSTER rewrites the table under an ACCESS EXCLUSIVE lock",
        "pg_repack outside the deploy",
    ),
    Rule(
        "lock-table", W,
        "an explicit LOCK TABLE holds the lock until the migration commits",
        "let each statement take the lock it needs; keep the migration short",
    ),
    Rule(
        "ban-alter-domain-with-add-constraint", E,
        "ALTER DOMAIN … ADD CONSTRAINT checks every column of that domain while locking their tables",
        "add the check to the columns (CHECK … NOT VALID, then VALIDATE)",
    ),
    Rule(
        "ban-create-domain-with-constraint", W,
        "a domain's constraint cannot be changed later without ALTER DOMAIN, which locks every "
        "table that uses it",
        "put the CHECK on the column instead",
    ),
    # -- data ---------------------------------------------------------------------------------
    Rule(
        "ban-drop-database", E,
        "drops a whole database from a migration",
        "never do this in a migration; use composekit restore or an operator's command",
    ),
    Rule(
        "ban-drop-schema", E,
        "drops a schema and everything in it",
        "drop its objects one release at a time, in contract migrations",
    ),
    Rule(
        "ban-truncate", E,
        "TRUNCATE empties the table under an ACCESS EXCLUSIVE lock (CASCADE: others too)",
        "DELETE in batches, in a backfill, or keep the data",
    ),
    Rule(
        "unbatched-update", W,
        "an UPDATE or DELETE of a whole table in the migration's transaction locks every row it "
        "touches until the commit",
        "batch it: `-- composekit:backfill` or `composekit backfill` (keyed batches, short "
        "transactions), or a WHERE that keeps it small",
    ),
    Rule(
        "backfill-not-null-in-expand", W,
        "the backfill's NOT NULL runs while the old release still serves: a row it inserts "
        "without the column makes the VALIDATE fail, and the backfill stops there",
        "put the backfill in migrations/post/ (or mark it `-- composekit:phase contract`), so it "
        "runs once the new release writes the column",
    ),
    Rule(
        "transaction-nesting", E,
        "composekit already runs each migration in a transaction (with its ledger row); BEGIN/"
        "COMMIT inside it break that, and make the file run without one",
        "remove BEGIN/COMMIT/ROLLBACK; for statements that cannot run in a transaction, put them "
        "alone in a file",
    ),
    # -- types (the guide's and squawk's preferences) ---------------------------------------
    Rule(
        "prefer-bigint-over-int", W,
        "int runs out at 2.1 billion, and changing the type later rewrites the table",
        "bigint",
    ),
    Rule(
        "prefer-bigint-over-smallint", W,
        "smallint runs out at 32767, and changing the type later rewrites the table",
        "bigint",
    ),
    Rule(
        "prefer-identity", W,
        "serial's sequence is a separate object with its own ownership and grants",
        "bigint GENERATED ALWAYS AS IDENTITY",
    ),
    Rule(
        "prefer-text-field", W,
        "changing varchar(n)'s length later takes an ACCESS EXCLUSIVE lock",
        "text with a CHECK (char_length(col) <= n) constraint",
    ),
    Rule(
        "ban-char-field", W,
        "char(n) pads with spaces and compares surprisingly",
        "text (with a CHECK on its length if needed)",
    ),
    Rule(
        "prefer-timestamptz", W,
        "timestamp without time zone stores wall-clock time with no zone: ambiguous across "
        "servers and DST",
        "timestamptz",
    ),
    # -- idempotent migrations (the guide's practice) ---------------------------------------
    Rule(
        "require-if-not-exists", W,
        "run twice (a retried deploy, a restored copy), the CREATE/ADD fails",
        "CREATE … IF NOT EXISTS / ADD COLUMN IF NOT EXISTS",
    ),
    Rule(
        "require-if-exists", W,
        "run twice, the DROP fails",
        "DROP … IF EXISTS",
    ),
    # -- the opt-outs themselves --------------------------------------------------------------
    Rule(
        "allow-needs-reason", E,
        "an opt-out without a reason hides a hazard from the next reader",
        "-- composekit:allow RULE because <why it is safe here>",
    ),
    Rule(
        "unknown-rule", E,
        "an opt-out or [lint] setting names no rule composekit has",
        "use a rule id from `composekit lint --rules`",
    ),
    Rule(
        "syntax-error", E,
        "PostgreSQL's parser rejects this SQL: the migration would fail",
        "fix the SQL",
    ),
]  # fmt: skip

RULES: dict[str, Rule] = {r.id: r for r in _RULES}
