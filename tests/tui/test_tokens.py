"""The tokens screen against a real daemon: state, countdown, masked and revealed variables,
refresh now, and sign-in."""

from __future__ import annotations

from textual.widgets import Static

from apimd.model.common import SECRET_MASK
from apimd.model.resources import TokenState
from apimd.tui.app import build_app
from apimd.tui.keys import TuiSettings
from apimd.tui.screens.signin import SignInScreen
from apimd.tui.screens.tokens import TokensScreen
from tests.tui.conftest import make_app, press_on, screen_of, wait_for
from tests.tui.daemon import Daemon, DemoServer

SSH = {"SSH_CONNECTION": "10.0.0.2 50122 10.0.0.9 22"}


def detail(screen: TokensScreen) -> str:
    return str(screen.query_one("#token-detail", Static).render())


async def test_refresh_reveal_and_countdown(daemon: Daemon) -> None:
    app = make_app(daemon)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("t")
        screen = await screen_of(pilot, TokensScreen)
        await wait_for(pilot, lambda: "demo-token" in screen.tokens, what="the token")

        await pilot.press("R")  # refresh now: runs refresh-demo against the demo token server
        await wait_for(
            pilot,
            lambda: (
                screen.tokens["demo-token"].state is TokenState.VALID
                and screen.tokens["demo-token"].expires_at is not None
            ),
            what="the token to be valid",
        )
        assert str(screen.table.get_cell("demo-token", "state")) == "valid"
        countdown = str(screen.table.get_cell("demo-token", "expires"))
        assert countdown.endswith("s") and countdown != "expired"  # e.g. 59s (60 s tokens)
        assert f"ACCESS_TOKEN  {SECRET_MASK}" in detail(screen)

        await pilot.press("v")
        await wait_for(pilot, lambda: "revealed" in detail(screen), what="the reveal")
        assert "ACCESS_TOKEN  at-" in detail(screen)

        await pilot.press("v")  # hides again
        await wait_for(pilot, lambda: "masked" in detail(screen), what="the mask")
        assert "at-" not in detail(screen)

        # The countdown ticks once a second, changing only that column.
        before = str(screen.table.get_cell("demo-token", "expires"))
        await wait_for(
            pilot,
            lambda: str(screen.table.get_cell("demo-token", "expires")) != before,
            timeout=3,
            what="the countdown to move",
        )


async def test_i_starts_a_sign_in_that_shows_the_url_over_ssh(
    daemon: Daemon, demo: DemoServer
) -> None:
    app = build_app(daemon.socket_path, settings=TuiSettings(), environ=SSH)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("t")
        screen = await screen_of(pilot, TokensScreen)
        await wait_for(pilot, lambda: "sso-token" in screen.tokens, what="the tokens")
        signin = await press_on(
            pilot, screen.table, "sso-token", "i", SignInScreen, ready=lambda s: s.info
        )
        assert signin.mode == "browser"
        assert signin.info is not None
        url = signin.info.url or ""
        assert url.startswith(f"{demo.url}/oauth/authorize?")
        shown = " ".join(str(w.render()) for w in signin.query(Static) if w.display)
        assert url in shown.replace("\n", "")  # the URL to open elsewhere, in full
        assert "ssh -L " in shown
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is screen, what="back on the tokens")


async def test_a_resize_keeps_the_selected_token(daemon: Daemon) -> None:
    """Past 100 columns the table gains the auth column and is rebuilt: the cursor went back to
    the first token (the retest resized while a sign-in was open over it)."""
    app = make_app(daemon)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("t")
        screen = await screen_of(pilot, TokensScreen)
        await wait_for(pilot, lambda: len(screen.tokens) >= 2, what="two tokens")
        await pilot.press("down")
        chosen = screen.current_name()
        assert chosen is not None and chosen != sorted(screen.tokens)[0]
        await pilot.resize_terminal(120, 30)
        await wait_for(pilot, lambda: "auth" in screen.table.columns, what="the wide layout")
        assert screen.current_name() == chosen
