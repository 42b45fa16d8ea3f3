"""The one way tests wait for something to happen: poll, with a bound, and fail saying what."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest

T = TypeVar("T")
Pause = Callable[[float], Awaitable[object]]


async def eventually(
    check: Callable[[], Awaitable[T]],
    *,
    timeout: float = 10.0,
    interval: float = 0.1,
    what: str = "",
    pause: Pause = asyncio.sleep,
) -> T:
    """Await `check()` until it returns something truthy, and return that; fail naming `what`
    and the last value after `timeout` s. `pause` waits between tries (a Textual Pilot's `pause`
    lets the app run meanwhile)."""
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() >= deadline:
            pytest.fail(
                f"timed out after {timeout} s waiting for {what or check} (last value: {value!r})"
            )
        await pause(interval)


async def until(
    check: Callable[[], T],
    *,
    timeout: float = 10.0,
    interval: float = 0.1,
    what: str = "",
    pause: Pause = asyncio.sleep,
) -> T:
    """`eventually` for a plain (not async) `check`."""

    async def checked() -> T:
        return check()

    return await eventually(checked, timeout=timeout, interval=interval, what=what, pause=pause)
