"""Cookies across workflow steps (SPEC §2): a form login keeps its session cookie for later
steps and saves it into a token used by a scheduled call; jar rules; `cookies: false`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from apimd.demo.server import RunningServer
from apimd.engine.context import RunOrder
from apimd.engine.memory import MemoryStateStore
from apimd.engine.runner import Engine
from apimd.model import Outcome
from tests.support.engine import run_once
from tests.support.projects import build
from tests.support.web import app_of

SESSION = "sess-7f3a9c1d"


class FormSite:
    """POST /login (form) → 302 to /home with a session cookie; /api/* needs that cookie."""

    def __init__(self) -> None:
        self.cookies_seen: list[dict[str, str]] = []
        app = app_of(
            web.post("/login", self.login),
            web.get("/home", self.home),
            web.get("/api/{tail:.*}", self.api),
        )
        self.server = RunningServer(app)

    async def login(self, request: web.Request) -> web.Response:
        form = await request.post()
        if form.get("user") != "ann" or form.get("password") != "pw-123":
            return web.json_response({"error": "bad login"}, status=403)
        response = web.HTTPFound("/home")
        response.set_cookie("session", SESSION, path="/", httponly=True)
        response.set_cookie("admin_only", "x", path="/admin")
        response.set_cookie("secure_only", "y", secure=True)
        response.set_cookie("gone", "z", max_age=0)
        raise response

    async def home(self, request: web.Request) -> web.Response:
        return web.json_response({"home": request.cookies.get("session") == SESSION})

    async def api(self, request: web.Request) -> web.Response:
        self.cookies_seen.append(dict(request.cookies))
        if request.cookies.get("session") != SESSION:
            return web.json_response({"error": "not signed in"}, status=401)
        return web.json_response({"user": "ann"})


@pytest.fixture
async def site() -> AsyncIterator[FormSite]:
    server = FormSite()
    async with server.server:
        yield server


def project(base: str, *, cookies: bool = True) -> dict[str, Any]:
    return {
        "auth": [{"name": "site", "type": "manual", "refresh_workflow": "login-flow"}],
        "tokens": [
            {"name": "session", "auth": "site", "headers": {"Cookie": "session=%%SESSION%%"}}
        ],
        "calls": [
            {
                "name": "login",
                "method": "POST",
                "url": f"{base}/login",
                "form": {"user": "ann", "password": "pw-123"},
                "conditions": [
                    {"source": "json", "path": "home", "op": "eq", "value": True},
                    {"source": "cookie", "path": "session", "op": "exists", "save_as": "SESSION"},
                ],
                "webhooks": [{"type": "save_auth_token", "token": "session"}],
            },
            {
                "name": "profile",
                "url": f"{base}/api/profile",
                "conditions": [{"source": "status", "op": "eq", "value": 200}],
            },
            {
                "name": "me",
                "url": f"{base}/api/me",
                "token": "session",
                "conditions": [{"source": "json", "path": "user", "op": "eq", "value": "ann"}],
            },
        ],
        "workflows": [
            {"name": "login-flow", "steps": ["login", "profile"], "cookies": cookies},
        ],
        "schedules": [{"name": "often", "every": "1m", "targets": ["me"]}],
    }


async def test_form_login_cookie_flows_to_later_steps_and_into_a_token(site: FormSite) -> None:
    store = MemoryStateStore()
    engine = Engine(build(project(site.server.url)), store)
    try:
        flow = await engine.run("login-flow")
        assert flow.outcome == Outcome.PASS, [s.error or s.conditions for s in flow.steps]
        # The second step got the session cookie from the jar, by the jar's rules: not the
        # /admin-path cookie, not the secure cookie over http, not the expired one.
        assert site.cookies_seen[-1] == {"session": SESSION}
        # The scheduled call runs with the token the login saved.
        scheduled = await engine.run("me", RunOrder(trigger="schedule"))
        assert scheduled.outcome == Outcome.PASS, scheduled.error
        assert store.tokens["session"].variables["SESSION"] == SESSION
        assert SESSION not in scheduled.model_dump_json()
        assert SESSION not in flow.model_dump_json()
    finally:
        await engine.close()


async def test_scheduled_call_refreshes_its_token_through_the_login_workflow(
    site: FormSite,
) -> None:
    result = await run_once(
        Engine(build(project(site.server.url)), MemoryStateStore()),
        "me",
        RunOrder(trigger="schedule"),
    )
    assert result.outcome == Outcome.PASS, result.error


async def test_cookies_false_keeps_no_jar(site: FormSite) -> None:
    flow = await run_once(
        Engine(build(project(site.server.url, cookies=False)), MemoryStateStore()), "login-flow"
    )
    # Without a jar even the login's own redirect arrives without the cookie.
    assert flow.outcome == Outcome.FAIL
    assert site.cookies_seen == []


async def test_a_call_run_alone_starts_with_an_empty_jar(site: FormSite) -> None:
    engine = Engine(build(project(site.server.url)), MemoryStateStore())
    try:
        assert (await engine.run("login")).outcome == Outcome.PASS
        alone = await engine.run("profile")
    finally:
        await engine.close()
    assert alone.outcome == Outcome.FAIL
    assert site.cookies_seen[-1] == {}
