"""Lint migration files on PostgreSQL's own parse tree (pglast), statement by statement.

A statement's findings point at ``file:line:col`` of the node that is the problem (the column, the
constraint), else of the statement. A table created earlier in the same file is new: nothing to
lock or rewrite, so the lock rules skip it.

Opt-outs, each with a required reason:

* ``-- composekit:allow RULE[, RULE…] because <reason>`` on the statement's first line, or on the
  comment lines right above it;
* ``-- composekit:allow-file RULE[, RULE…] because <reason>`` anywhere in the file.

A **contract** migration (``-- composekit:phase contract`` in the file, or a file in a ``post/``
folder) may do what the running release cannot live with: those rules are warnings there.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from composekit.errors import ConfigError
from composekit.lint.rules import RULES, Rule, Severity
from composekit.migrations import BACKFILL, CONTRACT_DIR, PHASE, Backfill, Migration, Section

ALLOW = re.compile(
    r"--\s*composekit:allow(?P<file>-file)?\s+(?P<rules>[\w-]+(?:\s*,\s*[\w-]+)*)"
    r"(?:\s+because\s+(?P<reason>\S.*))?",
    re.IGNORECASE,
)

VOLATILE = {
    "random", "clock_timestamp", "timeofday", "gen_random_uuid", "uuid_generate_v1",
    "uuid_generate_v1mc", "uuid_generate_v4", "nextval", "statement_timestamp", "txid_current",
}  # fmt: skip
SERIAL = {"serial", "serial4", "serial8", "bigserial", "smallserial", "serial2"}


@dataclass(frozen=True)
class Finding:
    rule: str
    severity: Severity
    path: str
    line: int
    col: int
    message: str  # what this statement does
    why: str
    instead: str
    allowed: str = ""  # the opt-out's reason: reported, not counted

    @property
    def counts(self) -> bool:
        return not self.allowed


@dataclass
class LintConfig:
    disable: frozenset[str] = frozenset()
    strict: bool = False  # warnings count as errors


def phase_of(section: Section) -> str:
    """``contract`` (marked in the file, or in a ``post/`` folder) or ``expand`` — for a file that
    is not a migration of its folder (a migration knows: :attr:`Migration.contract`)."""
    if section.path.parent.name == CONTRACT_DIR or PHASE.search(section.sql):
        return "contract"
    return "expand"


@dataclass
class _File:
    """What one migration's statements are checked against."""

    section: Section
    transactional: bool
    contract: bool
    config: LintConfig
    backfill: Backfill | None = None  # its UPDATE runs in batches (no unbatched-update)
    created: set[str] = field(default_factory=set)  # tables created earlier in this file
    findings: list[Finding] = field(default_factory=list)
    file_allows: dict[str, str] = field(default_factory=dict)
    line_allows: dict[int, dict[str, str]] = field(default_factory=dict)  # line -> rule -> reason
    statements: int = 0

    def position(self, offset: int) -> tuple[int, int]:
        sql = self.section.sql
        offset = max(0, min(offset, len(sql)))
        line = self.section.line_of(offset)
        col = offset - (sql.rfind("\n", 0, offset) + 1) + 1  # sections start a line
        return line, col


def lint_migration(m: Migration, config: LintConfig | None = None) -> list[Finding]:
    """The findings of ``m``'s up section (its down section runs only in an undo)."""
    return lint_section(
        m.up,
        transactional=m.transactional,
        config=config,
        contract=m.contract,
        backfill=m.backfill or False,
    )


