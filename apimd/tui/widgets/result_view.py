"""The response viewer: status, timing waterfall, conditions, pretty body, headers of one result."""

from __future__ import annotations

import json
from typing import Any, ClassVar

from rich.syntax import Syntax
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.reactive import reactive
from textual.widget import Widget
from textual.widgets import DataTable, Static, TabbedContent, TabPane, Tabs

from apimd.model.result import ConditionResult, Result, Timings
from apimd.tui.body import PrettyBody, content_type_of, pretty_body
from apimd.tui.formatting import (
    NOTHING,
    byte_size,
    literal,
    milliseconds,
    outcome_text,
    screen_text,
    timestamp,
    truncate,
)
from apimd.tui.ports import Clock
from apimd.tui.waterfall import PHASE_LABELS, untimed, waterfall

TABS = ("timing", "conditions", "body", "headers")
VIEWER_BINDINGS: list[BindingType] = [
    Binding("1", "show_tab('timing')", "Timing tab", show=False, id="viewer.timing"),
    Binding("2", "show_tab('conditions')", "Conditions tab", show=False, id="viewer.conditions"),
    Binding("3", "show_tab('body')", "Body tab", show=False, id="viewer.body"),
    Binding("4", "show_tab('headers')", "Headers tab", show=False, id="viewer.headers"),
]
"""Screens that hold a `ResultView` add these and forward `show_tab` to it (the tab labels
show the numbers, so the footer need not)."""

PHASE_STYLE = {
    "dns": "cyan",
    "connect": "blue",
    "send": "magenta",
    "wait": "yellow",
    "receive": "green",
}
LABEL_WIDTH = 12
VALUE_WIDTH = 10


def render_waterfall(timings: Timings, width: int) -> Text:
    """The waterfall as text lines: label, a bar placed on a track, milliseconds."""
    track = max(8, width - LABEL_WIDTH - VALUE_WIDTH - 3)
    text = Text(no_wrap=True, overflow="crop")
    for bar in waterfall(timings, track):
        text.append(f"{PHASE_LABELS[bar.phase]:<{LABEL_WIDTH}}", style="bold")
        text.append("│", style="dim")
        text.append(" " * bar.start)
        text.append("█" * bar.length, style=PHASE_STYLE[bar.phase])
        text.append(" " * (track - bar.start - bar.length))
        text.append("│", style="dim")
        text.append(f"{milliseconds(bar.ms):>{VALUE_WIDTH}}\n")
    text.append(f"{'total':<{LABEL_WIDTH}}", style="bold")
    text.append("└" + "─" * track + "┘", style="dim")
    text.append(f"{milliseconds(timings.total):>{VALUE_WIDTH}}\n", style="bold")
    text.append(f"{'auth wait':<{LABEL_WIDTH}}", style="bold")
    if timings.auth_wait > 0:
        text.append(f" {milliseconds(timings.auth_wait)}", style="yellow")
        text.append("  waiting for a token refresh, before the request (not in total)", "dim")
    else:
        text.append(" none", style="dim")
    return text


class WaterfallChart(Widget):
    """Redraws to its own width."""

    timings: reactive[Timings | None] = reactive(None)
    untimed: reactive[str | None] = reactive(None)
    """Why there is nothing to chart (`waterfall.untimed`), shown instead."""

    def render(self) -> Text:
        if self.untimed is not None:
            return Text(self.untimed, style="dim")
        if self.timings is None:
            return Text("no timings", style="dim")
        return render_waterfall(self.timings, self.size.width)


def status_line(result: Result, now: Clock, *, where: bool = False) -> Text:
    """`✗ FAIL  HTTP_SERVER_ERROR  HTTP 500 · 3.1 ms · 53 B · manual · 20:15:31`; `where`: a
    line `ran in LOCATION by agent AGENT` below (results of a cluster, SPEC §13)."""
    line = Text()
    line.append_text(outcome_text(result.outcome))
    line.append(f"  {result.result.value}", style="bold")
    if result.http_status is not None:
        line.append(f"  HTTP {result.http_status}")
    details = [milliseconds(result.timings_ms.total)]
    if result.size is not None:
        details.append(byte_size(result.size))
    trigger = result.trigger if result.schedule is None else f"schedule {result.schedule}"
    if result.lateness_ms is not None:  # the scheduler's delay, not the API's
        trigger += f" {milliseconds(result.lateness_ms)} late"
    details += [screen_text(trigger), timestamp(result.started_at, now())]
    line.append(" · " + " · ".join(details), style="dim")
    if result.retried_after_401:
        line.append(" · retried after 401", style="yellow")
    if where and (result.location or result.agent):
        place = screen_text(f"{result.location or '?'} by agent {result.agent or '?'}")
        line.append(f"\nran in {place}", "dim")
    if result.error:
        line.append("\n")
        line.append(screen_text(result.error, lines=True), style="red")
    return line


def request_line(result: Result) -> Text:
    if result.request is None:
        return Text("no request was sent", style="dim")
    line = literal(result.request.method, style="bold")
    line.append(f" {screen_text(result.request.url)}")
    if result.token:
        line.append(f"  token {screen_text(result.token)}", style="dim")
    return line


