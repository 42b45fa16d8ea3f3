"""Bench only: `bench/daemon_bench.py` puts this folder first on the daemon's PYTHONPATH, so Python
imports it at start-up. With APIMD_BENCH_GC_LOG set it times every garbage collection
(`gc.callbacks`) and writes them, at exit, as JSON `[[end unix time, generation, pause ms, CPU ms],
…]`: the pause is wall time (what a run waiting on the loop sees), the CPU time is the collecting
thread's own (what the collection costs, whatever the machine's load)."""

from __future__ import annotations

import atexit
import gc
import json
import os
import time
from typing import Any

_PATH = os.environ.get("APIMD_BENCH_GC_LOG")
_pauses: list[tuple[float, int, float, float]] = []
_began = [0.0, 0.0]


def _probe(phase: str, info: dict[str, Any]) -> None:
    if phase == "start":
        _began[:] = [time.perf_counter(), time.thread_time()]
    else:
        pause_ms = (time.perf_counter() - _began[0]) * 1000
        cpu_ms = (time.thread_time() - _began[1]) * 1000
        _pauses.append((time.time(), int(info["generation"]), pause_ms, cpu_ms))


def _write() -> None:
    assert _PATH is not None
    with open(_PATH, "w", encoding="utf-8") as out:
        json.dump(_pauses, out)


if _PATH:
    gc.callbacks.append(_probe)
    atexit.register(_write)
