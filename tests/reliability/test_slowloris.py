"""Floods of the callback port (SPEC §5: the connection limit, 10 s to send headers and body; the
guarantee is written in apimd/daemon/callback_limits.py).

WHAT IT PROVES: none of these floods, each reconnecting the moment it is dropped, keeps a person
from signing in: while it runs, a browser-style redirect to the callback URL gets the "Signed in"
page within 15 s, and the token is saved and works.
- 500 connections that each trickle a partial request line and headers (slowloris);
- 130 keep-alive connections each sending a whole request every 4 s (never idle long enough for
  the server's keep-alive timeout, so only eviction makes room);
- 130 slow POST bodies (the capture page's headers, then a byte every 0.5 s).
The flood (another process, as an attacker would be) stays on 127.0.0.1 and is bounded to 30 s."""

from __future__ import annotations

import time
from urllib.parse import urlsplit

import aiohttp
import pytest

from tests.reliability.conftest import (
    DaemonProcess,
    exchange_server,
    signin_project,
    state_of,
)
from tests.reliability.slowloris import flooding

FLOOD_LIMIT_S = 30
FLOODS = [("headers", 500), ("keepalive", 130), ("body", 130)]
SIGNIN_LIMIT_S = 15.0


@pytest.mark.parametrize(("mode", "attackers"), FLOODS, ids=[mode for mode, _ in FLOODS])
async def test_signin_completes_during_a_flood(
    daemon: DaemonProcess, mode: str, attackers: int
) -> None:
    async with exchange_server() as exchange:
        async with daemon.client() as client:
            await client.apply(signin_project(exchange.url))
        port = urlsplit(daemon.callback_url).port
        assert port is not None
        assert urlsplit(daemon.callback_url).hostname == "127.0.0.1"

        async with flooding(port, attackers, FLOOD_LIMIT_S, mode) as flood:
            await flood.under_way()
            async with daemon.client() as client:
                started = await client.signin("sso-token")
            redirect = f"{daemon.callback_url}?state={state_of(started.url)}&code=x"
            clock = time.monotonic()
            async with (
                aiohttp.ClientSession(
                    timeout=aiohttp.ClientTimeout(total=SIGNIN_LIMIT_S)
                ) as browser,
                browser.get(redirect) as response,
            ):
                page = await response.text()
            took = time.monotonic() - clock
            assert response.status == 200, page
            assert "Signed in" in page
            assert took < SIGNIN_LIMIT_S

            still_flooding = await flood.counts()
            assert flood.running, "the flood was over before the browser got through"
        assert still_flooding["connects"] > attackers, "the flood was never dropped"

        async with daemon.client() as client:
            token = (await client.get("tokens", "sso-token", reveal=True)).model_dump()
            me = await client.run("calls", "sso-me", wait=True)
        assert "Traceback" not in daemon.log_text(), "an evicted connection is not an error"
        assert token["state"] == "valid"
        assert token["variables"]["ACCESS_TOKEN"] == exchange.issued[-1]
        assert me.result is not None
        assert me.result.outcome.value == "PASS", me.result.error
