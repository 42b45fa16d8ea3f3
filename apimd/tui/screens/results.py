"""Result history, newest first, filtered by name, outcome and age; pages on demand."""

from __future__ import annotations

from datetime import timedelta
from typing import ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.widgets import DataTable, Footer, Input, Static

from apimd.model.events import Event, RunFinished, RunStep
from apimd.model.outcome import Outcome
from apimd.model.result import Result
from apimd.tui.formatting import literal, milliseconds, outcome_text, timestamp
from apimd.tui.screens.base import ApimdScreen
from apimd.tui.screens.stats import StatsScreen
from apimd.tui.screens.viewer import ResultScreen
from apimd.tui.widgets.status_bar import StatusBar
from apimd.tui.widgets.text_input import TextInput

PAGE_SIZE = 50
WHERE_WIDTH = 16
"""The `location/agent` column, shown when results come from several agents."""
OUTCOME_FILTERS: tuple[Outcome | None, ...] = (
    None,
    Outcome.FAIL,
    Outcome.WARNING,
    Outcome.SKIPPED,
    Outcome.SLOW,
    Outcome.PASS,
)
SINCE_FILTERS: tuple[tuple[str, timedelta | None], ...] = (
    ("any time", None),
    ("last hour", timedelta(hours=1)),
    ("last 24 h", timedelta(hours=24)),
    ("last 7 days", timedelta(days=7)),
)


