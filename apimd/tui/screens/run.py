"""`r`: run a call or workflow now, follow it, then show what came back. The person pressing it
is the interactive run of SPEC §5: a browser step hands its sign-in to them (the sign-in screen),
and the steps after it run, shown live here, once the browser comes back."""

from __future__ import annotations

import asyncio
import contextlib
import time
import webbrowser
from collections.abc import Callable
from typing import ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import Footer, Static

from apimd.client import ApiError
from apimd.model.api import SignInInfo
from apimd.model.events import Event, RunFinished, RunStarted, RunStep, SignInEnded, SignInOpened
from apimd.model.outcome import ResultCode
from apimd.model.resources import Workflow
from apimd.model.result import Result
from apimd.tui.formatting import milliseconds, outcome_text, screen_text
from apimd.tui.monitors import Kind
from apimd.tui.screens.base import ApimdScreen
from apimd.tui.screens.signin import SignInScreen
from apimd.tui.widgets.result_view import VIEWER_BINDINGS
from apimd.tui.widgets.run_result import RunResultPanel
from apimd.tui.widgets.status_bar import StatusBar

API_KIND = {"call": "calls", "workflow": "workflows"}
SIGNIN_OPEN_WAIT_S = 2.0  # the run's answer may overtake its `signin.open` event


class RunScreen(ApimdScreen):
    """Runs `name` once (trigger `manual`) when opened, and again on `r`."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back", id="run.back"),
        Binding("r", "run_again", "Run again", id="run.again"),
        Binding("s", "show_signin", "Sign in", id="run.signin"),
        *VIEWER_BINDINGS,
    ]

    def __init__(self, kind: Kind, name: str) -> None:
        super().__init__()
        self.kind = kind
        self.target = name
        self.result: Result | None = None
        self._started = 0.0
        self._busy = False  # a run is in flight (not `_running`: Textual's own attribute)
        self._daemon_run_id: str | None = None
        self._steps_done = 0
        self._step_count = 0
        self.opener: Callable[[str], bool] = webbrowser.open
        self._opened: dict[str, str] = {}  # run id -> its sign-in id, from `signin.open`
        self._signin_opened = asyncio.Event()
        self.signin: SignInInfo | None = None  # the sign-in this run waits for
        self._before: Result | None = None  # the run up to its browser step
        self._offset = 0  # steps that ran before the browser came back

    def compose(self) -> ComposeResult:
        yield StatusBar(f"Run {self.kind} {self.target}")
        yield Static(id="run-progress", markup=False)
        yield RunResultPanel(self.clock, id="run-panel")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one(RunResultPanel).display = False
        self.set_interval(0.25, self._tick)
        self.start_run()

    @property
    def panel(self) -> RunResultPanel:
        return self.query_one(RunResultPanel)

    def _progress(self, text: Text | str) -> None:
        self.query_one("#run-progress", Static).update(text)

    def _tick(self) -> None:
        if self._busy:
            elapsed = time.monotonic() - self._started
            what = "running" if self._daemon_run_id else "starting"
            line = f"▶ {what} {self.kind} {self.target}… {elapsed:.1f} s"
            if self._step_count:
                line += f" · {self._steps_done} of {self._step_count} steps done"
            self._progress(Text(line, "cyan"))

    @work(exclusive=True, group="run", exit_on_error=False)
    async def start_run(self) -> None:
        self._busy = True
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
        self.signin, self._before, self._offset = None, None, 0
        try:
            accepted = await self.client.run(
                API_KIND[self.kind], self.target, interactive=True, wait=True
            )
            result = accepted.result or await self.client.result(accepted.run_id)
            if result.result is ResultCode.BROWSER:
                self.signin = await self._pending_signin(accepted.run_id)
        except ApiError as exc:
            self._busy = False
            refused = f"✗ the daemon refused to run {self.target}: {exc}"
            self._progress(Text(screen_text(refused), "red"))
            return
        finally:
            self._busy = False
        if self.signin is None:
            self.show_result(result)
            return
        self._before, self._offset = result, len(result.steps)
        self._progress(
            Text.assemble(
                ("⏸ ", "bold yellow"),
                f"{self.kind} {self.target} waits for you to sign in in the browser; "
                "it goes on by itself when the browser comes back",
                ("  · s shows the sign-in", "dim"),
            )
        )
        self.refresh_bindings()
        self.action_show_signin()

    async def _pending_signin(self, run_id: str) -> SignInInfo | None:
        """The sign-in the run `run_id` recorded at its browser step, with its URL in full."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(SIGNIN_OPEN_WAIT_S):
                while run_id not in self._opened:
                    self._signin_opened.clear()
                    await self._signin_opened.wait()
        signin_id = self._opened.get(run_id)
        listed = await self.client.signins() if signin_id else None
        return next((s for s in listed.signins if s.id == signin_id), None) if listed else None

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
        self.panel.focus_start()

    def on_daemon_event(self, event: Event) -> None:
        if isinstance(event, SignInOpened) and event.run_id:
            self._opened[event.run_id] = event.id
            self._signin_opened.set()
            return
        if self.signin is not None:
            self._follow_signin(event)
        if not self._busy:
            return
        if isinstance(event, RunStep):
            if event.workflow == self.target and event.run_id == self._daemon_run_id:
                index, of = self._offset + event.index, self._offset + event.of
                self._steps_done, self._step_count = index + 1, of
                self.panel.show_step(index, of, event.name, event.outcome, event.total_ms)
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

    def _follow_signin(self, event: Event) -> None:
        """The browser came back: the remaining steps run (live here), then `signin.done`."""
        assert self.signin is not None
        if isinstance(event, RunStarted) and event.trigger == "callback":
            if event.name == self.target and not self._busy:
                self._busy, self._started = True, time.monotonic()
                self._daemon_run_id = event.run_id
                covering = self.app.screen
                if isinstance(covering, SignInScreen) and covering.pending is self.signin:
                    covering.dismiss(True)  # the browser came back: follow the steps here
                self._tick()
        elif isinstance(event, SignInEnded) and event.id == self.signin.id:
            self.signin = None
            self.refresh_bindings()
            self._signed_in(event)

    @work(group="run-signin", exit_on_error=False)
    async def _signed_in(self, done: SignInEnded) -> None:
        before, result_id = self._before, done.result_id
        after = await self.client.result(result_id) if result_id else None
        self._busy = False
        if after is not None and before is not None:  # one workflow, before and after the browser
            after = after.model_copy(update={"steps": [*before.steps, *after.steps]})
        if shown := after or before:
            self.show_result(shown)
        if not done.ok:
            why = Text(f"✗ Sign-in failed: {screen_text(done.message)}", "bold red")
            self._progress(why.append("  · r runs it again", "dim"))

    def action_show_signin(self) -> None:
        """The sign-in screen for the pending sign-in: URL, browser, SSH hint, paste field."""
        if self.signin is None or isinstance(self.app.screen, SignInScreen):
            return
        screen = SignInScreen(
            self.client,
            self.signin.token or self.target,
            environ=self.apimd.environ,
            opener=self.opener,
            pending=self.signin,
            subject=f"{self.kind} {self.target}",
        )
        self.app.push_screen(screen)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "show_signin":
            return self.signin is not None
        if action == "run_again":
            return self.signin is None
        return True

    def action_run_again(self) -> None:
        if not self._busy and self.signin is None:
            self.start_run()

    def action_show_tab(self, tab: str) -> None:
        self.panel.viewer.show_tab(tab)
