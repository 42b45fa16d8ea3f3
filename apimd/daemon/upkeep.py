"""The daemon's periodic work: pruning results past retention (hourly) and sending notifiers'
`repeat_every` reminders (SPEC §11)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from apimd.daemon.agents import Agents
from apimd.engine.runner import Engine
from apimd.settings import Settings
from apimd.store import SqliteStore

log = logging.getLogger(__name__)

PRUNE_EVERY_S = 3600.0
REMIND_EVERY_S = 0.5  # how often `repeat_every` reminders are checked (the smallest is 1 s)


@dataclass(eq=False)
class Upkeep:
    """Two loops started with the daemon and cancelled when it stops."""

    settings: Settings
    store: SqliteStore
    engine: Engine
    agents: Agents
    clock: Callable[[], datetime]
    _tasks: list[asyncio.Task[None]] = field(default_factory=list, init=False)

    def start(self, *, prunes: bool) -> None:
        """Start the loops; `prunes` is False in a cluster, where the leader prunes for all."""
        if prunes:
            self._tasks.append(asyncio.create_task(self._maintain()))
        self._tasks.append(asyncio.create_task(self._remind()))

    def stop(self) -> None:
        for task in self._tasks:
            task.cancel()

    async def prune(self) -> None:
        """Drop raw results past retention (hourly rollups stay) and used or expired sign-ins."""
        cutoff = self.clock() - timedelta(days=self.settings.retention_days)
        removed = await self.store.prune_results(cutoff)
        await self.store.signins.prune()
        if removed:
            log.info(
                "pruned %d result(s) older than %d days", removed, self.settings.retention_days
            )

    async def _maintain(self) -> None:
        while True:
            try:
                await self.prune()
            except Exception:
                log.exception("periodic prune failed")
            await asyncio.sleep(PRUNE_EVERY_S)

    async def _remind(self) -> None:
        """On a timer, since a token waiting for a sign-in makes no results to hang a reminder
        on (SPEC §11)."""
        notifier = self.engine.notifier
        while True:
            try:
                if await self.agents.sends_reminders(notifier, self.engine.notifier_owners):
                    await notifier.send_due_reminders(self.engine.notifications_muted)
            except Exception:
                log.exception("sending reminders failed")
            await asyncio.sleep(REMIND_EVERY_S)
