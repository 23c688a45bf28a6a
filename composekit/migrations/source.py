"""Finding and parsing migration files.

Formats (auto-detected per directory, or forced with ``--format``):

* ``native`` (dbmate-compatible): ``VERSION_name.sql`` with ``-- migrate:up`` and
  ``-- migrate:down`` sections; ``-- migrate:up transaction:false`` is honoured.
* ``golang-migrate``: ``VERSION_name.up.sql`` / ``VERSION_name.down.sql`` pairs.
* ``flyway``: ``V1__name.sql`` (and ``V1.2__…``), with ``U1__name.sql`` undo files.

Versions compare numerically (``9 < 10``; dotted Flyway versions part by part). SQL is split
into statements with PostgreSQL's own scanner (pglast), so dollar-quoted bodies, comments and
strings survive; a ``-- composekit:no-transaction`` line, or any statement that cannot run in a
transaction block, makes the migration non-transactional.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

from composekit.errors import ConfigError

FORMATS = ("auto", "native", "golang-migrate", "flyway")

_NATIVE = re.compile(r"^(?P<version>\d+)_(?P<name>[\w.-]+)\.sql$")
_NATIVE_NONAME = re.compile(r"^(?P<version>\d+)\.sql$")
_GOLANG = re.compile(r"^(?P<version>\d+)_(?P<name>[\w.-]+?)\.(?P<dir>up|down)\.sql$")
_FLYWAY = re.compile(r"^(?P<kind>[VU])(?P<version>\d+(?:[._]\d+)*)__(?P<name>[\w.-]+)\.sql$")
_UP_MARK = re.compile(r"^--\s*migrate:up\b(?P<opts>.*)$", re.MULTILINE)
_DOWN_MARK = re.compile(r"^--\s*migrate:down\b(?P<opts>.*)$", re.MULTILINE)
_NO_TX_DIRECTIVE = re.compile(r"^--\s*composekit:no-transaction\s*$", re.MULTILINE)
BACKFILL = re.compile(r"^[ \t]*--[ \t]*composekit:backfill\b(?P<opts>.*)$", re.MULTILINE)
"""A line ``-- composekit:backfill [batch=5000] [pause=50ms] [key=id] [not-null=col,…]`` makes
the file's one UPDATE a batched backfill (see :mod:`composekit.migrations.backfill`)."""
STATEMENT_TIMEOUT = re.compile(
    r"^[ \t]*--[ \t]*composekit:statement-timeout\b[ \t]*(?P<value>\S*)", re.MULTILINE
)
"""A line ``-- composekit:statement-timeout 10min`` sets this file's statement_timeout."""

# statements PostgreSQL refuses inside a transaction block, by their leading keywords
_NO_TX_LEADS = (
    ("VACUUM",),
    ("ALTER", "SYSTEM"),
    ("CREATE", "DATABASE"),
    ("DROP", "DATABASE"),
    ("CREATE", "TABLESPACE"),
    ("DROP", "TABLESPACE"),
    ("REINDEX", "SYSTEM"),
    ("REINDEX", "DATABASE"),
)
_TX_CONTROL = {
    "BEGIN_P",
    "START",
    "COMMIT",
    "END_P",
    "ROLLBACK",
    "ABORT_P",
    "SAVEPOINT",
    "RELEASE",
    "PREPARE",
}


def version_key(version: str) -> tuple[int, ...]:
    """``"0009" -> (9,)``, ``"1.10" -> (1, 10)``: numeric order, whatever the padding."""
    return tuple(int(p) for p in re.split(r"[._]", version))


def normalize(raw: bytes) -> str:
    """Decode, strip a UTF-8 BOM and turn CRLF into LF: what the checksum and the server see."""
    text = raw.decode("utf-8-sig")
    return text.replace("\r\n", "\n")


