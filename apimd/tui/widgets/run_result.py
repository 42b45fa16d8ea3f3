"""A run's result: for a call, the response viewer; for a workflow, its steps beside the viewer
of the selected step."""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import OptionList
from textual.widgets.option_list import Option

from apimd.model.result import Result
from apimd.tui.formatting import milliseconds, outcome_text
from apimd.tui.ports import Clock
from apimd.tui.widgets.result_view import ResultView


def step_prompt(index: int, step: Result) -> Text:
    """`1. service-status` over `   ✓ PASS · 18.0 ms`."""
    line = Text(f"{index}. ", style="dim")
    line.append(step.name, style="bold")
    line.append("\n   ")
    line.append_text(outcome_text(step.outcome))
    line.append(f" · {milliseconds(step.timings_ms.total)}", style="dim")
    return line


class RunResultPanel(Horizontal):
    """`show(result)` fills it; `show_pending(steps)` lists a workflow's steps before they run."""

    def __init__(self, clock: Clock, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._clock = clock
        self._steps: list[Result] = []

    def compose(self) -> ComposeResult:
        steps = OptionList(id="steps")
        steps.display = False
        yield steps
        yield ResultView(self._clock, id="viewer")

    @property
    def viewer(self) -> ResultView:
        return self.query_one(ResultView)

    def show_pending(self, step_names: list[str]) -> None:
        steps = self.query_one("#steps", OptionList)
        steps.clear_options()
        steps.add_options(
            Option(Text.assemble((f"{i}. ", "dim"), ("… ", "dim"), name), id=f"pending-{i}")
            for i, name in enumerate(step_names, 1)
        )
        steps.display = True

    def show(self, result: Result) -> None:
        steps = self.query_one("#steps", OptionList)
        self._steps = list(result.steps)
        if result.kind != "workflow" or not result.steps:
            steps.display = result.kind == "workflow"
            if steps.display:
                steps.clear_options()
                steps.add_option(Option(Text("no step ran", style="dim"), disabled=True))
            self.viewer.show(result)
            return
        steps.clear_options()
        steps.add_options(
            Option(step_prompt(i, step), id=f"step-{i - 1}")
            for i, step in enumerate(result.steps, 1)
        )
        steps.display = True
        worst = next((i for i, s in enumerate(result.steps) if not s.outcome.is_success), 0)
        steps.highlighted = worst
        self.viewer.show(result.steps[worst])

    @on(OptionList.OptionHighlighted, "#steps")
    def _step_chosen(self, event: OptionList.OptionHighlighted) -> None:
        option_id = event.option.id or ""
        if option_id.startswith("step-"):
            index = int(option_id.removeprefix("step-"))
            if 0 <= index < len(self._steps):
                self.viewer.show(self._steps[index])
