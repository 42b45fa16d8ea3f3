"""The first screen: every call and workflow, failing first. One request (`GET /v1/summary`)
fills it, on connect and every minute; between summaries the event stream updates the changed
cells only (at most ten repaints a second, the cursor staying on its monitor)."""

from __future__ import annotations

import asyncio
import gc
import re
import time
from typing import ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import DataTable, Footer, Input, Static

from apimd.client import DaemonUnavailable
from apimd.model.api import Summary
from apimd.model.events import Event, Lagged, ResourceChanged, RunFinished
from apimd.tui.connection import RETRY_S, DaemonState
from apimd.tui.formatting import screen_text
from apimd.tui.monitors import Board
from apimd.tui.screens.base import ApimdScreen
from apimd.tui.screens.results import ResultsScreen
from apimd.tui.screens.run import RunScreen
from apimd.tui.screens.stats import StatsScreen
from apimd.tui.widgets.monitor_table import FIRST_ROWS, MonitorTable
from apimd.tui.widgets.status_bar import StatusBar
from apimd.tui.widgets.text_input import TextInput

REPAINT_S = 0.1
"""Live changes are applied to the table at most this often."""
SUMMARY_WINDOW = "24h"
"""The window of the uptime column."""
SUMMARY_EVERY_S = 60.0
"""The summary is read again this often (the 24 h window slides; missed changes heal)."""
SUMMARY_SOON_S = 10.0
"""A next run that passed with no fire seen asks for a summary at most this often."""
RESOURCE_KINDS = frozenset({"calls", "workflows", "tokens", "schedules", "auth"})
"""`resource.changed` of these kinds changes what the dashboard shows."""


def freeze_what_lives() -> None:
    """Leave what the first large summary built out of the garbage collector's full passes: at
    10,000 monitors each such pass walked the board and the table (0.15–0.5 s with the loop
    stopped, a key waiting behind it) to find little; collected once here, not walked again."""
    gc.collect()
    gc.freeze()


def failure_reason(error: str | None) -> str:
    """The cause inside a `DaemonUnavailable` message (`… (No such file or directory); …`)."""
    if not error:
        return ""
    match = re.search(r"\((.*)\); start one", error)
    return match.group(1) if match else error