def checksum(sql: str) -> str:
    return hashlib.sha256(sql.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Statement:
    sql: str
    line: int  # 1-based line in the file where the statement starts
    non_transactional: bool


@dataclass(frozen=True)
class Section:
    """The up or down SQL of a migration, and where it sits in its file."""

    path: Path
    sql: str
    first_line: int  # 1-based line of ``sql``'s first character in ``path``

    def line_of(self, offset: int) -> int:
        """File line of character ``offset`` (0-based) in ``sql``."""
        return self.first_line + self.sql.count("\n", 0, max(0, offset))

    def statements(self) -> list[Statement]:
        return split_statements(self)

    @property
    def empty(self) -> bool:
        if "/*" not in self.sql:  # fast path: only line comments and blanks?
            return all(
                not ln.strip() or ln.lstrip().startswith("--") for ln in self.sql.splitlines()
            )
        return not self.statements()


@dataclass(frozen=True)
class Backfill:
    """How a backfill migration runs: keyed batches of ``batch`` rows, each its own transaction,
    ``pause`` seconds apart; then each ``not_null`` column made NOT NULL the safe way."""

    batch: int = 5000
    pause: float = 0.05
    key: str | None = None  # default: the table's one-column primary key
    not_null: tuple[str, ...] = ()

    @classmethod
    def parse(cls, opts: str, where: str) -> Backfill:
        """``"batch=1000 pause=0.2s not-null=a,b"`` → Backfill; anything else is a ConfigError.

        >>> Backfill.parse(" batch=1000 pause=200ms", "f.sql").pause
        0.2
        """
        out = cls()
        for word in opts.split():
            name, eq, value = word.partition("=")
            name = name.lower().replace("_", "-")
            if not eq or not value:
                raise _backfill_error(where, f"{word!r} is not NAME=VALUE")
            if name == "batch":
                if not value.isdigit() or int(value) < 1:
                    raise _backfill_error(where, f"batch={value} is not a positive whole number")
                out = replace(out, batch=int(value))
            elif name == "pause":
                out = replace(out, pause=_seconds(value, where))
            elif name == "key":
                out = replace(out, key=value)
            elif name == "not-null":
                out = replace(out, not_null=tuple(c for c in value.split(",") if c))
            else:
                raise _backfill_error(where, f"unknown option {name!r}")
        return out


_UNITS = {"ms": 0.001, "s": 1.0, "": 1.0, "min": 60.0, "h": 3600.0}


def duration(value: str) -> float | None:
    """``"50ms"``, ``"1.5s"``, ``"10min"``, ``"2h"``, ``"30"`` (seconds) → seconds; else None.

    >>> duration("10min")
    600.0
    """
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|min|h)?", value.strip().lower())
    return float(m.group(1)) * _UNITS[m.group(2) or ""] if m else None


def _seconds(value: str, where: str) -> float:
    seconds = duration(value)
    if seconds is None:
        raise _backfill_error(where, f"pause={value} is not a duration like 50ms or 0.5s")
    return seconds


def _backfill_error(where: str, problem: str) -> ConfigError:
    return ConfigError(
        f"{where}: bad '-- composekit:backfill' line: {problem}",
        hint="write it as: -- composekit:backfill batch=5000 pause=50ms [key=id] [not-null=col]",
    )


@dataclass(frozen=True)
class Migration:
    version: str
    name: str
    up: Section
    down: Section | None
    transactional: bool
    reason: str = ""  # why it is not transactional
    format: str = "native"
    key: tuple[int, ...] = field(default=(), compare=False)
    down_reason: str = ""  # why its down section is not transactional ("": it is)
    contract: bool = False  # runs after the web rollout (see :data:`CONTRACT_DIR`, :data:`PHASE`)
    backfill: Backfill | None = None  # its one UPDATE runs in keyed batches (see :data:`BACKFILL`)
    statement_timeout: float | None = None  # seconds; overrides the setting for this file

    @property
    def down_transactional(self) -> bool:
        return not self.down_reason

    @property
    def down_is_noop(self) -> bool:
        """A down section that is there but holds no SQL (``-- no-op`` after a backfill): reverting
        removes the ledger row only — as golang-migrate and dbmate run such a file."""
        return self.down is not None and self.down.empty

    @property
    def checksum(self) -> str:
        return checksum(self.up.sql)

    @property
    def label(self) -> str:
        return f"{self.version}_{self.name}" if self.name else self.version

    @property
    def path(self) -> Path:
        return self.up.path


@dataclass
class Source:
    directory: Path
    format: str
    migrations: list[Migration]
    ignored: list[str]

    def by_version(self) -> dict[str, Migration]:
        return {m.version: m for m in self.migrations}


