"""Small helpers shared by the benchmarks: timing and a side-by-side table."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def timed(fn: Callable[[], object], repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def report(title: str, rows: list[tuple[str, list[float]]], baseline: str) -> None:
    base = statistics.median(dict(rows)[baseline])
    print(f"\n{title}")
    print(f"{'what':42} {'median':>9} {'min':>9} {'ratio':>7}")
    for name, samples in rows:
        med = statistics.median(samples)
        print(f"{name:42} {med:8.3f}s {min(samples):8.3f}s {med / base:6.2f}x")
