"""Signing a token in (SPEC §5, §8): open the system browser when the person sits at this machine;
over SSH show the URL (copied with OSC 52), the `ssh -L` hint and a field for the address the
browser ended on; for a device sign-in show the code and a QR code. Follows `signin.done`."""

from __future__ import annotations

import asyncio
import os
import socket
import webbrowser
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, ClassVar, Literal

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.signal import Signal
from textual.widget import Widget
from textual.widgets import Footer, Input, Static
from textual.worker import Worker, WorkerState

from apimd.client import ApiError, DaemonUnavailable
from apimd.model.api import SignInInfo, SignInResult
from apimd.model.events import Event, Lagged, SignInEnded
from apimd.model.resources import Token, TokenState
from apimd.model.signin_env import callback_port, can_open_browser, ssh_hint
from apimd.tui.connection import DaemonState
from apimd.tui.formatting import countdown, screen_text
from apimd.tui.ports import Clock, DaemonClient, system_clock
from apimd.tui.qr import qr_lines
from apimd.tui.widgets.status_bar import StatusBar
from apimd.tui.widgets.text_input import TextInput
from apimd.tui.widgets.url_text import UrlText

if TYPE_CHECKING:
    pass

SignInMode = Literal["browser", "device"]
COMPLETE_GROUP = "signin-complete"
PASTE_PROMPT = "Paste the address your browser ended on"
# What the person follows to sign in; none of it is of use once the sign-in has ended.
INSTRUCTIONS = "#signin-url, #signin-hint, #signin-paste, #signin-error"


def ending_text(end: SignInResult, now: datetime) -> Text:
    """`Signed in: token X valid until …` or `Sign-in failed: why`, for the person to read (why
    and the message are a server's words: their control characters escaped)."""
    if not end.ok:
        return Text(f"✗ Sign-in failed: {screen_text(end.message, lines=True)}", style="bold red")
    if end.token and end.expires_at is not None:
        until = f"{end.expires_at.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"
        left = countdown(end.expires_at, now)
        return Text(
            f"✓ Signed in: token {screen_text(end.token)} valid until {until} (in {left})",
            style="bold green",
        )
    if end.token:
        return Text(f"✓ Signed in: token {screen_text(end.token)} saved", style="bold green")
    return Text(f"✓ Signed in: {screen_text(end.message, lines=True)}", style="bold green")


def url_widget(url: str) -> UrlText:
    return UrlText(url, id="signin-url")


def remote_widgets(url: str, callback_url: str | None, host: str) -> list[Widget]:
    """Over SSH: the address, the `ssh -L` hint and the field to paste the final address into."""
    port = callback_port(callback_url)
    hint = Text.assemble(
        "So the browser can come back to apimd, first forward its port from your machine:\n  ",
        (screen_text(ssh_hint(callback_url, host)), "bold"),
        f"\nor, once signed in, paste the address the browser ended on "
        f"(http://127.0.0.1:{port}/tokens/callback?…):",
    )
    return [
        url_widget(url),
        Static(hint, id="signin-hint", markup=False),
        TextInput(placeholder=PASTE_PROMPT, id="signin-paste"),
        Static("", id="signin-error", markup=False),
    ]


def device_panel(info: SignInInfo, where: str) -> Horizontal:
    """A device sign-in: where to go, the code to enter, and a QR code of the address."""
    text = Vertical(
        Static("On your phone or any computer, open", markup=False),
        url_widget(where),
        Static("and enter this code:", markup=False),
        Static(screen_text(info.user_code or ""), id="device-code", markup=False),
        Static("or scan the QR code.", markup=False),
        Static("Waiting for you to approve…", id="device-waiting", markup=False),
        id="device-text",
    )
    qr = Static("\n".join(qr_lines(info.url or where)), id="signin-qr", markup=False)
    return Horizontal(text, qr, id="device")


