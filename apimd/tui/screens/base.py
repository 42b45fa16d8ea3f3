"""What every apimd screen shares: the app's client and clock, reloading on (re)connection,
daemon events, and one handler for failed workers."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from textual import on
from textual.screen import Screen
from textual.worker import Worker, WorkerState

from apimd.model.events import Event
from apimd.tui.connection import DaemonState
from apimd.tui.ports import Clock, DaemonClient

if TYPE_CHECKING:
    from apimd.tui.app import ApimdApp


class ApimdScreen(Screen[None]):
    """Subclasses override `daemon_connected` (load data) and `on_daemon_event` (apply events)."""

    def __init__(self) -> None:
        super().__init__()
        self._generation = 0

    @property
    def apimd(self) -> ApimdApp:
        return cast("ApimdApp", self.app)

    @property
    def client(self) -> DaemonClient:
        return self.apimd.client

    @property
    def clock(self) -> Clock:
        return self.apimd.clock

    @property
    def connected(self) -> bool:
        return self.apimd.daemon.connected

    def on_mount(self) -> None:
        # Textual calls the `on_mount` of every class in the MRO: a subclass's own `on_mount`
        # must not call this one again (each call would subscribe once more).
        self.apimd.daemon_events.subscribe(self, self.on_daemon_event)
        self.watch(self.apimd, "daemon", self._daemon_changed, init=True)

    def _daemon_changed(self, state: DaemonState) -> None:
        if state.connected and state.generation != self._generation:
            self._generation = state.generation
            self.daemon_connected()

    def daemon_connected(self) -> None:
        """The daemon answers (first time, or again after it went away): (re)load."""

    def on_daemon_event(self, event: Event) -> None:
        """One event from the daemon's stream."""

    @on(Worker.StateChanged)
    def _worker_failed(self, event: Worker.StateChanged) -> None:
        if event.state is WorkerState.ERROR and event.worker.error is not None:
            self.apimd.report_error(event.worker.error)

    def action_back(self) -> None:
        """Close this screen; on a section's first screen, go to the dashboard."""
        if len(self.app.screen_stack) > 1:
            self.app.pop_screen()
        elif self.app.current_mode != "dashboard":
            self.app.switch_mode("dashboard")
