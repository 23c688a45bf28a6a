"""PostgreSQL connections and advisory locks, shared by migrations, backups and deploys."""

from __future__ import annotations

import getpass
import hashlib
import logging
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any

from composekit.errors import ConfigError, DatabaseUnavailable, LockTimeout
from composekit.progress import Progress
from composekit.redact import redact

log = logging.getLogger("composekit.db")


def describe_url(url: str) -> str:
    """``user@host:port/db`` without the password, for messages."""
    from psycopg.conninfo import conninfo_to_dict

    try:
        d = conninfo_to_dict(url)
    except Exception:
        return redact(url)
    host = d.get("host") or "localhost"
    port = d.get("port") or "5432"
    return f"{d.get('user') or getpass.getuser()}@{host}:{port}/{d.get('dbname') or ''}"


def connect(url: str, application_name: str, origin: str = "", timeout: int = 10) -> Any:
    """A psycopg connection in autocommit mode, or one clear :class:`DatabaseUnavailable`.

    The client encoding is always UTF8, whatever the URL, PGCLIENTENCODING or the database
    say: psycopg returns ``bytes`` for text under SQL_ASCII and cannot send non-ASCII SQL, and
    migration files are UTF-8 (PostgreSQL converts to LATIN1 and the like itself).
    """
    import psycopg

    where = describe_url(url)
    src = f" (from {origin})" if origin else ""
    try:
        conn = psycopg.connect(
            url,
            autocommit=True,
            connect_timeout=timeout,
            application_name=application_name[:63],
            client_encoding="UTF8",  # keyword arguments override the URL and the environment
        )
        conn.prepare_threshold = None  # every migration's SQL is different: no prepare bookkeeping
        return conn
    except psycopg.OperationalError as exc:
        msg = redact(str(exc)).strip().splitlines()
        text = " ".join(msg)
        low = text.lower()
        if "password authentication failed" in low or "no password supplied" in low:
            hint = f"check the user and password in the database URL{src}"
            problem = "the database refused the login"
        elif "does not exist" in low and "database" in low:
            hint = "create the database, or fix the database name in the URL"
            problem = "the database does not exist"
        elif (
            "refused" in low
            or "could not connect" in low
            or "timeout" in low
            or "translate host" in low
        ):
            hint = "is PostgreSQL running and reachable at that host and port?" + (
                f" (the URL is from {origin})" if origin else ""
            )
            problem = "cannot reach the database"
        else:
            hint = f"check the database URL{src}"
            problem = "cannot connect to the database"
        raise DatabaseUnavailable(
            f"{problem} at {where}: {_reason(msg) or exc}", hint=hint
        ) from exc
    except psycopg.ProgrammingError as exc:  # malformed conninfo
        raise ConfigError(
            f"invalid database URL {redact(url)}: {redact(str(exc))}", hint="fix the URL"
        ) from exc


def _reason(lines: list[str]) -> str:
    """libpq's own words, without its framing: ``connection to server at "h", port 1 failed:
    Connection refused`` (then a tab-indented "Is the server running…?", which the hint says
    better) gives ``Connection refused``."""
    for line in lines:
        if "failed:" in line:
            reason = line.rsplit("failed:", 1)[1].strip()
            if reason:
                return reason
    return next((ln.strip() for ln in reversed(lines) if ln.strip()), "")


