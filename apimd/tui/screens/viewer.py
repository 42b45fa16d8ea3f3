"""One stored result, opened from the history: the same viewer the run screen uses."""

from __future__ import annotations

from typing import ClassVar

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import Footer

from apimd.model.result import Result
from apimd.tui.screens.base import ApimdScreen
from apimd.tui.screens.stats import StatsScreen
from apimd.tui.widgets.result_view import VIEWER_BINDINGS
from apimd.tui.widgets.run_result import RunResultPanel
from apimd.tui.widgets.status_bar import StatusBar


class ResultScreen(ApimdScreen):
    """Fetches the full result by id (history rows may be summaries) and shows it."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back", id="result.back"),
        Binding("s", "stats", "Statistics", id="result.stats"),
        *VIEWER_BINDINGS,
    ]

    def __init__(self, result_id: str, name: str) -> None:
        super().__init__()
        self.result_id = result_id
        self.target = name
        self.result: Result | None = None

    def compose(self) -> ComposeResult:
        yield StatusBar(f"Result {self.target} {self.result_id[:8]}")
        yield RunResultPanel(self.clock, id="result-panel")
        yield Footer(compact=True)

    def daemon_connected(self) -> None:
        if self.result is None:
            self.load()

    @work(exclusive=True, group="result", exit_on_error=False)
    async def load(self) -> None:
        result = await self.client.result(self.result_id)
        self.result = result
        panel = self.query_one(RunResultPanel)
        panel.show(result)
        panel.focus_start()

    def action_show_tab(self, tab: str) -> None:
        self.query_one(RunResultPanel).viewer.show_tab(tab)

    def action_stats(self) -> None:
        self.app.push_screen(StatsScreen(self.target))
