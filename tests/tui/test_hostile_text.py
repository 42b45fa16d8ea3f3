"""What a server (or a project file) says cannot drive the terminal the TUI runs in: a real daemon
calls a hostile loopback server whose body, headers, reason phrase, JSON values and token
endpoint hold terminal escapes (set the window title, clear the screen, a C1 CSI) and Rich
markup; every screen that shows them is rendered as the terminal would receive it, and no raw
escape of the server's gets through, while their escaped form and the markup are shown as
they are."""

from __future__ import annotations

import json
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import TabbedContent, TextArea

from apimd.tui.app import ApimdApp
from apimd.tui.editors.call import CallEditor
from apimd.tui.editors.fields import KeyValueList, KeyValueRow
from apimd.tui.screens.dashboard import DashboardScreen
from apimd.tui.screens.results import ResultsScreen, ResultTable
from apimd.tui.screens.tokens import TokensScreen
from apimd.tui.screens.viewer import ResultScreen
from tests.tui.conftest import daemon_with, make_app, notices, screen_of, wait_for
from tests.tui.daemon import Daemon

HOSTILE = "\x1b]0;PWNED\x07\x1b[2J\x9b31m[bold]x[/bold][link=http://x]y[/link]"
MARKUP = "[bold]x[/bold][link=http://x]y[/link]"
"""What a header of the project's own may hold of it: Rich markup, shown as it is."""
"""Sets the window title, clears the screen, turns the text red (C1 CSI); then Rich markup."""
SEEN = "\\x1b]0;PWNED\\x07\\x1b[2J\\x9b31m[bold]x[/bold]"
"""What the screen shows instead: the escapes made visible, the markup as it is."""
RAW = ("\x1b]0;", "\x07", "\x1b[2J", "\x9b")
"""None of these may reach the terminal (apimd's own styles are other CSI sequences)."""


class Hostile(BaseHTTPRequestHandler):
    """`/evil`: a 500 whose reason phrase, body and headers hold `HOSTILE`; `/token`: a token
    endpoint whose scope is `HOSTILE` (an access token holding it is refused at the refresh,
    tests/engine/test_hostile_auth_servers.py); `/fail`: one that refuses, describing why with
    it."""

    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length") or 0))
        self._answer()

    def _answer(self) -> None:
        status, reason, kind = 500, HOSTILE, "text/plain"
        body = HOSTILE
        if self.path.startswith("/token"):
            status, reason, kind = 200, "OK", "application/json"
            body = json.dumps({"access_token": "t-1", "scope": HOSTILE, "expires_in": 3600})
        elif self.path.startswith("/fail"):
            status, reason, kind = 400, "Bad Request", "application/json"
            body = json.dumps({"error": "invalid_client", "error_description": HOSTILE})
        data = body.encode()
        head = (
            f"HTTP/1.1 {status} {reason}\r\nContent-Type: {kind}\r\nX-Evil: {HOSTILE}\r\n"
            f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n"
        )
        self.wfile.write(head.encode() + data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def hostile() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Hostile)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def hostile_project(base: str) -> dict[str, Any]:
    """Calls of the hostile server; a token its endpoint refuses, one it grants with `HOSTILE` as
    its scope; and text of the project's own (a token's header, a condition's value) that
    holds `HOSTILE` too."""
    return {
        "version": 1,
        "variables": {"EVIL": base},
        "auth": [
            {
                "name": f"evil-{grant}",
                "type": "oauth2",
                "grant": "client_credentials",
                "token_url": f"%%EVIL%%/{grant}",
                "client_id": "c",
                "client_secret": "s",
            }
            for grant in ("fail", "token")
        ],
        "tokens": [
            # A header cannot hold a control character (`apply` refuses it): markup only.
            {"name": "refused", "auth": "evil-fail", "headers": {"X-Note": MARKUP}},
            {"name": "granted", "auth": "evil-token", "headers": {"X-Token": "%%ACCESS_TOKEN%%"}},
        ],
        "calls": [
            {"name": "evil", "url": "%%EVIL%%/evil"},
            {
                "name": "evil-json",
                "url": "%%EVIL%%/token",
                "conditions": [
                    {"source": "json", "path": "scope", "op": "eq", "value": "ok"},
                    {"source": "json", "path": "scope", "op": "eq", "value": HOSTILE},
                ],
            },
            {"name": "use-refused", "url": "%%EVIL%%/evil", "token": "refused"},
            {
                "name": "evil-url",
                "method": "POST",
                "url": "%%EVIL%%/x",
                "params": {"q": HOSTILE},  # sent encoded: a parameter may hold one
                "body": "b=" + HOSTILE,
                "tags": ["never-run"],
            },
        ],
    }


