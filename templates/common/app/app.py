"""{{name}}: a tiny example web app (stdlib HTTP server + psycopg).

GET /healthz  200 when the database answers, 503 otherwise
GET /         the users table (with the bio column once migration 0001 is applied);
              ?user=KEY shows whether the feature flag `beta-banner` is on for that visitor
              (`composekit flag rollout beta-banner 10` turns it on for 10 % of them)
With MIGRATE_ON_START=1 it applies pending migrations before serving (composekit's advisory lock
makes that safe with several replicas) and exits with a clear log line if that fails.
"""

import html
import json
import os
import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import psycopg
from composekit import flags

DATABASE_URL = os.environ["DATABASE_URL"]
PORT = int(os.environ.get("PORT", "8000"))


def migrate_on_start() -> None:
    from composekit import migrations
    from composekit.errors import ComposekitError

    try:
        result = migrations.upgrade(DATABASE_URL, os.environ.get("MIGRATIONS_DIR", "/app/migrations"),
                                    progress=lambda m: print(f"migrate: {m}", flush=True))
    except ComposekitError as exc:
        print(f"migrate: FAILED: {exc.message} — fix: {exc.hint}", file=sys.stderr, flush=True)
        sys.exit(1)
    print(f"migrate: database at {result.current or 'nothing applied'}", flush=True)


class Handler(BaseHTTPRequestHandler):
    def _send(self, code: int, body: str, ctype: str = "text/plain; charset=utf-8") -> None:
        data = body.encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802
        url = urlsplit(self.path)
        try:
            with psycopg.connect(DATABASE_URL, connect_timeout=3, client_encoding="utf8") as conn:
                if url.path == "/healthz":
                    conn.execute("SELECT 1")
                    return self._send(200, "ok\n")
                if url.path != "/":
                    return self._send(404, "not found\n")
                # every column but the timestamp, read in ONE statement: a migration's new column
                # shows up by itself, and one dropped meanwhile cannot break the page
                rows = [json.loads(r[0]) for r in conn.execute(
                    "SELECT row_to_json(u)::text FROM users u ORDER BY id").fetchall()]
                # the same answer for the same visitor, in every replica (off until rolled out)
                visitor = parse_qs(url.query).get("user", [None])[0]
                beta = visitor is not None and flags.enabled(conn, "beta-banner", key=visitor)
        except psycopg.Error as exc:
            return self._send(503, f"database unavailable: {type(exc).__name__}\n")
        cols = [c for c in (rows[0] if rows else {}) if c != "created_at"]
        head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
        body = "".join("<tr>" + "".join(f"<td>{html.escape('' if r.get(c) is None else str(r[c]))}</td>" for c in cols) + "</tr>" for r in rows)
        banner = "<p class=flag>beta-banner: on for you</p>" if beta else ""
        page = f"<!doctype html><title>{{name}}</title><h1>Users</h1>{banner}<table><tr>{head}</tr>{body}</table>\n"
        self._send(200, page, "text/html; charset=utf-8")

    def log_message(self, fmt: str, *args: object) -> None:
        if self.path != "/healthz":
            sys.stderr.write(f"web: {self.address_string()} {fmt % args}\n")


def main() -> None:
    if os.environ.get("MIGRATE_ON_START") == "1":
        migrate_on_start()
    server = ThreadingHTTPServer(("0.0.0.0", PORT), Handler)
    signal.signal(signal.SIGTERM, lambda *_: (server.server_close(), sys.exit(0)))
    print(f"web: serving on :{PORT}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