def next_step(end: SignInResult, subject: str, *, resumed: bool) -> str:
    """What happens now that the sign-in ended (`resumed`: it was a run's, whose flow goes on),
    and how to go back."""
    back = "Enter or Esc goes back."
    if not end.ok:
        return f"{back} Start a new sign-in to try again."
    if resumed:
        return f"The flow resumed: its remaining steps run now. {back}"
    return f"Runs that use {subject} go ahead with it from now on. {back}"


def show_outcome(screen: SignInScreen, result: Static) -> None:
    """Put a sign-in's outcome on `screen` in place of what was for getting there: in the browser
    view the status, the instructions and the paste field; in the device view (also a device
    auth's sign-in asked for as a browser one) the address, the code and the QR code, of no use
    any more whichever way it ended."""
    if not screen.query("#device"):
        screen.query_one("#signin-status", Static).display = False
    for done in screen.query(f"{INSTRUCTIONS}, #device"):
        done.display = False  # at once; the removal lands on a later tick
        done.remove()
    screen.body.mount(result)


class SignInScreen(Screen[bool]):
    """One sign-in for `token_name`, from start to `signin.done`; dismisses with True when the
    token was saved. Esc leaves at any time (a pending sign-in then simply expires)."""

    DEFAULT_CSS = """
    SignInScreen #signin-body { height: 1fr; padding: 0 1; }
    SignInScreen #signin-head { height: 1; }
    SignInScreen #signin-title { width: 1fr; text-style: bold; }
    SignInScreen #signin-countdown { width: auto; color: $text-muted; }
    SignInScreen #signin-status { margin-top: 1; }
    SignInScreen #signin-url { color: $accent; }
    SignInScreen #signin-hint { margin-top: 1; }
    SignInScreen #signin-paste { margin-top: 1; }
    SignInScreen #signin-error { color: $error; }
    SignInScreen #signin-result { margin-top: 1; }
    SignInScreen #device { height: auto; margin-top: 1; }
    SignInScreen #device-text { width: 1fr; max-width: 52; height: auto; }
    SignInScreen #device-waiting { margin-top: 1; color: $text-muted; }
    SignInScreen #device-code {
        width: auto; margin: 1 0; padding: 1 4;
        border: heavy $accent; text-style: bold; color: $text; background: $boost;
    }
    SignInScreen #signin-qr { width: auto; height: auto; color: white; background: black; }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Close", id="signin.close"),
        Binding("enter", "finish", "Done", id="signin.done"),
        Binding("ctrl+y", "copy", "Copy URL", id="signin.copy"),
        Binding("ctrl+o", "open_browser", "Open in browser", id="signin.open_browser"),
    ]

    def __init__(
        self,
        client: DaemonClient,
        token_name: str,
        *,
        mode: SignInMode = "browser",
        environ: Mapping[str, str] = os.environ,
        opener: Callable[[str], bool] = webbrowser.open,
        host: str | None = None,
        clock: Clock | None = None,
        pending: SignInInfo | None = None,
        subject: str | None = None,
    ) -> None:
        """`host` names this machine in the `ssh -L` hint (default: its hostname); `clock`
        defaults to the app's. `pending`: a sign-in already recorded (a run that reached a
        browser step) to hand to the person instead of starting one; `subject` says what signs
        in (default: `token <token_name>`)."""
        super().__init__()
        self.client = client
        self.token_name = token_name
        self.subject = subject or f"token {token_name}"
        self.pending = pending
        self.mode = mode
        self.environ = environ
        self.opener = opener
        self.host = host or socket.gethostname()
        self._clock = clock
        self.info: SignInInfo | None = None
        self.ending: SignInResult | None = None
        self.callback_url: str | None = None
        self._generation: int | None = None
        self._started_at = datetime.now(UTC)
        self._expired_shown = False

    @property
    def clock(self) -> Clock:
        if self._clock is None:
            app_clock = getattr(self.app, "clock", None)
            self._clock = app_clock if callable(app_clock) else system_clock
        return self._clock

    def compose(self) -> ComposeResult:
        yield StatusBar(f"Sign in · {self.token_name}")
        with VerticalScroll(id="signin-body"):
            with Horizontal(id="signin-head"):
                kind = "Device sign-in" if self.mode == "device" else "Sign in"
                title = screen_text(f"{kind} for {self.subject}")
                yield Static(title, id="signin-title", markup=False)
                yield Static("", id="signin-countdown", markup=False)
            yield Static("Starting the sign-in…", id="signin-status", markup=False)
        yield Footer(compact=True)

    def on_mount(self) -> None:
        events = getattr(self.app, "daemon_events", None)
        if isinstance(events, Signal):
            events.subscribe(self, self.on_daemon_event)
        if hasattr(self.app, "daemon"):
            self.watch(self.app, "daemon", self._daemon_changed, init=False)
        self.set_interval(1.0, self._tick)
        self.start()

    # --- starting -----------------------------------------------------------------------------

    @work(exclusive=True, group="signin-start", exit_on_error=False)
    async def start(self) -> None:
        self._started_at = datetime.now(UTC)  # the daemon's clock: same machine
        if self.pending is not None:
            status, info = await self.client.status(), self.pending
        else:
            status, info = await asyncio.gather(
                self.client.status(), self.client.signin(self.token_name, mode=self.mode)
            )
        self.info = info
        self.callback_url = status.callback_url
        if self.mode == "device" or info.user_code:  # a device_code auth's, whatever was asked
            await self._show_device(info)
        elif can_open_browser(self.environ) and await asyncio.to_thread(
            self.opener, info.url or ""
        ):
            await self._show_opened(info)
        else:
            await self._show_remote(info, opened_failed=can_open_browser(self.environ))
        self._tick()
        self.refresh_bindings()

    def _say(self, text: str | Text) -> None:
        status = self.query_one("#signin-status", Static)
        status.update(text)
        status.display = True

    async def _show_opened(self, info: SignInInfo) -> None:
        self._say("Opened in your browser — finish signing in there. If no browser appeared, open:")
        await self.body.mount(url_widget(info.url or ""))

    async def _show_remote(self, info: SignInInfo, *, opened_failed: bool) -> None:
        url = info.url or ""
        self.app.copy_to_clipboard(url)
        lead = "No browser could be opened here. " if opened_failed else ""
        self._say(
            f"{lead}Open this address in the browser on your own machine "
            "(copied to your clipboard with OSC 52):"
        )
        await self.body.mount(*remote_widgets(url, self.callback_url, self.host))
        self.query_one("#signin-paste", Input).focus()

    async def _show_device(self, info: SignInInfo) -> None:
        where = info.verification_uri or info.url or ""
        self.query_one("#signin-status", Static).display = False
        await self.body.mount(device_panel(info, where))

    @property
    def body(self) -> VerticalScroll:
        return self.query_one("#signin-body", VerticalScroll)

    # --- finishing ----------------------------------------------------------------------------

    @on(Input.Submitted, "#signin-paste")
    def _pasted(self, event: Input.Submitted) -> None:
        url = event.value.strip()
        if not url.startswith(("http://", "https://")):
            self._paste_error(
                "That is not an address: paste the whole URL from the browser's address bar."
            )
            return
        self._paste_error("Checking…")
        self.complete(url)

    @work(exclusive=True, group=COMPLETE_GROUP, exit_on_error=False)
    async def complete(self, url: str) -> None:
        end = await self.client.complete_signin(url)
        self._paste_error("")
        self._finish(end)

    def _paste_error(self, message: str) -> None:
        for error in self.query("#signin-error").results(Static):
            error.update(screen_text(message, lines=True))

    def on_daemon_event(self, event: Event) -> None:
        if isinstance(event, Lagged):
            self.reconcile()
            return
        if not isinstance(event, SignInEnded) or self.info is None:
            return
        mine = event.id == self.info.id if event.id else event.token == self.token_name
        if mine:
            self._finish(SignInResult.model_validate(event, from_attributes=True))

    def _daemon_changed(self, state: DaemonState) -> None:
        # Reconnected: a signin.done may have gone by while the stream was down.
        if state.connected and state.generation != self._generation:
            if self._generation is not None:
                self.reconcile()
            self._generation = state.generation

    @work(exclusive=True, group="signin-reconcile", exit_on_error=False)
    async def reconcile(self) -> None:
        """When events may have been missed: a sign-in no longer pending has ended; the token says
        how."""
        if self.info is None or self.ending is not None or self.info.token is None:
            return  # a run's sign-in for no token: the run screen follows its continuation
        pending = await self.client.signins()
        if any(s.id == self.info.id for s in pending.signins):
            return
        token = await self.client.get("tokens", self.token_name)
        if not isinstance(token, Token):
            return
        saved = token.last_refresh is not None and token.last_refresh >= self._started_at
        if saved and token.state is TokenState.VALID:
            self._finish(
                SignInResult(ok=True, message="", token=token.name, expires_at=token.expires_at)
            )
        else:
            why = token.last_error or "it ended without saving the token"
            self._finish(SignInResult(ok=False, message=why, token=token.name))

    def _finish(self, end: SignInResult) -> None:
        if self.ending is not None:
            return
        self.ending = end
        self.set_focus(None)
        result = Static(
            ending_text(end, self.clock()).append(
                f"\n{next_step(end, self.subject, resumed=self.pending is not None)}", style="dim"
            ),
            id="signin-result",
            markup=False,
        )
        show_outcome(self, result)
        self.body.scroll_end(animate=False)
        self._tick()
        self.refresh_bindings()

    @on(Worker.StateChanged)
    def _worker_failed(self, event: Worker.StateChanged) -> None:
        worker = event.worker
        if event.state is not WorkerState.ERROR or worker.error is None:
            return
        error = worker.error
        if isinstance(error, ApiError | DaemonUnavailable):
            message = str(error)
        else:
            self.log.error("sign-in worker failed", repr(error))
            message = f"{type(error).__name__}: {error}"
        if worker.group == COMPLETE_GROUP:
            self._paste_error(message)
        elif self.info is None:
            why = screen_text(message, lines=True)
            self._say(Text(f"Could not start the sign-in: {why}", style="bold red"))

    # --- time ---------------------------------------------------------------------------------

    def _tick(self) -> None:
        label = self.query_one("#signin-countdown", Static)
        if self.ending is not None:
            label.update("")
        elif self.info is not None:
            left = countdown(self.info.expires_at, self.clock())
            if left == "expired":
                label.update(Text("expired", style="bold red"))
                self._expired()
            else:
                label.update(f"expires in {left}")

    def _expired(self) -> None:
        if self._expired_shown:
            return
        self._expired_shown = True
        for field in self.query("#signin-paste").results(Input):
            field.disabled = True
        self._say(Text("This sign-in expired: press Esc and start a new one.", style="bold yellow"))

    # --- actions ------------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("copy", "open_browser"):
            return self.info is not None and self.ending is None
        if action == "finish":
            return self.ending is not None
        return True

    def action_close(self) -> None:
        self.dismiss(bool(self.ending and self.ending.ok))

    def action_finish(self) -> None:
        self.action_close()

    def action_copy(self) -> None:
        url = self._shown_url()
        if url:
            self.app.copy_to_clipboard(url)
            self.notify("Copied the address to your clipboard (OSC 52)", timeout=3)

    async def action_open_browser(self) -> None:
        url = self._shown_url()
        if url and not await asyncio.to_thread(self.opener, url):
            self.notify("No browser could be opened here", severity="warning", timeout=4)

    def _shown_url(self) -> str | None:
        if self.info is None:
            return None
        if self.mode == "device":
            return self.info.url or self.info.verification_uri
        return self.info.url