def lint_section(
    section: Section,
    *,
    transactional: bool = True,
    config: LintConfig | None = None,
    contract: bool | None = None,
    backfill: Backfill | bool | None = None,
) -> list[Finding]:
    """``backfill``: the migration's options (False: none); None reads them from ``section``."""
    from pglast import parse_sql
    from pglast.parser import ParseError

    if contract is None:
        contract = phase_of(section) == "contract"
    f = _File(section, transactional, contract, config or LintConfig())
    _read_allows(f)
    marked = BACKFILL.search(section.sql)
    if backfill is None and marked:
        try:
            backfill = Backfill.parse(marked.group("opts"), section.path.name)
        except ConfigError as exc:
            at = marked.start()
            _add(f, "syntax-error", at, exc.message, stmt_at=at)
            return f.findings
    f.backfill = backfill if isinstance(backfill, Backfill) else None
    if f.backfill and f.backfill.not_null and not contract:
        at = marked.start() if marked else 0
        cols = ", ".join(f.backfill.not_null)
        _add(f, "backfill-not-null-in-expand", at,
             f"backfill sets NOT NULL on {cols} in an expand migration", stmt_at=at)  # fmt: skip
    try:
        stmts = parse_sql(section.sql)
    except ParseError as exc:
        at = exc.args[1] if len(exc.args) > 1 and isinstance(exc.args[1], int) else 0
        _add(f, "syntax-error", at, str(exc.args[0]) if exc.args else "syntax error", stmt_at=at)
        return f.findings
    f.statements = len(stmts)
    concurrent_at: int | None = None
    for raw in stmts:
        at = int(raw.stmt_location or 0)
        node = raw.stmt
        kind = type(node).__name__
        check = _CHECKS.get(kind)
        if check is not None:
            check(f, node, at)
        if _is_concurrent(node) and concurrent_at is None:
            concurrent_at = at
    if concurrent_at is not None and f.statements > 1:
        _add(f, "concurrently-with-other-statements", concurrent_at,
             f"CONCURRENTLY in a file of {f.statements} statements", stmt_at=concurrent_at)  # fmt: skip
    return sorted(f.findings, key=lambda x: (x.line, x.col, x.rule))


# -- opt-outs ---------------------------------------------------------------------------------


def _read_allows(f: _File) -> None:
    lines = f.section.sql.split("\n")
    for i, text in enumerate(lines):
        m = ALLOW.search(text)
        if not m:
            continue
        line = f.section.first_line + i
        col = m.start() + 1
        rules = [r.strip().lower() for r in m.group("rules").split(",")]
        reason = (m.group("reason") or "").strip()
        for rule in rules:
            if rule not in RULES:
                f.findings.append(
                    _finding(f, "unknown-rule", line, col, f"composekit:allow {rule}")
                )
            elif not reason:
                f.findings.append(
                    _finding(f, "allow-needs-reason", line, col, f"composekit:allow {rule}")
                )
            elif m.group("file"):
                f.file_allows[rule] = reason
            else:  # this line, and the statement that starts below the comment block
                f.line_allows.setdefault(line, {})[rule] = reason
                below = i + 1
                while below < len(lines) and (
                    not lines[below].strip() or lines[below].lstrip().startswith("--")
                ):
                    below += 1
                f.line_allows.setdefault(f.section.first_line + below, {})[rule] = reason


def _finding(
    f: _File, rule_id: str, line: int, col: int, message: str, allowed: str = ""
) -> Finding:
    rule = RULES[rule_id]
    severity = rule.severity
    if rule.breaks_old_web and f.contract:
        severity = Severity.WARNING  # a contract migration runs after the old release is gone
    if f.config.strict:
        severity = Severity.ERROR
    return Finding(
        rule_id, severity, str(f.section.path), line, col, message, rule.why, rule.instead, allowed
    )


def _add(f: _File, rule_id: str, at: int, message: str, *, stmt_at: int) -> None:
    if rule_id in f.config.disable:
        return
    line, col = f.position(at)
    stmt_line, _ = f.position(stmt_at)
    allowed = (
        f.file_allows.get(rule_id)
        or f.line_allows.get(stmt_line, {}).get(rule_id)
        or f.line_allows.get(line, {}).get(rule_id)
        or ""
    )
    f.findings.append(_finding(f, rule_id, line, col, message, allowed))


# -- the checks, one per statement kind ---------------------------------------------------------


def _name(rv: Any) -> str:
    if rv is None:
        return "?"
    schema = getattr(rv, "schemaname", None)
    return f"{schema}.{rv.relname}" if schema else str(rv.relname)


def _loc(node: Any, default: int) -> int:
    loc = getattr(node, "location", None)
    return int(loc) if isinstance(loc, int) and loc >= 0 else default


