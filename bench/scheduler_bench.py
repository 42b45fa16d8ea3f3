"""Benchmark of the scheduler's own cost per firing: CPU time of `ScheduleRunner` firing N interval
schedules on a real event loop and the real clock, with targets that start nothing, so what is
measured is the timer's wake-up, its bookkeeping and `ScheduleRunner._fire` (issue 18).

    .venv/bin/python bench/scheduler_bench.py [--schedules N] [--every S] [--duration D]
                                              [--jitter J]

The N schedules (`every: S s`, one target each, `jitter: J` when given: those stay on
APScheduler) are synced at once, as an apply does; after a warm-up of one interval, the process's
CPU time (`time.process_time`) over D seconds is divided by the firings in that window. The
default, 2,000 every 12 s, fires 166.7 times a second: the rate of the daemon bench's 10,000
every 60 s.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from datetime import datetime

from apimd.daemon.scheduler import ScheduleRunner
from apimd.model import Schedule


class Counter:
    """The runner's callbacks: count the firings, start nothing."""

    def __init__(self) -> None:
        self.fired = 0

    def run_target(self, _target: str, _schedule: str, _due: datetime) -> None:
        return None

    def on_fired(self, _schedule: str, _targets: list[str], _due: datetime) -> None:
        self.fired += 1


def schedules(count: int, every: int, jitter: float | None) -> list[Schedule]:
    extra = {"jitter": jitter} if jitter else {}
    return [
        Schedule.model_validate(
            {"name": f"s{i:05d}", "targets": [f"c{i:05d}"], "every": f"{every}s", **extra}
        )
        for i in range(count)
    ]


async def bench(args: argparse.Namespace) -> None:
    counter = Counter()
    runner = ScheduleRunner(counter.run_target, on_fired=counter.on_fired)
    await runner.start()
    runner.sync(schedules(args.schedules, args.every, args.jitter))
    await asyncio.sleep(args.every + 1)  # every schedule has fired once
    fired, cpu = counter.fired, time.process_time()
    await asyncio.sleep(args.duration)
    fired, cpu = counter.fired - fired, time.process_time() - cpu
    await runner.shutdown()
    label = f"[{args.schedules} schedules @ {args.every}s{', jitter' if args.jitter else ''}]"
    print(f"firings per second {label}: {fired / args.duration:.1f} /s")
    print(f"scheduler CPU per firing {label}: {cpu / max(fired, 1) * 1e6:.1f} µs")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--schedules", type=int, default=2000, help="N (default 2000)")
    parser.add_argument("--every", type=int, default=12, help="interval S in seconds (default 12)")
    parser.add_argument("--duration", type=int, default=20, help="D in seconds (default 20)")
    parser.add_argument("--jitter", type=float, default=None, help="jitter J in seconds")
    asyncio.run(bench(parser.parse_args()))


if __name__ == "__main__":
    main()
