"""Benchmark of the per-run cost as the project grows: CPU time per run through apimd's engine with
100, 1,000 and 10,000 monitors (calls, and a two-step workflow per ten calls) in one project,
against a local aiohttp server in its own process.

    .venv/bin/python bench/perrun_bench.py [--sizes 100,1000,10000] [--runs N] [--rounds R]

Each round runs N runs of targets picked at random (nine calls for one workflow) with a
`MemoryStateStore`, 20 at a time, after 50 warm-up runs, and prints the process CPU time (this
process: engine and client; the server excluded) per run. Nothing in a run should depend on how
many other monitors the project holds: the figure should stay flat from the smallest size to the
largest (issue 18: it was dominated by `Project.call` scanning every call by name).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
from typing import Any

from loopback_server import start_server

from apimd.engine.memory import MemoryStateStore
from apimd.engine.runner import Engine
from apimd.model import Outcome, Project


def project(size: int, base: str) -> Project:
    calls: list[dict[str, Any]] = [
        {
            "name": f"call-{i:05d}",
            "url": f"{base}/ok",
            "params": {"n": str(i)},
            "conditions": [{"source": "status", "op": "eq", "value": 200}],
        }
        for i in range(size)
    ]
    workflows = [
        {"name": f"flow-{i:05d}", "steps": [f"call-{i:05d}", f"call-{i + 1:05d}"]}
        for i in range(0, size - 1, 10)
    ]
    return Project.model_validate(
        {
            "calls": calls,
            "workflows": workflows,
        }
    )


async def one_size(size: int, base: str, runs: int, seed: int) -> float:
    proj = project(size, base)
    engine = Engine(proj, MemoryStateStore())
    rng = random.Random(seed)
    targets = [c.name for c in proj.calls] * 9 + [w.name for w in proj.workflows] * 10
    picks = [rng.choice(targets) for _ in range(runs + 50)]
    failures = 0

    async def worker(todo: list[str]) -> None:
        nonlocal failures
        while todo:
            result = await engine.run(todo.pop())
            failures += result.outcome is not Outcome.PASS

    async def drive(todo: list[str]) -> None:
        await asyncio.gather(*(worker(todo) for _ in range(20)))

    try:
        await drive(picks[runs:])  # warm-up
        cpu = time.process_time()
        await drive(picks[:runs])
        cpu = time.process_time() - cpu
    finally:
        await engine.close()
    if failures:
        raise SystemExit(f"{failures} runs did not pass at size {size}")
    return cpu / runs


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,1000,10000")
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    server, port = start_server("/ok", {"ok": True})
    try:
        per_size: dict[int, list[float]] = {size: [] for size in sizes}
        for round_ in range(args.rounds):
            for size in sizes:  # sizes interleaved in each round: same machine load
                per_size[size].append(
                    await one_size(size, f"http://127.0.0.1:{port}", args.runs, round_)
                )
        smallest = statistics.median(per_size[sizes[0]])
        for size in sizes:
            median = statistics.median(per_size[size])
            rounds = ", ".join(f"{v * 1e3:.3f}" for v in per_size[size])
            print(
                f"per-run CPU [{size:,} monitors]: {median * 1e3:.3f} ms"
                f" (×{median / smallest:.2f} vs {sizes[0]:,}; rounds {rounds})"
            )
    finally:
        # EOF on stdin stops the server (a SIGINT left it waiting on its stdin reader thread).
        assert server.stdin is not None
        server.stdin.close()
        server.wait(10)


if __name__ == "__main__":
    asyncio.run(main())
