"""Ending the daemon's background loops."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

log = logging.getLogger(__name__)

GRACE_S = 5.0
"""How long a stop waits for cancelled loops to end before it goes on without them."""


async def end_tasks(tasks: Iterable[asyncio.Task[Any]], *, grace_s: float = GRACE_S) -> None:
    """Cancel `tasks` and wait, at most `grace_s`, until they end, whatever they raise; a task
    still running then is named in the log and left, so a stop never hangs on one loop (a test
    teardown waited 120 s on a loop that took its cancellation for a failure and went round
    again)."""
    tasks = list(tasks)
    for task in tasks:
        task.cancel()
    pending = {task for task in tasks if not task.done()}
    if pending:
        _done, pending = await asyncio.wait(pending, timeout=grace_s)
    for task in pending:
        log.error(
            "%s did not end within %g s of its cancellation; left running",
            task.get_name(),
            grace_s,
        )
    for task in tasks:
        if task.done() and not task.cancelled():
            task.exception()  # retrieved: a loop's last error is not "never retrieved"


def cancelling() -> bool:
    """Whether the running task was asked to stop: a loop that catches `Exception` to go round
    again checks it, since the cancellation may reach it disguised as a library's error."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0
