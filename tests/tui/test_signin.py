"""The sign-in screen against a real daemon and the demo authorization server: the SSH view (URL,
`ssh -L` hint, no browser), the local view (browser opened), the paste-URL path, a forged answer,
and the device flow; plus the pure parts (where the person sits, QR lines)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import aiohttp
import pytest
from textual.pilot import Pilot
from textual.widgets import Input, Static

from apimd.client import Client
from apimd.demo.server import STATE_KEY, TokenServerState
from apimd.model.resources import Token, TokenState
from apimd.model.signin_env import can_open_browser, has_display, over_ssh, ssh_hint
from apimd.tui.app import ApimdApp
from apimd.tui.qr import QUIET_ZONE, qr_lines
from apimd.tui.screens.signin import SignInScreen
from tests.support.pages import DEMO_ACCOUNT, parse_html
from tests.tui.conftest import daemon_with, make_app, wait_for
from tests.tui.daemon import Daemon, DemoServer

SSH = {"SSH_CONNECTION": "10.0.0.2 50122 10.0.0.9 22", "DISPLAY": "localhost:10.0"}
HOST = "bastion.test"


class Opener:
    """Stands in for `webbrowser.open`: records the URLs it was asked to open."""

    def __init__(self) -> None:
        self.opened: list[str] = []

    def __call__(self, url: str) -> bool:
        self.opened.append(url)
        return True


class AuthServer(DemoServer):
    """The demo authorization server, with its state reachable for approving device codes."""

    @property
    def state(self) -> TokenServerState:
        assert self._server is not None
        return self._server.app[STATE_KEY]

    def approve_device(self, user_code: str) -> None:
        """As the person would on their phone; on the server's own loop."""

        async def approve() -> None:
            self.state.approve_device(user_code)

        asyncio.run_coroutine_threadsafe(approve(), self._loop).result(5)


def signin_project(url: str) -> dict[str, Any]:
    client = {"client_id": "demo-client", "client_secret": "demo-secret"}
    return {
        "version": 1,
        "auth": [
            {
                "name": "demo-sso",
                "type": "oauth2",
                "grant": "authorization_code",
                "authorize_url": f"{url}/oauth/authorize",
                "token_url": f"{url}/oauth/token",
                **client,
            },
            {
                "name": "demo-device",
                "type": "oauth2",
                "grant": "device_code",
                "device_authorization_url": f"{url}/oauth/device_authorization",
                "token_url": f"{url}/oauth/token",
                **client,
            },
        ],
        "tokens": [
            {
                "name": "sso-token",
                "auth": "demo-sso",
                "headers": {"Authorization": "Bearer %%ACCESS_TOKEN%%"},
            },
            {
                "name": "device-token",
                "auth": "demo-device",
                "headers": {"Authorization": "Bearer %%ACCESS_TOKEN%%"},
            },
        ],
    }


@pytest.fixture(scope="module")
def auth_server() -> Iterator[AuthServer]:
    server = AuthServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def signin_daemon(auth_server: AuthServer) -> Iterator[Daemon]:
    with daemon_with(signin_project(auth_server.url)) as running:
        yield running


def text_of(screen: SignInScreen, selector: str) -> str:
    return " ".join(str(w.render()) for w in screen.query(selector).results(Static))


def screen_text(screen: SignInScreen) -> str:
    """What the screen shows (hidden widgets left out)."""
    return " ".join(str(w.render()) for w in screen.query(Static) if w.display)


async def open_signin(
    app: ApimdApp, pilot: Any, token: str, **options: Any
) -> tuple[SignInScreen, list[bool | None]]:
    """Push the screen once the app follows the daemon's events; wait until the sign-in started."""
    await wait_for(pilot, lambda: app.daemon.connected, what="the daemon connection")
    await pilot.pause(0.2)  # the event stream is opened right after the status answers
    closed: list[bool | None] = []
    screen = SignInScreen(app.client, token, host=HOST, **options)
    app.push_screen(screen, callback=closed.append)
    await wait_for(pilot, lambda: screen.info is not None, what="the sign-in to start")
    await pilot.pause(0.05)
    return screen, closed


