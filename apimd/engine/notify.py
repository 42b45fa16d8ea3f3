"""Notifiers (`http`, `slack`, `apprise`): consecutive-alert counting, one alert per streak,
`repeat_every` reminders on a timer, resolved messages (SPEC §2 "Webhooks", §11 "Notifiers")."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from apimd.engine.delivery import Delivery
from apimd.engine.http import HttpExecutor
from apimd.engine.notices import Notice
from apimd.engine.ports import WebhookCounterRepository
from apimd.model.resources import NOTIFY_WEBHOOK_TYPES, Webhook
from apimd.model.runtime import SentAlert

log = logging.getLogger(__name__)

__all__ = ["Notice", "Notifier", "webhook_key"]


def webhook_key(owner: str, index: int, hook: Webhook) -> str:
    """A counter key that changes when the webhook's definition changes."""
    digest = hashlib.sha256(hook.model_dump_json().encode()).hexdigest()[:12]
    return f"{owner}#{index}:{digest}"


@dataclass
class _Reminder:
    owner: str
    hook: Webhook
    notice: Notice
    count: int
    sent_at: datetime


class Notifier:
    """Counts what each notifier of an owner observes and sends what is due, in the background."""

    def __init__(
        self,
        http: HttpExecutor,
        counters: WebhookCounterRepository,
        render: Callable[[str, str], str],
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._counters = counters
        self._clock = clock
        self.delivery = Delivery(http, render)
        self._locks: dict[str, asyncio.Lock] = {}
        self._reminders: dict[str, _Reminder] = {}
        # Notifiers that saw an alerting result inside a maintenance window: if the next result
        # after the window still alerts, it alerts at once (SPEC §11).
        self._failing_in_window: set[str] = set()

    async def observe(
        self, owner: str, hooks: list[Webhook], notice: Notice, *, muted: bool = False
    ) -> None:
        """Count `notice.label` against each notifier of `owner`; send what is due. `muted`
        (a maintenance window) sends nothing and leaves the counts where they are; a streak
        still failing when the window ends alerts on the first result after it."""
        for index, hook in enumerate(hooks):
            if hook.type not in NOTIFY_WEBHOOK_TYPES:
                continue
            key = webhook_key(owner, index, hook)
            alerting = notice.label in hook.effective_alerts()
            if muted:
                if alerting:
                    self._failing_in_window.add(key)
                continue
            async with self._locks.setdefault(key, asyncio.Lock()):
                count = await self._counters.load_counter(key)
                after_window = key in self._failing_in_window
                self._failing_in_window.discard(key)
                # Counted atomically in the store: agents sharing it count one target together,
                # and exactly one of them sees the count reach `fails_in_a_row` (or the end).
                if alerting:
                    count = await self._counters.increment_counter(key)
                    if after_window and count < hook.fails_in_a_row:
                        count = hook.fails_in_a_row
                        await self._counters.save_counter(key, count)
                    if count == hook.fails_in_a_row:
                        await self._alert(owner, key, hook, notice, count)
                elif count:
                    count = await self._counters.reset_counter(key)
                    if count >= hook.fails_in_a_row:
                        self._reminders.pop(key, None)
                        await self._counters.save_alert(key, None)
                        if hook.resolved:
                            self.delivery.send(hook, notice, "resolved", count)

    async def _alert(self, owner: str, key: str, hook: Webhook, notice: Notice, count: int) -> None:
        now = self._clock()
        await self._counters.save_alert(key, SentAlert(sent_at=now, notice=notice.to_dict()))
        if hook.repeat_seconds:
            self._reminders[key] = _Reminder(owner, hook, notice, count, now)
        self.delivery.send(hook, notice, "alert", count)

    async def restore(self, owners: Iterable[tuple[str, list[Webhook]]]) -> None:
        """Take up the reminders of alerts still on (after a start or a project change), from
        their stored sending time, so a restart neither repeats early nor forgets; drop those of
        notifiers that no longer exist."""
        wanted: dict[str, tuple[str, Webhook]] = {}
        for owner, hooks in owners:
            for index, hook in enumerate(hooks):
                if hook.type in NOTIFY_WEBHOOK_TYPES and hook.repeat_seconds:
                    wanted[webhook_key(owner, index, hook)] = (owner, hook)
        self._reminders = {k: r for k, r in self._reminders.items() if k in wanted}
        for key, (owner, hook) in wanted.items():
            if key in self._reminders:
                continue
            alert = await self._counters.load_alert(key)
            count = await self._counters.load_counter(key)
            if alert is not None and count >= hook.fails_in_a_row:
                notice = Notice.from_dict(alert.notice)
                self._reminders[key] = _Reminder(owner, hook, notice, count, alert.sent_at)

    async def send_due_reminders(self, muted: Callable[[str], bool] = lambda _owner: False) -> int:
        """Send again every alert whose `repeat_every` has passed, but those whose owner is
        `muted` now (a maintenance window: due again once it ends); returns how many."""
        now = self._clock()
        sent = 0
        for key, reminder in list(self._reminders.items()):
            every = reminder.hook.repeat_seconds or 0
            if (now - reminder.sent_at).total_seconds() < every or muted(reminder.owner):
                continue
            # Agents share the store (SPEC §13): another may have resolved the alert, or sent
            # it again, since this one took up the reminder.
            stored = await self._counters.load_alert(key)
            if stored is None:
                del self._reminders[key]
                continue
            if stored.sent_at > reminder.sent_at:
                reminder.sent_at = stored.sent_at
                continue
            reminder.sent_at = now
            alert = SentAlert(sent_at=now, notice=reminder.notice.to_dict())
            await self._counters.save_alert(key, alert)
            self.delivery.send(reminder.hook, reminder.notice, "repeat", reminder.count)
            sent += 1
        return sent

    async def close(self) -> None:
        await self.delivery.close()
