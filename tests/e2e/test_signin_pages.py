"""What the "Signed in" page promises about the token's future is true (SPEC §5): apimd renews
it by itself only when it can (a refresh workflow, a refresh token, a grant that needs nobody);
otherwise the page says that a person signs in again when it expires."""

from __future__ import annotations

from typing import Any

from playwright.async_api import Browser

from tests.e2e.conftest import Daemon, signing_in
from tests.e2e.signin_workflow import browser_workflow_project
from tests.e2e.test_browser_signin import code_flow_project


def no_refresh_project(base: str) -> dict[str, Any]:
    """A token signed in through a workflow that saves an access token and its expiry only:
    no refresh workflow, no refresh token."""
    flow = browser_workflow_project(base)
    calls = {c["name"]: c for c in flow["calls"]}
    exchange = calls["sso-exchange"]
    exchange["conditions"].append({"source": "json", "path": "expires_in", "save_as": "EXPIRES_IN"})
    return {
        "version": 1,
        "variables": flow["variables"],  # the client secret, a secret variable
        "auth": [{"name": "sso-once", "type": "manual", "signin_workflow": "sign-in"}],
        "tokens": [{"name": "once", "auth": "sso-once"}],
        "calls": [calls["sso-authorize"], exchange],
        "workflows": [{"name": "sign-in", "steps": ["sso-authorize", "sso-exchange"]}],
    }


async def signed_in_page(browser: Browser, url: str) -> str:
    page = await browser.new_page()
    try:
        await page.goto(url)
        await page.fill("#username", "demo")
        await page.fill("#password", "demo-password")
        await page.click("#sign-in")
        await page.wait_for_selector("h1:text-matches('Signed in|Sign-in failed')")
        return await page.inner_text("body")
    finally:
        await page.close()


async def test_a_token_nothing_can_renew_says_a_person_signs_in_again(
    daemon: Daemon, demo: str, browser: Browser
) -> None:
    async with signing_in(daemon, no_refresh_project(demo), "once") as (client, started):
        body = await signed_in_page(browser, started.url)
        token = await client.get("tokens", "once")
    assert body.startswith("Signed in"), body
    assert token.state.value == "valid"  # type: ignore[attr-defined]
    assert "refreshes it by itself" not in body
    assert "cannot renew it by itself" in body
    assert "when it expires" in body and "apimd token signin once" in body


async def test_a_token_with_a_refresh_workflow_is_promised_its_refresh(
    daemon: Daemon, demo: str, browser: Browser
) -> None:
    async with signing_in(daemon, code_flow_project(demo), "user") as (_client, started):
        body = await signed_in_page(browser, started.url)
    assert body.startswith("Signed in"), body
    assert "apimd refreshes it by itself before it expires" in body
    assert "sign in again" not in body
