"""The first screen: every call and workflow, failing first, updated live from the event stream
(changed cells only, at most ten repaints a second, the cursor staying on its monitor)."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from typing import ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import DataTable, Footer, Input, Static

from apimd.client import ApiError, DaemonUnavailable
from apimd.model.resources import Call, Schedule, Token, Workflow
from apimd.tui.connection import DaemonState
from apimd.tui.events import DaemonEvent, Lagged, ResourceChanged
from apimd.tui.formatting import NOTHING, age, outcome_text, token_state_text, uptime_text
from apimd.tui.monitors import Board
from apimd.tui.screens.base import ApimdScreen
from apimd.tui.screens.results import ResultsScreen
from apimd.tui.screens.run import RunScreen
from apimd.tui.screens.stats import StatsScreen
from apimd.tui.sparkline import sparkline
from apimd.tui.widgets.status_bar import StatusBar

REPAINT_S = 0.1
"""Live changes are applied to the table at most this often."""
DETAIL_BATCH = 6
"""How many monitors' histories and statistics are fetched at once."""
RECENT_RESULTS = 200
"""Results read at load time to show last outcomes before per-monitor histories arrive."""
STATS_TTL_S = 300.0
STATS_AFTER_RUN_S = 60.0
"""Uptime is re-read after new runs, but not more often than this per monitor."""

COLUMNS: tuple[tuple[str, str], ...] = (
    ("outcome", "outcome"),
    ("name", "name"),
    ("kind", "kind"),
    ("last", "last"),
    ("latency", "latency"),
    ("uptime", "up 24h"),
    ("next", "next"),
    ("token", "token"),
)
TIME_COLUMNS = ("last", "next")


