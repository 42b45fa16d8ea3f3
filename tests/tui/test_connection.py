"""No daemon, a daemon that appears later, and a daemon that restarts under the TUI."""

from __future__ import annotations

import pytest
from textual.widgets import Static

from apimd.tui.screens.dashboard import DashboardScreen
from apimd.tui.widgets.status_bar import StatusBar
from tests.tui.conftest import in_thread, loaded_dashboard, make_app, project, wait_for
from tests.tui.daemon import Daemon, DemoServer


def banner(screen: DashboardScreen) -> str:
    offline = screen.query_one("#offline", Static)
    return str(offline.render()) if offline.display else ""


def status(screen: DashboardScreen) -> str:
    return str(screen.query_one(StatusBar).render())


async def test_no_daemon_is_said_plainly_then_the_tui_connects_when_one_starts(
    fresh_daemon: Daemon, demo: DemoServer
) -> None:
    app = make_app(fresh_daemon)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        assert isinstance(screen, DashboardScreen)
        await wait_for(pilot, lambda: banner(screen), what="the no-daemon banner")
        assert f"No daemon reachable at {fresh_daemon.socket_path}" in banner(screen)
        assert "no daemon reachable" in status(screen)

        await in_thread(fresh_daemon.start)
        await in_thread(lambda: fresh_daemon.apply(project(demo.url)))
        # Retries every 2 s: connected, banner gone, monitors listed.
        await wait_for(pilot, lambda: app.daemon.connected, timeout=6, what="a connection")
        await wait_for(pilot, lambda: screen.table.row_count >= 8, what="the monitors")
        assert not banner(screen)
        assert "● daemon" in status(screen)
        await in_thread(fresh_daemon.stop_cleanly)


@pytest.mark.parametrize("how", ["sigterm", "sigkill"])
async def test_a_daemon_restart_is_survived_and_live_updates_resume(
    fresh_daemon: Daemon, demo: DemoServer, how: str
) -> None:
    """SIGTERM closes the event stream cleanly; SIGKILL cuts it mid-frame."""
    await in_thread(fresh_daemon.start)
    await in_thread(lambda: fresh_daemon.apply(project(demo.url)))
    app = make_app(fresh_daemon)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await loaded_dashboard(app, pilot)
        first = app.daemon.generation

        await in_thread(fresh_daemon.stop_cleanly if how == "sigterm" else fresh_daemon.kill)
        await wait_for(pilot, lambda: not app.daemon.connected, what="the loss to show")
        await wait_for(pilot, lambda: banner(screen), what="the no-daemon banner")

        await in_thread(fresh_daemon.start)
        await wait_for(
            pilot,
            lambda: app.daemon.connected and app.daemon.generation > first,
            timeout=8,
            what="the reconnection",
        )
        assert not banner(screen)
        await wait_for(pilot, lambda: screen.table.row_count >= 8, what="the monitors again")

        # The new event stream is live: a run through another client shows up in the row.
        await in_thread(lambda: fresh_daemon.run("calls", "checkout-health"))
        await wait_for(
            pilot,
            lambda: str(screen.table.get_cell("checkout-health", "outcome")) == "✗ FAIL",
            what="the live update after the restart",
        )
        await in_thread(fresh_daemon.stop_cleanly)
