"""Feature flags for rollouts across services: a table in the app's own database, a percentage per
flag, and a deterministic answer per key (user id, account, tenant…).

An app asks::

    from composekit import flags
    if flags.enabled(conn, "new-checkout", key=user_id): ...

* **Deterministic.** A key's bucket is ``sha256(name, key)`` mod 10,000, the same in every process,
  host and language that computes it; the flag is on for a key when its bucket is under
  ``percent`` × 100. Raising the percentage only adds keys (10 % → 25 % keeps the first 10 %), and
  each flag buckets keys on its own (the first 10 % of two flags are different users).
* **Safe by default.** An unknown flag, or a database without the table, answers ``default``
  (False): ship the code first, turn it on later.
* **Recorded.** ``composekit flag set|rollout`` write the change and a history row (who, when,
  from, to) in one transaction; ``composekit flag history`` reads it back.

The SQL below is plain text with literals quoted here, so the CLI can run it with psql inside the
db container (no published port) as well as over psycopg.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

TABLE = "composekit_flags"
HISTORY = "composekit_flag_history"
BUCKETS = 10_000
NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")

DDL = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (
    name       text PRIMARY KEY,
    percent    numeric(5,2) NOT NULL DEFAULT 0 CHECK (percent BETWEEN 0 AND 100),
    updated_at timestamptz NOT NULL DEFAULT now(),
    updated_by text
);
CREATE TABLE IF NOT EXISTS {HISTORY} (
    id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name    text NOT NULL,
    at      timestamptz NOT NULL DEFAULT now(),
    by      text,
    before  numeric(5,2),
    after   numeric(5,2)
);
"""


