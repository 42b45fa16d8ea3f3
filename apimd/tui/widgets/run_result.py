"""A run's result: for a call, the response viewer; for a workflow, its steps beside the viewer
of the selected step."""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import OptionList
from textual.widgets.option_list import Option

from apimd.model.outcome import Outcome, ResultCode
from apimd.model.result import Result
from apimd.tui.formatting import milliseconds, outcome_text, screen_text
from apimd.tui.ports import Clock
from apimd.tui.widgets.result_view import ResultView


def step_prompt(index: int, step: Result) -> Text:
    """`1. service-status` over `   ✓ PASS · 18.0 ms`; a browser step says it went to the
    browser (the steps after it ran once the browser came back)."""
    if step.result is ResultCode.BROWSER:
        line = Text(f"{index}. ", style="dim")
        line.append(screen_text(step.name), style="bold")
        return line.append("\n   ⇱ handed to the browser", style="cyan")
    return step_line(index, step.name, step.outcome, step.timings_ms.total)


def step_line(index: int, name: str, outcome: Outcome | None, total_ms: float | None) -> Text:
    """A finished step (from its result, or live from a `run.step` event)."""
    line = Text(f"{index}. ", style="dim")
    line.append(screen_text(name), style="bold")
    line.append("\n   ")
    line.append_text(outcome_text(outcome))
    line.append(f" · {milliseconds(total_ms)}", style="dim")
    return line


def pending_line(index: int, name: str, *, running: bool = False) -> Text:
    """A step still to run (`…`), or the one running now (`▶`)."""
    name = screen_text(name)
    if running:
        return Text.assemble((f"{index}. ", "dim"), ("▶ ", "bold cyan"), (name, "cyan"))
    return Text.assemble((f"{index}. ", "dim"), ("… ", "dim"), name)


class RunResultPanel(Horizontal):
    """`show(result)` fills it; `show_pending(steps)` lists a workflow's steps before they run."""

    def __init__(self, clock: Clock, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._clock = clock
        self._steps: list[Result] = []
        self._pending: list[str] = []
        self._finished: dict[int, Text] = {}

    def compose(self) -> ComposeResult:
        steps = OptionList(id="steps")
        steps.display = False
        yield steps
        yield ResultView(self._clock, id="viewer")

    @property
    def viewer(self) -> ResultView:
        return self.query_one(ResultView)

    def show_pending(self, step_names: list[str]) -> None:
        """A workflow's steps before they run: the first one is about to."""
        self._pending = list(step_names)
        self._finished = {}
        self._list_steps()

    def _list_steps(self) -> None:
        steps = self.query_one("#steps", OptionList)
        steps.clear_options()
        running = len(self._finished)
        steps.add_options(
            Option(
                self._finished.get(i) or pending_line(i + 1, name, running=i == running),
                id=f"pending-{i + 1}",
            )
            for i, name in enumerate(self._pending)
        )
        steps.display = True

    def show_step(
        self,
        index: int,
        of: int,
        name: str,
        outcome: Outcome | None,
        total_ms: float | None,
    ) -> None:
        """Step `index` (from 0) of `of` finished, as a `run.step` event says; the next one runs."""
        if not 0 <= index < of:
            return
        finished = step_line(index + 1, name, outcome, total_ms)
        if len(self._pending) != of:  # the definition was not read, or changed meanwhile
            self._pending = [*self._pending[:of], *("…" for _ in range(of - len(self._pending)))]
            self._pending[index] = name
            self._finished[index] = finished
            self._list_steps()
            return
        self._pending[index] = name
        self._finished[index] = finished
        steps = self.query_one("#steps", OptionList)
        steps.replace_option_prompt(f"pending-{index + 1}", finished)
        if index + 1 < of:
            following = index + 2
            steps.replace_option_prompt(
                f"pending-{following}",
                pending_line(following, self._pending[index + 1], running=True),
            )

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
        worst = next(
            (
                i
                for i, s in enumerate(result.steps)
                if not s.outcome.is_success and s.result is not ResultCode.BROWSER
            ),
            0,
        )
        steps.highlighted = worst
        self.viewer.show(result.steps[worst])

    def focus_start(self) -> None:
        """Focus where a person starts reading a result: a workflow's steps (so up and down move
        between them, the viewer's keys pick its tabs), else the viewer's tab strip."""
        steps = self.query_one("#steps", OptionList)
        if steps.display and self._steps:
            steps.focus()
        else:
            self.viewer.focus_tabs()

    @on(OptionList.OptionHighlighted, "#steps")
    def _step_chosen(self, event: OptionList.OptionHighlighted) -> None:
        option_id = event.option.id or ""
        if option_id.startswith("step-"):
            index = int(option_id.removeprefix("step-"))
            if 0 <= index < len(self._steps):
                self.viewer.show(self._steps[index])
