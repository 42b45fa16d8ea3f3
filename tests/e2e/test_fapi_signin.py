"""A FAPI-style token end to end (SPEC §10): a real Chromium signs in through PAR with a
private_key_jwt client and a DPoP-bound token on the demo authorization server, which enforces all
three; the daemon then keeps the token fresh across several expiries (rotating refresh tokens), one
token request per expiry, and no secret reaches its log, DB or WAL."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.async_api import Browser

from apimd.cli.demo import FAPI_TOKEN, fapi_resources
from apimd.demo.server import RunningServer, TokenServerState, create_app
from tests.e2e.conftest import Daemon
from tests.e2e.test_browser_signin import sign_in_in_browser
from tests.support.polling import eventually

LIFETIME_S = 4


@pytest.fixture
async def auth_server() -> AsyncIterator[tuple[RunningServer, TokenServerState]]:
    state = TokenServerState(lifetime_s=LIFETIME_S, send_iss=True)
    state.fapi.dpop_nonce = "e2e-nonce"
    async with RunningServer(create_app(state)) as server:
        yield server, state


@pytest.mark.slow
async def test_fapi_token_signed_in_in_chromium_stays_fresh_across_expiries(
    daemon: Daemon, auth_server: tuple[RunningServer, TokenServerState], browser: Browser
) -> None:
    server, state = auth_server
    doc = fapi_resources(server)
    client_pem = doc["auth"][0]["client_key"]
    doc["schedules"] = [{"name": "often", "every": "1s", "targets": ["my-orders-fapi"]}]
    async with daemon.client() as client:
        await client.apply(doc)
        started = await client.signin(FAPI_TOKEN)
        assert set(parse_qs(urlsplit(started.url).query)) == {"client_id", "request_uri"}
        heading, status = await sign_in_in_browser(browser, started.url)
        assert (heading, status) == ("Signed in", 200), state.fapi.refused
        assert state.pkce_checked == 1
        signed_in_at = time.monotonic()
        signed_in_wall = datetime.now(UTC)
        grants_before = len(state.grants)
        token = await client.get("tokens", FAPI_TOKEN, reveal=True)
        assert token.variables["TOKEN_TYPE"] == "DPoP"  # type: ignore[attr-defined]

        async def refreshed(count: int) -> bool:
            return state.grants[grants_before:].count("refresh_token") >= count

        await eventually(lambda: refreshed(3), timeout=4 * LIFETIME_S + 10, interval=0.2)
        elapsed = time.monotonic() - signed_in_at
        await asyncio.sleep(0.5)
        page = await client.results(name="my-orders-fapi", limit=100)
    refreshes = state.grants[grants_before:].count("refresh_token")
    # One token request per expiry (the token is renewed a tenth of its life early), plus at
    # most one DPoP nonce retry per request.
    expiries = int(elapsed / (LIFETIME_S * 0.9)) + 1
    assert 3 <= refreshes <= expiries, (refreshes, elapsed)
    assert len(state.grants) - grants_before <= 2 * expiries
    scheduled = [
        r for r in page.results if r.trigger == "schedule" and r.started_at > signed_in_wall
    ]
    assert len(scheduled) >= 3 * LIFETIME_S - 2
    failed = [(r.outcome.value, r.error) for r in scheduled if r.outcome.value != "PASS"]
    assert failed == []
    assert all(not r.retried_after_401 for r in scheduled)
    # Nothing secret on disk: the client key (the DPoP key is covered by tests/store).
    pem_line = client_pem.strip().splitlines()[1].encode()
    files = [p for p in daemon.home.rglob("*") if p.is_file() and not p.is_socket()]
    assert any(p.name == "daemon.log" for p in files), files
    assert [p for p in files if pem_line in p.read_bytes()] == []
