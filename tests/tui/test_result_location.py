"""The result detail says where a run ran once that can differ from where the TUI looks (SPEC
§13): here a result recorded by this daemon under another `APIMD_LOCATION`, then restarted."""

from __future__ import annotations

import pytest
from textual.pilot import Pilot
from textual.widgets import Static

from apimd.client import Client
from apimd.model.result import Result
from apimd.tui.screens.results import ResultsScreen, ResultTable
from apimd.tui.screens.viewer import ResultScreen
from apimd.tui.widgets.result_view import ResultView
from tests.tui.conftest import make_app, screen_of, wait_for
from tests.tui.daemon import Daemon, run_sync


async def _results(daemon: Daemon) -> list[Result]:
    async with Client(daemon.socket_path) as client:
        return (await client.results(name="probe")).results


async def _status_of(pilot: Pilot[None], result: Result) -> str:
    pilot.app.push_screen(ResultScreen(result.id, result.name))
    detail = await screen_of(pilot, ResultScreen)
    await wait_for(pilot, lambda: detail.result is not None, what="the result to load")
    text = str(detail.query_one(ResultView).query_one("#result-status", Static).render())
    pilot.app.pop_screen()
    return text


async def test_a_result_from_another_location_says_where_it_ran(
    fresh_daemon: Daemon, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("APIMD_LOCATION", "loc-away")
    monkeypatch.setenv("APIMD_AGENT", "agent-away")
    fresh_daemon.start()
    fresh_daemon.apply({"calls": [{"name": "probe", "url": "http://127.0.0.1:9/never"}]})
    fresh_daemon.run("calls", "probe")
    fresh_daemon.stop_cleanly()
    monkeypatch.setenv("APIMD_LOCATION", "loc-home")
    monkeypatch.setenv("APIMD_AGENT", "agent-home")
    fresh_daemon.start()
    fresh_daemon.run("calls", "probe")
    home, away = run_sync(_results(fresh_daemon))
    assert (home.location, away.location) == ("loc-home", "loc-away")
    app = make_app(fresh_daemon)
    async with app.run_test(size=(120, 30)) as pilot:
        await wait_for(pilot, lambda: app.daemon.status is not None, what="the daemon status")
        assert "ran in loc-away by agent agent-away" in await _status_of(pilot, away)
        assert "ran in" not in await _status_of(pilot, home)


async def test_the_results_list_says_where_each_ran_when_agents_differ(
    fresh_daemon: Daemon, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One place: no column for it. Results of two agents: a `where` column, as `apimd
    results` has."""
    monkeypatch.setenv("APIMD_LOCATION", "loc-away")
    monkeypatch.setenv("APIMD_AGENT", "agent-away")
    fresh_daemon.start()
    fresh_daemon.apply({"calls": [{"name": "probe", "url": "http://127.0.0.1:9/never"}]})
    fresh_daemon.run("calls", "probe")
    app = make_app(fresh_daemon)
    async with app.run_test(size=(120, 30)) as pilot:
        pilot.app.push_screen(ResultsScreen("probe"))
        listed = await screen_of(pilot, ResultsScreen)
        await wait_for(pilot, lambda: len(listed.results) == 1, what="the result")
        assert "where" not in _column_keys(listed)
    fresh_daemon.stop_cleanly()
    monkeypatch.setenv("APIMD_LOCATION", "loc-home")
    monkeypatch.setenv("APIMD_AGENT", "agent-home")
    fresh_daemon.start()
    fresh_daemon.run("calls", "probe")
    app = make_app(fresh_daemon)
    async with app.run_test(size=(120, 30)) as pilot:
        pilot.app.push_screen(ResultsScreen("probe"))
        listed = await screen_of(pilot, ResultsScreen)
        await wait_for(pilot, lambda: len(listed.results) == 2, what="both results")
        await wait_for(pilot, lambda: "where" in _column_keys(listed), what="a where column")
        table = listed.query_one(ResultTable)
        cells = {str(table.get_row_at(i)[-1]) for i in range(table.row_count)}
        assert cells == {"loc-away/agent-away", "loc-home/agent-home"}


def _column_keys(screen: ResultsScreen) -> list[str]:
    return [str(key.value) for key in screen.query_one(ResultTable).columns]
