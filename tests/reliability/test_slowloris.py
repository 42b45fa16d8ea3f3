"""Slowloris on the callback port (SPEC §5: at most 64 connections, 10 s to send headers).

WHAT IT PROVES: 500 loopback connections that each trickle a partial request line and headers,
and reconnect the moment they are dropped, cannot keep a person from signing in: while they
run, a real browser-style redirect to the callback URL gets the "Signed in" page within 15 s
and the token is saved and works. The flood is bounded (at most 30 s) and stays on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp

from tests.reliability.conftest import (
    DaemonProcess,
    eventually,
    exchange_server,
    signin_project,
    state_of,
)

ATTACKERS = 500
FLOOD_LIMIT_S = 30.0
SIGNIN_LIMIT_S = 15.0
DRIP_INTERVAL_S = 0.5


@dataclass
class FloodStats:
    connects: int = 0
    drops: int = 0
    refused: int = 0
    open_now: int = 0


async def _slowloris(host: str, port: int, stop: asyncio.Event, stats: FloodStats) -> None:
    """One attacker: connect, send a request line and headers a few bytes at a time, never the
    blank line that ends them; reconnect when dropped."""
    drip = [
        b"GET /tokens/callback?state=",
        *(b"a" for _ in range(40)),
        f" HTTP/1.1\r\nHost: {host}:{port}\r\n".encode(),
        *(f"X-Pad-{i}: {i}\r\n".encode() for i in range(10_000)),
    ]
    while not stop.is_set():
        try:
            reader, writer = await asyncio.open_connection(host, port)
        except OSError:
            stats.refused += 1
            await asyncio.sleep(0.05)
            continue
        stats.connects += 1
        stats.open_now += 1
        try:
            for piece in drip:
                writer.write(piece)
                await writer.drain()
                # Wake early when the server hangs up, or when the flood ends.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(DRIP_INTERVAL_S):
                        if await reader.read(1) == b"":
                            break
                if stop.is_set():
                    break
        except OSError:
            pass
        finally:
            stats.drops += 1
            stats.open_now -= 1
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


async def test_signin_completes_during_a_slowloris_flood(daemon: DaemonProcess) -> None:
    async with exchange_server() as exchange:
        async with daemon.client() as client:
            await client.apply(signin_project(exchange.url))
        parts = urlsplit(daemon.callback_url)
        assert parts.hostname == "127.0.0.1"
        assert parts.port is not None

        stop = asyncio.Event()
        stats = FloodStats()
        flood_started = time.monotonic()
        attackers = [
            asyncio.create_task(_slowloris("127.0.0.1", parts.port, stop, stats))
            for _ in range(ATTACKERS)
        ]
        try:
            async with asyncio.timeout(FLOOD_LIMIT_S):
                # The flood is on: every attacker has connected at least once, most were
                # evicted (only 64 fit) and are reconnecting.
                await eventually(lambda: _true(stats.connects >= ATTACKERS), timeout=20)

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
                print("TOOK", took, stats)
                assert took < SIGNIN_LIMIT_S
                # Still flooding when the browser got through.
                assert stats.connects > ATTACKERS
        finally:
            stop.set()
            for task in attackers:
                task.cancel()
            await asyncio.gather(*attackers, return_exceptions=True)
        assert time.monotonic() - flood_started < FLOOD_LIMIT_S + 5

        async with daemon.client() as client:
            token = await client.get("tokens", "sso-token", reveal=True)
            me = await client.run("calls", "sso-me", wait=True)
        assert token.model_dump()["state"] == "valid"
        assert token.model_dump()["variables"]["ACCESS_TOKEN"] == exchange.issued[-1]
        assert me.result is not None
        assert me.result.outcome.value == "PASS", me.result.error


async def _true(value: bool) -> bool:
    return value