@pytest.fixture(scope="module")
def daemon(hostile: str) -> Iterator[Daemon]:
    with daemon_with(hostile_project(hostile)) as running:
        for call in ("evil", "evil-json", "use-refused"):
            running.run("calls", call)
        yield running


@asynccontextmanager
async def on_dashboard(
    daemon: Daemon, size: tuple[int, int]
) -> AsyncIterator[tuple[ApimdApp, Pilot[None], DashboardScreen]]:
    """The app at `size`, once its dashboard lists the three calls."""
    app = make_app(daemon)
    async with app.run_test(size=size) as pilot:
        dashboard = app.screen
        assert isinstance(dashboard, DashboardScreen)
        await wait_for(pilot, lambda: dashboard.table.row_count >= 3, what="the monitors")
        yield app, pilot, dashboard


def terminal_output(app: ApimdApp) -> str:
    """The whole screen as the terminal receives it: every segment with its escape codes."""
    update = app.screen._compositor.render_full_update()  # Textual has no public accessor
    return update.render_segments(app.console)


def screen_lines(app: ApimdApp) -> list[str]:
    """The text of each line of the screen."""
    strips = app.screen._compositor.render_strips()
    return ["".join(segment.text for segment in strip) for strip in strips]


def shown_safely(app: ApimdApp, seen: str = SEEN) -> bool:
    """No raw escape of the server's reaches the terminal, and `seen` is on a line of the
    screen (its escapes visible, its markup as it is)."""
    output = terminal_output(app)
    leaked = [raw for raw in RAW if raw in output]
    assert not leaked, f"{leaked} reached the terminal"
    lines = screen_lines(app)
    return any(seen in line for line in lines)


async def open_result(app: ApimdApp, pilot: Pilot[None], call: str) -> ResultScreen:
    """The latest result of `call`, opened from its history."""
    app.push_screen(ResultsScreen(call))
    history = await screen_of(pilot, ResultsScreen)
    await wait_for(pilot, lambda: history.results, what=f"{call}'s results")
    history.query_one(ResultTable).focus()
    await pilot.press("enter")
    return await screen_of(pilot, ResultScreen, ready=lambda s: s.result is not None)


async def on_tab(pilot: Pilot[None], screen: ResultScreen, tab: str) -> None:
    screen.action_show_tab(tab)
    tabs = screen.query_one(TabbedContent)
    await wait_for(pilot, lambda: tabs.active == tab, what=f"the {tab} tab")


async def test_a_results_error_body_and_headers_are_shown_escaped(daemon: Daemon) -> None:
    async with on_dashboard(daemon, (220, 50)) as (app, pilot, _dashboard):
        screen = await open_result(app, pilot, "evil")
        assert screen.result is not None and "\x1b" in (screen.result.error or "")
        # The reason phrase: the result's error, in the status line.
        await wait_for(pilot, lambda: shown_safely(app), what="the error, escaped")
        for tab in ("body", "headers"):
            await on_tab(pilot, screen, tab)
            await wait_for(pilot, lambda: shown_safely(app), what=f"the {tab}, escaped")
        # Markup in a body is shown, not followed.
        await on_tab(pilot, screen, "body")
        assert any("[link=http://x]y[/link]" in line for line in screen_lines(app))


async def test_a_results_conditions_show_the_values_compared_escaped(daemon: Daemon) -> None:
    async with on_dashboard(daemon, (220, 50)) as (app, pilot, _dashboard):
        screen = await open_result(app, pilot, "evil-json")
        await on_tab(pilot, screen, "conditions")
        seen = "\\x1b]0;PWNED\\x07"  # the columns cut the rest
        await wait_for(pilot, lambda: shown_safely(app, seen), what="the conditions, escaped")


async def test_the_dashboards_why_shows_a_servers_value_escaped(daemon: Daemon) -> None:
    async with on_dashboard(daemon, (200, 30)) as (app, pilot, _dashboard):
        why = "scope eq ok → \\x1b]0;PWNED"
        await wait_for(pilot, lambda: shown_safely(app, why), what="the why, escaped")