CONTRACT_DIR = "post"
"""Migrations in ``<migrations>/post/`` are **contract** migrations: a deploy applies them after the
new web serves and the old is retired (so they may drop what only the old release used)."""
PHASE = re.compile(r"^[ \t]*--[ \t]*composekit:phase[ \t]+contract\b", re.IGNORECASE | re.MULTILINE)
"""The same, marked in the file: a line ``-- composekit:phase contract``."""
PHASES = ("all", "expand", "contract")


def split_statements(section: Section) -> list[Statement]:
    """Statements of ``section`` with their file lines; comments and strings kept intact."""
    from pglast import parser

    sql = section.sql
    try:
        slices = parser.split(sql, with_parser=False, only_slices=True)
    except Exception:  # an unterminated string or comment: let the server report it
        return [Statement(sql, section.first_line, False)] if sql.strip() else []
    out = []
    for sl in slices:
        text = sql[sl]
        try:
            tokens = [t for t in parser.scan(text) if t.name not in ("SQL_COMMENT", "C_COMMENT")]
        except Exception:
            tokens = []
        if not tokens:
            continue  # blank or comments only
        start = sl.start + tokens[0].start  # leading comments are not part of the statement
        out.append(
            Statement(
                sql[start : sl.stop].rstrip(), section.line_of(start), _needs_autocommit(tokens)
            )
        )
    return out


def _needs_autocommit(tokens: list) -> bool:
    names = [t.name for t in tokens]
    words = tuple(n.removesuffix("_P") for n in names[:3])
    if names[0] in _TX_CONTROL:
        return True
    if any(words[: len(lead)] == lead for lead in _NO_TX_LEADS):
        return True
    if "CONCURRENTLY" in names:
        # CREATE/DROP INDEX, REINDEX, DETACH PARTITION … CONCURRENTLY; REFRESH MATERIALIZED VIEW
        # CONCURRENTLY is allowed in a transaction
        return names[0] != "REFRESH"
    return False


# words that can start or mark a statement that refuses a transaction block; text without any
# of them (the common case) needs no scanning at all
_MAYBE_NO_TX = re.compile(
    r"\b(concurrently|vacuum|system|database|tablespace|begin|start|commit|end|rollback|abort|savepoint|release|prepare)\b",
    re.IGNORECASE,
)


def _non_tx_reason(up: Section) -> str:
    if not _MAYBE_NO_TX.search(up.sql):
        return ""
    for stmt in up.statements():
        if stmt.non_transactional:
            first = " ".join(stmt.sql.split())[:60]
            return f"line {stmt.line}: {first}"
    return ""


def _read(path: Path) -> str:
    try:
        return normalize(path.read_bytes())
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path} is not UTF-8 text", hint="save the file as UTF-8") from exc
    except OSError as exc:
        raise ConfigError(
            f"cannot read {path}: {exc.strerror}", hint="check the file's permissions"
        ) from exc


def _make(
    version: str,
    name: str,
    up: Section,
    down: Section | None,
    fmt: str,
    force_no_tx: bool,
    force_down_no_tx: bool = False,
) -> Migration:
    reason = "directive" if force_no_tx else _non_tx_reason(up)
    down_reason = ""
    if down is not None:
        down_reason = "directive" if force_down_no_tx else _non_tx_reason(down)
    return Migration(
        version=version,
        name=name,
        up=up,
        down=down,
        transactional=not reason,
        reason=reason,
        format=fmt,
        key=version_key(version),
        down_reason=down_reason,
    )


def _as_backfill(m: Migration, options: Backfill) -> Migration:
    """A backfill holds exactly one UPDATE (so it can be batched and resumed) and runs outside
    one big transaction: each batch commits on its own."""
    statements = m.up.statements()
    if len(statements) != 1 or not statements[0].sql.lstrip()[:6].upper() == "UPDATE":
        raise ConfigError(
            f"{m.path.name}: a backfill migration holds exactly one UPDATE statement "
            f"(found {len(statements)} statement{'s' if len(statements) != 1 else ''})",
            hint="put the other statements in a migration of their own, before or after it",
        )
    return replace(m, backfill=options, transactional=False, reason="backfill: keyed batches")


