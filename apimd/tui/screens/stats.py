"""Statistics of one target over a window: uptime, counts, percentiles and per-hour charts."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.widgets import Footer, Sparkline, Static

from apimd.model.events import Event, RunFinished
from apimd.model.outcome import Outcome
from apimd.model.stats import Stats
from apimd.tui.charts import Hour, hourly, latency_series, uptime_strip
from apimd.tui.formatting import (
    OUTCOME_STYLE,
    OUTCOME_SYMBOL,
    milliseconds,
    uptime_text,
)
from apimd.tui.screens.base import ApimdScreen
from apimd.tui.widgets.status_bar import StatusBar

WINDOWS = ("24h", "7d", "30d")


def summary_text(stats: Stats) -> Text:
    """Uptime, result counts per outcome, latency percentiles."""
    text = Text("uptime ", style="bold")
    text.append_text(uptime_text(stats.uptime))
    text.append(f"   {stats.total} results ", style="bold")
    for outcome in Outcome:
        count = stats.counts.get(outcome, 0)
        if count:
            text.append(
                f" {OUTCOME_SYMBOL[outcome]} {count} {outcome.value}", OUTCOME_STYLE[outcome]
            )
    latency = stats.latency
    text.append("\nlatency ", style="bold")
    if latency.count == 0:
        text.append(" no timed results", style="dim")
        return text
    parts = [
        ("p50", latency.p50_ms),
        ("p95", latency.p95_ms),
        ("p99", latency.p99_ms),
        ("min", latency.min_ms),
        ("mean", latency.mean_ms),
        ("max", latency.max_ms),
    ]
    for label, value in parts:
        text.append(f" {label} ", style="dim")
        text.append(milliseconds(value))
    return text


def axis_text(hours: list[Hour]) -> str:
    if not hours:
        return ""
    first, last = hours[0].start, hours[-1].start
    return f"{first:%m-%d %H:00} → {last:%m-%d %H:00} UTC"


class StatsScreen(ApimdScreen):
    """Reloads on `w` (next window) and when the target finishes a run."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back", id="stats.back"),
        Binding("w", "next_window", "Window", id="stats.window"),
        Binding("g", "reload", "Reload", show=False, id="stats.reload"),
    ]

    def __init__(self, name: str, window: str = "24h") -> None:
        super().__init__()
        self.target = name
        self.window = window
        self.stats: Stats | None = None

    def compose(self) -> ComposeResult:
        yield StatusBar(self._title())
        with VerticalScroll(id="stats-body"):
            yield Static(id="stats-summary", markup=False)
            yield Static("p95 latency per hour", classes="chart-label", id="p95-label")
            yield Sparkline([], id="p95-chart", classes="chart")
            yield Static("p50 latency per hour", classes="chart-label", id="p50-label")
            yield Sparkline([], id="p50-chart", classes="chart")
            yield Static("uptime per hour", classes="chart-label")
            yield Static(id="uptime-strip", markup=False)
            yield Static(id="stats-axis", markup=False)
        yield Footer(compact=True)

    def _title(self) -> str:
        return f"Statistics {self.target} · last {self.window}"

    def daemon_connected(self) -> None:
        self.load()

    @work(exclusive=True, group="stats", exit_on_error=False)
    async def load(self) -> None:
        self.stats = await self.client.stats(self.target, window=self.window)
        self._show()

    def _show(self) -> None:
        stats = self.stats
        if stats is None:
            return
        self.query_one("#stats-summary", Static).update(summary_text(stats))
        hours = hourly(stats)
        for field, label in (("p95_ms", "p95"), ("p50_ms", "p50")):
            values = latency_series(hours, field)
            self.query_one(f"#{label}-chart", Sparkline).data = values
            peak = max(values, default=0.0)
            self.query_one(f"#{label}-label", Static).update(
                f"{label} latency per hour (highest {milliseconds(peak) if peak else '—'})"
            )
        width = max(10, self.size.width - 4)
        cells = uptime_strip(hours, width)
        repeat = max(1, width // max(1, len(cells)))  # stretched like the sparklines above
        strip = Text()
        for char, style in cells:
            strip.append(char * repeat, style=style)
        self.query_one("#uptime-strip", Static).update(strip)
        self.query_one("#stats-axis", Static).update(Text(axis_text(hours), style="dim"))

    def on_resize(self) -> None:
        self._show()

    def on_daemon_event(self, event: Event) -> None:
        if isinstance(event, RunFinished) and event.name == self.target:
            self.load()

    def action_next_window(self) -> None:
        self.window = WINDOWS[(WINDOWS.index(self.window) + 1) % len(WINDOWS)]
        self.query_one(StatusBar).set_title(self._title())
        self.load()

    def action_reload(self) -> None:
        self.load()