async def finish_in_browser(authorize_url: str) -> str:
    """Sign in on the demo login form as a person would; the address the browser ends on."""
    async with aiohttp.ClientSession() as session:
        async with session.get(authorize_url) as response:
            assert response.status == 200, await response.text()
            page = parse_html(await response.text())
        form = page.forms[0]
        fields = {i.name: i.value for i in form.inputs if i.type == "hidden"}
        fields.update(DEMO_ACCOUNT)
        target = (
            f"{urlunsplit(urlsplit(authorize_url)._replace(path='/oauth/authorize', query=''))}"
        )
        async with session.post(target, data=fields, allow_redirects=False) as response:
            assert response.status == 302, await response.text()
            return response.headers["Location"]


async def token_of(daemon: Daemon, name: str) -> Token:
    async with Client(daemon.socket_path) as client:
        token = await client.get("tokens", name)
    assert isinstance(token, Token)
    return token


async def gone(pilot: Any, screen: SignInScreen, selector: str) -> str:
    """Once no widget of `selector` is left on `screen`: the text it shows."""
    await wait_for(pilot, lambda: not screen.query(selector), what=f"{selector} to go")
    return screen_text(screen)


async def paste(pilot: Any, screen: SignInScreen, url: str) -> None:
    field = screen.query_one("#signin-paste", Input)
    assert field.has_focus
    field.value = url
    await pilot.press("enter")


# --- browser sign-in -------------------------------------------------------------------------


async def test_over_ssh_shows_the_url_the_hint_and_a_paste_field(
    signin_daemon: Daemon, auth_server: AuthServer
) -> None:
    opener = Opener()
    app = make_app(signin_daemon)
    async with app.run_test(size=(80, 24)) as pilot:
        screen, _ = await open_signin(app, pilot, "sso-token", environ=SSH, opener=opener)
        assert screen.info is not None and screen.info.url
        url = screen.info.url
        assert url.startswith(f"{auth_server.url}/oauth/authorize?")
        assert text_of(screen, "#signin-url") == url  # in full, wrapped but not cut
        assert "copied to your clipboard with OSC 52" in text_of(screen, "#signin-status")
        assert app.clipboard == url
        port = urlsplit((await app.client.status()).callback_url or "").port
        assert f"ssh -L {port}:127.0.0.1:{port} {HOST}" in text_of(screen, "#signin-hint")
        assert screen.query_one("#signin-paste", Input).placeholder == (
            "Paste the address your browser ended on"
        )
        assert re.fullmatch(r"expires in (10m00s|9m\d\ds)", text_of(screen, "#signin-countdown"))
        assert opener.opened == [], "no browser is opened over SSH"

        # The keys work from the paste field: open here anyway, copy again.
        await pilot.press("ctrl+o")
        await wait_for(pilot, lambda: opener.opened == [url], what="ctrl+o to open the URL")
        app.copy_to_clipboard("something else")
        await pilot.press("ctrl+y")
        await wait_for(pilot, lambda: app.clipboard == url, what="ctrl+y to copy the URL")


async def test_with_a_display_and_no_ssh_the_browser_opens(signin_daemon: Daemon) -> None:
    opener = Opener()
    app = make_app(signin_daemon)
    async with app.run_test(size=(80, 24)) as pilot:
        screen, closed = await open_signin(
            app, pilot, "sso-token", environ={"DISPLAY": ":0"}, opener=opener
        )
        assert screen.info is not None
        assert opener.opened == [screen.info.url]
        assert "Opened in your browser — finish signing in there" in text_of(
            screen, "#signin-status"
        )
        assert not screen.query("#signin-paste"), "the browser comes back by itself"
        await pilot.press("escape")  # cancel: the pending sign-in simply expires
        await wait_for(pilot, lambda: closed == [False], what="the screen to close")


