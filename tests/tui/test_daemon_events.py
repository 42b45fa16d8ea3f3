"""The TUI's screens follow the daemon's typed events (issue 11): each event reaches a screen
once, however many classes of the screen handle mounting."""

from __future__ import annotations

from apimd.model.events import RunFinished, RunStarted
from apimd.model.outcome import Outcome, ResultCode
from apimd.tui.screens.results import ResultsScreen
from tests.tui.fakes import FROZEN, StreamingClient
from tests.tui.test_snapshots import dashboard_loaded, snapshot_app, until


def finished(name: str) -> RunFinished:
    return RunFinished(
        at=FROZEN,
        run_id="r-live",
        result_id="r-live",
        kind="call",
        name=name,
        trigger="schedule",
        outcome=Outcome.PASS,
        result=ResultCode.COMPLETE,
        total_ms=12.0,
    )


async def test_one_event_reaches_the_dashboard_and_the_results_screen_once() -> None:
    client = StreamingClient()
    app = snapshot_app(client)
    async with app.run_test(size=(120, 40)) as pilot:
        dashboard = await dashboard_loaded(pilot)
        orders = dashboard.board.monitors["list-orders"]

        client.stream.put_nowait(
            RunStarted(run_id="r-live", kind="call", name="list-orders", trigger="schedule")
        )
        await until(pilot, lambda: orders.running > 0)
        await pilot.pause(0.2)
        assert orders.running == 1  # one run in progress, not two

        results = ResultsScreen()
        await app.push_screen(results)
        await until(pilot, lambda: results.is_mounted and bool(results.results))
        client.stream.put_nowait(finished("service-status"))
        await until(pilot, lambda: results.new_results > 0)
        await pilot.pause(0.2)
        assert results.new_results == 1
        assert orders.running == 1  # another target's run
