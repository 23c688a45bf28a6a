"""Small helpers shared by the benchmarks: timing and a side-by-side table."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from composekit.compose import ComposeProject


def timed(fn: Callable[[], object], repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def report(title: str, rows: list[tuple[str, list[float]]], baseline: str) -> None:
    """Median, best and the ratio of medians to ``baseline``'s; and, where every row has one
    sample per round, the median of the per-round ratios ("paired"): a round's runs sit side by
    side in time, so a slow spell of the machine weighs on both sides of each ratio."""
    base_samples = dict(rows)[baseline]
    base = statistics.median(base_samples)
    print(f"\n{title}")
    print(f"{'what':42} {'median':>9} {'min':>9} {'ratio':>7} {'paired':>7}")
    for name, samples in rows:
        med = statistics.median(samples)
        paired = ""
        if len(samples) == len(base_samples):
            paired = f"{statistics.median(s / b for s, b in zip(samples, base_samples, strict=True)):6.2f}x"
        print(f"{name:42} {med:8.3f}s {min(samples):8.3f}s {med / base:6.2f}x {paired:>7}")


def scaffolded_app(prefix: str) -> tuple[Path, str, Path, ComposeProject, int]:
    """A scaffolded migrator-layout project on the offline images and a free port, as the
    deploy and rehearse benchmarks use it: (work dir, name, project dir, project, web port)."""
    import socket
    import tempfile
    import uuid

    from composekit.compose import ComposeProject
    from composekit.images import HAPROXY_IMAGE, POSTGRES_IMAGE, PYTHON_IMAGE
    from composekit.scaffold import scaffold

    work = Path(tempfile.mkdtemp(prefix=f"ck-bench-{prefix}-"))
    name = "ckb" + prefix[:1] + uuid.uuid4().hex[:6]
    app = work / name
    scaffold(app, "migrator", ci="none", name=name)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with open(app / ".env", "a") as env:
        env.write(
            f"POSTGRES_IMAGE={POSTGRES_IMAGE}\nPYTHON_IMAGE={PYTHON_IMAGE}\n"
            f"PROXY_IMAGE={HAPROXY_IMAGE}\nWEB_PORT={port}\n"
        )
    project = ComposeProject(project_dir=app, project_name=name, env_file=".env")
    return work, name, app, project, port