@asynccontextmanager
async def signed_in_over_ssh(
    daemon: Daemon,
) -> AsyncIterator[tuple[Pilot[None], SignInScreen, list[bool | None], str]]:
    """The app at 80×24 with sso-token's sign-in started over SSH and done in the browser:
    (pilot, the screen, its dismissals, the address the browser ended on)."""
    app = make_app(daemon)
    async with app.run_test(size=(80, 24)) as pilot:
        screen, closed = await open_signin(app, pilot, "sso-token", environ=SSH)
        assert screen.info is not None and screen.info.url
        yield pilot, screen, closed, await finish_in_browser(screen.info.url)


async def test_pasting_the_final_address_signs_the_token_in(
    signin_daemon: Daemon, auth_server: AuthServer
) -> None:
    async with signed_in_over_ssh(signin_daemon) as (pilot, screen, closed, landed):
        assert landed.startswith("http://127.0.0.1:") and "code=" in landed

        await paste(pilot, screen, landed)
        await wait_for(
            pilot,
            lambda: "Signed in: token sso-token valid until" in text_of(screen, "#signin-result"),
            what="the screen to say signed in",
        )
        token = await token_of(signin_daemon, "sso-token")
        assert token.state is TokenState.VALID and token.expires_at is not None
        # Signed in: the outcome and what happens next, not instructions and a field that no
        # longer do anything.
        shown = await gone(pilot, screen, "#signin-paste, #signin-hint, #signin-url")
        assert (
            "paste" not in shown.lower()
            and "ssh -L" not in shown
            and "Open this address" not in shown
        )
        assert "Runs that use token sso-token go ahead with it from now on." in shown
        assert "Enter or Esc goes back." in shown

        await pilot.press("enter")
        await wait_for(pilot, lambda: closed == [True], what="the screen to close signed in")


async def test_a_forged_answer_is_refused_under_the_field(
    signin_daemon: Daemon, auth_server: AuthServer
) -> None:
    async with signed_in_over_ssh(signin_daemon) as (pilot, screen, closed, landed):
        answer = urlsplit(landed)
        params = dict(parse_qsl(answer.query))
        params["state"] = "forged-" + params["state"][7:]
        await paste(pilot, screen, urlunsplit(answer._replace(query=urlencode(params))))
        await wait_for(
            pilot,
            lambda: "matches no sign-in" in text_of(screen, "#signin-error"),
            what="the refusal under the field",
        )
        assert not screen.query("#signin-result")
        assert not screen.query_one("#signin-paste", Input).disabled, "the person may try again"

        await paste(pilot, screen, "not a url")
        await wait_for(
            pilot,
            lambda: "paste the whole URL" in text_of(screen, "#signin-error"),
            what="the hint to paste a URL",
        )
        await pilot.press("escape")
        await wait_for(pilot, lambda: closed == [False], what="esc to close from the field")


async def test_an_expired_sign_in_says_so_and_takes_no_paste(signin_daemon: Daemon) -> None:
    app = make_app(signin_daemon)
    later = datetime.now(UTC) + timedelta(minutes=11)  # past the 10-minute expiry
    async with app.run_test(size=(80, 24)) as pilot:
        screen, _ = await open_signin(app, pilot, "sso-token", environ=SSH, clock=lambda: later)
        await wait_for(
            pilot,
            lambda: "This sign-in expired" in text_of(screen, "#signin-status"),
            what="the expiry",
        )
        assert text_of(screen, "#signin-countdown") == "expired"
        assert screen.query_one("#signin-paste", Input).disabled


# --- device sign-in --------------------------------------------------------------------------


