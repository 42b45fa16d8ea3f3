"""Forged callbacks against a real daemon's callback port (SPEC §5).

WHAT IT PROVES: a request that is not the browser coming back from a sign-in apimd started runs
nothing. A wrong state is a 400, a wrong Host a 421, an oversized query is refused, a cross-origin
or non-JSON POST is a 403, an unreadable JSON POST (nested 1,000 deep, a lone surrogate) a
400, and a state is good exactly once (a replay is a 400). None of these
runs a step, records a result or calls the authorization server, and none of them burns the
genuine sign-in: the real redirect that follows them still signs the token in."""

from __future__ import annotations

from urllib.parse import urlsplit

import aiohttp

from tests.reliability.conftest import (
    DaemonProcess,
    Exchange,
    exchange_server,
    signin_project,
    state_of,
)

TIMEOUT = aiohttp.ClientTimeout(total=15)


async def _result_ids(daemon: DaemonProcess) -> set[str]:
    async with daemon.client() as client:
        page = await client.results(limit=1000)
    return {result.id for result in page.results}


async def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    async with (
        aiohttp.ClientSession(timeout=TIMEOUT) as session,
        session.get(url, headers=headers, allow_redirects=False) as response,
    ):
        return response.status, await response.text()


async def _post(url: str, data: bytes, headers: dict[str, str]) -> tuple[int, str]:
    async with (
        aiohttp.ClientSession(timeout=TIMEOUT) as session,
        session.post(url, data=data, headers=headers) as response,
    ):
        return response.status, await response.text()


async def _nothing_ran(daemon: DaemonProcess, exchange: Exchange, before: set[str]) -> None:
    assert exchange.exchanges == 0, "a forged callback reached the authorization server"
    assert await _result_ids(daemon) == before, "a forged callback recorded a result"


async def test_forged_callbacks_are_refused_and_run_nothing(daemon: DaemonProcess) -> None:
    async with exchange_server() as exchange:
        async with daemon.client() as client:
            await client.apply(signin_project(exchange.url))
            started = await client.signin("sso-token")
        state = state_of(started.url)
        callback = daemon.callback_url
        port = urlsplit(callback).port
        origin = f"http://127.0.0.1:{port}"
        before = await _result_ids(daemon)

        # A state no sign-in is waiting for.
        status, page = await _get(f"{callback}?state=forged-{state[:8]}&code=x")
        assert status == 400, page
        assert "Sign-in failed" in page
        await _nothing_ran(daemon, exchange, before)

        # The right state, sent to a name other than this server's (DNS rebinding).
        for host in ("evil.example", f"evil.example:{port}", f"127.0.0.2:{port}"):
            status, page = await _get(f"{callback}?state={state}&code=x", headers={"Host": host})
            assert status == 421, (host, status, page)
        await _nothing_ran(daemon, exchange, before)

        # More than 16 KiB of query, the right state included: refused, whatever the length.
        for padding in (16 * 1024, 64 * 1024):
            status, page = await _get(f"{callback}?state={state}&code=x&pad={'a' * padding}")
            assert status in (400, 414, 431), (padding, status, page[:200])
        await _nothing_ran(daemon, exchange, before)

        # The fragment-capture POST from another origin, and a POST that is not JSON.
        body = f'{{"state": "{state}", "code": "x"}}'.encode()
        status, _ = await _post(
            callback,
            body,
            {"Origin": "http://evil.example", "Content-Type": "application/json"},
        )
        assert status == 403
        for content_type in ("text/plain", "application/x-www-form-urlencoded"):
            status, _ = await _post(
                callback,
                f"state={state}&code=x".encode(),
                {"Origin": origin, "Content-Type": content_type},
            )
            assert status == 403, content_type
        status, _ = await _post(callback, body, {"Content-Type": "application/json"})
        assert status == 403, "a POST without an Origin is not the capture page's"
        # The capture page's POST with JSON nested past any parser's recursion, or text no
        # UTF-8 can carry: a "Sign-in failed" page, never a 500.
        for unreadable in (b"[" * 1000 + b"]" * 1000, b'{"state": "\\ud800", "code": "x"}'):
            status, page = await _post(
                callback, unreadable, {"Origin": origin, "Content-Type": "application/json"}
            )
            assert status == 400, (status, page[:300])
            assert "Sign-in failed" in page and "not readable" in page
        await _nothing_ran(daemon, exchange, before)

        # The genuine redirect still works once: the forgeries above did not use the state up.
        status, page = await _get(f"{callback}?state={state}&code=x")
        assert status == 200, page
        assert "Signed in" in page
        assert exchange.exchanges == 1
        async with daemon.client() as client:
            token = await client.get("tokens", "sso-token", reveal=True)
        assert getattr(token, "variables", None) == {
            "ACCESS_TOKEN": exchange.issued[0],
            "EXPIRES_IN": "3600",
        }
        after_signin = await _result_ids(daemon)

        # Replayed: the state was single use.
        status, page = await _get(f"{callback}?state={state}&code=x")
        assert status == 400, page
        assert exchange.exchanges == 1, "a replayed state ran the exchange again"
        assert await _result_ids(daemon) == after_signin
