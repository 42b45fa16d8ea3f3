"""The first screen: every call and workflow, failing first, updated live from the event stream
(changed cells only, at most ten repaints a second, the cursor staying on its monitor)."""

from __future__ import annotations

import asyncio
import re
import time
from typing import ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import DataTable, Footer, Input, Static

from apimd.client import ApiError
from apimd.model.resources import Call, Schedule, Token, Workflow
from apimd.tui.connection import RETRY_S, DaemonState
from apimd.tui.events import DaemonEvent, Lagged, ResourceChanged
from apimd.tui.monitors import Board
from apimd.tui.screens.base import ApimdScreen
from apimd.tui.screens.results import ResultsScreen
from apimd.tui.screens.run import RunScreen
from apimd.tui.screens.stats import StatsScreen
from apimd.tui.widgets.monitor_table import MonitorTable
from apimd.tui.widgets.status_bar import StatusBar

REPAINT_S = 0.1
"""Live changes are applied to the table at most this often."""
DETAIL_BATCH = 6
"""How many monitors' histories and statistics are fetched at once."""
RECENT_RESULTS = 200
"""Results read at load time to show last outcomes before per-monitor histories arrive."""
STATS_TTL_S = 300.0
"""Statistics are re-read this often (the 24 h window slides); live runs count in between."""
RESOURCE_KINDS = frozenset({"calls", "workflows", "tokens", "schedules"})


def failure_reason(error: str | None) -> str:
    """The cause inside a `DaemonUnavailable` message (`… (No such file or directory); …`)."""
    if not error:
        return ""
    match = re.search(r"\((.*)\); start one", error)
    return match.group(1) if match else error


