"""Snapshots of every screen at 80×24 and 120×40, on the fixed data of `fakes.py` at a frozen time
(no live latencies). The behaviour tests next to this file check what the screens say against a
real daemon; these catch layout regressions. Review changed SVGs by eye before accepting them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.screen import Screen

from apimd.client import DaemonUnavailable
from apimd.model.api import StatusInfo
from apimd.tui.app import ApimdApp, build_app
from apimd.tui.keys import TuiSettings
from apimd.tui.screens.dashboard import DashboardScreen
from apimd.tui.screens.results import ResultsScreen
from apimd.tui.screens.run import RunScreen
from apimd.tui.screens.stats import StatsScreen
from apimd.tui.screens.tokens import TokensScreen
from apimd.tui.screens.viewer import ResultScreen
from tests.tui.conftest import wait_for
from tests.tui.fakes import SOCKET, FakeClient, frozen_clock

SIZES = [pytest.param((80, 24), id="80x24"), pytest.param((120, 40), id="120x40")]
SnapCompare = Callable[..., bool]


def snapshot_app(client: Any = None) -> ApimdApp:
    """The production factory, with fixed data, a frozen clock and no settings file."""
    return build_app(
        SOCKET, clock=frozen_clock, settings=TuiSettings(), client=client or FakeClient()
    )


async def until(pilot: Pilot[None], check: Callable[[], Any], timeout: float = 5.0) -> None:
    await wait_for(pilot, check, timeout=timeout, what="the snapshot's setup")


def screen_of(pilot: Pilot[None]) -> Any:
    return pilot.app.screen


async def dashboard_loaded(pilot: Pilot[None]) -> DashboardScreen:
    """Every row listed from the summary, every change on screen."""
    await until(pilot, lambda: isinstance(screen_of(pilot), DashboardScreen))
    screen = screen_of(pilot)
    await until(
        pilot,
        lambda: screen.summaries and screen.table.row_count == 10 and screen.table.settled,
    )
    await pilot.pause(0.15)  # one repaint tick
    assert isinstance(screen, DashboardScreen)
    return screen


async def open_dashboard(pilot: Pilot[None]) -> None:
    await dashboard_loaded(pilot)


async def opened(pilot: Pilot[None], kind: type[Screen[Any]], ready: str, *keys: str) -> None:
    """Press `keys` and wait for a `kind` screen whose attribute `ready` is set."""
    await pilot.press(*keys)
    await until(
        pilot, lambda: isinstance(screen_of(pilot), kind) and getattr(screen_of(pilot), ready)
    )


async def run_of(pilot: Pilot[None], name: str) -> None:
    """Run `name` from the dashboard; wait for its result."""
    screen = await dashboard_loaded(pilot)
    screen.table.move_cursor(row=screen.table.get_row_index(name))
    await opened(pilot, RunScreen, "result", "r")


async def open_run_call(pilot: Pilot[None]) -> None:
    await run_of(pilot, "checkout-health")


async def open_run_conditions(pilot: Pilot[None]) -> None:
    await open_run_call(pilot)
    await pilot.press("2")


async def open_run_body(pilot: Pilot[None]) -> None:
    await run_of(pilot, "catalogue-xml")
    await pilot.press("3")


async def open_run_workflow(pilot: Pilot[None]) -> None:
    await run_of(pilot, "order-flow")


async def open_results(pilot: Pilot[None]) -> None:
    await dashboard_loaded(pilot)
    await opened(pilot, ResultsScreen, "results", "h")


async def open_result_detail(pilot: Pilot[None]) -> None:
    await open_results(pilot)
    await opened(pilot, ResultScreen, "result", "down", "enter")
    await pilot.press("2")


async def open_stats(pilot: Pilot[None]) -> None:
    await dashboard_loaded(pilot)  # checkout-health is first
    await opened(pilot, StatsScreen, "stats", "s")


async def open_tokens(pilot: Pilot[None]) -> None:
    await dashboard_loaded(pilot)
    await opened(pilot, TokensScreen, "tokens", "t")


async def open_tokens_revealed(pilot: Pilot[None]) -> None:
    await open_tokens(pilot)
    await pilot.press("v")
    await until(pilot, lambda: screen_of(pilot).revealed)


async def open_help(pilot: Pilot[None]) -> None:
    await dashboard_loaded(pilot)
    await pilot.press("question_mark")


SCREENS: dict[str, Callable[[Pilot[None]], Awaitable[None]]] = {
    "dashboard": open_dashboard,
    "run_call": open_run_call,
    "run_conditions": open_run_conditions,
    "run_xml_body": open_run_body,
    "run_workflow": open_run_workflow,
    "results": open_results,
    "result_detail": open_result_detail,
    "stats": open_stats,
    "tokens": open_tokens,
    "tokens_revealed": open_tokens_revealed,
    "help": open_help,
}


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("screen", list(SCREENS))
def test_screen(snap_compare: SnapCompare, screen: str, size: tuple[int, int]) -> None:
    assert snap_compare(snapshot_app(), terminal_size=size, run_before=SCREENS[screen])


class NoDaemon(FakeClient):
    """Nothing answers on the socket."""

    async def status(self) -> StatusInfo:
        raise DaemonUnavailable(self.socket_path, "[Errno 2] No such file or directory")


async def offline(pilot: Pilot[None]) -> None:
    app = pilot.app
    assert isinstance(app, ApimdApp)
    await until(pilot, lambda: app.daemon.checked)
    await pilot.pause(0.1)


@pytest.mark.parametrize("size", SIZES)
def test_no_daemon(snap_compare: SnapCompare, size: tuple[int, int]) -> None:
    assert snap_compare(snapshot_app(NoDaemon()), terminal_size=size, run_before=offline)
