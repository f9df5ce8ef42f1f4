"""Shared by the bench scripts: best-of-n wall time of a call (machines here are noisy)."""
from __future__ import annotations

import time


def best_of(repeat: int, fn) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)
