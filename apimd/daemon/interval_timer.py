"""Fires `every:` schedules without jitter on their grid (first fire time + k × interval), from one
heap of next fire times and one `loop.call_at` for the earliest. APScheduler still runs cron and
jittered schedules; for these it cost ~0.14 ms per firing on a busy daemon (its wake-up through
`call_soon_threadsafe` and the self-pipe, `_process_jobs`, job store updates), against a few
microseconds here. Same rules as the APScheduler jobs it replaces (`coalesce=True`, no misfire
grace): a late firing still fires, once, at the last grid instant already passed, and the next one
stays on the grid."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from apimd.store.timestamps import from_us, to_us

Fire = Callable[[str, tuple[str, ...], datetime], None]
"""`(schedule_name, targets, due)`: a schedule is due; returns at once."""

logger = logging.getLogger(__name__)

_MICROSECOND = timedelta(microseconds=1)


def _now_us() -> int:
    """The wall clock (as APScheduler's `datetime.now`), in integer microseconds since the epoch."""
    return time.time_ns() // 1000


class _Entry:
    """One schedule on the timer; `live` turns False when it is removed or replaced (it then
    drops off the heap when it reaches the top)."""

    __slots__ = ("due_us", "interval_us", "live", "name", "targets")

    def __init__(self, name: str, targets: tuple[str, ...], due_us: int, interval_us: int) -> None:
        self.name = name
        self.targets = targets
        self.due_us = due_us
        self.interval_us = interval_us
        self.live = True


class IntervalTimer:
    """Fires each schedule added at its next grid instant; firings due in the same pass of the
    loop are fired together, in due order."""

    def __init__(self, fire: Fire) -> None:
        self._fire = fire
        self._entries: dict[str, _Entry] = {}
        self._heap: list[tuple[int, int, _Entry]] = []
        self._order = itertools.count()  # ties fire in the order they were queued
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handle: asyncio.TimerHandle | None = None
        self._armed_us: int | None = None

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def start(self) -> None:
        """Fire from now on, on the running loop."""
        self._loop = asyncio.get_running_loop()
        self._arm()

    def stop(self) -> None:
        """Forget every schedule and fire nothing more until `start()`."""
        self._disarm()
        self._loop = None
        for entry in self._entries.values():
            entry.live = False
        self._entries.clear()
        self._heap.clear()

    def add(self, name: str, targets: tuple[str, ...], first: datetime, every: timedelta) -> None:
        """Fire `name` at `first`, then every `every` (replacing what `name` had). A `first`
        already past is moved up to the next instant of its grid (as APScheduler's interval
        trigger does), so adding does not fire at once."""
        self.remove(name)
        interval_us = max(every // _MICROSECOND, 1)
        first_us = to_us(first)
        passed = _now_us() - first_us
        if passed > 0:
            first_us += -(-passed // interval_us) * interval_us
        entry = _Entry(name, targets, first_us, interval_us)
        self._entries[name] = entry
        self._push(entry)
        if self._armed_us is None or entry.due_us < self._armed_us:
            self._arm()

    def remove(self, name: str) -> bool:
        """Stop firing `name`; False when it was not on the timer."""
        entry = self._entries.pop(name, None)
        if entry is None:
            return False
        entry.live = False
        return True

    def next_fire(self, name: str) -> datetime | None:
        """When `name` fires next (UTC), or None when it is not on the timer."""
        entry = self._entries.get(name)
        return from_us(entry.due_us) if entry is not None else None

    def next_fire_times(self) -> dict[str, datetime]:
        """Schedule name → its next fire time (UTC)."""
        return {name: from_us(entry.due_us) for name, entry in self._entries.items()}

    def _push(self, entry: _Entry) -> None:
        heapq.heappush(self._heap, (entry.due_us, next(self._order), entry))

    def _wake(self) -> None:
        self._handle = None
        self._armed_us = None
        now_us = _now_us()
        heap = self._heap
        while heap and heap[0][0] <= now_us:
            due_us, _order, entry = heapq.heappop(heap)
            if not entry.live:
                continue
            missed = (now_us - due_us) // entry.interval_us  # coalesced: the last one passed
            due_us += missed * entry.interval_us
            entry.due_us = due_us + entry.interval_us
            self._push(entry)
            try:
                self._fire(entry.name, entry.targets, from_us(due_us))
            except Exception:
                logger.exception("schedule %s: firing failed", entry.name)
        self._arm()

    def _arm(self) -> None:
        """One `call_at` for the earliest live fire time (none while stopped or empty)."""
        heap = self._heap
        while heap and not heap[0][2].live:
            heapq.heappop(heap)
        if self._loop is None or not heap:
            self._disarm()
            return
        due_us = heap[0][0]
        if due_us == self._armed_us:
            return
        self._disarm()
        # The loop's clock is monotonic, fire times are wall-clock ones: `_wake` checks the wall
        # clock again and re-arms when it came early.
        delay_s = max(due_us - _now_us(), 0) / 1_000_000
        self._handle = self._loop.call_at(self._loop.time() + delay_s, self._wake)
        self._armed_us = due_us

    def _disarm(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._handle = None
        self._armed_us = None