class ResultTable(DataTable[str | Text]):
    """The history table; enter opens the result under the cursor."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "select_cursor", "Open", id="results.open"),
    ]


class ResultsScreen(ApimdScreen):
    """All results, or one target's (`target`)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back_or_clear", "Back", id="results.back"),
        # The filter bar shows these three keys beside what they filter; in the footer too, they
        # pushed "? Help" out of 80 columns.
        Binding("slash", "focus_filter", "Name", show=False, id="results.filter"),
        Binding("o", "next_outcome", "Outcome", show=False, id="results.outcome"),
        Binding("w", "next_since", "Since", show=False, id="results.since"),
        Binding("m", "more", "More", id="results.more"),
        Binding("g", "reload", "Reload", show=False, id="results.reload"),
        Binding("s", "stats", "Stats", id="results.stats"),
    ]

    def __init__(self, target: str | None = None) -> None:
        super().__init__()
        self._layout_width = 0
        self._where = False
        self.target = target
        self.outcome: Outcome | None = None
        self.since_index = 0
        self.next_cursor: str | None = None
        self.results: dict[str, Result] = {}
        self.new_results = 0

    def compose(self) -> ComposeResult:
        yield StatusBar("Results" if self.target is None else f"Results {self.target}")
        with Horizontal(id="results-filters", classes="filter-bar"):
            yield TextInput(
                value=self.target or "",
                placeholder="/ name (all)",
                id="results-name",
                compact=True,
            )
            yield Static(id="results-state", markup=False)
        table = ResultTable(id="results-table", cursor_type="row")
        yield table
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self._build_columns()
        self.query_one(ResultTable).focus()
        self._show_state()

    def _build_columns(self) -> None:
        table = self.query_one(ResultTable)
        self._layout_width = self.app.size.width
        table.clear(columns=True)
        wide = self.app.size.width >= 100
        self._where = wide and self._from_several_places()
        fixed = 11 + 9 + 17 + 4 + 8 + (8 if wide else 0) + (WHERE_WIDTH if self._where else 0)
        columns = 6 + wide + self._where
        name_width = max(12, self.app.size.width - fixed - 2 * columns - 2)
        table.add_column("when", key="when", width=11)
        table.add_column("outcome", key="outcome", width=9)
        table.add_column("name", key="name", width=name_width)
        table.add_column("result", key="result", width=17)
        table.add_column("http", key="http", width=4)
        table.add_column("total", key="total", width=8)
        if wide:
            table.add_column("trigger", key="trigger", width=8)
        if self._where:
            table.add_column("where", key="where", width=WHERE_WIDTH)
        for result in self.results.values():
            table.add_row(*self._cells(result), key=result.id)

    def _cells(self, result: Result) -> list[str | Text]:
        cells: list[str | Text] = [
            timestamp(result.started_at, self.clock()),
            outcome_text(result.outcome),
            literal(
                f"{result.name} (step of {result.workflow})" if result.workflow else result.name
            ),
            result.result.value,
            str(result.http_status or ""),
            Text(milliseconds(result.timings_ms.total), justify="right"),
        ]
        if len(self.query_one(ResultTable).columns) > 6:
            cells.append(literal(result.trigger))
        if self._where:
            cells.append(literal(f"{result.location or '-'}/{result.agent or '-'}"))
        return cells

    def _from_several_places(self) -> bool:
        """Whether the results listed were recorded by more than one agent (SPEC §13): only
        then is where each ran worth a column."""
        return len({(r.location, r.agent) for r in self.results.values()}) > 1

    @property
    def name_filter(self) -> str | None:
        return self.query_one("#results-name", Input).value.strip() or None

    def _show_state(self) -> None:
        label, _ = SINCE_FILTERS[self.since_index]
        parts = [
            f"outcome {self.outcome.value if self.outcome else 'any'} (o)",
            f"{label} (w)",
            f"{len(self.results)} shown",
        ]
        if self.next_cursor:
            parts.append("m for more")
        if self.new_results:
            parts.append(f"{self.new_results} new, g reloads")
        self.query_one("#results-state", Static).update(" · ".join(parts))

    def daemon_connected(self) -> None:
        self.load()

    @work(exclusive=True, group="results", exit_on_error=False)
    async def load(self, more: bool = False) -> None:
        _, window = SINCE_FILTERS[self.since_index]
        since = (self.clock() - window).isoformat() if window else None
        page = await self.client.results(
            name=self.name_filter,
            outcome=self.outcome.value if self.outcome else None,
            since=since,
            limit=PAGE_SIZE,
            cursor=self.next_cursor if more else None,
        )
        table = self.query_one(ResultTable)
        if not more:
            self.results.clear()
            table.clear()
            self.new_results = 0
        for result in page.results:
            if result.id in self.results:
                continue
            self.results[result.id] = result
            table.add_row(*self._cells(result), key=result.id)
        self.next_cursor = page.next_cursor
        if self.app.size.width >= 100 and self._where != self._from_several_places():
            self._build_columns()
        self._show_state()

    def on_resize(self) -> None:
        if self.is_mounted and self.app.size.width != self._layout_width:
            self._build_columns()

    def on_daemon_event(self, event: Event) -> None:
        name = self.name_filter
        # A run of the call as a workflow's step is listed under its name too.
        step = isinstance(event, RunStep) and name is not None and event.name == name
        if not isinstance(event, RunFinished | RunStep) or (
            isinstance(event, RunStep) and not step
        ):
            return
        if (name is None or event.name == name) and (
            self.outcome is None or event.outcome is self.outcome
        ):
            self.new_results += 1
            self._show_state()

    @on(Input.Submitted, "#results-name")
    def _name_entered(self) -> None:
        self.query_one(ResultTable).focus()
        self.load()

    @on(DataTable.RowSelected, "#results-table")
    def _open(self, event: DataTable.RowSelected) -> None:
        result = self.results.get(str(event.row_key.value))
        if result is not None and result.workflow and result.workflow_run_id:
            # A step's result is kept inside its workflow's: open that, the step is in it.
            self.app.push_screen(ResultScreen(result.workflow_run_id, result.workflow))
        elif result is not None:
            self.app.push_screen(ResultScreen(result.id, result.name))

    def _current(self) -> Result | None:
        table = self.query_one(ResultTable)
        if table.row_count == 0:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return self.results.get(str(key))

    def action_focus_filter(self) -> None:
        self.query_one("#results-name", Input).focus()

    def action_back_or_clear(self) -> None:
        name_input = self.query_one("#results-name", Input)
        if name_input.has_focus:
            if name_input.value and name_input.value != (self.target or ""):
                name_input.value = self.target or ""
                self.load()
            self.query_one(ResultTable).focus()
            return
        self.action_back()

    def action_next_outcome(self) -> None:
        index = OUTCOME_FILTERS.index(self.outcome)
        self.outcome = OUTCOME_FILTERS[(index + 1) % len(OUTCOME_FILTERS)]
        self.load()

    def action_next_since(self) -> None:
        self.since_index = (self.since_index + 1) % len(SINCE_FILTERS)
        self.load()

    def action_more(self) -> None:
        if self.next_cursor:
            self.load(more=True)

    def action_reload(self) -> None:
        self.load()

    def action_stats(self) -> None:
        result = self._current()
        name = result.name if result else self.name_filter
        if name:
            self.app.push_screen(StatsScreen(name))
