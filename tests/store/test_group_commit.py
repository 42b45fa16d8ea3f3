"""Group commit: what concurrent runs add close together is written in one batch, and each caller
returns once its own batch is written (or fails with it)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from apimd.store import group_commit
from apimd.store.group_commit import GroupCommit


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
