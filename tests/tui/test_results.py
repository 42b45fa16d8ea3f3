"""History and statistics against a real daemon."""

from __future__ import annotations

from typing import Any

from textual.screen import Screen
from textual.widgets import Sparkline, Static
from textual.widgets._footer import FooterKey

from apimd.client import Client
from apimd.tui.screens.results import PAGE_SIZE, ResultsScreen, ResultTable
from apimd.tui.screens.stats import StatsScreen
from apimd.tui.screens.tokens import TokensScreen
from apimd.tui.screens.viewer import ResultScreen
from apimd.tui.widgets.result_view import ResultView
from tests.tui.conftest import in_thread, make_app, on_dashboard, press_on, screen_of, wait_for
from tests.tui.daemon import Daemon, run_sync


async def test_history_lists_results_filters_by_outcome_and_opens_a_detail(
    daemon: Daemon,
) -> None:
    app = make_app(daemon)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("h")
        screen = await screen_of(pilot, ResultsScreen)
        await wait_for(pilot, lambda: len(screen.results) >= 2, what="results listed")
        names = {r.name for r in screen.results.values()}
        assert {"checkout-health", "service-status"} <= names

        await pilot.press("o")  # outcome: FAIL
        await wait_for(
            pilot,
            lambda: (
                screen.results and all(r.outcome.value == "FAIL" for r in screen.results.values())
            ),
            what="only failures",
        )
        table = screen.query_one(ResultTable)
        assert str(table.get_row_at(0)[1]) == "✗ FAIL"
        state = str(screen.query_one("#results-state", Static).render())
        assert "outcome FAIL" in state

        table.focus()
        await pilot.press("enter")
        detail = await screen_of(pilot, ResultScreen)
        await wait_for(pilot, lambda: detail.result is not None, what="the result to load")
        viewer = detail.query_one(ResultView)
        status = str(viewer.query_one("#result-status", Static).render())
        assert "✗ FAIL" in status and "HTTP" in status


async def test_enter_on_the_dashboard_opens_the_monitors_history_and_s_its_statistics(
    daemon: Daemon,
) -> None:
    async with on_dashboard(daemon, (120, 40)) as (_app, pilot, dashboard):
        history = await press_on(pilot, dashboard.table, "checkout-health", "enter", ResultsScreen)
        await wait_for(pilot, lambda: history.results, what="the monitor's results")
        assert {r.name for r in history.results.values()} == {"checkout-health"}

        await pilot.press("s")
        stats = await screen_of(pilot, StatsScreen)
        await wait_for(pilot, lambda: stats.stats is not None, what="statistics")
        summary = str(stats.query_one("#stats-summary", Static).render())
        assert "uptime 0.0%" in summary and "FAIL" in summary and "p95" in summary
        assert stats.query_one("#p95-chart", Sparkline).data


async def test_m_loads_the_next_page_of_older_results(daemon: Daemon) -> None:
    async def run_many() -> None:
        async with Client(daemon.socket_path) as client:
            for _ in range(PAGE_SIZE + 5):
                await client.run("calls", "service-status", wait=True)

    await in_thread(lambda: run_sync(run_many()))
    app = make_app(daemon)
    async with app.run_test(size=(80, 24)) as pilot:
        app.push_screen(ResultsScreen("service-status"))
        screen = await screen_of(pilot, ResultsScreen)
        await wait_for(pilot, lambda: len(screen.results) == PAGE_SIZE, what="the first page")
        assert screen.next_cursor is not None
        assert "m for more" in str(screen.query_one("#results-state", Static).render())
        await pilot.press("m")
        await wait_for(pilot, lambda: len(screen.results) > PAGE_SIZE, what="the next page")
        assert screen.next_cursor is None
        assert screen.query_one(ResultTable).row_count == len(screen.results)
        assert {r.name for r in screen.results.values()} == {"service-status"}


def _help_key_fits(screen: Screen[Any], width: int) -> bool:
    """Whether the footer shows the `?` (Help) key whole: within `width` columns, and left of
    the command palette's key (docked at the right, over whatever reaches it)."""
    keys = list(screen.query(FooterKey))
    helps = [key for key in keys if key.key == "question_mark"]
    edge = min([width, *(key.region.x for key in keys if key.has_class("-command-palette"))])
    return bool(helps) and helps[0].region.width > 0 and helps[0].region.right <= edge


async def test_every_screen_shows_help_in_its_footer_at_80_columns(daemon: Daemon) -> None:
    """The history's filter keys are in its filter bar, not the footer: with them there too,
    "? Help" was cut at 80 columns ("? He▏^p Commands")."""
    app = make_app(daemon)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: _help_key_fits(app.screen, 80), what="the dashboard's")
        await pilot.press("h")
        history = await screen_of(pilot, ResultsScreen)
        await wait_for(pilot, lambda: history.results, what="results listed")
        history.query_one(ResultTable).focus()  # its ⏎ Open comes first
        await pilot.pause()
        assert _help_key_fits(history, 80)
        state = str(history.query_one("#results-state", Static).render())
        assert "(o)" in state and "(w)" in state  # where the hidden keys are shown
        await pilot.press("enter")
        detail = await screen_of(pilot, ResultScreen)
        await wait_for(pilot, lambda: _help_key_fits(detail, 80), what="the result's")
        await pilot.press("escape", "s")
        stats = await screen_of(pilot, StatsScreen)
        await wait_for(pilot, lambda: _help_key_fits(stats, 80), what="the statistics'")
        await pilot.press("t")
        tokens = await screen_of(pilot, TokensScreen)
        await wait_for(pilot, lambda: _help_key_fits(tokens, 80), what="the tokens'")