def who_am_i() -> str:
    try:
        user = getpass.getuser()
    except Exception:
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def lock_key(table: str, purpose: str = "migrate") -> int:
    """A stable signed 64-bit advisory lock key per ledger table and purpose."""
    digest = hashlib.sha256(f"composekit:{purpose}:{table}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


@dataclass(frozen=True)
class LockHolder:
    pid: int
    application_name: str
    since: str
    query: str = ""

    def __str__(self) -> str:
        app = f", {self.application_name}" if self.application_name else ""
        return f"pid {self.pid}{app}, since {self.since}"


def lock_holder(conn: Any, key: int) -> LockHolder | None:
    row = conn.execute(
        "SELECT a.pid, coalesce(a.application_name, ''), "
        "to_char(coalesce(a.backend_start, now()) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') "
        "FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
        "WHERE l.locktype = 'advisory' AND l.granted AND l.database = "
        "(SELECT oid FROM pg_database WHERE datname = current_database()) "
        "AND ((l.classid::bigint << 32) | l.objid::bigint) = (%s::bigint & x'ffffffffffffffff'::bigint) "
        "LIMIT 1",
        [key],
    ).fetchone()
    if row is None:
        return None
    app = row[1]
    # composekit holders put the time they took the lock in their application_name
    since = app.rsplit(" since ", 1)[1] if " since " in app else row[2]
    return LockHolder(row[0], app.rsplit(" since ", 1)[0], since)


@contextmanager
def advisory_lock(
    conn: Any, key: int, wait: float, what: str, progress: Progress, app_name: str
) -> Iterator[None]:
    """Hold a session-level advisory lock on ``conn``; wait up to ``wait`` seconds naming the holder."""
    deadline = time.monotonic() + wait
    next_report = 0.0
    delay = 0.05
    while True:
        if conn.execute("SELECT pg_try_advisory_lock(%s)", [key]).fetchone()[0]:
            break
        holder = lock_holder(conn, key)
        now = time.monotonic()
        if now >= deadline:
            who = str(holder) if holder else "another session"
            waited = f" (waited {wait:g}s)" if wait else ""
            raise LockTimeout(
                f"the {what} lock is held by {who}{waited}",
                hint="let that run finish, or raise --lock-wait; if it is stuck, "
                + (
                    f"SELECT pg_terminate_backend({holder.pid})"
                    if holder
                    else "find it in pg_stat_activity"
                ),
            )
        if now >= next_report:
            progress(
                f"waiting for the {what} lock held by {holder or 'another session'} (up to {wait:g}s)"
            )
            next_report = now + 5
        time.sleep(min(delay, max(0.0, deadline - now)))
        delay = min(delay * 1.5, 0.5)
    since = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    name = f"{app_name[: 63 - 27]} since {since}"
    conn.execute("SELECT set_config('application_name', %s, false)", [name])
    try:
        yield
    finally:
        _unlock(conn, key, what)


def _unlock(conn: Any, key: int, what: str) -> None:
    """Never raises: the caller closes the session next, which releases the lock anyway, and an
    error here must not hide the one that ended the run."""
    try:
        row = conn.execute("SELECT pg_advisory_unlock(%s)", [key]).fetchone()
    except Exception as exc:
        if _connection_gone(conn, exc):
            log.debug("%s lock: connection gone, PostgreSQL released it with the session", what)
        else:
            log.debug(
                "%s lock: unlock failed; closing the session releases it", what, exc_info=True
            )
        return
    if not (row and row[0]):
        log.debug("%s lock: was no longer held by this session at unlock", what)


def _connection_gone(conn: Any, exc: Exception) -> bool:
    if getattr(conn, "closed", False):
        return True
    psycopg = sys.modules.get("psycopg")  # not loaded: conn is not a psycopg connection
    return psycopg is not None and isinstance(
        exc, psycopg.OperationalError | psycopg.InterfaceError
    )


class BlockerWatch:
    """Names who blocks the statement running on ``work_pid``, polled from another connection.

    One thread serves a whole run; :meth:`watching` arms it around each statement and it polls
    ``pg_blocking_pids`` only once a statement has run for a while, so fast migrations cost
    nothing but two condition-variable notifications.
    """

    def __init__(
        self,
        conn: Any,
        work_pid: int,
        lock_timeout: float = 5.0,
        progress: Callable[[str], None] | None = None,
        report_after: float = 5.0,
        report_every: float = 10.0,
    ) -> None:
        self.conn = conn
        self.pid = work_pid
        # a statement running longer than report_after says how far it is, every report_every
        self.progress = progress
        self.report_after = report_after
        self.report_every = report_every
        self.label = ""
        self._started = 0.0
        # start looking well before lock_timeout fires, or a short timeout is never explained
        self.after = min(0.3, lock_timeout / 4, report_after)
        self.every = min(0.25, lock_timeout / 4, report_every)
        self.blockers: list[LockHolder] = []
        self.error: Exception | None = None  # the last failed poll (then blockers stays empty)
        self._cond = threading.Condition()
        self._armed: int | None = None
        self._generation = 0
        self._closed = False
        self._thread: threading.Thread | None = None

    @contextmanager
    def watching(self, label: str = "") -> Iterator[BlockerWatch]:
        """Around one statement; ``label`` names it in progress lines (e.g. ``0003_x.sql:4``)."""
        with self._cond:
            self.label = label
            self._started = time.monotonic()
            self._generation += 1
            self._armed = self._generation
            self.blockers = []
            self._cond.notify()
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, daemon=True, name="composekit-blocker-watch"
            )
            self._thread.start()
        try:
            yield self
        finally:
            with self._cond:
                self._armed = None
                self._cond.notify()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _still(self, gen: int) -> bool:
        return self._armed == gen and not self._closed

    def _done(self, gen: int) -> bool:
        return not self._still(gen)

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._armed is not None or self._closed)
                if self._closed:
                    return
                gen = self._armed
                assert gen is not None
                if self._cond.wait_for(partial(self._done, gen), timeout=self.after):
                    continue  # the statement finished quickly
            next_report = self._started + self.report_after
            while True:
                try:
                    found = self._poll()
                    if self.progress is not None and time.monotonic() >= next_report:
                        next_report = time.monotonic() + self.report_every
                        line = self._how_far_safely()
                        if self._still(gen):
                            self.progress(line)
                except Exception as exc:  # e.g. the lock connection was lost: name no one
                    log.debug("blocker watch: cannot read pg_blocking_pids: %s", exc)
                    with self._cond:
                        self.error = exc
                        self.blockers = []
                        # one try per statement; the thread lives on for the next one
                        self._cond.wait_for(partial(self._done, gen))
                    break
                with self._cond:
                    if not self._still(gen):
                        break
                    if found:
                        self.blockers = found
                    if self._cond.wait_for(partial(self._done, gen), timeout=self.every):
                        break

    def _how_far_safely(self) -> str:
        try:
            return self._how_far()
        except Exception:  # an older server without one of the views: elapsed time only
            return (
                f"{self.label or 'statement'}: running for {time.monotonic() - self._started:.0f}s"
            )

    def _how_far(self) -> str:
        """``LABEL: running for 12s`` and, where PostgreSQL reports it, the phase and share done
        (``pg_stat_progress_create_index``, ``_cluster``, ``_copy``)."""
        elapsed = time.monotonic() - self._started
        row = self.conn.execute(
            "SELECT 'CREATE INDEX: ' || phase || coalesce(', ' || CASE "
            "WHEN blocks_total > 0 THEN round(100.0 * blocks_done / blocks_total) || '%% of blocks' "
            "WHEN tuples_total > 0 THEN round(100.0 * tuples_done / tuples_total) || '%% of tuples' "
            "END, '') FROM pg_stat_progress_create_index WHERE pid = %(p)s "
            "UNION ALL SELECT command || ': ' || phase || coalesce(', ' || CASE "
            "WHEN heap_blks_total > 0 THEN round(100.0 * heap_blks_scanned / heap_blks_total) "
            "|| '%% of blocks' END, '') FROM pg_stat_progress_cluster WHERE pid = %(p)s "
            "UNION ALL SELECT 'COPY: ' || tuples_processed || ' rows' || coalesce(', ' || CASE "
            "WHEN bytes_total > 0 THEN round(100.0 * bytes_processed / bytes_total) || '%%' END, '') "
            "FROM pg_stat_progress_copy WHERE pid = %(p)s",
            {"p": self.pid},
        ).fetchone()
        phase = f"; {row[0]}" if row and row[0] else ""
        waiting = f"; waiting for {self.blockers[0].pid}" if self.blockers else ""
        return f"{self.label or 'statement'}: running for {elapsed:.0f}s{phase}{waiting}"

    def _poll(self) -> list[LockHolder]:
        rows = self.conn.execute(
            "SELECT pid, coalesce(application_name, ''), "
            "to_char(coalesce(xact_start, query_start) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), "
            "left(regexp_replace(query, '\\s+', ' ', 'g'), 120) "
            "FROM pg_stat_activity WHERE pid = ANY(pg_blocking_pids(%s))",
            [self.pid],
        ).fetchall()
        return [LockHolder(r[0], r[1], r[2] or "?", r[3]) for r in rows]
