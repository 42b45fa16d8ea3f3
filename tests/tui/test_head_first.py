"""The dashboard's first summary of a large project comes in two parts (issue 18 item 5): the
first screenful in dashboard order (`order=dashboard&limit=…`), painted at once, then the whole.
Events that arrive meanwhile are held and land where a full sort would put their rows."""

from __future__ import annotations

import asyncio
import gc
from datetime import timedelta

from apimd.model.api import Summary, SummaryOrder
from apimd.model.events import RunFinished
from apimd.model.outcome import Outcome, ResultCode
from apimd.tui.app import build_app
from apimd.tui.keys import TuiSettings
from apimd.tui.monitors import Board
from apimd.tui.screens.dashboard import DashboardScreen
from apimd.tui.widgets.monitor_table import FIRST_ROWS
from tests.support.clients import served
from tests.tui.conftest import wait_for
from tests.tui.fakes import SOCKET, FakeClient, StreamingClient
from tests.tui.test_large_dashboard import NOW, summary_of


class HeadFirstDaemon(StreamingClient):
    """Serves 1,500 monitors as the daemon does (`limit` honoured); the whole summary waits
    for `rest`, and the event stream is the test's."""

    def __init__(self) -> None:
        super().__init__()
        self.whole = summary_of(1500)
        self.asked: list[tuple[SummaryOrder, int | None]] = []
        self.rest = asyncio.Event()

    async def summary(
        self, *, window: str = "24h", order: SummaryOrder = "project", limit: int | None = None
    ) -> Summary:
        self.asked.append((order, limit))
        if limit is None:
            await self.rest.wait()
        return served(self.whole, order, limit)


def finished(name: str, outcome: Outcome) -> RunFinished:
    return RunFinished(
        at=NOW + timedelta(minutes=1),
        run_id=f"r-{name}",
        result_id=f"r-{name}",
        kind="call",
        name=name,
        trigger="schedule",
        outcome=outcome,
        result=ResultCode.COMPLETE,
        total_ms=20.0,
    )


async def test_the_first_screenful_is_painted_before_the_rest_arrives_and_events_land_in_place() -> (
    None
):
    client = HeadFirstDaemon()
    whole = Board()
    whole.load_summary(client.whole)
    order = whole.ordered()
    app = build_app(SOCKET, clock=lambda: NOW, settings=TuiSettings(), client=client)
    async with app.run_test(size=(120, 30)) as pilot:
        screen = app.screen
        assert isinstance(screen, DashboardScreen)
        table = screen.table
        await wait_for(pilot, lambda: len(client.asked) == 2, what="the rest asked for")
        assert table.rows_rendered > 0  # the first screenful was painted first
        assert client.asked == [("dashboard", FIRST_ROWS), ("project", None)]
        assert table.shown_names() == order[:FIRST_ROWS]  # the head, in place, alone
        assert screen.summaries == 0  # the rest is still on its way

        for _ in range(3):
            await pilot.press("down")
        current = order[3]
        assert table.current_name() == current
        failing = next(n for n in reversed(order) if whole.monitors[n].outcome is Outcome.PASS)
        recovered = order[0]  # the first FAIL
        assert (
            whole.monitors[recovered].outcome is Outcome.FAIL and failing not in table.shown_names()
        )
        client.stream.put_nowait(finished(failing, Outcome.FAIL))
        client.stream.put_nowait(finished(recovered, Outcome.PASS))
        await pilot.pause(0.1)

        client.rest.set()
        await wait_for(
            pilot,
            lambda: screen.summaries == 1 and table.settled and not table.filling,
            what="the whole table",
        )
        await pilot.pause(0.6)  # a move waits for the next sort (at most every 0.5 s)
        await wait_for(pilot, lambda: table.settled, what="the moves")
        board = screen.board
        assert board.monitors[failing].outcome is Outcome.FAIL
        assert board.monitors[recovered].outcome is Outcome.PASS
        assert table.shown_names() == board.ordered()  # where a full sort puts every row
        assert board.ordered().index(failing) < board.ordered().index(recovered)
        assert table.row_count == 1500
        assert table.current_name() == current  # the cursor stayed on its monitor
        assert client.asked == [("dashboard", FIRST_ROWS), ("project", None)]
        # Once the whole table is there, what it built is left out of the collector's full
        # passes (each walked the 1,500 monitors and rows to find little); given back on exit.
        await wait_for(pilot, lambda: screen.frozen, what="the first table frozen")
        assert gc.get_freeze_count() > 0
    assert gc.get_freeze_count() == 0


async def test_a_project_that_fits_in_the_first_screenful_takes_one_request() -> None:
    client = FakeClient()
    app = build_app(SOCKET, clock=lambda: NOW, settings=TuiSettings(), client=client)
    async with app.run_test(size=(120, 30)) as pilot:
        screen = app.screen
        assert isinstance(screen, DashboardScreen)
        await wait_for(pilot, lambda: screen.summaries == 1, what="the summary")
        await pilot.pause(0.3)
        assert client.requests["summary"] == 1
        assert screen.table.shown_names() == screen.board.ordered()
        assert screen.table.row_count == len(screen.board.monitors) > 0