def _value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def condition_cells(condition: ConditionResult) -> tuple[Text, Text, Text, Text, Text, Text]:
    """✓/✗ (▲ for a failed warning-only condition), source, path, op, expected, actual: what
    the project and the response said, shown as it is (no markup, controls escaped)."""
    if condition.passed:
        mark = Text("✓", style="green")
    elif condition.on_fail == "warning":
        mark = Text("▲", style="yellow")
    else:
        mark = Text("✗", style="bold red")
    op = condition.op or ""
    if condition.save_as:
        op = f"{op} → {condition.save_as}".strip()
    actual = (
        Text(truncate(screen_text(_value(condition.actual)), 40))
        if condition.found
        else Text("(not found)", style="dim")
    )
    if condition.message and not condition.passed:
        actual.append(f"  {screen_text(condition.message)}", style="dim")
    return (
        mark,
        literal(condition.source),
        Text(truncate(screen_text(condition.path or ""), 32)),
        literal(op),
        Text(truncate(screen_text(_value(condition.expected)), 24)),
        actual,
    )


def no_conditions(result: Result) -> str:
    """What the Conditions tab says of a result that holds none (an empty table said nothing)."""
    if result.kind == "workflow":
        return "a workflow's conditions are its steps': see each step's result"
    if result.http_status is None:
        return "no response: no condition was checked"
    return "this call checks no condition"


class ResultView(Vertical):
    """Shows one call result; `show` is the way in."""

    DEFAULT_CLASSES = "result-view"
    TAB_IDS: ClassVar[tuple[str, ...]] = TABS

    def __init__(self, clock: Clock, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._clock = clock
        self.result: Result | None = None
        self.body = PrettyBody("", "text")
        """The body as shown: pretty-printed, and the lexer that highlights it."""

    def compose(self) -> ComposeResult:
        yield Static(id="result-status", markup=False)
        yield Static(id="result-request", markup=False)
        with TabbedContent(initial="timing", id="result-tabs"):
            with TabPane("1 Timing", id="timing"):
                yield WaterfallChart(id="waterfall")
            with TabPane("2 Conditions", id="conditions"):
                table: DataTable[Text] = DataTable(id="conditions-table", cursor_type="row")
                table.add_columns("", "source", "path", "op", "expected", "actual")
                yield table
            with TabPane("3 Body", id="body"), VerticalScroll(id="body-scroll"):
                yield Static(id="body-note", markup=False)
                yield Static(id="body-text")
            with TabPane("4 Headers", id="headers"):
                headers: DataTable[str | Text] = DataTable(id="headers-table", cursor_type="row")
                headers.add_columns("", "header", "value")
                yield headers

    def show(self, result: Result) -> None:
        self.result = result
        status = getattr(self.app, "daemon", None)
        info = status.status if status is not None else None
        # Where it ran, once that can differ: several agents share the store, or it ran in a
        # location other than this daemon's (SQLite results all come from here).
        where = info is not None and (len(info.agents) > 1 or result.location != info.location)
        line = status_line(result, self._clock, where=where)
        self.query_one("#result-status", Static).update(line)
        self.query_one("#result-request", Static).update(request_line(result))
        chart = self.query_one(WaterfallChart)
        chart.untimed = untimed(result)
        chart.timings = result.timings_ms

        conditions = self.query_one("#conditions-table", DataTable)
        conditions.clear()
        for condition in result.conditions:
            conditions.add_row(*condition_cells(condition))
        if not result.conditions:
            empty = [Text("")] * 4
            conditions.add_row(Text(""), Text(no_conditions(result), style="dim"), *empty)
        passed = sum(c.passed for c in result.conditions)
        tabs = self.query_one(TabbedContent)
        tabs.get_tab("conditions").label = (
            f"2 Conditions {passed}/{len(result.conditions)}"
            if result.conditions
            else "2 Conditions"
        )

        body = result.response.body if result.response else None
        headers = result.response.headers if result.response else {}
        pretty = self.body = pretty_body(body, content_type_of(headers))
        body_widget = self.query_one("#body-text", Static)
        if not pretty.text:
            body_widget.update(Text("(no body)", style="dim"))
        else:
            syntax = Syntax(
                screen_text(pretty.text, lines=True),
                pretty.lexer,
                theme="ansi_dark",
                word_wrap=True,
                background_color="default",
            )
            body_widget.update(syntax)
        truncated = bool(result.response and result.response.body_truncated)
        note = self.query_one("#body-note", Static)
        note.display = truncated
        note.update("The stored body was cut at 64 KiB; this is its start." if truncated else "")

        header_table = self.query_one("#headers-table", DataTable)
        header_table.clear()
        for name, value in headers.items():
            header_table.add_row("←", literal(name), literal(value))
        if result.request is not None:
            for name, value in result.request.headers.items():
                header_table.add_row("→", literal(name), literal(value))
        if not headers and result.request is None:
            header_table.add_row("", NOTHING, "")

    def focus_tabs(self) -> None:
        """Focus the tab strip, so left/right move between the tabs."""
        self.query_one(Tabs).focus()

    def show_tab(self, tab: str) -> None:
        if tab in TABS:
            self.query_one(TabbedContent).active = tab
