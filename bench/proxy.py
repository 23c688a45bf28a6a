"""Which proxy: Caddy 2.6 and HAProxy 2.6 (Debian's packages) side by side, same run, same backends.

Two backends (stdlib HTTP servers) on loopback; two visitors request through the proxy every 10 ms
while the proxy is switched from one backend to the other 20 times — Caddy by a `POST /load` of its
whole configuration (what composekit does), HAProxy by its runtime API (`set server … state ready`
for the new, `drain` for the old). Reported: failed requests, latency added per request (median,
p99, against the backend directly), and how long a switch takes. nginx 1.22 is not measured: it
cannot re-resolve upstream names without a reload (no `resolve` in the free version before 1.27).

Run: .venv/bin/python bench/proxy.py   (installs haproxy with apt if missing; downloads Debian's
caddy package into the cache)
"""

from __future__ import annotations

import json
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from composekit.images import cache_dir  # noqa: E402

SWITCHES = 20  # per round


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def backend(name: str) -> int:
    body = name.encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    port = free_port()
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return port


def wait_http(url: str) -> None:
    for _ in range(100):
        try:
            urllib.request.urlopen(url, timeout=1).read()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"{url} never answered")


def under_load(url: str, switch: object) -> tuple[int, int, list[float], list[float]]:
    stop, fails, latency = threading.Event(), [0], []
    errors: list[str] = []

    def visit() -> None:
        while not stop.is_set():
            t0 = time.perf_counter()
            try:
                with urllib.request.urlopen(url, timeout=5) as r:
                    r.read()
                latency.append(time.perf_counter() - t0)
            except OSError as exc:
                fails[0] += 1
                errors.append(repr(exc)[:120])
            time.sleep(0.01)

    threads = [threading.Thread(target=visit) for _ in range(2)]
    for t in threads:
        t.start()
    took = []
    for i in range(SWITCHES):
        time.sleep(0.25)
        t0 = time.perf_counter()
        switch(i % 2)  # type: ignore[operator]
        took.append(time.perf_counter() - t0)
    stop.set()
    for t in threads:
        t.join()
    if errors:
        print(f"  failed: {errors[:3]}")
    return len(latency) + fails[0], fails[0], latency, took


def caddy_deb() -> Path:
    debs = cache_dir() / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    if not list(debs.glob("caddy_*.deb")):
        subprocess.run(["apt-get", "download", "-q", "caddy"], cwd=debs, check=True)
    return sorted(debs.glob("caddy_*.deb"))[-1]


def caddy(work: Path, a: int, b: int) -> tuple[str, subprocess.Popen[bytes], object]:
    subprocess.run(["dpkg-deb", "-x", str(caddy_deb()), str(work / "caddy")], check=True)
    admin, port = free_port(), free_port()

    def config(to: int) -> bytes:
        route = {
            "handle": [{"handler": "reverse_proxy", "upstreams": [{"dial": f"127.0.0.1:{to}"}]}]
        }
        return json.dumps({
            "admin": {"listen": f"127.0.0.1:{admin}"},
            "apps": {"http": {"servers": {"s": {"listen": [f":{port}"], "routes": [route]}}}},
        }).encode()  # fmt: skip

    (work / "caddy.json").write_bytes(config(a))
    p = subprocess.Popen(
        [str(work / "caddy/usr/bin/caddy"), "run", "--config", str(work / "caddy.json")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def switch(i: int) -> None:
        req = urllib.request.Request(
            f"http://127.0.0.1:{admin}/load",
            data=config(b if i == 0 else a),
            headers={"Content-Type": "application/json"},
        )
        urllib.request.urlopen(req, timeout=10).read()

    return f"http://127.0.0.1:{port}/", p, switch


def haproxy(work: Path, a: int, b: int) -> tuple[str, subprocess.Popen[bytes], object]:
    if not shutil.which("haproxy"):
        subprocess.run(["apt-get", "install", "-y", "-q", "haproxy"], check=True,
                       stdout=subprocess.DEVNULL)  # fmt: skip
    port, sock = free_port(), work / "haproxy.sock"
    (work / "haproxy.cfg").write_text(
        f"global\n  stats socket {sock} level admin\n"
        "defaults\n  mode http\n  timeout connect 2s\n  timeout client 30s\n  timeout server 30s\n"
        f"frontend f\n  bind 127.0.0.1:{port}\n  default_backend b\n"
        f"backend b\n  server a 127.0.0.1:{a} check inter 1s\n"
        f"  server b 127.0.0.1:{b} check inter 1s disabled\n"
    )
    p = subprocess.Popen(
        ["haproxy", "-q", "-f", str(work / "haproxy.cfg")], stderr=subprocess.DEVNULL
    )

    def switch(i: int) -> None:
        new, old = ("b", "a") if i == 0 else ("a", "b")
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(str(sock))
            s.sendall(f"set server b/{new} state ready; set server b/{old} state drain\n".encode())
            while s.recv(4096):
                pass

    return f"http://127.0.0.1:{port}/", p, switch


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    a, b = backend("A"), backend("B")
    direct = under_load(f"http://127.0.0.1:{a}/", lambda i: None)
    base = statistics.median(direct[2])
    base99 = sorted(direct[2])[int(len(direct[2]) * 0.99)]
    results: dict[str, list[tuple[int, int, list[float], list[float]]]] = {
        "caddy": [],
        "haproxy": [],
    }
    for r in range(rounds):  # alternating order
        for name, start in (("caddy", caddy), ("haproxy", haproxy))[:: 1 if r % 2 == 0 else -1]:
            with tempfile.TemporaryDirectory() as tmp:
                url, p, switch = start(Path(tmp), a, b)
                try:
                    wait_http(url)
                    results[name].append(under_load(url, switch))
                finally:
                    p.terminate()
                    p.wait()
    print(f"{rounds} rounds of {SWITCHES} switches each, two visitors every 10 ms")
    print(f"{'proxy':10} {'requests':>9} {'failed':>7} {'+p50':>8} {'+p99':>8} {'switch':>8}")
    for name, runs in results.items():
        total = sum(r[0] for r in runs)
        failed = sum(r[1] for r in runs)
        lat = sorted(x for r in runs for x in r[2])
        took = [x for r in runs for x in r[3]]
        p99 = lat[int(len(lat) * 0.99)] - base99
        print(
            f"{name:10} {total:9d} {failed:7d} {(statistics.median(lat) - base) * 1000:7.2f}ms "
            f"{p99 * 1000:7.2f}ms {statistics.median(took) * 1000:7.1f}ms"
            f"   (failed per round: {[r[1] for r in runs]})"
        )


if __name__ == "__main__":
    main()
