"""Group commit: results added one at a time by concurrent runs, written many to a transaction,
each caller returning once its own is committed."""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")

GROUP_COMMIT_MAX = 500
"""At most this many items in one commit."""
GROUP_COMMIT_INTERVAL_S = 0.05
"""A commit starts at least this long after the previous one started; what is added meanwhile
waits and goes in together. A commit costs SQLite about the same whether it holds one result or
ten (the pages it touches go to the WAL whole): at 100 results/s, one commit each took ~0.9 ms of
CPU per result, ten to a commit ~0.2 ms (issue 18, bench/README.md). Only items that may wait
(`may_wait`: a scheduled run's result, nobody waiting on it) are held: one that may not (a run a
person, a workflow or a client waits for) starts the commit at once, and takes those waiting with
it; so does an item added after a quiet spell."""


class GroupCommit(Generic[T]):
    """Hands what `add` is given to `write_many` in batches: those added while a commit is in
    flight, or soon after one started (`GROUP_COMMIT_INTERVAL_S`) when all of them may wait, go in
    the next one."""

    def __init__(
        self,
        write_many: Callable[[Sequence[T]], Awaitable[object]],
        may_wait: Callable[[T], bool] = lambda _item: True,
    ) -> None:
        self._write_many = write_many
        self._may_wait = may_wait
        self._queue: list[tuple[T, asyncio.Future[None]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._committed_at = -math.inf  # (the event loop's clock)
        self._urgent = asyncio.Event()  # an item that may not wait is queued

    async def add(self, item: T) -> None:
        """Write `item` with the next batch; returns once that batch is committed (raises what
        writing it raised)."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append((item, done))
        if not self._may_wait(item):
            self._urgent.set()
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        # Awaited as it is, not through `asyncio.shield` (an outer future and two callbacks a
        # result): a cancelled caller cancels only its own `done`; its item is written all the
        # same, and `_flush` settles only the futures not done yet.
        await done

    async def drain(self) -> None:
        """Wait until every item handed to `add` is written."""
        while self._flusher is not None and not self._flusher.done():
            await asyncio.wait([self._flusher])

    async def _flush(self) -> None:
        loop = asyncio.get_running_loop()
        while self._queue:
            wait = self._committed_at + GROUP_COMMIT_INTERVAL_S - loop.time()
            if wait > 0 and len(self._queue) < GROUP_COMMIT_MAX and not self._urgent.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._urgent.wait(), wait)
            self._urgent.clear()  # what is queued now goes in this commit
            self._committed_at = loop.time()
            batch, self._queue = self._queue[:GROUP_COMMIT_MAX], self._queue[GROUP_COMMIT_MAX:]
            if any(not self._may_wait(item) for item, _ in self._queue):
                self._urgent.set()  # left for the next commit, which must not wait either
            try:
                await self._write_many([item for item, _ in batch])
            except BaseException as exc:
                for _, done in batch:
                    if not done.done():
                        done.set_exception(exc)
                if not isinstance(exc, Exception):
                    raise
            else:
                for _, done in batch:
                    if not done.done():
                        done.set_result(None)