class MonitorTable(DataTable[str | Text]):
    """The dashboard table; enter opens the history of the monitor under the cursor."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "select_cursor", "Results", id="dashboard.results"),
    ]


class DashboardScreen(ApimdScreen):
    """Rows are keyed by monitor name, so events update cells in place."""

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
        self.rebuilds = 0
        """How many times the table was filled from scratch (load, filter, resize): never on an
        event."""
        self._query = ""
        self._rendered: dict[str, dict[str, str | Text]] = {}
        self._ranks: dict[str, int] = {}
        self._dirty: set[str] = set()
        self._needs_sort = False
        self._loading = False
        self._held_events: list[DaemonEvent] = []
        self._changed_resources: set[tuple[str, str]] = set()
        self._detail_wakeup = asyncio.Event()
        self._fetched_at: dict[str, float] = {}
        self._spark_width = 10
        self._layout_width = 0

    def compose(self) -> ComposeResult:
        yield StatusBar("Dashboard")
        yield Static(id="offline", markup=False)
        yield Input(
            placeholder="/ filter by name, outcome, kind, token state or tag",
            id="filter",
            compact=True,
        )
        yield MonitorTable(id="monitors", cursor_type="row")
        yield Static(id="empty", markup=False)
        yield Footer(compact=True)

    def on_mount(self) -> None:
        super().on_mount()
        self.watch(self.apimd, "daemon", self._show_connection, init=True)
        self.set_interval(REPAINT_S, self.flush)
        self.set_interval(1.0, self._tick)
        self.set_interval(30.0, self._detail_wakeup.set)
        self.table.focus()

    @property
    def table(self) -> MonitorTable:
        return self.query_one(MonitorTable)

    # --- connection ---------------------------------------------------------------------------

    def _show_connection(self, state: DaemonState) -> None:
        offline = self.query_one("#offline", Static)
        offline.display = state.checked and not state.connected
        if offline.display:
            offline.update(
                f"✗ No daemon reachable at {state.socket_path}\n"
                f"  {state.error or ''}\n"
                "  Retrying every 2 s. Start one with `apimd start` (or just run `apimd`)."
            )
        self._show_empty()

    def daemon_connected(self) -> None:
        self.reload()

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
        """Fill the table from scratch, keeping the cursor on the same monitor."""
        table = self.table
        current = self.current_name()
        width = self.app.size.width
        if width != self._layout_width or not table.columns:
            self._layout_columns(width)
        table.clear()
        self._rendered.clear()
        now = self.clock()
        for name in self.board.ordered(self._query):
            cells = self._cells(name, now)
            table.add_row(*cells.values(), key=name)
            self._rendered[name] = cells
            self._ranks[name] = self.board.rank(name)
        self._dirty.clear()
        self._needs_sort = False
        self.rebuilds += 1
        self._restore_cursor(current)
        self._show_empty()

    def _layout_columns(self, width: int) -> None:
        self._layout_width = width
        self._spark_width = 20 if width >= 110 else 10
        widths = {
            "outcome": 9,
            "kind": 4,
            "last": 4,
            "latency": self._spark_width,
            "uptime": 6,
            "next": 6,
            "token": 8,
        }
        # Each column has one cell of padding on both sides; the scrollbar takes 2.
        name_width = max(12, width - sum(widths.values()) - 2 * len(COLUMNS) - 2)
        widths["name"] = name_width
        table = self.table
        table.clear(columns=True)
        for key, label in COLUMNS:
            table.add_column(label, key=key, width=widths[key])

    def _cells(self, name: str, now: datetime) -> dict[str, str | Text]:
        """Every cell of a monitor's row, in column order."""
        board = self.board
        monitor = board.monitors[name]
        if monitor.uptime is None and monitor.stats_at is None:
            uptime = Text("…", style="dim")
        else:
            uptime = uptime_text(monitor.uptime)
        return {
            "outcome": outcome_text(monitor.outcome),
            "name": name,
            "kind": "call" if monitor.kind == "call" else "flow",
            "last": self._last_cell(name, now),
            "latency": Text(sparkline(monitor.latency_values, self._spark_width), style="cyan"),
            "uptime": uptime,
            "next": board.next_run(name, now).text(now),
            "token": token_state_text(board.token_state(name))
            if board.token_names(name)
            else Text(NOTHING, style="dim"),
        }

    def _last_cell(self, name: str, now: datetime) -> str | Text:
        monitor = self.board.monitors[name]
        if monitor.running:
            return Text("▶", style="bold cyan")
        return age(monitor.last_run_at, now)

    def _show_empty(self) -> None:
        empty = self.query_one("#empty", Static)
        has_rows = self.table.row_count > 0
        empty.display = not has_rows and self.apimd.daemon.connected
        if empty.display:
            empty.update(
                f"No monitor matches “{self._query}”. Esc clears the filter."
                if self._query and self.board.monitors
                else "No calls or workflows yet. Load a project with `apimd apply FILE`."
            )

    # --- live updates -------------------------------------------------------------------------

    def on_daemon_event(self, event: DaemonEvent) -> None:
        if self._loading:
            self._held_events.append(event)
            return
        if isinstance(event, Lagged):
            self.reload()
            return
        if isinstance(event, ResourceChanged):
            wanted = {"calls", "workflows", "tokens", "schedules"}
            fresh = {(k, n) for k, n in event.resources if k in wanted}
            if fresh:
                self._changed_resources |= fresh
                self.sync_resources()
            return
        self._dirty |= self.board.apply(event)

    def flush(self) -> None:
        """Apply pending changes to the table: changed cells only, then re-sort if a monitor
        changed rank. Runs every `REPAINT_S`, so bursts of events cost one repaint."""
        if not self._dirty and not self._needs_sort:
            return
        table = self.table
        now = self.clock()
        dirty, self._dirty = self._dirty, set()
        for name in dirty:
            if name not in self._rendered or name not in self.board.monitors:
                continue
            self._update_cells(name, self._cells(name, now))
            rank = self.board.rank(name)
            if self._ranks.get(name) != rank:
                self._ranks[name] = rank
                self._needs_sort = True
            monitor = self.board.monitors[name]
            if monitor.runs_since_stats:
                self._detail_wakeup.set()
        if self._needs_sort:
            self._needs_sort = False
            current = self.current_name()
            table.sort("name", key=self.board.sort_key)
            self._restore_cursor(current)

    def _update_cells(self, name: str, cells: dict[str, str | Text]) -> None:
        shown = self._rendered[name]
        for column, value in cells.items():
            if shown.get(column) != value:
                self.table.update_cell(name, column, value)
                shown[column] = value

    def _tick(self) -> None:
        """Once a second: the time columns (last run age, next run), where their text changed."""
        now = self.clock()
        for name, shown in self._rendered.items():
            monitor = self.board.monitors.get(name)
            if monitor is None:
                continue
            values = {
                "last": self._last_cell(name, now),
                "next": self.board.next_run(name, now).text(now),
            }
            for column, value in values.items():
                if shown.get(column) != value:
                    self.table.update_cell(name, column, value)
                    shown[column] = value

    @work(group="resources", exit_on_error=False)
    async def sync_resources(self) -> None:
        """Re-read resources named by `resource.changed`; add, update or remove their rows."""
        await asyncio.sleep(REPAINT_S)  # let a burst of changes collect
        changed, self._changed_resources = self._changed_resources, set()
        if not changed:
            return
        added: list[str] = []
        removed: list[str] = []
        for kind, name in sorted(changed):
            try:
                resource = await self.client.get(kind, name)
            except ApiError as exc:
                if exc.status != 404:
                    raise
                resource = None
            if kind in ("calls", "workflows"):
                if resource is None:
                    if self.board.remove(name):
                        removed.append(name)
                    continue
                known = name in self.board.monitors
                if isinstance(resource, Call):
                    self.board.put_call(resource)
                elif isinstance(resource, Workflow):
                    self.board.put_workflow(resource)
                (self._dirty.add if known else added.append)(name)
            elif kind == "tokens":
                if isinstance(resource, Token):
                    self.board.put_token(resource)
                else:
                    self.board.remove_token(name)
                self._dirty |= self.board.names_using_token(name)
            elif kind == "schedules":
                if isinstance(resource, Schedule):
                    self.board.put_schedule(resource)
                else:
                    self.board.remove_schedule(name)
                self._dirty |= set(self.board.monitors)
        self._apply_membership(added, removed)

    def _apply_membership(self, added: list[str], removed: list[str]) -> None:
        table = self.table
        current = self.current_name()
        now = self.clock()
        for name in removed:
            if name in self._rendered:
                table.remove_row(name)
                del self._rendered[name]
                self._ranks.pop(name, None)
        for name in added:
            if name in self._rendered or not self.board.matches(name, self._query):
                continue
            cells = self._cells(name, now)
            table.add_row(*cells.values(), key=name)
            self._rendered[name] = cells
            self._ranks[name] = self.board.rank(name)
            self._needs_sort = True
        if added:
            self._detail_wakeup.set()
        self._restore_cursor(current)
        self._show_empty()

    # --- histories and uptime, fetched lazily -------------------------------------------------

    @work(exclusive=True, group="details", exit_on_error=False)
    async def load_details(self) -> None:
        """Fetch sparkline histories and 24 h uptime a few monitors at a time, the rows on
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
            fetched = self._fetched_at.get(name, 0.0)
            if monitor.runs_since_stats and now - fetched > STATS_AFTER_RUN_S:
                return True
            return now - fetched > STATS_TTL_S

        ordered = self._visible_names() + list(self._rendered)
        batch: list[str] = []
        for name in ordered:
            if name not in batch and wanted(name):
                batch.append(name)
                if len(batch) == DETAIL_BATCH:
                    break
        return batch

    def _visible_names(self) -> list[str]:
        table = self.table
        top = int(table.scroll_offset.y)
        height = max(1, table.size.height - 1)
        rows = table.ordered_rows[top : top + height]
        return [str(row.key.value) for row in rows]

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
        except ApiError:
            monitor.history_loaded = True
            self.board.set_uptime(name, None, self.clock())
            return
        except DaemonUnavailable:
            raise
        self.board.set_uptime(name, stats.uptime, self.clock())
        self._dirty.add(name)

    # --- selection ----------------------------------------------------------------------------

    def current_name(self) -> str | None:
        table = self.table
        if table.row_count == 0:
            return None
        return str(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value)

    def _restore_cursor(self, name: str | None) -> None:
        table = self.table
        if name is not None and name in self._rendered:
            index = table.get_row_index(name)
            if index != table.cursor_row:
                table.move_cursor(row=index, animate=False)

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

    def on_resize(self) -> None:
        if self.is_mounted and self.app.size.width != self._layout_width and self._layout_width:
            self.rebuild()
