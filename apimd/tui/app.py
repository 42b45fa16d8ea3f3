"""The apimd TUI: sections (dashboard, tokens, results), the daemon connection and its event
stream, editors and sign-in, help, the command palette and key remapping. `build_app` is the one
way to build it."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar

from textual import work
from textual.app import App
from textual.binding import Binding, BindingType
from textual.reactive import reactive
from textual.screen import Screen
from textual.signal import Signal
from textual.worker import Worker, WorkerState

from apimd.client import ApiError, Client, DaemonUnavailable
from apimd.model.events import Event
from apimd.tui import editors
from apimd.tui.commands import ActionsProvider, ResourcesProvider
from apimd.tui.connection import RETRY_S, DaemonState
from apimd.tui.formatting import screen_text
from apimd.tui.keys import TuiSettings, binding_ids, load_tui_settings, validate_keymap
from apimd.tui.monitors import Board
from apimd.tui.ports import Clock, DaemonClient, system_clock
from apimd.tui.screens.dashboard import DashboardScreen
from apimd.tui.screens.help import HelpScreen, help_rows
from apimd.tui.screens.results import ResultsScreen, ResultTable
from apimd.tui.screens.run import RunScreen
from apimd.tui.screens.signin import SignInMode, SignInScreen
from apimd.tui.screens.stats import StatsScreen
from apimd.tui.screens.tokens import TokensScreen
from apimd.tui.screens.viewer import ResultScreen
from apimd.tui.widgets.monitor_table import MonitorTable

STATUS_POLL_S = 10.0
GREETING_S = 30
"""How long the greeting stays (at 80x24 it covers the right of a few rows)."""


class ApimdApp(App[None]):
    """Keyboard-first client of one apimd daemon."""

    CSS_PATH = "app.tcss"
    TITLE = "apimd"
    MODES: ClassVar[dict[str, str | Callable[[], Screen[Any]]]] = {
        "dashboard": DashboardScreen,
        "tokens": TokensScreen,
        "results": ResultsScreen,
    }
    DEFAULT_MODE = "dashboard"
    COMMANDS = App.COMMANDS | {ActionsProvider, ResourcesProvider}
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "Quit", id="app.quit"),
        Binding("question_mark", "help", "Help", id="app.help"),
        Binding(
            "ctrl+p", "command_palette", "Commands", show=False, priority=True, id="app.palette"
        ),
        Binding("d", "section('dashboard')", "Dashboard", show=False, id="app.dashboard"),
        Binding("t", "section('tokens')", "Tokens", id="app.tokens"),
        Binding("h", "section('results')", "History", id="app.results"),
    ]

    daemon: reactive[DaemonState] = reactive(DaemonState(Path()), always_update=True)

    def __init__(
        self,
        client: DaemonClient,
        *,
        clock: Clock = system_clock,
        settings: TuiSettings,
        environ: Mapping[str, str] = os.environ,
        greeting: str | None = None,
    ) -> None:
        super().__init__()
        self.client = client
        self.greeting = greeting
        """What to try first, shown on start (the demo's: printed just before, the TUI hid it)."""
        self.clock = clock
        self.tui_settings = settings
        self.environ = environ
        """Where the person sits (SSH or not, a display or not): decides how sign-in works."""
        self.board = Board()
        """Every call and workflow, as the dashboard keeps them."""
        self.daemon_events: Signal[Event] = Signal(self, "daemon-events")
        self.set_reactive(ApimdApp.daemon, DaemonState(client.socket_path))
        self._notified_down = False

    # --- lifecycle ----------------------------------------------------------------------------

    def on_mount(self) -> None:
        self._apply_keymap()
        if self.greeting:
            self.notify(self.greeting, title="Try this", timeout=GREETING_S, markup=False)
        self.stay_connected()
        self.set_interval(STATUS_POLL_S, self.poll_status)

    async def on_unmount(self) -> None:
        await self.client.close()

    def _apply_keymap(self) -> None:
        settings = self.tui_settings
        keymap, problems = validate_keymap(settings.keys, known_binding_ids(), settings.source)
        problems = [*settings.problems, *problems]
        if keymap:
            self.set_keymap(keymap)
        if problems:
            self.notify(
                screen_text("\n".join(problems), lines=True),
                title="Key settings ignored",
                severity="warning",
                timeout=15,
                markup=False,
            )

    # --- the daemon connection ---------------------------------------------------------------

    @work(exclusive=True, group="connection", exit_on_error=False)
    async def stay_connected(self) -> None:
        """Connect, follow the event stream, and when it ends (daemon stopped or restarted)
        try again every `RETRY_S` seconds, for as long as the app runs."""
        while True:
            try:
                status = await self.client.status()
            except (DaemonUnavailable, ApiError) as exc:
                self._went_down(str(exc))
                await asyncio.sleep(RETRY_S)
                continue
            self.daemon = DaemonState(
                self.client.socket_path,
                connected=True,
                status=status,
                generation=self.daemon.generation + 1,
                checked=True,
            )
            if self._notified_down:
                self._notified_down = False
                self.notify("Connected to the daemon again", timeout=3)
            reason = "the daemon closed the event stream"
            try:
                async for event in self.client.events():
                    self.daemon_events.publish(event)
            except DaemonUnavailable as exc:
                reason = str(exc)
            except (ApiError, OSError, ValueError) as exc:
                reason = f"the event stream failed: {exc}"
            except Exception as exc:  # aiohttp payload errors when the daemon dies mid-frame
                self.log.warning("event stream ended", repr(exc))
                reason = f"the event stream failed: {type(exc).__name__}: {exc}"
            self._went_down(reason)
            await asyncio.sleep(0.2)

    def _went_down(self, reason: str) -> None:
        was_connected = self.daemon.connected
        self.daemon = DaemonState(
            self.client.socket_path,
            connected=False,
            error=reason,
            generation=self.daemon.generation,
            checked=True,
        )
        if was_connected:
            self._notified_down = True
            self.notify(
                f"Lost the daemon ({screen_text(reason)}); reconnecting every {RETRY_S:g} s",
                severity="warning",
                timeout=5,
                markup=False,
            )

    @work(exclusive=True, group="status", exit_on_error=False)
    async def poll_status(self) -> None:
        if not self.daemon.connected:
            return
        try:
            status = await self.client.status()
        except (DaemonUnavailable, ApiError):
            return  # the event stream notices a daemon that went away
        state = self.daemon
        if state.connected:
            self.daemon = DaemonState(
                state.socket_path,
                connected=True,
                status=status,
                generation=state.generation,
                checked=True,
            )

    def report_error(self, error: BaseException) -> None:
        """The one place failed workers end up: say what went wrong, keep running."""
        if isinstance(error, DaemonUnavailable):
            return  # the status bar says so, and the connection loop is on it
        if isinstance(error, ApiError):
            self.notify(
                screen_text(str(error), lines=True),
                title="The daemon refused",
                severity="error",
                timeout=8,
                markup=False,
            )
            return
        self.log.error("worker failed", repr(error))
        self.notify(
            screen_text(f"{type(error).__name__}: {error}", lines=True),
            title="Error",
            severity="error",
            markup=False,
        )

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state is WorkerState.ERROR and event.worker.error is not None:
            self.report_error(event.worker.error)

    # --- actions ------------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # The key of the section you are in is noise in the footer: hide it there.
        if action == "section" and parameters and parameters[0] == self.current_mode:
            return len(self.screen_stack) > 1
        return True

    async def action_section(self, mode: str) -> None:
        """Go to a section (dashboard, tokens or results); within it, back to its first screen."""
        if mode != self.current_mode:
            await self.switch_mode(mode)
            return
        while len(self.screen_stack) > 1:
            await self.pop_screen()

    def edit_resource(self, kind: str, name: str | None = None) -> None:
        """Open the editor of a `kind` resource (`calls`, `tokens`…): `name`, or a new one."""
        editors.open_editor(self, self.client, kind, name)  # it says "Saved …" itself

    def sign_in(
        self,
        token: str,
        *,
        mode: SignInMode = "browser",
        done: Callable[[bool | None], None] | None = None,
    ) -> None:
        """Start signing `token` in (`device`: with a code); `done(True)` once it is saved."""
        self.push_screen(SignInScreen(self.client, token, mode=mode, environ=self.environ), done)

    def action_help(self) -> None:
        if isinstance(self.screen, HelpScreen):
            self.pop_screen()
            return
        self.push_screen(HelpScreen(help_rows(self, self.screen), self.tui_settings.source))


SCREENS_WITH_BINDINGS: tuple[type, ...] = (
    ApimdApp,
    DashboardScreen,
    MonitorTable,
    RunScreen,
    ResultsScreen,
    ResultTable,
    ResultScreen,
    StatsScreen,
    TokensScreen,
    HelpScreen,
    SignInScreen,
    *editors.BINDING_CLASSES,
)


def known_binding_ids() -> set[str]:
    """Every binding id the settings file may remap."""
    ids: set[str] = set()
    for cls in SCREENS_WITH_BINDINGS:
        ids |= binding_ids(getattr(cls, "BINDINGS", []))
    return ids


def build_app(
    socket_path: Path,
    *,
    clock: Clock | None = None,
    settings: TuiSettings | None = None,
    client: DaemonClient | None = None,
    environ: Mapping[str, str] | None = None,
    greeting: str | None = None,
) -> ApimdApp:
    """The TUI for the daemon on `socket_path`. Tests pass a frozen `clock`, explicit `settings`,
    an `environ` (SSH or not), and (for snapshots and benchmarks) a `client` with fixed data;
    `greeting` is shown as a notice on start."""
    return ApimdApp(
        client if client is not None else Client(socket_path),
        clock=clock or system_clock,
        settings=settings if settings is not None else load_tui_settings(),
        environ=os.environ if environ is None else environ,
        greeting=greeting,
    )