class DashboardScreen(ApimdScreen):
    """Loads the board, keeps it current from events, and fetches what each row needs lazily."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("r", "run", "Run", id="dashboard.run"),
        Binding("s", "stats", "Stats", id="dashboard.stats"),
        Binding("slash", "focus_filter", "Filter", id="dashboard.filter"),
        Binding("escape", "clear_filter", "Clear filter", show=False, id="dashboard.clear_filter"),
        Binding("g", "reload", "Reload", show=False, id="dashboard.reload"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.board = Board()
        self._query = ""
        self._loading = False
        self._held_events: list[DaemonEvent] = []
        self._changed_resources: set[tuple[str, str]] = set()
        self._detail_wakeup = asyncio.Event()
        self._fetched_at: dict[str, float] = {}

    def compose(self) -> ComposeResult:
        yield StatusBar("Dashboard")
        yield Static(id="offline", markup=False)
        yield Input(
            placeholder="/ filter by name, outcome, kind, token state or tag",
            id="filter",
            compact=True,
        )
        yield MonitorTable(self.board, self.clock, id="monitors")
        yield Static(id="empty", markup=False)
        yield Footer(compact=True)

    def on_mount(self) -> None:
        super().on_mount()
        self.watch(self.apimd, "daemon", self._show_connection, init=True)
        self.set_interval(REPAINT_S, self.table.flush)
        self.set_interval(1.0, self.table.tick)
        self.set_interval(30.0, self._detail_wakeup.set)
        self.table.focus()

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
                f"✗ No daemon reachable at {state.socket_path}\n"
                f"  {failure_reason(state.error)}\n"
                f"  Retrying every {RETRY_S:g} s. Start one with `apimd start` (or just run `apimd`)."
            )
        self._show_empty()

    def daemon_connected(self) -> None:
        self.reload()

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
                f"No monitor matches “{self._query}”. Esc clears the filter."
                if self._query and self.board.monitors
                else "No calls or workflows yet. Load a project with `apimd apply FILE`."
            )

    # --- loading ------------------------------------------------------------------------------

    @work(exclusive=True, group="reload", exit_on_error=False)
    async def reload(self) -> None:
        """Read everything again (on connect, after `lagged`, on `g`); events that arrive
        meanwhile are held and applied on top."""
        self._loading = True
        try:
            calls, workflows, tokens, schedules, page = await asyncio.gather(
                self.client.list("calls"),
                self.client.list("workflows"),
                self.client.list("tokens"),
                self.client.list("schedules"),
                self.client.results(limit=RECENT_RESULTS),
            )
        except BaseException:
            self._loading = False
            self._held_events.clear()
            raise
        self.board.load(
            [c for c in calls if isinstance(c, Call)],
            [w for w in workflows if isinstance(w, Workflow)],
            [t for t in tokens if isinstance(t, Token)],
            [s for s in schedules if isinstance(s, Schedule)],
            page.results,
        )
        self._fetched_at.clear()
        self._loading = False
        held, self._held_events = self._held_events, []
        for event in held:
            self.on_daemon_event(event)
        self.rebuild()
        self.load_details()

    def rebuild(self) -> None:
        """Fill the table from scratch (load, filter, resize), keeping the cursor's monitor."""
        self.table.fill(self.board.ordered(self._query), self.app.size.width)
        self._show_empty()

    def on_resize(self) -> None:
        if self.is_mounted and self.table.needs_layout(self.app.size.width):
            self.rebuild()

    # --- live updates -------------------------------------------------------------------------

    def on_daemon_event(self, event: DaemonEvent) -> None:
        if self._loading:
            self._held_events.append(event)
        elif isinstance(event, Lagged):
            self.reload()
        elif isinstance(event, ResourceChanged):
            fresh = {(k, n) for k, n in event.resources if k in RESOURCE_KINDS}
            if fresh:
                self._changed_resources |= fresh
                self.sync_resources()
        else:
            self.table.mark_changed(self.board.apply(event))

    @work(group="resources", exit_on_error=False)
    async def sync_resources(self) -> None:
        """Re-read resources named by `resource.changed`; add, update or remove their rows."""
        await asyncio.sleep(REPAINT_S)  # let a burst of changes collect
        changed, self._changed_resources = self._changed_resources, set()
        added: list[str] = []
        removed: list[str] = []
        for kind, name in sorted(changed):
            try:
                resource = await self.client.get(kind, name)
            except ApiError as exc:
                if exc.status != 404:
                    raise
                resource = None
            if isinstance(resource, Call | Workflow):
                known = name in self.board.monitors
                if isinstance(resource, Call):
                    self.board.put_call(resource)
                else:
                    self.board.put_workflow(resource)
                if known:
                    self.table.mark_changed([name])
                else:
                    added.append(name)
            elif kind in ("calls", "workflows") and self.board.remove(name):
                removed.append(name)
            elif kind == "tokens":
                if isinstance(resource, Token):
                    self.board.put_token(resource)
                else:
                    self.board.remove_token(name)
                self.table.mark_changed(self.board.names_using_token(name))
            elif kind == "schedules":
                if isinstance(resource, Schedule):
                    self.board.put_schedule(resource)
                else:
                    self.board.remove_schedule(name)
                self.table.mark_changed(self.board.monitors)
        self.table.remove_monitors(removed)
        self.table.add_monitors(n for n in added if self.board.matches(n, self._query))
        if added:
            self._detail_wakeup.set()
        self._show_empty()

    # --- histories and uptime, fetched lazily -------------------------------------------------

    @work(exclusive=True, group="details", exit_on_error=False)
    async def load_details(self) -> None:
        """Fetch sparkline histories and 24 h statistics a few monitors at a time, the rows on
        screen first, and again when stale; never all at once."""
        while True:
            batch = self._detail_batch()
            if not batch:
                self._detail_wakeup.clear()
                await self._detail_wakeup.wait()
                continue
            await asyncio.gather(*(self._load_detail(name) for name in batch))

    def _detail_batch(self) -> list[str]:
        now = time.monotonic()

        def wanted(name: str) -> bool:
            monitor = self.board.monitors.get(name)
            if monitor is None:
                return False
            if not monitor.history_loaded or monitor.stats_at is None:
                return True
            return now - self._fetched_at.get(name, 0.0) > STATS_TTL_S

        batch: list[str] = []
        for name in self.table.visible_names() + self.table.shown_names():
            if name not in batch and wanted(name):
                batch.append(name)
                if len(batch) == DETAIL_BATCH:
                    break
        return batch

    async def _load_detail(self, name: str) -> None:
        monitor = self.board.monitors.get(name)
        if monitor is None:
            return
        self._fetched_at[name] = time.monotonic()
        try:
            if not monitor.history_loaded:
                page = await self.client.results(name=name, limit=20)
                self.board.set_history(name, page.results)
            stats = await self.client.stats(name, window="24h")
        except ApiError:  # removed meanwhile; resource.changed will say so
            monitor.history_loaded = True
            self.board.set_stats(name, None, self.clock())
            return
        self.board.set_stats(name, stats, self.clock())
        self.table.mark_changed([name])

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

    def action_stats(self) -> None:
        name = self.current_name()
        if name is not None:
            self.app.push_screen(StatsScreen(name))

    def action_reload(self) -> None:
        self.reload()
