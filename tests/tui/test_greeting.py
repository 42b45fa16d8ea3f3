"""What the TUI says first: the demo's sign-in instructions were printed just before the TUI
opened and covered them (a newcomer's run)."""

from __future__ import annotations

from apimd.cli.demo import TUI_GREETING
from apimd.tui.app import build_app
from apimd.tui.keys import TuiSettings
from tests.tui.conftest import notices, wait_for
from tests.tui.fakes import SOCKET, FakeClient, frozen_clock


async def test_a_greeting_is_shown_on_start_and_the_demos_names_its_sign_ins() -> None:
    app = build_app(
        SOCKET,
        clock=frozen_clock,
        settings=TuiSettings(),
        client=FakeClient(),
        greeting=TUI_GREETING,
    )
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: TUI_GREETING in notices(app), what="the greeting")
    assert "press i, sign in as demo / demo-password" in TUI_GREETING


async def test_no_greeting_no_notice() -> None:
    app = build_app(SOCKET, clock=frozen_clock, settings=TuiSettings(), client=FakeClient())
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.2)
        assert notices(app) == []
