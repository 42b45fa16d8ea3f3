"""Key remapping from `settings.toml`, the help screen and the command palette."""

from __future__ import annotations

import pytest
from textual.command import CommandPalette
from textual.widgets import DataTable

from apimd.tui.app import build_app
from apimd.tui.commands import ResourcesProvider
from apimd.tui.editors import (
    AuthEditor,
    CallEditor,
    EditorScreen,
    ScheduleEditor,
    WorkflowEditor,
)
from apimd.tui.screens.dashboard import DashboardScreen
from apimd.tui.screens.help import HelpScreen
from apimd.tui.screens.run import RunScreen
from apimd.tui.screens.tokens import TokensScreen
from tests.tui.conftest import (
    loaded_dashboard,
    make_app,
    notices,
    on_dashboard,
    screen_of,
    wait_for,
)
from tests.tui.daemon import Daemon


async def test_keys_remapped_in_settings_toml_work_and_bad_entries_are_reported(
    daemon: Daemon, monkeypatch: pytest.MonkeyPatch
) -> None:
    (daemon.home / "settings.toml").write_text(
        "[keys]\n"
        '"dashboard.run" = "ctrl+e"\n'
        '"app.tokens" = "f2"\n'
        '"no.such.binding" = "x"\n'
        '"dashboard.stats" = "ctrl+nope"\n'
    )
    monkeypatch.setenv("APIMD_HOME", str(daemon.home))
    try:
        app = build_app(daemon.socket_path)  # reads $APIMD_HOME/settings.toml itself
        async with app.run_test(size=(80, 24)) as pilot:
            await loaded_dashboard(app, pilot)
            messages = "\n".join(notices(app))
            assert "no binding has id 'no.such.binding'" in messages
            assert "'ctrl+nope' is not a key" in messages

            await pilot.press("r")  # no longer bound
            await pilot.pause(0.2)
            assert isinstance(app.screen, DashboardScreen)
            await pilot.press("ctrl+e")
            await wait_for(pilot, lambda: isinstance(app.screen, RunScreen), what="ctrl+e runs")
            await pilot.press("escape")
            await wait_for(pilot, lambda: isinstance(app.screen, DashboardScreen), what="back")
            await pilot.press("f2")
            await wait_for(pilot, lambda: isinstance(app.screen, TokensScreen), what="f2 tokens")
    finally:
        (daemon.home / "settings.toml").unlink()


async def test_help_lists_the_keys_with_their_ids(daemon: Daemon) -> None:
    app = make_app(daemon)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("question_mark")
        help_screen = await screen_of(pilot, HelpScreen)
        table = help_screen.query_one(DataTable)
        rows = {
            str(table.get_row_at(i)[2]): str(table.get_row_at(i)[0]) for i in range(table.row_count)
        }
        assert rows["dashboard.run"] == "r"
        assert rows["app.quit"] == "q"
        assert rows["dashboard.filter"] == "/"
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, DashboardScreen), what="closed")


async def test_the_command_palette_offers_every_action_and_runs_it(daemon: Daemon) -> None:
    app = make_app(daemon)
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded_dashboard(app, pilot)
        await pilot.press("ctrl+p")
        await wait_for(pilot, lambda: isinstance(app.screen, CommandPalette), what="the palette")
        await pilot.press(*"tokens")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await wait_for(
            pilot, lambda: isinstance(app.screen, TokensScreen), what="tokens via palette"
        )


async def test_q_quits(daemon: Daemon) -> None:
    app = make_app(daemon)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("q")
        await pilot.pause(0.2)
        assert not app.is_running


async def test_e_edits_the_selected_monitor_n_a_new_call_and_the_palette_the_rest(
    daemon: Daemon,
) -> None:
    async with on_dashboard(daemon) as (app, pilot, dashboard):

        async def opened(kind: type[EditorScreen], heading: str) -> None:
            editor = await screen_of(pilot, kind)
            assert editor.heading == heading
            await pilot.press("escape")  # nothing typed: closes without asking
            await wait_for(pilot, lambda: app.screen is dashboard, what="back")

        dashboard.table.move_cursor(row=dashboard.table.get_row_index("order-flow"))
        await pilot.press("e")
        await opened(WorkflowEditor, "Edit workflow order-flow")
        await pilot.press("n")
        await opened(CallEditor, "New call")

        await pilot.press("ctrl+p")
        await wait_for(pilot, lambda: isinstance(app.screen, CommandPalette), what="palette")
        await pilot.press(*"new sch")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await opened(ScheduleEditor, "New schedule")

        # Every resource, by kind and name, and a sign-in of each token.
        provider = ResourcesProvider(dashboard)
        await provider.startup()
        titles = {c.title for c in provider.commands()}
        assert {
            f"New {n}" for n in ("call", "workflow", "auth setting", "token", "variable")
        } <= titles
        assert {
            "Edit call checkout-health",
            "Edit workflow order-flow",
            "Edit auth setting demo-sso",
            "Edit token demo-token",
            "Edit variable DEMO",
            "Edit schedule hourly",
            "Sign in sso-token",
            "Device sign-in sso-token",
        } <= titles
        next(c for c in provider.commands() if c.title == "Edit auth setting demo-sso").run()
        await opened(AuthEditor, "Edit auth setting demo-sso")
