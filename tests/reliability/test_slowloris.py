"""Slowloris on the callback port (SPEC §5: at most 64 connections, 10 s to send headers).

WHAT IT PROVES: 500 loopback connections that each trickle a partial request line and headers,
and reconnect the moment they are dropped, cannot keep a person from signing in: while they
run, a browser-style redirect to the callback URL gets the "Signed in" page within 15 s, and
the token is saved and works. The flood (another process, as an attacker would be) stays on
127.0.0.1 and is bounded to 30 s."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp

from tests.reliability.conftest import (
    DaemonProcess,
    exchange_server,
    signin_project,
    state_of,
)

ATTACKERS = 500
FLOOD_LIMIT_S = 30
SIGNIN_LIMIT_S = 15.0
REPO = Path(__file__).resolve().parents[2]


async def _flood_counts(flood: asyncio.subprocess.Process) -> dict[str, int]:
    assert flood.stdout is not None
    line = await flood.stdout.readline()
    assert line, "the flood process ended early"
    counts: dict[str, int] = json.loads(line)
    return counts


async def test_signin_completes_during_a_slowloris_flood(daemon: DaemonProcess) -> None:
    async with exchange_server() as exchange:
        async with daemon.client() as client:
            await client.apply(signin_project(exchange.url))
        port = urlsplit(daemon.callback_url).port
        assert urlsplit(daemon.callback_url).hostname == "127.0.0.1"

        flood = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.reliability.slowloris",
            str(port),
            str(ATTACKERS),
            str(FLOOD_LIMIT_S),
            cwd=REPO,
            stdout=asyncio.subprocess.PIPE,
        )
        try:
            # The flood is on: every attacker has connected, and most were dropped (only 64
            # fit) and are reconnecting.
            async with asyncio.timeout(20):
                while (await _flood_counts(flood))["connects"] < 2 * ATTACKERS:
                    pass

            async with daemon.client() as client:
                started = await client.signin("sso-token")
            redirect = f"{daemon.callback_url}?state={state_of(started['url'])}&code=x"
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

            still_flooding = await _flood_counts(flood)
            assert flood.returncode is None, "the flood was over before the browser got through"
        finally:
            if flood.returncode is None:
                flood.terminate()
            await asyncio.wait_for(flood.communicate(), FLOOD_LIMIT_S)
        assert still_flooding["connects"] > 2 * ATTACKERS

        async with daemon.client() as client:
            token = (await client.get("tokens", "sso-token", reveal=True)).model_dump()
            me = await client.run("calls", "sso-me", wait=True)
        assert token["state"] == "valid"
        assert token["variables"]["ACCESS_TOKEN"] == exchange.issued[-1]
        assert me.result is not None
        assert me.result.outcome.value == "PASS", me.result.error
