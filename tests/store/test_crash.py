"""Crash safety: a writer killed with SIGKILL at random moments loses no acknowledged write and
never leaves a damaged database, on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sys
from pathlib import Path

import pytest

from apimd.store import open_store
from tests.store.conftest import TEST_KEY

ROUNDS = int(os.environ.get("APIMD_CRASH_ROUNDS", "20"))
ROOT = Path(__file__).resolve().parents[2]


async def run_and_kill(db: str | Path, tag: str, rng: random.Random) -> list[str]:
    """Start the writer, SIGKILL it at a random moment, return the ack lines it printed."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.store.crash_writer",
        str(db),
        TEST_KEY,
        tag,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    if rng.random() < 0.15:
        # Sometimes while it starts: opening, migrating, checking the key.
        await asyncio.sleep(rng.uniform(0.0, 0.5))
    else:
        first = await asyncio.wait_for(process.stdout.readline(), timeout=30)
        assert first == b"open\n"
        await asyncio.sleep(rng.uniform(0.0, 0.3))
    process.send_signal(signal.SIGKILL)
    output = await process.stdout.read()
    assert await process.wait() == -signal.SIGKILL
    return output.decode().splitlines()


@pytest.mark.slow
async def test_acknowledged_writes_survive_sigkill(store_location: str | Path) -> None:
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    db = store_location
    acked_results: list[str] = []
    killed_mid_run = 0
    for round_ in range(ROUNDS):
        tag = f"k{round_}"
        lines = await run_and_kill(db, tag, rng)
        acks = [line.split(" ") for line in lines if line != "open"]
        killed_mid_run += bool(acks)
        round_results = [a[1] for a in acks if a[0] == "R"]
        round_results += [i for a in acks if a[0] == "B" for i in a[1:]]
        acked_results += round_results
        last_token = next((a[1] for a in reversed(acks) if a[0] == "T"), None)
        last_counter = next((int(a[1]) for a in reversed(acks) if a[0] == "C"), None)

        # Opening as owner also proves the dead writer's lock went with it.
        store = await open_store(db, secret_key=TEST_KEY, key_file=None, owner=True)
        try:
            context = f"seed {seed}, round {round_}"
            assert await store.integrity_check() == ["ok"], context
            for result_id in acked_results:
                assert await store.get_result(result_id) is not None, (
                    f"{result_id} lost ({context})"
                )
            if last_token is not None:
                runtime = await store.load_token("crash-token")
                assert runtime is not None, context
                saved_tag, saved_index = runtime.variables["SEQ"].split(":")
                # The save after the last ack may have committed too, but nothing older survives.
                assert saved_tag == tag, context
                assert int(saved_index) - int(last_token.split(":")[1]) in (0, 1), context
            if last_counter is not None:
                assert await store.load_counter("crash-counter") - last_counter in (0, 1), context
        finally:
            await store.close()
    assert killed_mid_run >= ROUNDS // 2, "most kills should land while writing"
    assert len(acked_results) > ROUNDS
