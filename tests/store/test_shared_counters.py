"""Notifier counters shared by agents (SPEC §13): two processes' stores on one database count one
target together, atomically — every increment returns a different count, and one reset alone
sees the streak it ends."""

from __future__ import annotations

import asyncio

from tests.store.conftest import OpenStore


async def test_two_stores_count_together_and_one_reset_sees_the_streak(
    open_any_store: OpenStore,
) -> None:
    one, two = await open_any_store(), await open_any_store()
    key = "orders#webhooks[0]:https://hooks.example/alert"
    counts = await asyncio.gather(
        *(store.increment_counter(key) for _ in range(25) for store in (one, two))
    )
    assert sorted(counts) == list(range(1, 51))
    assert await one.load_counter(key) == 50
    resets = await asyncio.gather(one.reset_counter(key), two.reset_counter(key))
    assert sorted(resets) == [0, 50]
    assert await two.load_counter(key) == 0
    assert await two.increment_counter(key) == 1