async def test_tokens_show_a_servers_error_and_token_and_a_projects_header_escaped(
    daemon: Daemon,
) -> None:
    async with on_dashboard(daemon, (200, 40)) as (app, pilot, _dashboard):
        await pilot.press("t")
        screen = await screen_of(pilot, TokensScreen)
        await wait_for(pilot, lambda: {"granted", "refused"} <= set(screen.tokens), what="tokens")

        # The token endpoint's refusal (its last error) and the header the project gives it.
        screen.table.move_cursor(row=screen.table.get_row_index("refused"))
        await wait_for(pilot, lambda: shown_safely(app, "X-Note: " + MARKUP), what="the header")
        assert shown_safely(app, "last error HTTP 400 invalid_client: \\x1b]0;PWNED")
        # Refreshed by hand it fails again: said so, with why (it was titled "Token refreshed").
        await pilot.press("R")
        failed = "refused: error — HTTP 400 invalid_client: \\x1b]0;PWNED"
        await wait_for(
            pilot,
            lambda: any(failed in notice for notice in notices(app)) and shown_safely(app),
            what="the failed refresh's notice",
        )
        assert [n.title for n in app._notifications if failed in str(n.message)] == [
            "Token not refreshed"
        ]

        # The scope the endpoint granted, revealed (R gets one, v reveals it).
        screen.table.move_cursor(row=screen.table.get_row_index("granted"))
        await pilot.press("R")
        await wait_for(pilot, lambda: screen.tokens["granted"].variables, what="a token")
        await pilot.press("v")
        await wait_for(
            pilot,
            lambda: shown_safely(app) and any("SCOPE" in ln for ln in screen_lines(app)),
            what="the revealed scope",
        )


async def test_the_call_editor_lists_a_projects_condition_escaped(daemon: Daemon) -> None:
    async with on_dashboard(daemon, (200, 50)) as (app, pilot, _dashboard):
        app.animation_level = "none"  # tab underlines slide; Pilot would wait for every slide
        app.edit_resource("calls", "evil-json")
        editor = await screen_of(pilot, CallEditor, ready=lambda s: s.loaded)
        tabs = editor.query_one(TabbedContent)

        def on_conditions() -> bool:
            # Asked again until it holds: set while the editor was still settling, the tab
            # change was lost once in a whole run of tests/tui.
            if tabs.active != "conditions-tab":
                tabs.active = "conditions-tab"
                return False
            return shown_safely(app, "\\x1b]0;PWNED")

        await wait_for(pilot, on_conditions, what="the condition", timeout=20)


async def test_an_editors_field_shows_a_projects_control_characters_as_symbols(
    daemon: Daemon,
) -> None:
    """An Input (and the body's text area) wrote its value to the terminal as it was: a query
    parameter or a body from a project file (or an import) holding ESC sequences set the title
    and cleared the screen while its editor was open (a helper's retest; a URL or a header can
    no longer hold one). Each control character is shown as its symbol (ESC as `␛`), one cell
    each; the value itself is kept."""
    async with on_dashboard(daemon, (200, 50)) as (app, pilot, _dashboard):
        app.animation_level = "none"
        app.edit_resource("calls", "evil-url")
        editor = await screen_of(pilot, CallEditor, ready=lambda s: s.loaded)
        seen = "\u241b]0;PWNED\u2407\u241b[2J\ufffd31m[bold]x[/bold]"  # ␛ ␇ ␛ and a C1
        params = editor.query_one("#params", KeyValueList)
        assert ("q", HOSTILE) in params.pairs()  # the value is untouched
        (row,) = [r for r in params.query(KeyValueRow) if r.key_input.value == "q"]
        row.value_input.focus()  # scrolled into view, as the person would reach it
        await wait_for(pilot, lambda: shown_safely(app, seen), what="the parameter, as symbols")
        # The text the Input draws from (its whole value; how much of it is on the screen
        # depends on where the cursor scrolled it: a clean-clone run showed only `␛`).
        drawn = row.value_input._value.plain  # the property TextInput overrides
        assert seen in drawn and "\x1b" not in drawn and "\x9b" not in drawn, drawn
        body = "b=" + seen
        await wait_for(pilot, lambda: shown_safely(app, body), what="the body, as symbols")
        assert editor.query_one("#body-text", TextArea).text == "b=" + HOSTILE
