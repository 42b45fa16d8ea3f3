"""Notification delivery (SPEC §11): a failed delivery is logged and retried 3 times with backoff,
in the background, and an Apprise URL it cannot parse is a logged failure, not a crash."""

from __future__ import annotations

import asyncio
import logging
import socket
import sys
from collections.abc import AsyncIterator, Iterator

import pytest
from aiohttp import web

from apimd.demo.server import RunningServer
from apimd.engine.delivery import Delivery
from apimd.engine.http import HttpExecutor
from apimd.engine.notices import Notice
from apimd.model.resources import Webhook

NOTICE = Notice(subject="call c", label="FAIL", summary={"name": "c"}, text="c failed", body="b")


@pytest.fixture
async def flaky() -> AsyncIterator[tuple[str, list[int]]]:
    """A receiver that answers 503 three times, then 200; records each attempt's status."""
    statuses: list[int] = []

    async def hook(_request: web.Request) -> web.Response:
        status = 503 if len(statuses) < 3 else 200
        statuses.append(status)
        return web.json_response({}, status=status)

    app = web.Application()
    app.router.add_post("/hook", hook)
    async with RunningServer(app) as server:
        yield f"{server.url}/hook", statuses


async def test_a_failed_delivery_is_retried_three_times_and_logged(
    flaky: tuple[str, list[int]], caplog: pytest.LogCaptureFixture
) -> None:
    url, statuses = flaky
    http = HttpExecutor()
    delivery = Delivery(http, lambda text, _where: text, retry_delays=(0.05, 0.1, 0.2))
    try:
        with caplog.at_level(logging.INFO, logger="apimd.engine.delivery"):
            delivery.send(Webhook(type="http", url=url), NOTICE, "alert", 1)
            assert statuses == []  # queued, not sent inline
            await delivery.close()
    finally:
        await http.close()
    assert statuses == [503, 503, 503, 200]
    retries = [r.getMessage() for r in caplog.records if "retry" in r.getMessage()]
    assert len(retries) == 3 and "HTTP 503" in retries[0]
    assert url not in caplog.text  # the URL is a secret


async def test_an_apprise_url_it_cannot_parse_is_logged_once_without_the_url(
    caplog: pytest.LogCaptureFixture,
) -> None:
    http = HttpExecutor()
    delivery = Delivery(http, lambda text, _where: text, retry_delays=(0.01, 0.01, 0.01))
    try:
        with caplog.at_level(logging.WARNING, logger="apimd.engine.delivery"):
            url = "nosuchscheme://user:pw-in-url@x"
            delivery.send(Webhook(type="apprise", url=url), NOTICE, "alert", 1)
            await delivery.close()
    finally:
        await http.close()
    errors = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(errors) == 1
    assert "Apprise does not understand this URL" in errors[0].getMessage()
    assert "pw-in-url" not in caplog.text


async def test_giving_up_after_four_attempts(caplog: pytest.LogCaptureFixture) -> None:
    http = HttpExecutor()
    delivery = Delivery(http, lambda text, _where: text, retry_delays=(0.01, 0.01, 0.01))
    try:
        with caplog.at_level(logging.WARNING, logger="apimd.engine.delivery"):
            delivery.send(Webhook(type="http", url="http://127.0.0.1:9/x"), NOTICE, "alert", 1)
            await delivery.close()
    finally:
        await http.close()
    assert len([r for r in caplog.records if "retry" in r.getMessage()]) == 3
    assert "failed 4 times, giving up" in caplog.records[-1].getMessage()


SECRET = "T0PSECRETHOOKVALUE"


