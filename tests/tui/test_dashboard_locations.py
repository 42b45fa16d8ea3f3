"""The dashboard's location filter (SPEC §13): `l` steps through the locations the schedules name
(and the live agents'), keeping the monitors scheduled there or anywhere; typed as `@location`."""

from __future__ import annotations

import pytest
from textual.widgets import Input

from apimd.client import Client
from apimd.tui.screens.dashboard import DashboardScreen
from tests.tui.conftest import in_thread, make_app, wait_for
from tests.tui.daemon import Daemon, run_sync


def row_names(screen: DashboardScreen) -> set[str]:
    return {str(row.key.value) for row in screen.table.ordered_rows}


async def summary_locations(daemon: Daemon) -> dict[str, list[str]]:
    async with Client(daemon.socket_path) as client:
        return {t.name: t.locations for t in (await client.summary()).targets}


async def test_l_keeps_the_monitors_of_one_location_at_a_time(
    fresh_daemon: Daemon, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("APIMD_LOCATION", "loc-home")
    fresh_daemon.start()
    url = "http://127.0.0.1:9/never"  # scheduled hourly: nothing runs during the test
    fresh_daemon.apply(
        {
            "calls": [
                {"name": name, "url": url}
                for name in ("in-a", "in-b", "anywhere", "everywhere", "unscheduled")
            ],
            "schedules": [
                {"name": "s-a", "every": "1h", "targets": ["in-a"], "locations": ["loc-a"]},
                {"name": "s-b", "every": "1h", "targets": ["in-b"], "locations": ["loc-b"]},
                {"name": "s-any", "every": "1h", "targets": ["anywhere"]},
                {"name": "s-all", "every": "1h", "targets": ["everywhere"], "locations": "all"},
            ],
        }
    )
    assert run_sync(summary_locations(fresh_daemon)) == {
        "in-a": ["loc-a"],
        "in-b": ["loc-b"],
        "anywhere": ["*"],
        "everywhere": ["loc-home"],  # `all`: the live agents' locations (here, this daemon's)
        "unscheduled": [],
    }
    app = make_app(fresh_daemon)
    async with app.run_test(size=(100, 24)) as pilot:
        screen = app.screen
        assert isinstance(screen, DashboardScreen)
        await wait_for(pilot, lambda: screen.table.row_count == 5, what="every monitor listed")
        query = screen.query_one("#filter", Input)
        steps = [
            ("@loc-a", {"in-a", "anywhere"}),
            ("@loc-b", {"in-b", "anywhere"}),
            ("@loc-home", {"everywhere", "anywhere"}),
            ("", {"in-a", "in-b", "anywhere", "everywhere", "unscheduled"}),
        ]
        for expected_query, expected_rows in steps:
            await pilot.press("l")

            def shown(q: str = expected_query, r: set[str] = expected_rows) -> bool:
                return query.value == q and row_names(screen) == r

            await wait_for(pilot, shown, what=f"the rows of {expected_query or 'every location'}")
        # Typed, with other words: both apply.
        await pilot.press("slash", *"in @loc-b")
        await wait_for(pilot, lambda: row_names(screen) == {"in-b"}, what="in-b alone")
        # `l` replaces the location word and keeps the others.
        await pilot.press("escape")
        query.value = "in @loc-b"
        await pilot.press("l")
        await wait_for(pilot, lambda: query.value == "in @loc-home", what="the next location")
        assert row_names(screen) == set()  # no `in…` monitor runs in loc-home


async def test_a_location_keeps_an_unscheduled_workflow_that_ran_there(
    fresh_daemon: Daemon, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A workflow without a schedule has no location of its own: `@loc` shows it once it has a
    result from there, live and from the summary."""
    monkeypatch.setenv("APIMD_LOCATION", "loc-home")
    fresh_daemon.start()
    url = "http://127.0.0.1:9/never"
    fresh_daemon.apply(
        {
            "calls": [{"name": "in-a", "url": url}, {"name": "step", "url": url}],
            "workflows": [{"name": "by-hand", "steps": ["step"]}],
            "schedules": [
                {"name": "s-a", "every": "1h", "targets": ["in-a"], "locations": ["loc-a"]}
            ],
        }
    )
    app = make_app(fresh_daemon)
    async with app.run_test(size=(100, 24)) as pilot:
        live = app.screen
        assert isinstance(live, DashboardScreen)
        await wait_for(pilot, lambda: live.table.row_count == 3, what="every monitor listed")
        live.query_one("#filter", Input).value = "@loc-home"
        await wait_for(pilot, lambda: row_names(live) == set(), what="nothing in loc-home yet")
        await in_thread(lambda: fresh_daemon.run("workflows", "by-hand"))  # here: loc-home
        await wait_for(
            pilot, lambda: row_names(live) == {"by-hand"}, what="the workflow that ran here"
        )
    async with Client(fresh_daemon.socket_path) as client:
        summary = {t.name: t.last_location for t in (await client.summary()).targets}
    assert summary["by-hand"] == "loc-home"
    app = make_app(fresh_daemon)  # a TUI opened later learns it from the summary
    async with app.run_test(size=(100, 24)) as pilot:
        later = app.screen
        assert isinstance(later, DashboardScreen)
        await wait_for(pilot, lambda: later.table.row_count == 3, what="every monitor listed")
        later.query_one("#filter", Input).value = "@loc-home"
        await wait_for(pilot, lambda: row_names(later) == {"by-hand"}, what="by-hand alone")
        later.query_one("#filter", Input).value = "@loc-a"
        await wait_for(pilot, lambda: row_names(later) == {"in-a"}, what="in-a alone")
