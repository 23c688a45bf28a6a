"""Alerts never fail the command: a webhook that answers garbage, or is not there, is reported."""

from __future__ import annotations

import socket
import threading
import time

from composekit.hooks import HookEvent
from composekit.notify import send


def garbage_server() -> int:
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()

    def serve() -> None:
        for _ in range(3):
            conn, _ = srv.accept()
            conn.recv(65536)
            conn.sendall(b"this is not HTTP\r\n\r\n")
            conn.close()

    threading.Thread(target=serve, daemon=True).start()
    return int(srv.getsockname()[1])


def test_a_webhook_answering_garbage_or_absent_is_reported_within_the_budget() -> None:
    said: list[str] = []
    t0 = time.monotonic()
    problems = send("deploy.succeeded", HookEvent("deploy", "p", result="ok"),
                    webhook=f"http://u:tok3n@127.0.0.1:{garbage_server()}/x", command=None,
                    progress=said.append)  # fmt: skip
    assert problems and ("did not take it" in problems[0] or "failed" in problems[0]), problems
    assert time.monotonic() - t0 < 6 and "tok3n" not in " ".join(said)
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    problems = send("deploy.failed", HookEvent("deploy", "p"), webhook=f"http://127.0.0.1:{port}/",
                    command=None)  # fmt: skip
    assert problems and "refused" in problems[0].lower(), problems