@pytest.mark.parametrize(
    "url",
    [
        f"http://hooks.example:99999/services/{SECRET}",
        f"http://[::1/services/{SECRET}",
        f"ftp://127.0.0.1/services/{SECRET}",
        f"http://127.0.0.1:1/services/{SECRET}?token={SECRET}",
        f"https://hooks.example/x/{SECRET}%zz\x00",
    ],
)
@pytest.mark.parametrize("kind", ["http", "slack"])
async def test_a_webhook_url_that_cannot_be_sent_stays_out_of_the_log(
    url: str, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    http = HttpExecutor()
    delivery = Delivery(http, lambda text, _where: text, retry_delays=(0.01,))
    try:
        with caplog.at_level(logging.DEBUG):
            delivery.send(Webhook(type=kind, url=url), NOTICE, "alert", 1)
            await delivery.close()
    finally:
        await http.close()
    assert "giving up" in caplog.text or "not sent" in caplog.text
    assert SECRET not in caplog.text


TRICKLE_AND_EXIT = """
import asyncio, logging, socket, sys, threading, time
from apimd.engine import delivery as module
from apimd.engine.delivery import Delivery
from apimd.engine.http import HttpExecutor
from apimd.engine.notices import Notice
from apimd.model.resources import Webhook

module.APPRISE_TIMEOUT_S = 1
logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(message)s")
server = socket.create_server(("127.0.0.1", 0))

def trickle():  # answers one header line a second, forever
    while True:
        conn, _ = server.accept()
        def drip(conn=conn):
            try:
                conn.recv(65536)
                conn.sendall(b"HTTP/1.1 200 OK\\r\\n")
                while True:
                    conn.sendall(b"X: y\\r\\n")
                    time.sleep(0.5)
            except OSError:
                pass
        threading.Thread(target=drip, daemon=True).start()

threading.Thread(target=trickle, daemon=True).start()

async def main():
    http = HttpExecutor()
    delivery = Delivery(http, lambda text, _where: text, retry_delays=())
    url = f"json://127.0.0.1:{server.getsockname()[1]}/"
    delivery.send(Webhook(type="apprise", url=url), Notice("call c", "FAIL", {}, "t", "b"), "alert", 1)
    await delivery.close()
    await http.close()

asyncio.run(main())
print("main done")
"""


async def test_an_apprise_server_that_trickles_neither_hangs_delivery_nor_the_exit() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        TRICKLE_AND_EXIT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        out, _ = await asyncio.wait_for(process.communicate(), 60)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    text = out.decode()
    assert process.returncode == 0, text
    assert "no answer within 1 s" in text and "main done" in text, text


@pytest.fixture
def refusing_port() -> Iterator[int]:
    """A loopback port bound but not listening: a connection to it is refused."""
    with socket.socket() as bound:
        bound.bind(("127.0.0.1", 0))
        yield bound.getsockname()[1]


@pytest.fixture
async def failing_receiver() -> AsyncIterator[str]:
    """A receiver that answers every notification with HTTP 500."""

    async def hook(_request: web.Request) -> web.Response:
        return web.json_response({"error": "boom"}, status=500)

    app = web.Application()
    app.router.add_post("/{tail:.*}", hook)
    async with RunningServer(app) as server:
        yield server.url.split("://")[1]


async def _apprise_failures(url: str, caplog: pytest.LogCaptureFixture) -> list[str]:
    http = HttpExecutor()
    delivery = Delivery(http, lambda text, _where: text, retry_delays=(0.01,))
    try:
        with caplog.at_level(logging.INFO):
            delivery.send(Webhook(type="apprise", url=url), NOTICE, "alert", 1)
            await delivery.close()
    finally:
        await http.close()
    assert "hook-secret" not in caplog.text and "pw-secret" not in caplog.text
    assert "key-secret" not in caplog.text and "user-secret" not in caplog.text
    return [r.getMessage() for r in caplog.records if r.name == "apimd.engine.delivery"]


async def test_an_apprise_delivery_refused_says_so_with_the_url_masked(
    refusing_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"json://user-secret:pw-secret@127.0.0.1:{refusing_port}/hook-secret?-key=key-secret"
    retry, gave_up = await _apprise_failures(url, caplog)
    masked = f"json://••••@127.0.0.1:{refusing_port}/••••?••••"
    assert f"Apprise could not deliver it to {masked}: connection refused" in retry
    assert gave_up.endswith(
        f"giving up: Apprise could not deliver it to {masked}: connection refused"
    )
    assert "\n" not in gave_up


async def test_an_apprise_delivery_answered_500_says_the_status(
    failing_receiver: str, caplog: pytest.LogCaptureFixture
) -> None:
    _retry, gave_up = await _apprise_failures(f"json://{failing_receiver}/hook-secret", caplog)
    assert gave_up.endswith(
        f"Apprise could not deliver it to json://{failing_receiver}/••••: HTTP 500"
    )


async def test_an_apprise_delivery_logs_no_part_of_its_url_even_at_debug(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Apprise sends through requests and urllib3, whose DEBUG line names the request's path: a
    Slack or Discord webhook's token. With the daemon's log at DEBUG it must not reach the log."""
    received: list[str] = []

    async def hook(request: web.Request) -> web.Response:
        received.append(request.path)
        return web.json_response({})

    app = web.Application()
    app.router.add_post("/{tail:.*}", hook)
    http = HttpExecutor()
    async with RunningServer(app) as server:
        delivery = Delivery(http, lambda text, _where: text, retry_delays=(0.01,))
        try:
            with caplog.at_level(logging.DEBUG):
                delivery.send(
                    Webhook(type="apprise", url=f"json://{server.url.split('://')[1]}/hook-secret"),
                    NOTICE,
                    "alert",
                    1,
                )
                await delivery.close()
        finally:
            await http.close()
    assert received == ["/hook-secret"]  # it went out
    assert "hook-secret" not in caplog.text, caplog.text