class DashboardScreen(ApimdScreen):
    """Keeps the board current: summaries from the daemon, events in between."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("r", "run", "Run", id="dashboard.run"),
        Binding("e", "edit", "Edit", id="dashboard.edit"),
        # 80 columns hold no more keys: these two are in `?` help and the command palette.
        Binding("n", "new_call", "New call", show=False, id="dashboard.new_call"),
        Binding("s", "stats", "Stats", show=False, id="dashboard.stats"),
        Binding("slash", "focus_filter", "Filter", id="dashboard.filter"),
        Binding("l", "next_location", "Location", show=False, id="dashboard.location"),
        Binding("escape", "clear_filter", "Clear filter", show=False, id="dashboard.clear_filter"),
        Binding("g", "reload", "Reload", show=False, id="dashboard.reload"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.summaries = 0
        """How many summaries were applied."""
        self._query = ""
        self._loading = False
        self._held_events: list[Event] = []
        self._summary_wanted = asyncio.Event()
        self._reset_running = False
        self._summary_asked = 0.0
        self._freeze_pending = False
        """The first large summary's rows are being added: freeze them once all are there."""
        self.frozen = False
        """What the first large summary built is out of the collector's full passes."""

    def compose(self) -> ComposeResult:
        yield StatusBar("Dashboard")
        yield Static(id="offline", markup=False)
        yield TextInput(
            placeholder="/ filter by name, outcome, kind, token state or tag",
            id="filter",
            compact=True,
        )
        yield MonitorTable(self.board, self.clock, id="monitors")
        yield Static(id="empty", markup=False)
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.watch(self.apimd, "daemon", self._show_connection, init=True)
        self.set_interval(REPAINT_S, self._repaint)
        self.set_interval(1.0, self._tick)
        self.set_interval(SUMMARY_EVERY_S, self.request_summary)
        self.keep_summary()
        self.table.focus()

    @property
    def board(self) -> Board:
        """The app's: the command palette offers its names too."""
        return self.apimd.board

    @property
    def table(self) -> MonitorTable:
        return self.query_one(MonitorTable)

    @property
    def rebuilds(self) -> int:
        """How many times the table was filled from scratch: never because of an event."""
        return self.table.rebuilds

    def current_name(self) -> str | None:
        return self.table.current_name()

    # --- connection ---------------------------------------------------------------------------

    def _show_connection(self, state: DaemonState) -> None:
        offline = self.query_one("#offline", Static)
        offline.display = state.checked and not state.connected
        if offline.display:
            offline.update(
                f"✗ No daemon reachable at {screen_text(str(state.socket_path))}\n"
                f"  {screen_text(failure_reason(state.error))}\n"
                f"  Retrying every {RETRY_S:g} s. Start one with `apimd start` (or just run `apimd`)."
            )
        self._show_empty()

    def daemon_connected(self) -> None:
        # Events were lost while the daemon was away: runs "in progress" may have ended.
        self.request_summary(reset_running=True)

    def _show_empty(self) -> None:
        table = self.table
        has_rows = table.row_count > 0
        if table.display != has_rows:
            table.display = has_rows
            if has_rows and self.focused is None:
                table.focus()
        empty = self.query_one("#empty", Static)
        empty.display = not has_rows and self.apimd.daemon.connected
        if empty.display:
            empty.update(
                f"No monitor matches “{screen_text(self._query)}”. Esc clears the filter."
                if self._query and self.board.monitors
                else "No calls or workflows yet. Load a project with `apimd apply FILE`."
            )

    # --- the summary --------------------------------------------------------------------------

    def request_summary(self, *, reset_running: bool = False) -> None:
        """Read the summary again soon; requests that arrive together make one read."""
        self._reset_running |= reset_running
        self._summary_wanted.set()

    @work(group="summary", exit_on_error=False)
    async def keep_summary(self) -> None:
        """For as long as the screen lives: one summary read per burst of requests."""
        while True:
            await self._summary_wanted.wait()
            if self.summaries:  # the first is awaited: a burst after it makes one read
                await asyncio.sleep(REPAINT_S)
            self._summary_wanted.clear()
            if not self.connected:
                continue  # reconnecting asks again
            try:
                await self.load_summary()
            except DaemonUnavailable:
                pass  # the connection loop notices and reconnects; that asks again
            except Exception as exc:  # said once, and the next request tries again
                self.apimd.report_error(exc)

    async def load_summary(self) -> None:
        """Apply one summary; events that arrive meanwhile are held and applied on top."""
        self._summary_asked = time.monotonic()
        self._loading = True
        try:
            first = not (self.board.monitors or self._query)
            if first:  # the first screenful in dashboard order: 10,000 monitors take a while
                summary = await self.client.summary(
                    window=SUMMARY_WINDOW, order="dashboard", limit=FIRST_ROWS
                )
            else:
                summary = await self.client.summary(window=SUMMARY_WINDOW)
            reset, self._reset_running = self._reset_running, False
            # A large first summary: a screenful now, the whole table once it is folded in.
            first = first and (not summary.complete or len(summary.targets) > FIRST_ROWS)
            if first:
                await self._paint_head(summary)
                if not summary.complete:
                    summary = await self.client.summary(window=SUMMARY_WINDOW)
            # Off the event loop (10,000 monitors: ~0.2 s): meanwhile events are held, and the
            # table reads monitors that are only ever replaced or set attribute by attribute.
            changes = await asyncio.to_thread(self.board.load_summary, summary, reset_running=reset)
        except BaseException:
            self._release_held()
            raise
        self.summaries += 1
        self._release_held()
        if first or self.table.row_count == 0:
            self.rebuild()
            self._freeze_pending = self.summaries == 1 and len(self.board.monitors) > FIRST_ROWS
            return
        self.table.remove_monitors(changes.removed)
        self.table.add_monitors(n for n in changes.added if self.board.matches(n, self._query))
        self.table.mark_changed(changes.changed)
        self._show_empty()

    async def _paint_head(self, summary: Summary) -> None:
        """Show the first `FIRST_ROWS` monitors of `summary` (of the first summary, still only
        those when the daemon sent only those) and wait until they are on screen."""
        self.table.fill(self.board.load_head(summary, FIRST_ROWS), self.app.size.width)
        self._show_empty()
        painted = asyncio.Event()
        self.call_after_refresh(painted.set)
        await painted.wait()  # the fold's thread (or the rest's parse) would slow it down

    def _release_held(self) -> None:
        self._loading = False
        held, self._held_events = self._held_events, []
        for event in held:
            self.on_daemon_event(event)

    def rebuild(self) -> None:
        """Fill the table from scratch (first load, filter, resize), keeping the cursor's
        monitor."""
        self.table.fill(self.board.ordered(self._query), self.app.size.width)
        self._show_empty()

    def on_resize(self) -> None:
        if self.is_mounted and self.table.needs_layout(self.app.size.width):
            self.rebuild()

    # --- live updates -------------------------------------------------------------------------

    def on_daemon_event(self, event: Event) -> None:
        if self._loading:
            self._held_events.append(event)
        elif isinstance(event, Lagged):
            self.request_summary(reset_running=True)
        elif isinstance(event, ResourceChanged):
            if any(kind in RESOURCE_KINDS for kind, _ in event.pairs):
                self.request_summary()
        elif isinstance(event, RunFinished) and event.location and "@" in self._query:
            # A run from a location the filter keeps can bring a hidden monitor in.
            hidden = event.name in self.board.monitors and not self.board.matches(
                event.name, self._query
            )
            self.table.mark_changed(self.board.apply(event))
            if hidden and self.board.matches(event.name, self._query):
                self.table.add_monitors([event.name])
                self._show_empty()
        else:
            self.table.mark_changed(self.board.apply(event))

    def _repaint(self) -> None:
        self.table.flush()
        if self._freeze_pending and not self.table.filling:
            self._freeze_pending = False
            self.frozen = True
            freeze_what_lives()

    def on_unmount(self) -> None:
        if self.frozen:  # the app is closing (or a test's app): let the collector have it all
            gc.unfreeze()

    def _tick(self) -> None:
        """Once a second: the time columns; and when a next run on screen has passed without a
        fire moving it on, ask the daemon (not more often than every `SUMMARY_SOON_S`)."""
        self.table.tick()
        if (
            time.monotonic() - self._summary_asked >= SUMMARY_SOON_S
            and self.connected
            and self.board.overdue(self.table.visible_names(), self.clock())
        ):
            self._summary_asked = time.monotonic()
            self.request_summary()

    # --- actions ------------------------------------------------------------------------------

    @on(Input.Changed, "#filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self._query = event.value
        self.rebuild()

    @on(Input.Submitted, "#filter")
    def _filter_done(self) -> None:
        self.table.focus()

    @on(DataTable.RowSelected, "#monitors")
    def _open_results(self, event: DataTable.RowSelected) -> None:
        self.app.push_screen(ResultsScreen(str(event.row_key.value)))

    def action_focus_filter(self) -> None:
        self.query_one("#filter", Input).focus()

    def action_next_location(self) -> None:
        """Keep the monitors of the next location (of the schedules and the live agents); after
        the last, every location again."""
        status = self.apimd.daemon.status
        live = {agent.location for agent in status.agents} if status else set()
        places = sorted(set(self.board.locations()) | live, key=str.lower)
        filter_input = self.query_one("#filter", Input)
        words = filter_input.value.split()
        current = next((w[1:] for w in words if w.startswith("@")), None)
        following = places[places.index(current) + 1 :] if current in places else places
        words = [w for w in words if not w.startswith("@")]
        if following:
            words.append(f"@{following[0]}")
        filter_input.value = " ".join(words)  # Input.Changed rebuilds
        self.notify(
            f"location: {screen_text(following[0])}" if following else "every location",
            timeout=2,
            markup=False,
        )

    def action_clear_filter(self) -> None:
        filter_input = self.query_one("#filter", Input)
        if filter_input.value:
            filter_input.value = ""  # Input.Changed rebuilds
        self.table.focus()

    def action_run(self) -> None:
        name = self.current_name()
        monitor = self.board.monitors.get(name) if name else None
        if monitor is not None:
            self.app.push_screen(RunScreen(monitor.kind, monitor.name))

    def action_edit(self) -> None:
        name = self.current_name()
        monitor = self.board.monitors.get(name) if name else None
        if monitor is not None:
            self.apimd.edit_resource(f"{monitor.kind}s", monitor.name)

    def action_new_call(self) -> None:
        self.apimd.edit_resource("calls")

    def action_stats(self) -> None:
        name = self.current_name()
        if name is not None:
            self.app.push_screen(StatsScreen(name))

    def action_reload(self) -> None:
        self.request_summary()
