"""`r` on the dashboard runs the target for real and shows what came back."""

from __future__ import annotations

from textual.widgets import DataTable, OptionList, Static, TabbedContent

from apimd.tui.screens.dashboard import DashboardScreen
from apimd.tui.screens.run import RunScreen
from apimd.tui.widgets.result_view import ResultView, WaterfallChart
from tests.tui.conftest import on_dashboard, press_on, wait_for
from tests.tui.daemon import Daemon


async def test_r_runs_a_call_and_the_viewer_shows_status_timings_and_conditions(
    daemon: Daemon,
) -> None:
    async with on_dashboard(daemon) as (app, pilot, dashboard):
        run = await press_on(pilot, dashboard.table, "service-status", "r", RunScreen)
        await wait_for(pilot, lambda: run.result is not None, what="the run to finish")

        viewer = run.query_one(ResultView)
        status = str(viewer.query_one("#result-status", Static).render())
        assert "✓ PASS" in status and "COMPLETE" in status and "HTTP 200" in status
        request = str(viewer.query_one("#result-request", Static).render())
        assert request.startswith("GET http://127.0.0.1:") and "/api/status" in request
        timings = str(viewer.query_one(WaterfallChart).render())
        for phase in ("DNS", "connect", "send", "wait (TTFB)", "receive", "total", "auth wait"):
            assert phase in timings

        await pilot.press("2")
        conditions = viewer.query_one("#conditions-table", DataTable)
        rows = [[str(c) for c in conditions.get_row_at(i)] for i in range(conditions.row_count)]
        assert rows[0][:2] == ["✓", "status"] and rows[0][5] == "200"
        assert rows[1][:3] == ["✓", "json", "healthy"] and rows[1][5] == "true"

        await pilot.press("3")
        assert viewer.query_one(TabbedContent).active == "body"
        assert viewer.body.lexer == "json"
        assert '\n  "healthy": true' in viewer.body.text  # indented

        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, DashboardScreen), what="back")


async def test_a_workflow_run_lists_its_steps_and_shows_the_failing_one(daemon: Daemon) -> None:
    async with on_dashboard(daemon, (120, 40)) as (_app, pilot, dashboard):
        run = await press_on(pilot, dashboard.table, "order-flow", "r", RunScreen)
        await wait_for(pilot, lambda: run.result is not None, what="the workflow to finish")
        assert run.result is not None and [s.name for s in run.result.steps] == [
            "service-status",
            "list-orders",
        ]
        viewer = run.query_one(ResultView)
        # list-orders needs the token; the refresh runs first and it passes: both steps PASS,
        # so the first step is shown.
        assert viewer.result is not None and viewer.result.name == "service-status"
        await pilot.press("down")  # the steps have the focus: down is the next step
        await wait_for(
            pilot,
            lambda: viewer.result is not None and viewer.result.name == "list-orders",
            what="the second step to show",
        )
        request = str(viewer.query_one("#result-request", Static).render())
        assert "/api/orders" in request and "token demo-token" in request


async def test_a_workflow_run_shows_each_step_as_it_finishes(daemon: Daemon) -> None:
    """slow-flow: quiet-call, then slow-call (a second): the first is shown done while the
    second still runs."""
    async with on_dashboard(daemon, (100, 30)) as (_app, pilot, dashboard):
        run = await press_on(pilot, dashboard.table, "slow-flow", "r", RunScreen)
        steps = run.query_one("#steps", OptionList)

        def step_text(index: int) -> str:
            return str(steps.get_option_at_index(index).prompt)

        await wait_for(pilot, lambda: "PASS" in step_text(0), what="the first step to finish")
        assert run.result is None, "the run is still going"
        assert step_text(0).startswith("1. quiet-call") and "ms" in step_text(0)
        assert step_text(1) == "2. ▶ slow-call"
        progress = str(run.query_one("#run-progress", Static).render())
        assert "1 of 2 steps done" in progress

        await wait_for(pilot, lambda: run.result is not None, timeout=10, what="the end")
        assert "PASS" in step_text(1) and step_text(1).startswith("2. slow-call")
