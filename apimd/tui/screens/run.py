"""`r`: run a call or workflow now, follow it, then show what came back."""

from __future__ import annotations

import time
from typing import ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import Footer, Static

from apimd.client import ApiError
from apimd.model.resources import Workflow
from apimd.model.result import Result
from apimd.tui.events import DaemonEvent, RunFinished, RunStarted, RunStep
from apimd.tui.formatting import milliseconds, outcome_text
from apimd.tui.monitors import Kind
from apimd.tui.screens.base import ApimdScreen
from apimd.tui.widgets.result_view import VIEWER_BINDINGS
from apimd.tui.widgets.run_result import RunResultPanel
from apimd.tui.widgets.status_bar import StatusBar

API_KIND = {"call": "calls", "workflow": "workflows"}


class RunScreen(ApimdScreen):
    """Runs `name` once (trigger `manual`) when opened, and again on `r`."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back", id="run.back"),
        Binding("r", "run_again", "Run again", id="run.again"),
        *VIEWER_BINDINGS,
    ]

    def __init__(self, kind: Kind, name: str) -> None:
        super().__init__()
        self.kind = kind
        self.target = name
        self.result: Result | None = None
        self._started = 0.0
        self._running = False
        self._daemon_run_id: str | None = None
        self._steps_done = 0
        self._step_count = 0

    def compose(self) -> ComposeResult:
        yield StatusBar(f"Run {self.kind} {self.target}")
        yield Static(id="run-progress", markup=False)
        yield RunResultPanel(self.clock, id="run-panel")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        super().on_mount()
        self.query_one(RunResultPanel).display = False
        self.set_interval(0.25, self._tick)
        self.start_run()

    @property
    def panel(self) -> RunResultPanel:
        return self.query_one(RunResultPanel)

    def _progress(self, text: Text | str) -> None:
        self.query_one("#run-progress", Static).update(text)

    def _tick(self) -> None:
        if self._running:
            elapsed = time.monotonic() - self._started
            what = "running" if self._daemon_run_id else "starting"
            line = f"▶ {what} {self.kind} {self.target}… {elapsed:.1f} s"
            if self._step_count:
                line += f" · {self._steps_done} of {self._step_count} steps done"
            self._progress(Text(line, "cyan"))

    @work(exclusive=True, group="run", exit_on_error=False)
    async def start_run(self) -> None:
        self._running = True
        self._started = time.monotonic()
        self._daemon_run_id = None
        self._steps_done = self._step_count = 0
        self._tick()
        if self.kind == "workflow":
            try:
                workflow = await self.client.get("workflows", self.target)
            except ApiError:
                workflow = None
            if isinstance(workflow, Workflow):
                self._step_count = len(workflow.steps)
                self.panel.display = True
                self.panel.show_pending(list(workflow.steps))
        try:
            accepted = await self.client.run(API_KIND[self.kind], self.target, wait=True)
            result = accepted.result or await self.client.result(accepted.run_id)
        except ApiError as exc:
            self._running = False
            self._progress(Text(f"✗ the daemon refused to run {self.target}: {exc}", "red"))
            return
        finally:
            self._running = False
        self.show_result(result)

    def show_result(self, result: Result) -> None:
        self.result = result
        line = Text.assemble(
            ("■ ", "bold"),
            f"{self.kind} {self.target}: ",
            outcome_text(result.outcome),
            f" in {milliseconds(result.duration_ms)}",
            ("  · r runs it again", "dim"),
        )
        self._progress(line)
        self.panel.display = True
        self.panel.show(result)
        self.panel.viewer.focus_tabs()

    def on_daemon_event(self, event: DaemonEvent) -> None:
        if not self._running:
            return
        if isinstance(event, RunStep):
            if event.workflow == self.target and event.run_id == self._daemon_run_id:
                self._steps_done = event.index + 1
                self._step_count = event.of
                self.panel.show_step(
                    event.index, event.of, event.name, event.outcome, event.total_ms
                )
                self._tick()
            return
        if getattr(event, "name", None) != self.target:
            return
        if isinstance(event, RunStarted) and event.trigger == "manual":
            self._daemon_run_id = event.run_id
            self._tick()
        elif isinstance(event, RunFinished) and event.run_id == self._daemon_run_id:
            line = Text.assemble(("■ finished ", "bold"), outcome_text(event.outcome))
            line.append(f"  {event.result.value if event.result else ''}  loading the result…")
            self._progress(line)

    def action_run_again(self) -> None:
        if not self._running:
            self.start_run()

    def action_show_tab(self, tab: str) -> None:
        self.panel.viewer.show_tab(tab)
