"""Group commit: what concurrent runs add close together is written in one batch, and each caller
returns once its own batch is written (or fails with it)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from apimd.store import group_commit
from apimd.store.group_commit import GroupCommit
from apimd.store.store import SqliteStore
from tests.store.conftest import make_result


class _Writer:
    """Records the batches it is given; fails those holding `bad`."""

    def __init__(self, bad: str | None = None) -> None:
        self.batches: list[list[str]] = []
        self.bad = bad

    async def __call__(self, items: Sequence[str]) -> None:
        await asyncio.sleep(0)
        if self.bad in items:
            raise OSError("disk full")
        self.batches.append(list(items))


async def test_a_lone_item_is_written_at_once() -> None:
    writer = _Writer()
    commits = GroupCommit(writer)
    async with asyncio.timeout(group_commit.GROUP_COMMIT_INTERVAL_S / 2):
        await commits.add("a")
    assert writer.batches == [["a"]]


async def test_items_added_soon_after_a_commit_wait_and_go_in_one_batch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One commit per item would cost SQLite about as much per item as ten items take together
    (issue 18): those added within the interval after a commit are written in the next one."""
    monkeypatch.setattr(group_commit, "GROUP_COMMIT_INTERVAL_S", 0.5)
    writer = _Writer()
    commits = GroupCommit(writer)
    await commits.add("a")
    later = []
    for item in ("b", "c", "d"):
        later.append(asyncio.create_task(commits.add(item)))
        await asyncio.sleep(0.01)
    assert not any(task.done() for task in later)  # none written yet, so none returned
    await asyncio.gather(*later)
    assert writer.batches == [["a"], ["b", "c", "d"]]


async def test_a_failed_batch_fails_each_of_its_callers_and_the_next_is_written() -> None:
    writer = _Writer(bad="b")
    commits = GroupCommit(writer)
    await commits.add("a")
    first = [asyncio.create_task(commits.add(item)) for item in ("b", "c")]
    outcomes = await asyncio.gather(*first, return_exceptions=True)
    assert [type(outcome) for outcome in outcomes] == [OSError, OSError]
    await commits.add("d")
    await commits.drain()
    assert writer.batches == [["a"], ["d"]]


async def test_an_item_that_may_not_wait_is_written_at_once_with_those_waiting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Only items that may wait (a scheduled run's result) are held for the interval: one a
    person or a client waits for starts the commit at once and takes the waiting ones along."""
    monkeypatch.setattr(group_commit, "GROUP_COMMIT_INTERVAL_S", 5.0)
    writer = _Writer()
    commits = GroupCommit(writer, may_wait=lambda item: item.startswith("scheduled"))
    await commits.add("scheduled 1")
    waiting = asyncio.create_task(commits.add("scheduled 2"))
    await asyncio.sleep(0.05)
    assert not waiting.done()  # held: it may wait
    async with asyncio.timeout(1):  # far less than the interval
        await commits.add("manual")
        await waiting
    assert writer.batches == [["scheduled 1"], ["scheduled 2", "manual"]]


async def test_a_result_someone_waits_for_is_not_held_for_the_interval(
    store: SqliteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A manual (or webhook, refresh, sign-in) run's result is committed at once; a scheduled
    one, right after another commit, waits for the interval (both stores)."""
    monkeypatch.setattr(group_commit, "GROUP_COMMIT_INTERVAL_S", 5.0)
    await store.add_result(make_result("r-1"))
    async with asyncio.timeout(2):
        await store.add_result(make_result("r-2", trigger="manual"))
    held = asyncio.create_task(store.add_result(make_result("r-3")))
    await asyncio.sleep(0.3)
    assert not held.done()
    async with asyncio.timeout(2):
        await store.add_result(make_result("r-4", trigger="webhook"))
        await held
    for result_id in ("r-1", "r-2", "r-3", "r-4"):
        assert await store.get_result(result_id) is not None, result_id
