"""The dashboard says why a monitor is not a PASS (its last column, `why`) and, while a run goes
on, for how long (`last`): from the summary, then live from `run.started` / `run.finished`."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from apimd.model.events import RunFinished, RunStarted
from apimd.model.outcome import Outcome, ResultCode
from apimd.tui.app import build_app
from apimd.tui.keys import TuiSettings
from apimd.tui.screens.dashboard import DashboardScreen
from apimd.tui.widgets.monitor_table import MonitorTable
from tests.tui.conftest import wait_for
from tests.tui.fakes import FROZEN, SOCKET, StreamingClient


class Clock:
    def __init__(self) -> None:
        self.now = FROZEN

    def __call__(self) -> datetime:
        return self.now


def painted_row(table: MonitorTable, name: str) -> str:
    """The text of `name`'s row as painted on screen (the header is line 0)."""
    return table.render_line(table.get_row_index(name) + 1 - int(table.scroll_offset.y)).text


@pytest.mark.parametrize(
    ("width", "checkout", "catalogue", "timeout"),
    [
        (80, "status eq 200 …", "count(/items/i…", "timeout after …"),
        (160, "status eq 200 → 500", "count(/items/item) eq 3 → 2", "timeout after 10s"),
    ],
)
async def test_a_failing_row_says_why_and_a_run_finished_changes_it(
    width: int, checkout: str, catalogue: str, timeout: str
) -> None:
    client, clock = StreamingClient(), Clock()
    app = build_app(SOCKET, clock=clock, settings=TuiSettings(), client=client)
    async with app.run_test(size=(width, 30)) as pilot:
        screen = app.screen
        assert isinstance(screen, DashboardScreen)
        table = screen.table
        await wait_for(pilot, lambda: screen.summaries >= 1 and table.settled, what="dashboard")
        row = painted_row(table, "checkout-health")
        assert "✗ FAIL" in row and row.rstrip().endswith(checkout)
        assert painted_row(table, "catalogue-xml").rstrip().endswith(catalogue)
        assert painted_row(table, "partner-feed").rstrip().endswith("needs sign-in")
        assert "checkout-health" in row  # which one, whole, at 80 columns too
        assert str(table.get_cell("service-status", "why")) == ""  # a PASS has no why

        clock.now = FROZEN + timedelta(minutes=1)
        client.stream.put_nowait(
            RunFinished(
                at=clock.now,
                run_id="r1",
                result_id="r1",
                kind="call",
                name="checkout-health",
                trigger="schedule",
                outcome=Outcome.FAIL,
                result=ResultCode.TIMEOUT,
                total_ms=10_000.0,
                reason="timeout after 10s",
            )
        )
        await wait_for(
            pilot,
            lambda: painted_row(table, "checkout-health").rstrip().endswith(timeout),
            what="the new why",
        )


@pytest.mark.parametrize(("width", "words"), [(80, "▶ 75s"), (120, "running 75s")])
async def test_a_run_still_going_says_for_how_long(width: int, words: str) -> None:
    client, clock = StreamingClient(), Clock()
    app = build_app(SOCKET, clock=clock, settings=TuiSettings(), client=client)
    async with app.run_test(size=(width, 30)) as pilot:
        screen = app.screen
        assert isinstance(screen, DashboardScreen)
        table = screen.table
        await wait_for(pilot, lambda: screen.summaries >= 1 and table.settled, what="dashboard")
        client.stream.put_nowait(
            RunStarted(at=FROZEN, run_id="r2", kind="call", name="search", trigger="manual")
        )
        await wait_for(
            pilot, lambda: str(table.get_cell("search", "last")) == words[:-3] + "0s", what="0s"
        )
        clock.now = FROZEN + timedelta(seconds=75)  # the once-a-second tick moves it on
        await wait_for(pilot, lambda: words in painted_row(table, "search"), what="75s")
        clock.now = FROZEN + timedelta(seconds=76)
        client.stream.put_nowait(
            RunFinished(
                at=clock.now,
                run_id="r2",
                result_id="r2",
                kind="call",
                name="search",
                trigger="manual",
                outcome=Outcome.PASS,
                result=ResultCode.COMPLETE,
                total_ms=76_000.0,
            )
        )
        # It began 76s ago: `last` is its age again.
        await wait_for(pilot, lambda: str(table.get_cell("search", "last")) == "1m", what="age")
        assert str(table.get_cell("search", "why")) == ""  # a PASS now: the why is gone