def _type_name(tn: Any) -> str:
    names = [getattr(n, "sval", "") for n in (tn.names or ())]
    return names[-1].lower() if names else ""


def _typmods(tn: Any) -> bool:
    return bool(getattr(tn, "typmods", None))


def _check_type(f: _File, col: Any, at: int, stmt_at: int) -> None:
    tn = col.typeName
    if tn is None:
        return
    t = _type_name(tn)
    name = col.colname
    if t in SERIAL:
        _add(f, "prefer-identity", at, f"{name} {t}", stmt_at=stmt_at)
        if t in ("serial", "serial4"):
            _add(f, "prefer-bigint-over-int", at, f"{name} {t}", stmt_at=stmt_at)
        if t in ("smallserial", "serial2"):
            _add(f, "prefer-bigint-over-smallint", at, f"{name} {t}", stmt_at=stmt_at)
    elif t in ("int4", "int", "integer"):
        _add(f, "prefer-bigint-over-int", at, f"{name} int", stmt_at=stmt_at)
    elif t in ("int2", "smallint"):
        _add(f, "prefer-bigint-over-smallint", at, f"{name} smallint", stmt_at=stmt_at)
    elif t == "varchar" and _typmods(tn):
        _add(f, "prefer-text-field", at, f"{name} varchar(n)", stmt_at=stmt_at)
    elif t in ("bpchar", "char", "character"):
        _add(f, "ban-char-field", at, f"{name} char(n)", stmt_at=stmt_at)
    elif t == "timestamp":
        _add(f, "prefer-timestamptz", at, f"{name} timestamp", stmt_at=stmt_at)


def _create_table(f: _File, node: Any, at: int) -> None:
    table = _name(node.relation)
    if not node.if_not_exists:
        _add(f, "require-if-not-exists", at, f"CREATE TABLE {table}", stmt_at=at)
    for elt in node.tableElts or ():
        if type(elt).__name__ == "ColumnDef":
            _check_type(f, elt, _loc(elt, at), at)
    f.created.add(table)


