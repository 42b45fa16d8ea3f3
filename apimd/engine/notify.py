"""`http` and `slack` webhooks: consecutive-alert counting, one alert per streak, resolved messages."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from apimd.engine.http import HttpExecutor, HttpFailure, HttpRequest
from apimd.engine.ports import WebhookCounterRepository
from apimd.model.resources import Webhook

log = logging.getLogger(__name__)

NOTIFY_TIMEOUT_S = 10.0


@dataclass
class Notice:
    """What a notification says (already redacted)."""

    subject: str  # "call list-orders", "token example-token"
    label: str  # the outcome or token state that was observed: FAIL, NEEDS_SIGN_IN, …
    summary: dict[str, Any]
    text: str  # one line for people


def webhook_key(owner: str, index: int, hook: Webhook) -> str:
    """A counter key that changes when the webhook's definition changes."""
    digest = hashlib.sha256(hook.model_dump_json().encode()).hexdigest()[:12]
    return f"{owner}#{index}:{digest}"


class Notifier:
    """Sends notifications; counting and "resolved" follow SPEC §2 "Webhooks"."""

    def __init__(
        self,
        http: HttpExecutor,
        counters: WebhookCounterRepository,
        render: Callable[[str, str], str],
    ) -> None:
        self._http = http
        self._counters = counters
        self._render = render
        self._locks: dict[str, asyncio.Lock] = {}

    async def observe(self, owner: str, hooks: list[Webhook], notice: Notice) -> None:
        """Count `notice.label` against each notify webhook of `owner`; send what is due."""
        for index, hook in enumerate(hooks):
            if hook.type not in ("http", "slack"):
                continue
            key = webhook_key(owner, index, hook)
            async with self._locks.setdefault(key, asyncio.Lock()):
                count = await self._counters.load_counter(key)
                if notice.label in hook.effective_alerts():
                    count += 1
                    await self._counters.save_counter(key, count)
                    if count == hook.fails_in_a_row:
                        await self._send(hook, notice, "alert", count)
                elif count:
                    await self._counters.save_counter(key, 0)
                    if count >= hook.fails_in_a_row and hook.resolved:
                        await self._send(hook, notice, "resolved", count)

    async def _send(self, hook: Webhook, notice: Notice, event: str, count: int) -> None:
        where = f"{notice.subject} webhook"
        try:
            url = self._render(hook.url or "", f"{where} url")
            headers = [
                (k, self._render(v, f"{where} headers.{k}")) for k, v in hook.headers.items()
            ]
        except Exception as exc:
            log.warning("%s not sent: %s", where, exc)
            return
        if hook.type == "slack":
            prefix = "Resolved: " if event == "resolved" else ""
            payload: dict[str, Any] = {"text": prefix + notice.text}
            method = "POST"
        else:
            payload = {"event": event, "consecutive": count, **notice.summary}
            method = hook.method.upper()
        request = HttpRequest(
            method=method,
            url=url,
            headers=[("Content-Type", "application/json"), *headers],
            body=json.dumps(payload).encode(),
            timeout=NOTIFY_TIMEOUT_S,
        )
        try:
            response = await self._http.send(request)
        except HttpFailure as exc:
            log.warning("%s failed: %s", where, exc.message)
            return
        if response.status >= 400:
            log.warning("%s answered HTTP %s", where, response.status)
