"""One name for one thing (issue 11 point 6), against the real daemon application served
in-process with an injected clock: each kind of resource is named the same by every layer, a
token inside its refresh margin reads `refresh due` (not "expired, expires in 5s"), and a token
nobody has signed in yet `never signed in` (not "refreshed 0s ago"), in the CLI and the TUI."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from apimd.cli.tokens import describe_token, token_row
from apimd.client import ApiError, Client
from apimd.daemon.app import create_app
from apimd.daemon.keys import SERVICE
from apimd.model.kinds import ResourceKind
from apimd.model.resources import Token, TokenState
from apimd.settings import Settings
from apimd.tui.app import build_app
from apimd.tui.keys import TuiSettings
from apimd.tui.screens.tokens import TokensScreen
from tests.daemon.conftest import short_home
from tests.tui.conftest import wait_for

START = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
DEAD_URL = "http://127.0.0.1:9/oauth"


@dataclass
class MovableClock:
    now: datetime = START

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Served:
    socket_path: Path
    clock: MovableClock
    app: web.Application


@pytest.fixture
async def served() -> AsyncIterator[Served]:
    """The daemon's application (`create_app`) on a Unix socket in this process: what the
    `apimd` daemon serves, with the test's clock."""
    home = short_home()
    settings = Settings.load({"APIMD_HOME": str(home), "APIMD_CALLBACK_PORT": "0"})
    for folder in {settings.state_dir, settings.db_path.parent, settings.socket_path.parent}:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    clock = MovableClock()
    app = create_app(settings, clock=clock)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    site = web.UnixSite(runner, str(settings.socket_path))
    await site.start()
    try:
        yield Served(settings.socket_path, clock, app)
    finally:
        await runner.cleanup()
        shutil.rmtree(home, ignore_errors=True)


def project(expires_in: int) -> dict[str, Any]:
    return {
        "auth": [
            {"name": "manual", "type": "manual"},
            {
                "name": "people",
                "type": "oauth2",
                "grant": "authorization_code",
                "authorize_url": f"{DEAD_URL}/authorize",
                "token_url": f"{DEAD_URL}/token",
                "client_id": "demo-client",
            },
        ],
        "tokens": [
            {
                "name": "margin",
                "auth": "manual",
                "variables": {"ACCESS_TOKEN": "a", "EXPIRES_IN": str(expires_in)},
            },
            {"name": "first-time", "auth": "people"},
        ],
    }


async def tokens_at(served: Served, later: timedelta) -> tuple[Token, Token]:
    """Apply the project at START, refresh the sign-in token (nobody signed in), and read both
    tokens back `later`."""
    served.clock.now = START
    async with Client(served.socket_path) as client:
        await client.apply(project(expires_in=100))
        refreshed = await client.refresh_token("first-time")
        assert refreshed.state is TokenState.NEEDS_SIGN_IN
        assert refreshed.last_refresh == START  # the daemon's attempt, at the injected time
        served.clock.now = START + later
        margin, first = (
            await client.get("tokens", "margin"),
            await client.get("tokens", "first-time"),
        )
    assert isinstance(margin, Token) and isinstance(first, Token)
    return margin, first


async def test_the_daemon_reads_the_injected_clock(served: Served) -> None:
    served.clock.now = START + timedelta(days=3)
    async with Client(served.socket_path) as client:
        summary = await client.summary()
        status = await client.status()
    assert summary.generated_at == START + timedelta(days=3)
    assert status.started_at == START
    assert served.app[SERVICE].engine.services.now() == START + timedelta(days=3)


async def test_the_cli_says_refresh_due_and_never_signed_in(served: Served) -> None:
    # 95 s into a 100 s token: inside its 10 s refresh margin, not yet expired.
    margin, first = await tokens_at(served, timedelta(seconds=95))
    now = served.clock.now
    assert margin.state is TokenState.EXPIRED  # what the API says: refreshed on next use
    assert margin.expires_at == START + timedelta(seconds=100)

    shown = describe_token(margin, now)
    assert "  state         refresh due" in shown
    assert "  expiry        expires in 5s" in shown
    assert "expired" not in shown
    assert token_row(margin, now)[2:4] == ["refresh due", "in 5s"]

    shown = describe_token(first, now)
    assert "  state         needs_sign_in" in shown
    assert "  last refresh  never signed in" in shown
    assert "ago" not in shown
    assert token_row(first, now)[2] == "needs_sign_in"
    assert token_row(first, now)[4] == "never signed in"

    # Past its expiry the token reads expired again.
    later = (await tokens_at(served, timedelta(seconds=130)))[0]
    assert "  state         expired" in describe_token(later, served.clock.now)
    assert "expired 30s ago" in describe_token(later, served.clock.now)


async def test_the_tokens_screen_says_refresh_due_and_never_signed_in(served: Served) -> None:
    await tokens_at(served, timedelta(seconds=95))
    app = build_app(served.socket_path, settings=TuiSettings(), clock=served.clock)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("t")
        screen = await wait_for(pilot, lambda: isinstance(app.screen, TokensScreen) and app.screen)
        assert isinstance(screen, TokensScreen)
        await wait_for(pilot, lambda: len(screen.tokens) == 2, what="both tokens")
        assert str(screen.table.get_cell("margin", "state")) == "refresh due"
        assert str(screen.table.get_cell("margin", "expires")) == "5s"
        assert str(screen.table.get_cell("first-time", "state")) == "needs_sign_in"
        assert str(screen.table.get_cell("first-time", "refreshed")) == "never signed in"


async def test_every_layer_names_a_kind_alike(served: Served) -> None:
    """The service (a GET of nothing), the store (a DELETE of nothing) and the REST handler (a
    body that is not an object) say `auth setting`, `maintenance window`, `variable`…"""
    async with Client(served.socket_path) as client:
        for kind in ResourceKind:
            for request in (client.get(kind, "nope"), client.delete(kind, "nope")):
                with pytest.raises(ApiError) as refused:
                    await request
                assert refused.value.status == 404
                assert str(refused.value) == f"no {kind.singular} named 'nope'"
    connector = aiohttp.UnixConnector(path=str(served.socket_path))
    async with aiohttp.ClientSession(connector=connector) as session:
        for kind in ResourceKind:
            async with session.put(f"http://apimd/v1/{kind}/x", json=[1]) as response:
                assert response.status == 400
                body = await response.json()
            assert body["error"]["message"] == f"send the {kind.singular} as a JSON object"
    assert ResourceKind.MAINTENANCE.describe("w") == "maintenance window 'w'"
    assert ResourceKind.AUTH.describe("a") == "auth 'a'"  # as the project file spells the key
