"""A real Chromium signs in while the callback port is flooded (issue 10 point 6; the limiter's
guarantee is in apimd/daemon/callback_limits.py).

WHAT IT PROVES: with 130 keep-alive connections each sending a request every 4 s, or 130 slow
POST bodies, on the callback port, a person in Chromium still signs in: through the login form
and the redirect with the code in the query, and through the capture page whose script posts
the URL fragment back (a second request, on a connection the browser may keep alive)."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from playwright.async_api import Browser

from apimd.demo.server import RunningServer, TokenServerState, create_app
from tests.e2e.conftest import Daemon
from tests.e2e.test_browser_signin import code_flow_project, sign_in_in_browser
from tests.reliability.slowloris import flooding

ATTACKERS = 130
FLOOD_LIMIT_S = 60


@pytest.mark.parametrize("mode", ["keepalive", "body"])
@pytest.mark.parametrize("fragment", [False, True], ids=["query", "fragment"])
async def test_chromium_signs_in_during_a_flood(
    daemon: Daemon, browser: Browser, mode: str, fragment: bool
) -> None:
    state = TokenServerState(fragment_response=fragment)
    server = await RunningServer(create_app(state)).start()
    try:
        async with daemon.client() as client:
            await client.apply(code_flow_project(server.url))
            port = urlsplit((await client.status()).callback_url).port
            assert port is not None
            async with flooding(port, ATTACKERS, FLOOD_LIMIT_S, mode) as flood:
                await flood.under_way()
                started = await client.signin("user")
                heading, status = await sign_in_in_browser(browser, started.url)
                assert flood.running, "the flood was over before the browser got through"
            assert (heading, status) == ("Signed in", 200)
            token = await client.get("tokens", "user", reveal=True)
        assert token.state.value == "valid"  # type: ignore[attr-defined]
    finally:
        await server.stop()