def bucket(name: str, key: object) -> int:
    """``key``'s bucket for flag ``name``, 0 … 9,999: the same everywhere, every time.

    >>> bucket("new-checkout", 42) == bucket("new-checkout", "42")
    True
    """
    digest = hashlib.sha256(f"{name}\0{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS


def on_for(name: str, percent: float, key: object | None) -> bool:
    """Whether a flag at ``percent`` is on for ``key`` (no key: only when it is on for all)."""
    if percent >= 100:
        return True
    if key is None or percent <= 0:
        return False
    return bucket(name, key) < round(percent * BUCKETS / 100)


def percent(conn: Any, name: str) -> float | None:
    """The flag's percentage, or None when there is no such flag (or no flags table yet). Runs in
    a savepoint, so a missing table never breaks the caller's transaction (psycopg 3)."""
    import psycopg

    try:
        with conn.transaction():
            row = conn.execute(f"SELECT percent FROM {TABLE} WHERE name = %s", [name]).fetchone()
    except psycopg.errors.UndefinedTable:
        return None
    return None if row is None else float(row[0])


def enabled(conn: Any, name: str, key: object | None = None, default: bool = False) -> bool:
    """Is flag ``name`` on for ``key``? ``conn`` is a psycopg 3 connection.

    >>> enabled(conn, "new-checkout", key=user.id)   # doctest: +SKIP
    True
    """
    pct = percent(conn, name)
    return default if pct is None else on_for(name, pct, key)


# -- what the CLI runs ----------------------------------------------------------------------


@dataclass(frozen=True)
class Flag:
    name: str
    percent: float
    updated_at: str
    updated_by: str | None

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Flag:
        return cls(d["name"], float(d["percent"]), d["updated_at"], d["updated_by"])

    def to_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


@dataclass(frozen=True)
class FlagChange:
    name: str
    at: str
    by: str | None
    before: float | None  # None: the flag was created
    after: float | None  # None: the flag was deleted
    unchanged: bool = False  # it was already so: nothing was written

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FlagChange:
        before = None if d["before"] is None else float(d["before"])
        after = None if d["after"] is None else float(d["after"])
        return cls(d["name"], d["at"], d["by"], before, after)

    def to_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()

    def describe(self) -> str:
        if self.unchanged:
            return f"{self.name} is already at {self.after:g}%: nothing changed"
        was = "new" if self.before is None else f"{self.before:g}%"
        return f"{self.name}: {was} → {'deleted' if self.after is None else f'{self.after:g}%'}"


def literal(value: object) -> str:
    """A value as an SQL literal (numbers and text only)."""
    if value is None:
        return "NULL"
    if isinstance(value, int | float):
        return repr(float(value))
    return "'" + str(value).replace("'", "''") + "'"


# one change as a JSON object (what :meth:`FlagChange.from_dict` reads), from a history row
_CHANGE = "json_build_object('name', name, 'at', at, 'by', by, 'before', before, 'after', after)"


def exists_sql() -> str:
    """``t`` when the flags tables are there: reading first asks, so ``list`` creates nothing."""
    return f"SELECT to_regclass('{TABLE}') IS NOT NULL AND to_regclass('{HISTORY}') IS NOT NULL"


def change_statements(name: str, pct: float, by: str) -> list[str]:
    """Create or change a flag and record the change; run them in ONE transaction. The last
    returns one JSON text: the change (for :meth:`FlagChange.from_dict`), or no row when the flag
    already had that percentage (then nothing is written)."""
    n, p, b = literal(name), literal(pct), literal(by)
    return [
        DDL.strip(),
        f"LOCK TABLE {TABLE} IN SHARE ROW EXCLUSIVE MODE",  # one change at a time: before is right
        f"WITH old AS (SELECT percent FROM {TABLE} WHERE name = {n}), "
        f"up AS (INSERT INTO {TABLE} (name, percent, updated_at, updated_by) "
        f"VALUES ({n}, {p}, now(), {b}) ON CONFLICT (name) DO UPDATE SET "
        "percent = EXCLUDED.percent, updated_at = EXCLUDED.updated_at, "
        f"updated_by = EXCLUDED.updated_by WHERE {TABLE}.percent IS DISTINCT FROM EXCLUDED.percent "
        "RETURNING percent), "
        f"h AS (INSERT INTO {HISTORY} (name, by, before, after) "
        f"SELECT {n}, {b}, (SELECT percent FROM old), percent FROM up RETURNING *) "
        f"SELECT {_CHANGE}::text FROM h",
    ]


def delete_statements(name: str, by: str) -> list[str]:
    """Remove a flag and record it (``after`` NULL); no row comes back when there is no such flag."""
    n, b = literal(name), literal(by)
    return [
        f"WITH d AS (DELETE FROM {TABLE} WHERE name = {n} RETURNING percent), "
        f"h AS (INSERT INTO {HISTORY} (name, by, before, after) SELECT {n}, {b}, percent, NULL "
        f"FROM d RETURNING *) SELECT {_CHANGE}::text FROM h",
    ]


def list_sql() -> str:
    return (
        "SELECT coalesce(json_agg(json_build_object('name', name, 'percent', percent, "
        f"'updated_at', updated_at, 'updated_by', updated_by) ORDER BY name), '[]')::text FROM {TABLE}"
    )


def history_sql(name: str | None = None) -> str:
    where = f" WHERE name = {literal(name)}" if name else ""
    return f"SELECT coalesce(json_agg({_CHANGE} ORDER BY id), '[]')::text FROM {HISTORY}{where}"


def parse_percent(text: str) -> float:
    """``"10"``, ``"12.5"``, ``"10%"``, ``on`` (100), ``off`` (0) → a percentage; else ValueError."""
    word = text.strip().lower().removesuffix("%")
    named = {"on": 100.0, "off": 0.0, "true": 100.0, "false": 0.0}
    value = named[word] if word in named else float(word)
    if not 0 <= value <= 100:
        raise ValueError(f"{text!r} is not a percentage from 0 to 100")
    if round(value, 2) != value:
        raise ValueError(f"{text!r} has more than two decimals")
    return value
