"""Pressing "Run workflow" in the TUI is the interactive run of SPEC §5: a workflow with a
browser step records a pending sign-in, hands its URL to the person (browser opened here, or the
SSH view with the paste field) and runs its remaining steps, live on the run screen, once the
browser comes back. Against a real daemon and the demo authorization server."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from textual.pilot import Pilot
from textual.widgets import Input, Static

from apimd.demo.server import STATE_KEY
from apimd.model.outcome import Outcome
from apimd.tui.app import ApimdApp, build_app
from apimd.tui.keys import TuiSettings
from apimd.tui.screens.run import RunScreen
from apimd.tui.screens.signin import SignInScreen
from tests.e2e.signin_workflow import STEPS, WORKFLOW, browser_workflow_project
from tests.tui.conftest import daemon_with, wait_for
from tests.tui.daemon import Daemon, DemoServer
from tests.tui.test_signin import SSH, Opener, finish_in_browser, text_of


@pytest.fixture(scope="module")
def run_daemon(demo: DemoServer) -> Iterator[Daemon]:
    with daemon_with(browser_workflow_project(demo.url)) as running:
        yield running


async def run_workflow(
    app: ApimdApp, pilot: Pilot[None], opener: Opener | None = None
) -> RunScreen:
    await wait_for(pilot, lambda: app.daemon.connected, what="the daemon connection")
    await pilot.pause(0.2)
    run = RunScreen("workflow", WORKFLOW)
    if opener is not None:
        run.opener = opener
    app.push_screen(run)
    return run


def progress(run: RunScreen) -> str:
    return str(run.query_one("#run-progress", Static).render())


async def signin_screen(app: ApimdApp, pilot: Pilot[None]) -> SignInScreen:
    screen = await wait_for(
        pilot,
        lambda: isinstance(app.screen, SignInScreen) and app.screen.info and app.screen,
        what="the sign-in screen of the run",
    )
    assert isinstance(screen, SignInScreen)
    return screen


async def finished(app: ApimdApp, pilot: Pilot[None], run: RunScreen) -> None:
    await wait_for(
        pilot,
        lambda: app.screen is run and run.result is not None and run.signin is None,
        timeout=20,
        what="the run screen to show the workflow's end",
    )


async def test_over_ssh_the_run_hands_over_the_url_and_a_pasted_address_finishes_it(
    run_daemon: Daemon, demo: DemoServer
) -> None:
    app = build_app(run_daemon.socket_path, settings=TuiSettings(), environ=SSH)
    async with app.run_test(size=(100, 32)) as pilot:
        run = await run_workflow(app, pilot)
        screen = await signin_screen(app, pilot)
        assert screen.info is not None and screen.info.url
        url = screen.info.url
        query = parse_qs(urlsplit(url).query)
        assert url.startswith(f"{demo.url}/oauth/authorize?")
        assert query["redirect_uri"][0].startswith("http://127.0.0.1:")
        assert query["state"][0] and "••••" not in url  # the real URL, nothing masked
        assert app.clipboard == url  # OSC 52
        assert "ssh -L" in text_of(screen, "#signin-hint")
        assert f"for workflow {WORKFLOW}" in text_of(screen, "#signin-title")
        # Under the sign-in, the run screen says what it waits for.
        assert "waits for you to sign in" in progress(run)

        landed = await finish_in_browser(url)
        token_server = demo._server.app[STATE_KEY]  # type: ignore[union-attr]
        token_server.token_delay_s = 1.5  # the code exchange takes a while: watch it run
        try:
            screen.query_one("#signin-paste", Input).value = landed
            await pilot.press("enter")
            # The browser came back: the run screen is in front, following the steps live.
            await wait_for(
                pilot,
                lambda: app.screen is run and "2 of 4 steps done" in progress(run),
                what="the remaining steps to run live on the run screen",
            )
            assert "▶" in progress(run) and run.result is None
        finally:
            token_server.token_delay_s = 0.0
        await finished(app, pilot, run)
        assert run.result is not None
        assert run.result.outcome is Outcome.PASS, run.result.error
        assert [s.name for s in run.result.steps] == STEPS
        assert "PASS" in progress(run)


async def test_at_the_display_the_browser_opens_and_its_return_finishes_the_run(
    run_daemon: Daemon,
) -> None:
    opener = Opener()
    app = build_app(run_daemon.socket_path, settings=TuiSettings(), environ={"DISPLAY": ":0"})
    async with app.run_test(size=(100, 32)) as pilot:
        run = await run_workflow(app, pilot, opener)
        screen = await signin_screen(app, pilot)
        await wait_for(pilot, lambda: opener.opened, what="the browser to be opened")
        assert screen.info is not None and opener.opened == [screen.info.url]
        # The browser signs in and comes back to the daemon's callback.
        landed = await finish_in_browser(opener.opened[0])
        async with aiohttp.ClientSession() as http, http.get(landed) as page:
            assert "Signed in" in await page.text()
        await finished(app, pilot, run)
        assert run.result is not None and run.result.outcome is Outcome.PASS
        assert [s.name for s in run.result.steps] == STEPS
