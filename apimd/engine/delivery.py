"""Sending notifications (SPEC §2 webhooks, §11 notifiers): http, slack and Apprise, in the
background so a run or a `wait: true` answer never waits for one, retried 3 times with backoff."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

from apimd.engine import apprise_send
from apimd.engine.http import HttpExecutor, HttpFailure, HttpRequest
from apimd.engine.notices import Notice
from apimd.engine.redact import Redactor
from apimd.model.resources import Webhook

log = logging.getLogger(__name__)

NOTIFY_TIMEOUT_S = 10.0
RETRY_DELAYS_S = (1.0, 2.0, 4.0)
CLOSE_GRACE_S = 15.0
APPRISE_TIMEOUT_S = 30.0
"""How long one Apprise attempt may take: a server that trickles its answer keeps Apprise (and
its thread) busy forever, whatever its socket timeouts."""
MAX_APPRISE_THREADS = 8
"""Apprise attempts under way (or hung) at once; past this, a delivery fails at once."""


class DeliveryFailed(Exception):
    """One attempt did not get through; the message says why, without the URL (a secret)."""


class DeliveryRefused(DeliveryFailed):
    """No attempt can succeed (e.g. a URL Apprise does not understand): not retried."""


class Delivery:
    """Queues notifications as tasks of their own and sends them; Apprise blocks, so each attempt
    runs on a daemon thread of its own (never the default pool that conditions use), given up on
    after `APPRISE_TIMEOUT_S`: a hung one neither blocks other notifications nor the exit."""

    def __init__(
        self,
        http: HttpExecutor,
        render: Callable[[str, str], str],
        *,
        retry_delays: tuple[float, ...] = RETRY_DELAYS_S,
        apprise_timeout: float | None = None,
    ) -> None:
        self._http = http
        self._render = render
        self._retry_delays = retry_delays
        self._apprise_timeout = APPRISE_TIMEOUT_S if apprise_timeout is None else apprise_timeout
        self._tasks: set[asyncio.Task[None]] = set()
        self._apprise_threads: list[threading.Thread] = []

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
                    log.debug("%s: unexpected error %s", where, type(exc).__name__)
                    exc = DeliveryFailed(_without_url(f"{type(exc).__name__}: {exc}", url))
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
        except HttpFailure as exc:  # e.g. "invalid URL '<the URL>'": the URL is a secret
            raise DeliveryFailed(_without_url(exc.message, url)) from None
        if response.status >= 400:
            raise DeliveryFailed(f"answered HTTP {response.status}")

    async def _apprise(self, url: str, notice: Notice, event: str) -> None:
        self._apprise_threads = [t for t in self._apprise_threads if t.is_alive()]
        if len(self._apprise_threads) >= MAX_APPRISE_THREADS:
            raise DeliveryFailed(f"{MAX_APPRISE_THREADS} Apprise notifications still hang")
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        title = notice.title_for(event)

        def settle(error: BaseException | None) -> None:
            if done.done():
                return
            if error is None:
                done.set_result(None)
            else:
                done.set_exception(error)

        def attempt() -> None:
            error: BaseException | None = None
            try:
                _apprise_notify(url, title, notice.body)
            except Exception as exc:
                error = exc
            with contextlib.suppress(RuntimeError):  # the loop is gone: nobody waits
                loop.call_soon_threadsafe(settle, error)

        thread = threading.Thread(target=attempt, name="apimd-apprise", daemon=True)
        self._apprise_threads.append(thread)
        thread.start()
        try:
            await asyncio.wait_for(asyncio.shield(done), self._apprise_timeout)
        except TimeoutError:
            raise DeliveryFailed(
                f"Apprise got no answer within {self._apprise_timeout:g} s"
            ) from None


def _without_url(message: str, url: str) -> str:
    """`message` with the URL, and any piece of its path or query, masked (SPEC §3: a webhook
    URL is a secret; its host, needed to make sense of a connection error, stays)."""
    pieces = [url, url.split("://", 1)[-1], repr(url)[1:-1]]
    rest = url.split("://", 1)[-1].partition("/")[2]
    pieces += [rest, unquote(rest)]
    pieces += [p for p in rest.replace("?", "/").replace("&", "/").split("/") if len(p) >= 8]
    return Redactor([p for p in pieces if len(p) >= 4]).text(message)


def _apprise_notify(url: str, title: str, body: str) -> None:
    """One Apprise notification (blocking); raises DeliveryFailed saying why when it did not go
    out, with the URL's secret parts masked (Apprise's own log, which has them, stays muted)."""
    try:
        apprise_send.send(url, title, body)
    except apprise_send.AppriseRefusedUrl as exc:
        raise DeliveryRefused(str(exc)) from None
    except apprise_send.AppriseFailed as exc:
        raise DeliveryFailed(str(exc)) from None