async def test_device_sign_in_shows_the_code_and_a_qr_and_ends_signed_in(
    signin_daemon: Daemon, auth_server: AuthServer
) -> None:
    app = make_app(signin_daemon)
    async with app.run_test(size=(80, 24)) as pilot:
        screen, closed = await open_signin(app, pilot, "device-token", mode="device", environ=SSH)
        info = screen.info
        assert info is not None and info.user_code and info.verification_uri
        assert text_of(screen, "#device-code") == info.user_code
        assert info.verification_uri in text_of(screen, "#signin-url")
        qr = text_of(screen, "#signin-qr").splitlines()
        assert qr == qr_lines(info.url or "")
        assert len(qr) >= 10 and set("".join(qr)) <= set("▀▄█ ")
        assert "Waiting for you to approve" in screen_text(screen)

        await asyncio.to_thread(auth_server.approve_device, info.user_code)
        await wait_for(
            pilot,
            lambda: (
                "Signed in: token device-token valid until" in text_of(screen, "#signin-result")
            ),
            what="the device sign-in to end",
        )
        # The outcome in place of the address, the code and the QR code, of no use any more.
        shown = screen_text(screen)
        assert "Waiting for you" not in shown and "enter this code" not in shown
        assert info.user_code not in shown and not screen.query("#signin-qr")
        token = await token_of(signin_daemon, "device-token")
        assert token.state is TokenState.VALID
        await pilot.press("escape")
        await wait_for(pilot, lambda: closed == [True], what="the screen to close signed in")


async def test_a_token_that_cannot_sign_in_that_way_says_why(signin_daemon: Daemon) -> None:
    app = make_app(signin_daemon)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.daemon.connected, what="the daemon connection")
        screen = SignInScreen(app.client, "sso-token", mode="device", host=HOST)
        app.push_screen(screen)
        await wait_for(
            pilot,
            lambda: "Could not start the sign-in" in text_of(screen, "#signin-status"),
            what="the refusal",
        )
        assert "grant device_code" in text_of(screen, "#signin-status")


# --- the pure parts --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("environ", "ssh", "display", "browser"),
    [
        ({"DISPLAY": ":0"}, False, True, True),
        ({"WAYLAND_DISPLAY": "wayland-0"}, False, True, True),
        ({"SSH_CONNECTION": "a b c d", "DISPLAY": "localhost:10.0"}, True, True, False),
        ({"SSH_TTY": "/dev/pts/3"}, True, False, False),
        ({}, False, False, False),
    ],
)
def test_where_the_person_sits(
    environ: dict[str, str], ssh: bool, display: bool, browser: bool
) -> None:
    assert over_ssh(environ) is ssh
    assert has_display(environ, "linux") is display
    assert can_open_browser(environ, "linux") is browser


def test_a_mac_always_has_a_display() -> None:
    assert can_open_browser({}, "darwin")
    assert not can_open_browser({"SSH_CONNECTION": "a b c d"}, "darwin")


def test_ssh_hint_uses_the_callback_port() -> None:
    url = "http://127.0.0.1:41234/tokens/callback"
    assert ssh_hint(url, "box") == "ssh -L 41234:127.0.0.1:41234 box"
    assert ssh_hint(None, "box") == "ssh -L 8765:127.0.0.1:8765 box"


def test_qr_lines_have_the_shape_of_a_qr_code_with_a_quiet_zone() -> None:
    lines = qr_lines("https://login.example.com/device?user_code=WDJB-MJHT")
    width = len(lines[0])
    assert all(len(line) == width for line in lines)
    # An odd number of module rows (21 + 4k plus the zone), two per line.
    assert (width - 2 * QUIET_ZONE - 21) % 4 == 0
    assert len(lines) == (width + 1) // 2
    assert set("".join(lines)) <= set("▀▄█ ")
    # The quiet zone is light all round: full blocks on top, light upper halves at the bottom.
    assert lines[0] == "█" * width
    assert lines[-1] == "▀" * width
    assert all(line[:QUIET_ZONE] == "█" * QUIET_ZONE for line in lines[:-1])
    assert all(line[-QUIET_ZONE:] == "█" * QUIET_ZONE for line in lines[:-1])


def test_different_texts_give_different_codes_and_longer_texts_bigger_ones() -> None:
    short = qr_lines("https://a.example/device")
    assert short != qr_lines("https://b.example/device")
    assert qr_lines("https://a.example/device") == short  # pure
    longer = qr_lines("https://login.example.com/device?user_code=" + "X" * 120)
    assert len(longer[0]) > len(short[0])
