"""Snapshots of the editors at 80×24 and 120×40: the call editor's Request and Conditions tabs
(and a refused save), and the auth editor with its secret masked. Fixed data from the fake client
below, in the production app (`build_app`). `test_editors.py` checks what they do against a real
daemon; these catch layout regressions. Review changed SVGs by eye before accepting them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from pydantic import BaseModel
from textual.pilot import Pilot
from textual.widgets import Input

from apimd.client import ApiError
from apimd.model import (
    SLA,
    AuthSetting,
    Call,
    Condition,
    Schedule,
    Token,
    Webhook,
    Workflow,
)
from apimd.model.api import ErrorDetail
from apimd.model.common import SECRET_MASK
from apimd.model.kinds import ResourceKind
from apimd.tui.app import ApimdApp, build_app
from apimd.tui.editors import EditorScreen, open_editor
from apimd.tui.keys import TuiSettings
from tests.tui.conftest import wait_for
from tests.tui.fakes import SOCKET, FakeClient, frozen_clock

SIZES = [pytest.param((80, 24), id="80x24"), pytest.param((120, 40), id="120x40")]
SnapCompare = Callable[..., bool]
API = "https://api.example.com"

RESOURCES: dict[str, list[BaseModel]] = {
    "calls": [
        Call(
            name="list-orders",
            url=f"{API}/orders",
            token="demo-token",
            headers={"Accept": "application/json", "X-Request-Id": "%%UUID%%"},
            params={"status": "open", "limit": "50"},
            sla=SLA(slow_ms=800, warn_ms=2000, fail_ms=5000),
            conditions=[
                Condition(source="status", op="eq", value=200),
                Condition(source="json", path="$.orders", op="exists"),
                Condition(source="json", path="$.orders[0].id", save_as="ORDER_ID"),
                Condition(source="response_time", op="lt", value=1500, on_fail="warning"),
            ],
            webhooks=[
                Webhook(type="slack", url=SECRET_MASK, alerts=["FAIL"], fails_in_a_row=3),
                Webhook(type="run_call", call="get-token"),
            ],
            tags=["orders", "apimd:mutex"],
            description="Open orders, as the shop front lists them",
        ),
        Call(name="get-token", method="POST", url="https://login.example.com/oauth/token"),
        Call(name="service-status", url=f"{API}/status"),
    ],
    "workflows": [
        Workflow(name="order-flow", steps=["service-status", "list-orders"]),
        Workflow(name="refresh-demo", steps=["get-token"]),
    ],
    "auth": [
        AuthSetting(
            name="demo-oauth",
            type="manual",
            client_id="demo-client",
            client_secret=SECRET_MASK,
            refresh_workflow="refresh-demo",
            description="The demo API's token server",
        ),
    ],
    "tokens": [Token(name="demo-token", auth="demo-oauth")],
    "schedules": [
        Schedule(name="every-30s", every="30s", targets=["list-orders", "service-status"]),
        Schedule(name="nightly", cron="0 3 * * *", targets=["refresh-demo"]),
    ],
}


class EditorFakeClient(FakeClient):
    """The snapshot daemon, serving the resources above and answering PUTs like the daemon:
    a timeout over 300 is refused at `calls[0].timeout`."""

    async def list(self, kind: str) -> list[BaseModel]:
        return list(RESOURCES.get(kind, []))

    async def get(self, kind: str, name: str, *, reveal: bool = False) -> BaseModel:
        for item in RESOURCES.get(kind, []):
            if getattr(item, "name", None) == name:
                return item
        raise ApiError(404, "not_found", f"no {kind} named {name!r}", [])

    async def put(self, kind: str, name: str, resource: Any) -> BaseModel:
        if kind == "calls" and float(resource.get("timeout", 30)) > 300:
            detail = ErrorDetail(
                message="must be at most 300", field="calls[0].timeout", resource=f"call {name!r}"
            )
            raise ApiError(
                422, "validation_failed", "1 problem found; nothing was changed", [detail]
            )
        return ResourceKind(kind).model.model_validate(resource)


def snapshot_app() -> ApimdApp:
    return build_app(SOCKET, clock=frozen_clock, settings=TuiSettings(), client=EditorFakeClient())


async def until(pilot: Pilot[None], check: Callable[[], Any], timeout: float = 5.0) -> None:
    await wait_for(pilot, check, timeout=timeout, what="the snapshot's setup")


async def open_loaded(pilot: Pilot[None], kind: str, name: str) -> EditorScreen:
    app = pilot.app
    assert isinstance(app, ApimdApp)
    app.animation_level = "none"  # a tab underline caught mid-slide would differ run to run
    open_editor(app, app.client, kind, name)
    await until(pilot, lambda: isinstance(app.screen, EditorScreen) and app.screen.loaded)
    await pilot.pause(0.1)
    assert isinstance(app.screen, EditorScreen)
    return app.screen


async def call_request(pilot: Pilot[None]) -> None:
    await open_loaded(pilot, "calls", "list-orders")


async def call_conditions(pilot: Pilot[None]) -> None:
    await open_loaded(pilot, "calls", "list-orders")
    await pilot.press("alt+right", "alt+right")
    await pilot.pause(0.1)


async def call_refused(pilot: Pilot[None]) -> None:
    editor = await open_loaded(pilot, "calls", "list-orders")
    await pilot.press("alt+right")
    editor.query_one("#timeout").focus()
    await pilot.press("ctrl+a", "ctrl+k", "9", "9", "9", "alt+left", "ctrl+s")
    await until(pilot, lambda: editor.query_one("#editor-summary").has_class("-error"))
    await pilot.pause(0.3)


async def auth_editor(pilot: Pilot[None]) -> None:
    await open_loaded(pilot, "auth", "demo-oauth")


SCREENS: dict[str, Callable[[Pilot[None]], Awaitable[None]]] = {
    "call_request": call_request,
    "call_conditions": call_conditions,
    "call_refused": call_refused,
    "auth": auth_editor,
}


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("screen", list(SCREENS))
def test_editor(snap_compare: SnapCompare, screen: str, size: tuple[int, int]) -> None:
    async def steady(pilot: Pilot[None]) -> None:
        await SCREENS[screen](pilot)
        # A blinking cursor is shown or not depending on when the picture is taken.
        for field in pilot.app.screen.query(Input):
            field.cursor_blink = False
        await pilot.pause()

    assert snap_compare(snapshot_app(), terminal_size=size, run_before=steady)