def parse_native(path: Path, version: str, name: str) -> Migration:
    text = _read(path)
    up_m = _UP_MARK.search(text)
    if not up_m:
        raise ConfigError(
            f"{path.name} has no '-- migrate:up' line",
            hint="start the SQL with a line '-- migrate:up' (and optionally '-- migrate:down')",
        )
    down_m = _DOWN_MARK.search(text)
    if down_m and down_m.start() < up_m.start():
        raise ConfigError(
            f"{path.name}: '-- migrate:down' comes before '-- migrate:up'",
            hint="put the up section first",
        )
    up_start = up_m.end() + 1 if up_m.end() < len(text) else up_m.end()
    up_end = down_m.start() if down_m else len(text)
    up = Section(path, text[up_start:up_end], text.count("\n", 0, up_start) + 1)
    down = None
    if down_m:
        d_start = min(down_m.end() + 1, len(text))
        down = Section(path, text[d_start:], text.count("\n", 0, d_start) + 1)
    directive = bool(_NO_TX_DIRECTIVE.search(text))  # the whole file: both sections
    no_tx = "transaction:false" in up_m.group("opts") or directive
    down_no_tx = bool(down_m and "transaction:false" in down_m.group("opts")) or directive
    return _make(version, name, up, down, "native", no_tx, down_no_tx)


_POP_DIALECTS = ("postgres", "cockroach", "mysql", "mariadb", "sqlite3", "sqlite")
_POP_FIZZ = re.compile(r"^\d+_[\w.-]+\.(up|down)\.fizz$")


def pop_suffixes(name: str) -> tuple[str, str, bool]:
    """gobuffalo/pop (and Ory's) names: ``name[.dialect][.autocommit]`` in either order →
    (name, dialect or "", autocommit)."""
    parts = name.split(".")
    dialect, autocommit = "", False
    while len(parts) > 1 and (parts[-1] in _POP_DIALECTS or parts[-1] == "autocommit"):
        last = parts.pop()
        if last == "autocommit":
            autocommit = True
        else:
            dialect = last
    return ".".join(parts), dialect, autocommit


def _prefer_specific(
    group: list[tuple[str, str, Path]], specific: set[Path]
) -> list[tuple[str, str, Path]]:
    """A `.postgres.` file and a generic one of the same version: the PostgreSQL one."""
    mine = [e for e in group if e[2] in specific]
    return mine if mine else group


def detect_format(files: list[Path]) -> str:
    names = [f.name for f in files]
    if any(_GOLANG.match(n) for n in names):
        return "golang-migrate"
    if any(_FLYWAY.match(n) for n in names):
        return "flyway"
    return "native"


