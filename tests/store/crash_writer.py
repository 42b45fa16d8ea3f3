"""A process that writes results, token saves and counters in a loop, printing an ack line after
each write is committed. `test_crash.py` kills it with SIGKILL at random moments.

Usage: python -m tests.store.crash_writer DB_PATH_OR_URL KEY TAG
"""

from __future__ import annotations

import asyncio
import random
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from apimd.model.outcome import ResultCode
from apimd.model.resources import TokenState
from apimd.model.result import ResponseRecord, Result, Timings
from apimd.model.runtime import TokenRuntime
from apimd.store import open_store

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def result(result_id: str, index: int, rng: random.Random) -> Result:
    started = T0 + timedelta(seconds=index)
    return Result(
        id=result_id,
        kind="call",
        name=f"target-{index % 4}",
        trigger="schedule",
        started_at=started,
        finished_at=started,
        outcome=ResultCode.COMPLETE.outcome,
        result=ResultCode.COMPLETE,
        http_status=200,
        timings_ms=Timings(total=rng.uniform(5, 900)),
        # Random sizes (some large) so the WAL grows and checkpoints happen during the run.
        response=ResponseRecord(body=rng.randbytes(rng.choice((10, 2000, 30000))).hex()),
    )


async def main(db: str | Path, key: str, tag: str) -> None:
    rng = random.Random(tag)
    store = await open_store(
        db, secret_key=key, key_file=None, owner=True, owner_description="crash writer"
    )
    print("open", flush=True)
    index = 0
    while True:
        await store.add_result(result(f"{tag}-{index}", index, rng))
        print(f"R {tag}-{index}", flush=True)
        await store.save_token(
            TokenRuntime(
                name="crash-token",
                variables={"SEQ": f"{tag}:{index}", "ACCESS_TOKEN": rng.randbytes(300).hex()},
                state=TokenState.VALID,
                saved_at=datetime.now(UTC),
            )
        )
        print(f"T {tag}:{index}", flush=True)
        if index % 4 == 0:
            ids = [f"{tag}-{index}-b{j}" for j in range(5)]
            await store.add_results([result(i, index, rng) for i in ids])
            print("B " + " ".join(ids), flush=True)
        await store.save_counter("crash-counter", index)
        print(f"C {index}", flush=True)
        index += 1


if __name__ == "__main__":
    location = sys.argv[1]
    asyncio.run(main(location if "://" in location else Path(location), sys.argv[2], sys.argv[3]))
