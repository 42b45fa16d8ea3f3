"""Sending notifications (SPEC §2 webhooks, §11 notifiers): http, slack and Apprise, in the
background so a run or a `wait: true` answer never waits for one, retried 3 times with backoff."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from apimd.engine import apprise_send
from apimd.engine.http import HttpExecutor, HttpFailure, HttpRequest
from apimd.engine.notices import Notice
from apimd.model.resources import Webhook

log = logging.getLogger(__name__)

NOTIFY_TIMEOUT_S = 10.0
RETRY_DELAYS_S = (1.0, 2.0, 4.0)
CLOSE_GRACE_S = 15.0
APPRISE_THREADS = 2


class DeliveryFailed(Exception):
    """One attempt did not get through; the message says why, without the URL (a secret)."""


class DeliveryRefused(DeliveryFailed):
    """No attempt can succeed (e.g. a URL Apprise does not understand): not retried."""


class Delivery:
    """Queues notifications as tasks of their own and sends them; Apprise blocks, so it runs on
    a small thread pool of its own (never the default pool that conditions use)."""

    def __init__(
        self,
        http: HttpExecutor,
        render: Callable[[str, str], str],
        *,
        retry_delays: tuple[float, ...] = RETRY_DELAYS_S,
    ) -> None:
        self._http = http
        self._render = render
        self._retry_delays = retry_delays
        self._tasks: set[asyncio.Task[None]] = set()
        self._apprise_pool: ThreadPoolExecutor | None = None

    def send(self, hook: Webhook, notice: Notice, event: str, count: int) -> None:
        """Deliver in the background: `event` is alert, repeat or resolved."""
        task = asyncio.create_task(self._deliver(hook, notice, event, count))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        """Give deliveries under way some time to finish (a standalone run exits after this)."""
        if self._tasks:
            _done, pending = await asyncio.wait(set(self._tasks), timeout=CLOSE_GRACE_S)
            for task in pending:
                task.cancel()
        if self._apprise_pool is not None:
            self._apprise_pool.shutdown(wait=False, cancel_futures=True)

    async def _deliver(self, hook: Webhook, notice: Notice, event: str, count: int) -> None:
        where = f"{notice.subject} {hook.type} notifier ({event})"
        try:
            url = self._render(hook.url or "", f"{where} url")
            headers = [
                (k, self._render(v, f"{where} headers.{k}")) for k, v in hook.headers.items()
            ]
        except Exception as exc:
            log.warning("%s not sent: %s", where, exc)
            return
        attempts = len(self._retry_delays) + 1
        for attempt in range(1, attempts + 1):
            try:
                if hook.type == "apprise":
                    await self._apprise(url, notice, event)
                else:
                    await self._post(hook, url, headers, notice, event, count)
            except Exception as exc:  # a notifier must never take a run or the daemon down
                if not isinstance(exc, DeliveryFailed):
                    log.debug("%s: unexpected error", where, exc_info=True)
                    exc = DeliveryFailed(f"{type(exc).__name__}: {exc}")
                if isinstance(exc, DeliveryRefused):
                    log.error("%s not sent: %s", where, exc)
                    return
                if attempt == attempts:
                    log.error("%s failed %d times, giving up: %s", where, attempts, exc)
                    return
                delay = self._retry_delays[attempt - 1]
                log.warning("%s failed (%s); retry %d in %.0f s", where, exc, attempt, delay)
                await asyncio.sleep(delay)
            else:
                log.info("%s sent", where)
                return

    async def _post(
        self,
        hook: Webhook,
        url: str,
        headers: list[tuple[str, str]],
        notice: Notice,
        event: str,
        count: int,
    ) -> None:
        if hook.type == "slack":
            prefix = {"resolved": "Resolved: ", "repeat": "Still: "}.get(event, "")
            payload: dict[str, Any] = {"text": f"{prefix}{notice.text}\n{notice.body}"}
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
            raise DeliveryFailed(exc.message) from None
        if response.status >= 400:
            raise DeliveryFailed(f"answered HTTP {response.status}")

    async def _apprise(self, url: str, notice: Notice, event: str) -> None:
        if self._apprise_pool is None:
            self._apprise_pool = ThreadPoolExecutor(APPRISE_THREADS, "apimd-apprise")
        loop = asyncio.get_running_loop()
        title = notice.title_for(event)
        await loop.run_in_executor(self._apprise_pool, _apprise_notify, url, title, notice.body)


def _apprise_notify(url: str, title: str, body: str) -> None:
    """One Apprise notification (blocking); raises DeliveryFailed saying why when it did not go
    out, with the URL's secret parts masked (Apprise's own log, which has them, stays muted)."""
    try:
        apprise_send.send(url, title, body)
    except apprise_send.AppriseRefusedUrl as exc:
        raise DeliveryRefused(str(exc)) from None
    except apprise_send.AppriseFailed as exc:
        raise DeliveryFailed(str(exc)) from None
