"""Issue 10 points 15, 18, 19 in the TUI against a real daemon: a call that runs only as a
workflow's step shows its last run (dashboard and history, marked as a step), auth settings are
reached by a key from the Tokens screen and named with the right article in the palette, and the
header says the daemon's age as such."""

from __future__ import annotations

from apimd.tui.commands import ResourcesProvider
from apimd.tui.editors.base import EditorScreen
from apimd.tui.screens.results import ResultsScreen, ResultTable
from apimd.tui.screens.tokens import TokensScreen
from apimd.tui.screens.viewer import ResultScreen
from apimd.tui.widgets.status_bar import StatusBar
from tests.tui.conftest import (
    in_thread,
    make_app,
    on_dashboard,
    press_on,
    screen_of,
    wait_for,
)
from tests.tui.daemon import Daemon
from tests.tui.test_dashboard import cell


async def test_a_call_run_only_as_a_step_shows_its_last_run_marked_as_a_step(
    daemon: Daemon,
) -> None:
    async with on_dashboard(daemon, (120, 40)) as (app, pilot, screen):
        assert (cell(screen, "quiet-call", "kind"), cell(screen, "quiet-call", "last")) == (
            "call",
            "—",
        )
        await in_thread(lambda: daemon.run("workflows", "slow-flow"))
        # Live, from the workflow's step event.
        await wait_for(
            pilot, lambda: cell(screen, "quiet-call", "kind") == "step", what="the step's run"
        )
        assert cell(screen, "quiet-call", "last") != "—"
        # A call with a schedule of its own stays a call when it last ran as a step.
        await in_thread(lambda: daemon.run("workflows", "order-flow"))
        await wait_for(
            pilot, lambda: cell(screen, "order-flow", "last") != "—", what="order-flow's run"
        )
        await pilot.pause(0.2)
        assert cell(screen, "service-status", "kind") == "call"

    # From the summary, as a freshly opened TUI sees it.
    async with on_dashboard(daemon, (120, 40)) as (app, pilot, screen):
        await wait_for(pilot, lambda: cell(screen, "quiet-call", "kind") == "step", what="step")
        assert cell(screen, "quiet-call", "last") != "—"

        app.push_screen(ResultsScreen("quiet-call"))
        history = await screen_of(pilot, ResultsScreen)
        await wait_for(pilot, lambda: history.results, what="the step's results")
        table = history.query_one(ResultTable)
        assert str(table.get_row_at(0)[2]) == "quiet-call (step of slow-flow)"
        table.focus()
        await pilot.press("enter")
        detail = await screen_of(pilot, ResultScreen)
        result = await wait_for(pilot, lambda: detail.result, what="the result to load")
        assert result.name == "slow-flow"  # the step is shown inside its workflow
        assert [s.name for s in result.steps] == ["quiet-call", "slow-call"]


async def test_auth_settings_have_a_key_from_tokens_and_read_right_in_the_palette(
    daemon: Daemon,
) -> None:
    app = make_app(daemon)
    async with app.run_test(size=(120, 40)) as pilot:
        app.animation_level = "none"
        status = str(app.screen.query_one(StatusBar).render())
        await wait_for(
            pilot,
            lambda: "started" in str(app.screen.query_one(StatusBar).render()),
            what="the daemon's status",
        )
        status = str(app.screen.query_one(StatusBar).render())
        assert " up " not in status and " ago" in status

        commands = {c.title: c.help for c in ResourcesProvider(app.screen).new_commands()}
        assert commands["New auth setting"] == "create an auth setting"
        assert commands["New call"] == "create a call"

        await pilot.press("t")
        tokens = await screen_of(pilot, TokensScreen)
        await wait_for(pilot, lambda: tokens.table.row_count >= 2, what="the tokens")
        editor = await press_on(
            pilot, tokens.table, "sso-token", "a", EditorScreen, ready=lambda s: s.loaded
        )
        assert (editor.KIND, editor.resource_name) == ("auth", "demo-sso")
