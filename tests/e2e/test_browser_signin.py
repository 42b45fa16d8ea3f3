"""Browser sign-in end to end (SPEC §5): a real Chromium signs in on the demo authorization server
(login form, code flow with PKCE, refresh tokens, short expiry), the browser comes back to the
daemon's /tokens/callback, and scheduled calls pass with the token, also after it expired."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from playwright.async_api import Browser

from apimd.cli.demo import signin_resources
from apimd.demo.server import RunningServer, TokenServerState, create_app
from tests.e2e.conftest import Daemon, signing_in
from tests.support.polling import eventually, until
from tests.support.projects import token_saved


@pytest.fixture
async def auth_server() -> AsyncIterator[tuple[RunningServer, TokenServerState]]:
    state = TokenServerState(lifetime_s=6)
    async with RunningServer(create_app(state)) as server:
        yield server, state


def code_flow_project(base: str, *, schedule: bool = False) -> dict[str, Any]:
    """An oauth2 authorization-code token, refreshed by a workflow using its refresh token."""
    doc: dict[str, Any] = {
        # The demo's code-flow auth (apimd demo --signin), refreshed by the workflow below.
        "auth": [
            {**signin_resources(base)["auth"][0], "name": "sso", "refresh_workflow": "refresh"}
        ],
        "tokens": [{"name": "user", "auth": "sso"}],
        "calls": [
            {
                "name": "use-refresh-token",
                "method": "POST",
                "url": f"{base}/oauth/token",
                "form": {
                    "grant_type": "refresh_token",
                    "refresh_token": "%%REFRESH_TOKEN%%",
                    "client_id": "%%CLIENT_ID%%",
                    "client_secret": "%%CLIENT_SECRET%%",
                },
                "conditions": token_saved(
                    {"source": "json", "path": "refresh_token", "save_as": "REFRESH_TOKEN"},
                ),
            },
            {
                "name": "orders",
                "url": f"{base}/api/orders",
                "token": "user",
                "conditions": [{"source": "status", "op": "eq", "value": 200}],
            },
        ],
        "workflows": [{"name": "refresh", "steps": ["use-refresh-token"]}],
    }
    if schedule:
        doc["schedules"] = [{"name": "often", "every": "1s", "targets": ["orders"]}]
    return doc


async def sign_in_in_browser(browser: Browser, url: str, *, deny: bool = False) -> tuple[str, int]:
    """Log in on the authorization server's form; returns the final page's heading and status."""
    page = await browser.new_page()
    try:
        await page.goto(url)
        await page.fill("#username", "demo")
        await page.fill("#password", "demo-password")
        async with page.expect_navigation(url="**/tokens/callback**") as navigation:
            await page.click("#deny" if deny else "#sign-in")
        response = await navigation.value
        await page.wait_for_selector("h1:text-matches('Signed in|Sign-in failed')")
        return await page.inner_text("h1"), response.status if response else 0
    finally:
        await page.close()


async def landed_address(browser: Browser, url: str) -> str:
    """Over SSH the browser cannot reach this machine's callback port: log in at `url`, and
    return the address the browser ended on (the login form's redirect, caught) for pasting."""
    page = await browser.new_page()
    landed: list[str] = []

    async def unreachable(route: Any) -> None:
        if route.request.method != "POST":
            await route.continue_()
            return
        response = await route.fetch(max_redirects=0)
        landed.append(response.headers["location"])
        await route.abort()

    try:
        await page.route("**/oauth/authorize**", unreachable)
        await page.goto(url)
        await page.fill("#username", "demo")
        await page.fill("#password", "demo-password")
        await page.click("#sign-in")
        await until(lambda: bool(landed), timeout=15, interval=0.2)
    finally:
        await page.close()
    return landed[0]


async def test_browser_sign_in_then_scheduled_calls_pass_across_expiry(
    daemon: Daemon, auth_server: tuple[RunningServer, TokenServerState], browser: Browser
) -> None:
    server, state = auth_server
    async with signing_in(daemon, code_flow_project(server.url), "user") as (client, started):
        query = parse_qs(urlsplit(started.url).query)
        assert query["code_challenge_method"] == ["S256"]
        heading, status = await sign_in_in_browser(browser, started.url)
        assert (heading, status) == ("Signed in", 200)
        assert state.pkce_checked == 1
        token = await client.get("tokens", "user", reveal=True)
        assert token.state.value == "valid"  # type: ignore[attr-defined]
        assert token.variables["REFRESH_TOKEN"].startswith("rt-")  # type: ignore[attr-defined]
        await client.put(
            "schedules", "often", {"name": "often", "every": "1s", "targets": ["orders"]}
        )

        async def passes_after(count: int) -> bool:
            page = await client.results(name="orders", limit=50)
            passed = [
                r for r in page.results if r.trigger == "schedule" and r.outcome.value == "PASS"
            ]
            return len(passed) >= count

        await eventually(lambda: passes_after(1), timeout=15, interval=0.2)
        await asyncio.sleep(6.5)  # the 6 s token expires; the refresh workflow renews it
        await eventually(lambda: passes_after(5), timeout=15, interval=0.2)
        page = await client.results(name="orders", limit=50)
        assert all(r.outcome.value == "PASS" for r in page.results), [r.error for r in page.results]
        refreshes = await client.results(name="refresh", limit=10)
        assert refreshes.results and refreshes.results[0].outcome.value == "PASS"
    assert "refresh_token" in state.grants


async def test_fragment_answer_goes_through_the_capture_page_script(
    daemon: Daemon, auth_server: tuple[RunningServer, TokenServerState], browser: Browser
) -> None:
    server, state = auth_server
    state.fragment_response = True
    async with signing_in(daemon, code_flow_project(server.url), "user") as (client, started):
        heading, _ = await sign_in_in_browser(browser, started.url)
        token = await client.get("tokens", "user")
    assert heading == "Signed in"
    assert token.state.value == "valid"  # type: ignore[attr-defined]


async def test_access_denied_tells_the_person(
    daemon: Daemon, auth_server: tuple[RunningServer, TokenServerState], browser: Browser
) -> None:
    server, _ = auth_server
    async with signing_in(daemon, code_flow_project(server.url), "user") as (client, started):
        page = await browser.new_page()
        await page.goto(started.url)
        await page.click("#deny")
        await page.wait_for_selector("h1")
        heading = await page.inner_text("h1")
        body = await page.inner_text("body")
        await page.close()
        token = await client.get("tokens", "user")
    assert heading == "Sign-in failed"
    assert "access_denied" in body or "denied" in body.lower()
    assert token.state.value != "valid"  # type: ignore[attr-defined]


async def test_pasted_redirect_url_completes_the_sign_in(
    daemon: Daemon, auth_server: tuple[RunningServer, TokenServerState], browser: Browser
) -> None:
    """Over SSH the browser cannot reach the callback port: the person pastes the final URL."""
    server, _ = auth_server
    async with signing_in(daemon, code_flow_project(server.url), "user") as (client, started):
        landed = await landed_address(browser, started.url)
        done = await client.complete_signin(landed)
        token = await client.get("tokens", "user")
    assert done.ok, done
    assert token.state.value == "valid"  # type: ignore[attr-defined]


async def test_forged_callbacks_are_refused_and_run_nothing(
    daemon: Daemon, auth_server: tuple[RunningServer, TokenServerState], browser: Browser
) -> None:
    server, _ = auth_server
    async with daemon.client() as client:
        await client.apply(code_flow_project(server.url))
        status = await client.status()
        started = await client.signin("user")
        real_state = parse_qs(urlsplit(started.url).query)["state"][0]
        callback = status.callback_url
        port = urlsplit(callback).port
        async with aiohttp.ClientSession() as http:
            async with http.get(callback, params={"state": "forged", "code": "x"}) as forged:
                assert forged.status == 400
                assert "Sign-in failed" in await forged.text()
                assert forged.headers["Cache-Control"] == "no-store"
                assert "default-src 'none'" in forged.headers["Content-Security-Policy"]
            async with http.get(
                callback,
                params={"state": real_state, "code": "x"},
                headers={"Host": f"evil.example:{port}"},
            ) as wrong_host:
                assert wrong_host.status == 421
            async with http.post(
                callback,
                json={"state": real_state, "code": "x"},
                headers={"Origin": "http://evil.example"},
            ) as cross:
                assert cross.status == 403
            async with http.post(
                callback,
                data="state=x",
                headers={
                    "Origin": f"http://127.0.0.1:{port}",
                    "Content-Type": "application/x-www-form-urlencoded",
                },
            ) as not_json:
                assert not_json.status == 403
            async with http.get(callback) as capture:
                assert capture.status == 200
                assert "<script>" in await capture.text()
        # The real state is still usable after all that: a person can finish the sign-in.
        heading, _ = await sign_in_in_browser(browser, started.url)
        assert heading == "Signed in"
        async with (
            aiohttp.ClientSession() as http,
            http.get(callback, params={"state": real_state, "code": "x"}) as replayed,
        ):
            assert replayed.status == 400
        results = await client.results(limit=100)
    assert not [r for r in results.results if r.trigger == "callback" and r.outcome.value != "PASS"]


@pytest.mark.parametrize("flags", [["--device"], []], ids=["device", "without-device"])
async def test_device_sign_in_through_the_cli_with_slow_down(
    daemon: Daemon, auth_server: tuple[RunningServer, TokenServerState], flags: list[str]
) -> None:
    """Also without `--device`: a device_code auth's token has no other sign-in, and asked for
    a browser one it said `auth tv has no way to sign in … or use oauth2 with grant …
    device_code` (a helper's retest)."""
    server, state = auth_server
    state.force_slow_down = 1
    project = {
        "auth": [
            {
                "name": "tv",
                "type": "oauth2",
                "grant": "device_code",
                "device_authorization_url": f"{server.url}/oauth/device_authorization",
                "token_url": f"{server.url}/oauth/token",
                "client_id": "demo-client",
                "client_secret": "demo-secret",
            }
        ],
        "tokens": [{"name": "tv-token", "auth": "tv"}],
        "calls": [{"name": "tv-orders", "url": f"{server.url}/api/orders", "token": "tv-token"}],
    }
    async with daemon.client() as client:
        await client.apply(project)
        cli = asyncio.create_task(daemon.cli("token", "signin", "tv-token", *flags, timeout=60))

        async def user_code() -> str | None:
            pending = await client.signins()
            return pending.signins[0].user_code if pending.signins else None

        code = await eventually(user_code, timeout=15, interval=0.2, what="the user code")
        assert code is not None
        state.approve_device(code)
        exit_code, out, err = await cli
        result = await client.run("calls", "tv-orders", wait=True)
    assert exit_code == 0, out + err
    assert code in out
    assert "Signed in" in out
    assert result.result is not None and result.result.outcome.value == "PASS"
    polls = state.grants.count("urn:ietf:params:oauth:grant-type:device_code")
    assert polls >= 2  # a slow_down answer, then the tokens
    assert state.force_slow_down == 0
