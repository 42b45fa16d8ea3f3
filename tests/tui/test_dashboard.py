"""The dashboard against a real daemon: order, content, one summary request for everything, and
live updates from the event stream."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from apimd.client import Client
from apimd.tui import app as tui_app
from apimd.tui.keys import TuiSettings
from apimd.tui.screens import dashboard
from apimd.tui.screens.dashboard import DashboardScreen
from tests.tui.conftest import in_thread, loaded_dashboard, on_dashboard, wait_for
from tests.tui.daemon import Daemon


class CountingClient(Client):
    """The real socket client, counting the requests the TUI makes."""

    def __init__(self, socket_path: Path) -> None:
        super().__init__(socket_path)
        self.requests: Counter[str] = Counter()

    async def _request(self, method: str, path: str, *args: Any, **kwargs: Any) -> Any:
        self.requests[f"{method} {path.split('/')[2]}"] += 1
        return await super()._request(method, path, *args, **kwargs)


def row_names(screen: DashboardScreen) -> list[str]:
    return [str(row.key.value) for row in screen.table.ordered_rows]


def cell(screen: DashboardScreen, name: str, column: str) -> str:
    return str(screen.table.get_cell(name, column))


async def test_a_failing_call_is_at_the_top_with_its_outcome_in_words(daemon: Daemon) -> None:
    async with on_dashboard(daemon) as (_app, _pilot, screen):
        names = row_names(screen)
        assert names[0] == "checkout-health"
        assert cell(screen, "checkout-health", "outcome") == "✗ FAIL"
        assert cell(screen, "service-status", "outcome") == "✓ PASS"
        assert cell(screen, "quiet-call", "outcome") == "· never"
        assert "kind" not in screen.table.columns  # at 80 columns, it gives way to `why`
        assert cell(screen, "checkout-health", "why") == "status eq 200 → 500"
        assert cell(screen, "checkout-health", "uptime") == "0.0%"  # it has only failed so far
        assert cell(screen, "service-status", "next") in ("in 59m", "in 1h")
        assert cell(screen, "list-orders", "token") in ("expired", "valid")


async def test_a_finished_run_updates_its_row_live_and_the_cursor_stays(daemon: Daemon) -> None:
    async with on_dashboard(daemon) as (_app, pilot, screen):
        await pilot.press("down", "down")
        watched = screen.current_name()
        assert watched is not None and watched != "unreachable"
        rebuilds = screen.rebuilds

        # Another client runs a call that has never run: its row changes to FAIL and moves to
        # the top group, without the table being rebuilt and without the cursor leaving `watched`.
        await in_thread(lambda: daemon.run("calls", "unreachable"))
        # Its cell changes at once; its place in the order within the table's next re-sort
        # (at most every 0.5 s), so wait for both.
        await wait_for(
            pilot,
            lambda: (
                cell(screen, "unreachable", "outcome") == "✗ FAIL"
                and row_names(screen).index("unreachable")
                < row_names(screen).index("service-status")
            ),
            what="the unreachable call's row to show FAIL and move above the passing calls",
        )
        assert screen.rebuilds == rebuilds
        assert screen.current_name() == watched
        assert cell(screen, "unreachable", "last") in ("now", "1s", "2s", "3s")


async def test_typing_a_filter_narrows_the_rows_and_escape_clears_it(daemon: Daemon) -> None:
    async with on_dashboard(daemon) as (app, pilot, screen):
        total = screen.table.row_count
        await pilot.press("slash", *"fail")
        await wait_for(pilot, lambda: screen.table.row_count < total, what="the filter to apply")
        assert "checkout-health" in row_names(screen)
        assert "quiet-call" not in row_names(screen)
        await pilot.press("escape")
        await wait_for(pilot, lambda: screen.table.row_count == total, what="the filter cleared")

        # Letters that are keys elsewhere (q quits, t opens tokens, r runs) type into the filter.
        await pilot.press("slash", *"quiet")
        await wait_for(pilot, lambda: row_names(screen) == ["quiet-call"], what="quiet-call only")
        assert app.is_running and app.screen is screen


async def test_runs_that_finish_while_another_section_is_open_are_there_on_return(
    daemon: Daemon,
) -> None:
    async with on_dashboard(daemon) as (app, pilot, screen):
        before = cell(screen, "quiet-call", "outcome")
        await pilot.press("t")
        await pilot.pause(0.2)
        assert app.screen is not screen
        await in_thread(lambda: daemon.run("calls", "quiet-call"))
        await pilot.pause(0.5)
        await pilot.press("d")
        await wait_for(pilot, lambda: app.screen is screen, what="back on the dashboard")
        await wait_for(
            pilot,
            lambda: cell(screen, "quiet-call", "outcome") == "✓ PASS",
            what=f"quiet-call to show its run (was {before})",
        )


async def test_one_summary_request_fills_the_board_and_refreshes_keep_the_cursor(
    daemon: Daemon, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dashboard, "SUMMARY_EVERY_S", 0.3)
    client = CountingClient(daemon.socket_path)
    app = tui_app.build_app(daemon.socket_path, settings=TuiSettings(), client=client)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await loaded_dashboard(app, pilot, what="every monitor listed")
        # Not one request per monitor: no results, statistics or resource reads at all.
        assert client.requests["GET summary"] == screen.summaries >= 1
        assert not {"GET results", "GET stats", "GET calls", "GET workflows"} & set(client.requests)
        # The latencies for a sparkline (at 80 columns the sparkline gives way to `why`).
        assert screen.board.monitors["checkout-health"].latency_values

        await pilot.press("down", "down")
        watched, rebuilds, before = screen.current_name(), screen.rebuilds, screen.summaries
        await wait_for(pilot, lambda: screen.summaries >= before + 2, what="periodic summaries")
        assert screen.rebuilds == rebuilds and screen.current_name() == watched

        # A call added by another client arrives with the next summary, as one more row.
        await in_thread(lambda: daemon.put("calls", "added-later", {"url": "http://127.0.0.1:9/"}))
        try:
            await wait_for(pilot, lambda: "added-later" in row_names(screen), what="the new row")
            assert screen.rebuilds == rebuilds and screen.current_name() == watched
        finally:
            await in_thread(lambda: daemon.delete("calls", "added-later"))
        await wait_for(pilot, lambda: "added-later" not in row_names(screen), what="row removed")
        assert not {"GET results", "GET stats"} & set(client.requests)
