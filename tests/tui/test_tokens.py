"""The tokens screen against a real daemon: state, countdown, masked and revealed variables,
refresh now, and the sign-in placeholder."""

from __future__ import annotations

from textual.widgets import Static

from apimd.model.common import SECRET_MASK
from apimd.model.resources import TokenState
from apimd.tui.screens.tokens import TokensScreen
from tests.tui.conftest import make_app, notices, wait_for
from tests.tui.daemon import Daemon


def detail(screen: TokensScreen) -> str:
    return str(screen.query_one("#token-detail", Static).render())


async def test_refresh_reveal_and_countdown(daemon: Daemon) -> None:
    app = make_app(daemon)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("t")
        screen = await wait_for(pilot, lambda: isinstance(app.screen, TokensScreen) and app.screen)
        assert isinstance(screen, TokensScreen)
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


async def test_sign_in_is_a_clearly_marked_placeholder(daemon: Daemon) -> None:
    app = make_app(daemon)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("t")
        screen = await wait_for(pilot, lambda: isinstance(app.screen, TokensScreen) and app.screen)
        assert isinstance(screen, TokensScreen)
        await wait_for(pilot, lambda: "demo-token" in screen.tokens, what="the token")
        await pilot.press("i")
        await wait_for(
            pilot,
            lambda: any("sign-in: not available yet" in n for n in notices(app)),
            what="the placeholder notice",
        )
