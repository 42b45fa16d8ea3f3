"""A browser sign-in in a cluster (SPEC §13 Sign-ins, issue 17): started through one agent, the
browser comes back to another agent's /tokens/callback (as behind a load balancer), which finishes
it from the shared pending sign-in with the redirect URI the sign-in started with."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from typing import Any

import pytest
from playwright.async_api import Browser, Route

from apimd.demo.server import RunningServer, TokenServerState, create_app
from tests import postgres
from tests.daemon.conftest import Daemon, start_daemon
from tests.e2e.test_browser_signin import code_flow_project
from tests.store.conftest import TEST_KEY


@pytest.fixture
async def auth_server() -> AsyncIterator[tuple[RunningServer, TokenServerState]]:
    state = TokenServerState(lifetime_s=60)
    async with RunningServer(create_app(state)) as server:
        yield server, state


@pytest.fixture
async def two_agents() -> AsyncIterator[tuple[Daemon, Daemon]]:
    postgres.require_postgres()
    database = postgres.create_database()
    agents: list[Daemon] = []
    try:
        for name in ("a1", "a2"):
            agents.append(
                start_daemon(
                    store="postgres",
                    database=database,
                    APIMD_AGENT=name,
                    APIMD_LOCATION="loc-a",
                    APIMD_SECRET_KEY=TEST_KEY,
                )
            )
        yield agents[0], agents[1]
    finally:
        for agent in agents:
            code = await agent.stop()
            assert code == 0, agent.stderr()
            agent.stderr_path.unlink(missing_ok=True)
            shutil.rmtree(agent.home, ignore_errors=True)
        postgres.drop_database(database)


async def test_a_sign_in_started_on_one_agent_completes_through_another_agents_callback(
    two_agents: tuple[Daemon, Daemon],
    auth_server: tuple[RunningServer, TokenServerState],
    browser: Browser,
) -> None:
    first, second = two_agents
    server, state = auth_server
    async with first.client() as one, second.client() as two:
        await one.apply(code_flow_project(server.url))
        started = await one.signin("user")
        first_callback = (await one.status()).callback_url
        second_callback = (await two.status()).callback_url
        assert first_callback != second_callback
        reached: list[str] = []

        async def balance(route: Route) -> None:
            # The load balancer: the authorization server sends the browser back to the first
            # agent's callback, and the browser lands on the second agent's.
            if route.request.method != "POST":
                await route.continue_()
                return
            response = await route.fetch(max_redirects=0)
            location = response.headers["location"]
            assert location.startswith(first_callback)
            reached.append(location.replace(first_callback, second_callback))
            await route.fulfill(status=302, headers={"Location": reached[0]})

        page = await browser.new_page()
        try:
            await page.route("**/oauth/authorize**", balance)
            await page.goto(started.url)
            await page.fill("#username", "demo")
            await page.fill("#password", "demo-password")
            await page.click("#sign-in")
            await page.wait_for_selector("h1:text-matches('Signed in|Sign-in failed')")
            heading = await page.inner_text("h1")
            body = await page.inner_text("body")
            landed = page.url
        finally:
            await page.close()
        assert reached and landed.startswith(second_callback)
        assert heading == "Signed in", body
        for client in (one, two):
            token: Any = await client.get("tokens", "user", reveal=True)
            assert token.state.value == "valid"
            assert token.variables["REFRESH_TOKEN"].startswith("rt-")
    assert state.pkce_checked == 1
