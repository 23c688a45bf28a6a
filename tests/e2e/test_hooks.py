"""Hooks and alerts on the real engine: each hook runs with its documented COMPOSEKIT_* variables;
a failing pre-deploy (or pre-restore) hook stops the command before anything changes; a failed
deploy runs on-failure; webhook events arrive at a local server in order, retried after a 500,
each valid against the shipped JSON Schema (as is `status --json`)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path

import jsonschema
import pytest

from composekit.errors import ExitCode
from tests.apps import App, fingerprint, migration, web_image
from tests.helpers import run_cli

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

HOOK = """#!/bin/sh
env | grep '^COMPOSEKIT_' | sort > "$(dirname "$0")/../{name}.env"
echo "{name} says hello"
exit {code}
"""


class Receiver:
    """A webhook: records each JSON body; answers 500 to the first request (to be retried)."""

    def __init__(self) -> None:
        self.events: list[dict] = []  # type: ignore[type-arg]
        self.requests = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests += 1
                if receiver.requests == 1:
                    self.send_response(500)
                else:
                    receiver.events.append(json.loads(body))
                    self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/deploys?token=s3cr3t-token"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def names(self) -> list[str]:
        return [e["event"] for e in self.events]


def schema(part: str) -> dict:  # type: ignore[type-arg]
    """The shipped schema, narrowed to one of its documents."""
    text = resources.files("composekit").joinpath("schemas/composekit.schema.json").read_text()
    whole = json.loads(text)
    return {"$schema": whole["$schema"], "$defs": whole["$defs"], "$ref": f"#/$defs/{part}"}


def hook(app: App, name: str, code: int = 0) -> None:
    d = app.dir / ".composekit" / "hooks"
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_text(HOOK.format(name=name, code=code))
    (d / name).chmod(0o755)


def seen(app: App, name: str) -> dict[str, str]:
    path = app.dir / ".composekit" / f"{name}.env"
    text = path.read_text()
    path.unlink()
    return dict(line.split("=", 1) for line in text.splitlines())


def test_hooks_run_with_their_variables_and_alerts_arrive_in_order(make_app) -> None:  # type: ignore[no-untyped-def]
    app = make_app("migrator")
    assert run_cli("-C", str(app.dir), "deploy", "--timeout", "120").returncode == 0
    receiver = Receiver()
    with open(app.dir / "composekit.toml", "a") as toml:
        toml.write(f'\n[notify]\nwebhook = "{receiver.url}"\n')
    migration(app, "0002_nick.sql", "ALTER TABLE users ADD COLUMN nick text;",
              "ALTER TABLE users DROP COLUMN nick;")  # fmt: skip
    good, image = fingerprint(app), web_image(app)
    backups = sorted((app.dir / "backups").glob("*.dump"))

    # a failing pre-deploy hook: stopped before the backup, exit 6, nothing changed
    hook(app, "pre-deploy", code=3)
    r = run_cli("-C", str(app.dir), "deploy", "--timeout", "120")
    assert r.returncode == ExitCode.VERIFY, r.stderr
    assert "hook pre-deploy failed (exit 3): pre-deploy says hello" in r.stderr
    assert "the deploy was stopped before anything changed" in r.stderr
    assert fingerprint(app) == good and web_image(app) == image
    assert sorted((app.dir / "backups").glob("*.dump")) == backups
    assert seen(app, "pre-deploy")["COMPOSEKIT_LEDGER_BEFORE"] == "0001"
    assert receiver.names() == ["deploy.started", "deploy.failed"]
    assert receiver.requests == 3  # the first got a 500 and was tried again
    assert receiver.events[1]["result"] == "failed"
    assert receiver.events[1]["failed_step"] == "hook pre-deploy"
    assert "s3cr3t-token" not in r.stderr + r.stdout

    # every hook passes: the deploy goes through, each hook told what it needs
    for name in ("pre-deploy", "post-migrate", "post-deploy", "on-failure"):
        hook(app, name)
    r = run_cli("-C", str(app.dir), "deploy", "--timeout", "120")
    assert r.returncode == 0, r.stderr
    pre, post_migrate, post = (
        seen(app, "pre-deploy"),
        seen(app, "post-migrate"),
        seen(app, "post-deploy"),
    )
    assert pre["COMPOSEKIT_HOOK"] == "pre-deploy" and pre["COMPOSEKIT_COMMAND"] == "deploy"
    assert pre["COMPOSEKIT_PROJECT"] == app.name and pre["COMPOSEKIT_RESULT"] == ""
    assert post_migrate["COMPOSEKIT_LEDGER_AFTER"] == "0002"
    assert post["COMPOSEKIT_RESULT"] == "ok" and post["COMPOSEKIT_LEDGER_BEFORE"] == "0001"
    assert post["COMPOSEKIT_LEDGER_AFTER"] == "0002" and post["COMPOSEKIT_BACKUP"].endswith(".dump")
    assert float(post["COMPOSEKIT_DURATION_S"]) > 0 and len(post["COMPOSEKIT_RUN_ID"]) == 12
    assert post["COMPOSEKIT_WEB_AFTER"] != post["COMPOSEKIT_WEB_BEFORE"]
    assert "post-deploy says hello" in r.stderr  # hook output is shown
    assert not (app.dir / ".composekit" / "on-failure.env").exists()
    assert receiver.names()[2:] == ["deploy.started", "deploy.succeeded"]
    ok = receiver.events[3]
    assert ok["run_id"] == post["COMPOSEKIT_RUN_ID"] and ok["ledger_after"] == "0002"

    # a failing migration: undone, on-failure runs with the result and the failed step
    migration(app, "0003_bad.sql", "ALTER TABLE nope ADD COLUMN x int;", "SELECT 1;")
    r = run_cli("-C", str(app.dir), "deploy", "--timeout", "120")
    assert r.returncode == ExitCode.DEPLOY_UNDONE, r.stderr
    failed = seen(app, "on-failure")
    assert failed["COMPOSEKIT_RESULT"] == "undone" and failed["COMPOSEKIT_FAILED_STEP"] == "migrate"
    assert 'relation "nope" does not exist' in failed["COMPOSEKIT_ERROR"]
    assert receiver.names()[4:] == ["deploy.started", "deploy.failed"]
    assert receiver.events[5]["result"] == "undone"
    (app.dir / "migrations" / "0003_bad.sql").unlink()

    # a rollback: post-rollback with its result
    hook(app, "post-rollback")
    r = run_cli("-C", str(app.dir), "rollback", "--timeout", "120")
    assert r.returncode == 0, r.stderr
    back = seen(app, "post-rollback")
    assert back["COMPOSEKIT_COMMAND"] == "rollback" and back["COMPOSEKIT_RESULT"] == "ok"
    assert receiver.names()[6:] == ["rollback.started", "rollback.succeeded"]

    # a failing pre-restore hook: the restore stops before anything changed; then one that passes
    hook(app, "pre-restore", code=1)
    now = fingerprint(app)
    r = run_cli("-C", str(app.dir), "restore", "--latest", "--yes")
    assert r.returncode == ExitCode.VERIFY and "the restore was stopped" in r.stderr, r.stderr
    assert fingerprint(app) == now
    hook(app, "pre-restore")
    hook(app, "post-restore")
    r = run_cli("-C", str(app.dir), "restore", "--latest", "--yes")
    assert r.returncode == 0, r.stderr
    restored = seen(app, "post-restore")
    assert restored["COMPOSEKIT_COMMAND"] == "restore" and restored["COMPOSEKIT_RESULT"] == "ok"
    assert restored["COMPOSEKIT_BACKUP"].endswith(".dump") and restored["COMPOSEKIT_SNAPSHOT"]
    assert seen(app, "pre-restore")["COMPOSEKIT_RESULT"] == ""
    assert receiver.names()[8:] == ["restore.succeeded"]

    for event in receiver.events:
        jsonschema.validate(event, schema("event"))
    status = json.loads(run_cli("-C", str(app.dir), "status", "--json").stdout)
    jsonschema.validate(status, schema("status"))


def test_a_hook_that_is_not_executable_is_a_config_error(make_app) -> None:  # type: ignore[no-untyped-def]
    app = make_app("migrator")
    hook(app, "pre-deploy")
    (app.dir / ".composekit" / "hooks" / "pre-deploy").chmod(0o644)
    r = run_cli("-C", str(app.dir), "deploy", "--dry-run")
    assert r.returncode == ExitCode.CONFIG, r.stderr
    assert "is not executable" in r.stderr and "chmod +x" in r.stderr
    assert not Path(app.dir / "backups").exists() or not list((app.dir / "backups").glob("*"))