def _constraints(col: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for c in col.constraints or ():
        out[c.contype.name.removeprefix("CONSTR_")] = c
    return out


def _volatile(expr: Any) -> str:
    """The name of a volatile function called anywhere in ``expr`` ("" if none)."""
    for node in _walk(expr):
        if type(node).__name__ == "FuncCall":
            fn = getattr(node.funcname[-1], "sval", "").lower()
            if fn in VOLATILE:
                return fn
        if type(node).__name__ == "SQLValueFunction":
            continue  # now(), CURRENT_TIMESTAMP: stable — a fast default since PostgreSQL 11
    return ""


def _walk(node: Any) -> Iterator[Any]:
    if node is None:
        return
    if isinstance(node, tuple | list):
        for n in node:
            yield from _walk(n)
        return
    if not hasattr(node, "__slots__"):
        return
    yield node
    for slot in node.__slots__:
        value = getattr(node, slot, None)
        if isinstance(value, tuple | list) or hasattr(value, "__slots__"):
            yield from _walk(value)


def _alter_table(f: _File, node: Any, at: int) -> None:
    from pglast.enums import AlterTableType as T
    from pglast.enums import ConstrType as C

    table = _name(node.relation)
    new = table in f.created
    for cmd in node.cmds or ():
        where = _loc(cmd.def_, at) if cmd.def_ is not None else at
        sub = cmd.subtype
        if sub == T.AT_AddColumn:
            col = cmd.def_
            cons = _constraints(col)
            what = f"ALTER TABLE {table} ADD COLUMN {col.colname}"
            if not cmd.missing_ok:
                _add(f, "require-if-not-exists", where, what, stmt_at=at)
            _check_type(f, col, where, at)
            if new:
                continue
            default = cons.get("DEFAULT")
            if (
                ("NOTNULL" in cons or col.is_not_null)
                and default is None
                and "IDENTITY" not in cons
            ):
                _add(f, "adding-required-field", where, f"{what} NOT NULL without a default",
                     stmt_at=at)  # fmt: skip
            if default is not None and (fn := _volatile(default.raw_expr)):
                _add(f, "adding-field-with-volatile-default", _loc(default, where),
                     f"{what} DEFAULT {fn}()", stmt_at=at)  # fmt: skip
            if _type_name(col.typeName) in SERIAL or "IDENTITY" in cons or "PRIMARY" in cons:
                _add(f, "adding-serial-primary-key-field", where, what, stmt_at=at)
            if "GENERATED" in cons:
                _add(f, "adding-generated-stored-column", where, f"{what} GENERATED … STORED",
                     stmt_at=at)  # fmt: skip
            if "FOREIGN" in cons and not cons["FOREIGN"].skip_validation:
                _add(f, "adding-foreign-key-constraint", _loc(cons["FOREIGN"], where),
                     f"{what} REFERENCES …", stmt_at=at)  # fmt: skip
        elif sub == T.AT_DropColumn:
            _add(
                f, "ban-drop-column", at, f"ALTER TABLE {table} DROP COLUMN {cmd.name}", stmt_at=at
            )
            if not cmd.missing_ok:
                _add(f, "require-if-exists", at, f"DROP COLUMN {cmd.name}", stmt_at=at)
        elif sub == T.AT_AlterColumnType and not new:
            _add(f, "changing-column-type", where,
                 f"ALTER TABLE {table} ALTER COLUMN {cmd.name} TYPE …", stmt_at=at)  # fmt: skip
        elif sub == T.AT_SetNotNull and not new:
            _add(f, "adding-not-nullable-field", at,
                 f"ALTER TABLE {table} ALTER COLUMN {cmd.name} SET NOT NULL", stmt_at=at)  # fmt: skip
        elif sub == T.AT_AddConstraint and not new:
            c = cmd.def_
            kind = c.contype
            label = f"ALTER TABLE {table} ADD CONSTRAINT {c.conname or ''}".rstrip()
            if kind == C.CONSTR_FOREIGN and not c.skip_validation:
                _add(f, "adding-foreign-key-constraint", where, f"{label} FOREIGN KEY", stmt_at=at)
            elif kind == C.CONSTR_CHECK and not c.skip_validation:
                _add(f, "constraint-missing-not-valid", where, f"{label} CHECK", stmt_at=at)
            elif kind in (C.CONSTR_UNIQUE, C.CONSTR_EXCLUSION) and not c.indexname:
                _add(f, "disallowed-unique-constraint", where, f"{label} UNIQUE", stmt_at=at)
            elif kind == C.CONSTR_PRIMARY and not c.indexname:
                _add(f, "adding-primary-key-constraint", where, f"{label} PRIMARY KEY", stmt_at=at)


def _rename(f: _File, node: Any, at: int) -> None:
    from pglast.enums import ObjectType as O

    if node.renameType == O.OBJECT_COLUMN:
        _add(f, "renaming-column", at,
             f"ALTER TABLE {_name(node.relation)} RENAME COLUMN {node.subname} TO {node.newname}",
             stmt_at=at)  # fmt: skip
    elif node.renameType == O.OBJECT_TABLE and _name(node.relation) not in f.created:
        _add(f, "renaming-table", at,
             f"ALTER TABLE {_name(node.relation)} RENAME TO {node.newname}", stmt_at=at)  # fmt: skip


def _drop(f: _File, node: Any, at: int) -> None:
    from pglast.enums import ObjectType as O

    kind = node.removeType
    names = ", ".join(".".join(getattr(p, "sval", "?") for p in obj) if isinstance(obj, tuple)
                      else str(obj) for obj in node.objects or ())  # fmt: skip
    if kind == O.OBJECT_TABLE:
        _add(f, "ban-drop-table", at, f"DROP TABLE {names}", stmt_at=at)
    elif kind == O.OBJECT_INDEX and not node.concurrent:
        _add(f, "require-concurrent-index-deletion", at, f"DROP INDEX {names}", stmt_at=at)
    elif kind == O.OBJECT_SCHEMA:
        _add(f, "ban-drop-schema", at, f"DROP SCHEMA {names}", stmt_at=at)
    if not node.missing_ok and kind in (O.OBJECT_TABLE, O.OBJECT_INDEX, O.OBJECT_VIEW,
                                        O.OBJECT_SEQUENCE, O.OBJECT_TYPE, O.OBJECT_FUNCTION):  # fmt: skip
        _add(f, "require-if-exists", at, f"DROP {kind.name.removeprefix('OBJECT_')} {names}",
             stmt_at=at)  # fmt: skip


def _index(f: _File, node: Any, at: int) -> None:
    table = _name(node.relation)
    what = f"CREATE INDEX {node.idxname or ''} ON {table}".replace("  ", " ")
    if not node.concurrent and table not in f.created:
        _add(f, "require-concurrent-index-creation", at, what, stmt_at=at)
    if not node.if_not_exists:
        _add(f, "require-if-not-exists", at, what, stmt_at=at)


def _transaction(f: _File, node: Any, at: int) -> None:
    _add(f, "transaction-nesting", at, node.kind.name.removeprefix("TRANS_STMT_"), stmt_at=at)


def _truncate(f: _File, node: Any, at: int) -> None:
    names = ", ".join(_name(r) for r in node.relations or ())
    _add(f, "ban-truncate", at, f"TRUNCATE {names}", stmt_at=at)


def _update(f: _File, node: Any, at: int) -> None:
    table = _name(node.relation)
    if node.whereClause is None and table not in f.created and f.backfill is None:
        verb = "UPDATE" if type(node).__name__ == "UpdateStmt" else "DELETE FROM"
        _add(f, "unbatched-update", at, f"{verb} {table} without WHERE", stmt_at=at)


def _options(node: Any, attr: str) -> set[str]:
    return {str(getattr(d, "defname", "")).lower() for d in getattr(node, attr, None) or ()}


def _vacuum(f: _File, node: Any, at: int) -> None:
    if "full" in _options(node, "options"):
        _add(f, "ban-vacuum-full", at, "VACUUM FULL", stmt_at=at)


def _cluster(f: _File, node: Any, at: int) -> None:
    _add(f, "ban-cluster", at, f"CLUSTER {_name(getattr(node, 'relation', None))}", stmt_at=at)


def _reindex(f: _File, node: Any, at: int) -> None:
    if "concurrently" not in _options(node, "params"):
        _add(f, "require-concurrent-reindex", at, "REINDEX", stmt_at=at)


def _lock(f: _File, node: Any, at: int) -> None:
    _add(f, "lock-table", at, f"LOCK TABLE {', '.join(_name(r) for r in node.relations)}",
         stmt_at=at)  # fmt: skip


def _dropdb(f: _File, node: Any, at: int) -> None:
    _add(f, "ban-drop-database", at, f"DROP DATABASE {node.dbname}", stmt_at=at)


def _alter_domain(f: _File, node: Any, at: int) -> None:
    if getattr(node, "subtype", "") == "C":
        _add(f, "ban-alter-domain-with-add-constraint", at, "ALTER DOMAIN … ADD CONSTRAINT",
             stmt_at=at)  # fmt: skip


def _create_domain(f: _File, node: Any, at: int) -> None:
    if node.constraints:
        _add(f, "ban-create-domain-with-constraint", at, "CREATE DOMAIN … CHECK", stmt_at=at)


def _is_concurrent(node: Any) -> bool:
    kind = type(node).__name__
    if kind in ("IndexStmt", "DropStmt"):
        return bool(getattr(node, "concurrent", False))
    if kind == "ReindexStmt":
        return "concurrently" in _options(node, "params")
    return False


_CHECKS = {
    "CreateStmt": _create_table,
    "AlterTableStmt": _alter_table,
    "RenameStmt": _rename,
    "DropStmt": _drop,
    "IndexStmt": _index,
    "TransactionStmt": _transaction,
    "TruncateStmt": _truncate,
    "UpdateStmt": _update,
    "DeleteStmt": _update,
    "VacuumStmt": _vacuum,
    "ClusterStmt": _cluster,
    "ReindexStmt": _reindex,
    "LockStmt": _lock,
    "DropdbStmt": _dropdb,
    "AlterDomainStmt": _alter_domain,
    "CreateDomainStmt": _create_domain,
}

__all__ = ["Finding", "LintConfig", "Rule", "lint_migration", "lint_section", "phase_of"]