def load_source(directory: str | Path, fmt: str = "auto") -> Source:
    """Read every migration in ``directory``; config errors (duplicates, bad names) before any DB work.

    >>> load_source("migrations").migrations[0].version   # doctest: +SKIP
    '0001'
    """
    d = Path(directory)
    if not d.is_dir():
        raise ConfigError(
            f"migrations directory {d} does not exist",
            hint="create it (`composekit migrate new NAME` does), or set migrations_dir / --dir",
        )
    if fmt not in FORMATS:
        raise ConfigError(
            f"unknown migrations format {fmt!r}", hint=f"use one of: {', '.join(FORMATS)}"
        )
    files = sorted(p for p in d.iterdir() if p.is_file() and not p.name.startswith("."))
    if (d / CONTRACT_DIR).is_dir():  # contract migrations: the same versions, one sequence
        files += sorted(
            p for p in (d / CONTRACT_DIR).iterdir() if p.is_file() and not p.name.startswith(".")
        )
    fmt = detect_format(files) if fmt == "auto" else fmt
    ignored: list[str] = []
    found: dict[str, list[tuple[str, str, Path]]] = {}  # version -> [(kind, name, path)]
    no_tx_files: set[Path] = set()  # pop's `.autocommit.` files
    specific: set[Path] = set()  # pop's `.postgres.` files: they win over the generic ones

    for p in files:
        n = p.name
        if not n.endswith(".sql"):
            fizz = " (fizz: write it as SQL, e.g. VERSION_name.postgres.up.sql)"
            ignored.append(n + (fizz if _POP_FIZZ.match(n) else ""))
            continue
        if fmt == "native":
            m = _NATIVE.match(n) or _NATIVE_NONAME.match(n)
            if m:
                found.setdefault(m.group("version"), []).append(
                    ("up", m.groupdict().get("name") or "", p)
                )
                continue
            hint = "name it VERSION_name.sql, e.g. 20260101120000_add_users.sql"
        elif fmt == "golang-migrate":
            m = _GOLANG.match(n)
            if m:
                name, dialect, autocommit = pop_suffixes(m.group("name"))
                if dialect not in ("", "postgres"):
                    ignored.append(f"{n} (for {dialect}, not PostgreSQL)")
                    continue
                if autocommit:
                    no_tx_files.add(p)
                found.setdefault(m.group("version"), []).append((m.group("dir"), name, p))
                if dialect:
                    specific.add(p)
                continue
            hint = "name it VERSION_name.up.sql (and VERSION_name.down.sql)"
        else:
            m = _FLYWAY.match(n)
            if m:
                kind = "up" if m.group("kind") == "V" else "down"
                found.setdefault(m.group("version").replace("_", "."), []).append(
                    (kind, m.group("name"), p)
                )
                continue
            if re.match(r"^R__", n):
                ignored.append(f"{n} (Flyway repeatable migrations are not supported)")
                continue
            hint = "name it V<version>__name.sql (undo: U<version>__name.sql)"
        raise ConfigError(f"cannot parse migration file name {n!r} ({fmt} format)", hint=hint)

    migrations: list[Migration] = []
    duplicates: list[str] = []
    picked: dict[str, tuple[list[tuple[str, str, Path]], list[tuple[str, str, Path]]]] = {}
    for version, entries in found.items():
        ups = _prefer_specific([e for e in entries if e[0] == "up"], specific)
        downs = _prefer_specific([e for e in entries if e[0] == "down"], specific)
        for group in (ups, downs):
            if len(group) > 1:
                duplicates.append(f"{version}: {', '.join(e[2].name for e in group)}")
        picked[version] = (ups, downs)
    same_number: dict[tuple[int, ...], list[tuple[str, str]]] = {}
    for version, (ups, _) in picked.items():
        if ups:
            same_number.setdefault(version_key(version), []).append((version, ups[0][2].name))
    numeric = False
    for same in same_number.values():
        if len(same) > 1:  # versions compare numerically: 001 and 1 collide
            numeric = True
            same.sort()
            names = " and ".join(name for _, name in same)
            duplicates.append(f"{same[0][0]}: {names} have the same number")
    if duplicates:
        raise ConfigError(
            f"duplicate migration version{'s' if len(duplicates) > 1 else ''} "
            + "; ".join(duplicates[:3])
            + (f"; and {len(duplicates) - 3} more (below)" if len(duplicates) > 3 else ""),
            hint="give each a version of its own (`composekit migrate new` picks the next free one)"
            + ("; versions compare as numbers, so 001 and 1 collide" if numeric else ""),
            details=duplicates if len(duplicates) > 3 else [],
        )
    for version, (ups, downs) in picked.items():
        if not ups:
            raise ConfigError(
                f"migration {version} has a down/undo file but no up file: {downs[0][2].name}",
                hint="add the up file or remove the down file",
            )
        _, name, up_path = ups[0]
        if fmt == "native":
            mig = parse_native(up_path, version, name)
        else:
            text = _read(up_path)
            up = Section(up_path, text, 1)
            down_text = _read(downs[0][2]) if downs else ""
            down = Section(downs[0][2], down_text, 1) if downs else None
            mig = _make(
                version,
                name,
                up,
                down,
                fmt,
                bool(_NO_TX_DIRECTIVE.search(text)) or up_path in no_tx_files,
                bool(_NO_TX_DIRECTIVE.search(down_text))
                or bool(downs and downs[0][2] in no_tx_files),
            )
        whole = _read(up_path)  # directives may sit above `-- migrate:up`
        if up_path.parent.name == CONTRACT_DIR or PHASE.search(whole):
            mig = replace(mig, contract=True)
        limit = STATEMENT_TIMEOUT.search(whole)
        if limit:
            seconds = duration(limit.group("value"))
            if not seconds:
                raise ConfigError(
                    f"{up_path.name}: '-- composekit:statement-timeout {limit.group('value')}' "
                    "is not a duration",
                    hint="write e.g. -- composekit:statement-timeout 10min (ms, s, min, h)",
                )
            mig = replace(mig, statement_timeout=seconds)
        marked = BACKFILL.search(whole)
        if marked:
            mig = _as_backfill(mig, Backfill.parse(marked.group("opts"), up_path.name))
        migrations.append(mig)
    migrations.sort(key=lambda m: m.key)
    return Source(d, fmt, migrations, ignored)
