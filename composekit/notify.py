"""Alerts: every deploy, rollback and restore event as one JSON object, POSTed to
``[notify] webhook`` and/or handed to ``[notify] command`` (on stdin).

Events: ``deploy.started``, ``deploy.succeeded``, ``deploy.failed`` (refused or undone),
``deploy.undo_failed`` (a person must act), the same for ``rollback.*``, and ``restore.succeeded``
/ ``restore.failed``. Their shape is ``composekit/schemas/composekit.schema.json#/$defs/event``
(shipped in the package). A webhook gets up to three tries (2 s each, backoff 0.5 s, 1 s); a deploy
never waits more than about :data:`BUDGET` seconds on alerts, and a failed alert is reported,
never fails the command. The webhook's address may hold a token: only its host is ever printed.
"""

from __future__ import annotations

import json
import shlex
import time
from datetime import UTC, datetime
from typing import Any

from composekit import proc
from composekit.hooks import HookEvent
from composekit.progress import Progress, silent
from composekit.redact import redact

SCHEMA = "composekit/event/1"
BUDGET = 5.0  # seconds the alerts of one event may take, all tries included
TRIES = 3


def event_json(name: str, event: HookEvent) -> dict[str, Any]:
    """The event as the schema's ``event``: every field of :class:`HookEvent`, typed."""
    fields = {k: v for k, v in event.__dict__.items() if k != "extra"}
    duration = fields.pop("duration_s") or None
    return {
        "schema": SCHEMA,
        "event": name,
        "at": datetime.now(UTC).isoformat(),
        **{k: (v or None) for k, v in fields.items()},
        "duration_s": float(duration) if duration else None,
        "extra": dict(event.extra),
    }


def send(
    name: str,
    event: HookEvent,
    *,
    webhook: str | None,
    command: str | None,
    progress: Progress = silent,
) -> list[str]:
    """Deliver one event; returns what went wrong (also reported through ``progress``)."""
    if not webhook and not command:
        return []
    body = json.dumps(event_json(name, event))
    problems = []
    deadline = time.monotonic() + BUDGET
    if webhook:
        try:
            problem = _post(webhook, body, deadline)
        except Exception as exc:
            problem = f"the webhook failed: {type(exc).__name__}"
        if problem:
            problems.append(problem)
    if command:
        try:
            proc.run(
                shlex.split(command), timeout=max(1.0, deadline - time.monotonic()), input=body
            )
        except Exception as exc:
            problems.append(f"[notify] command failed: {getattr(exc, 'message', exc)}")
    for p in problems:
        progress(f"alert {name}: {p}")
    return problems


def _post(url: str, body: str, deadline: float) -> str:
    import http.client
    import urllib.error
    import urllib.request
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    host = parts.hostname or "?"
    headers = {"Content-Type": "application/json", "User-Agent": "composekit"}
    if parts.username is not None:  # user:token@host → basic auth (urllib sends none by itself)
        import base64
        from urllib.parse import unquote

        pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        netloc = host + (f":{parts.port}" if parts.port else "")
        url = parts._replace(netloc=netloc).geturl()
    last = ""
    for attempt in range(TRIES):
        left = deadline - time.monotonic()
        if left <= 0.1:
            break
        try:
            req = urllib.request.Request(
                url,
                data=body.encode(),
                headers=headers,
                method="POST",
            )
            with urllib.request.urlopen(req, timeout=min(2.0, left)) as r:
                if 200 <= r.status < 300:
                    return ""
                last = f"HTTP {r.status}"
        except urllib.error.HTTPError as exc:
            last = f"HTTP {exc.code}"
        except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as exc:
            reason = getattr(exc, "reason", exc)
            text = redact(str(getattr(reason, "strerror", None) or reason)).strip()
            last = " ".join(text.split())[:80] or type(reason).__name__
        if attempt < TRIES - 1:
            time.sleep(min(0.5 * 2**attempt, max(0.0, deadline - time.monotonic())))
    return f"the webhook at {host} did not take it ({last or 'out of time'})"
