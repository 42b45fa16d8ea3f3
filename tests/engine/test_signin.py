"""Browser sign-in flows in the engine (SPEC §5): browser steps, pending sign-ins, the callback
continuation, saving into the token."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from aiohttp import web

from apimd.demo.server import RunningServer
from apimd.engine.context import RunOrder
from apimd.engine.events import EventSink, discard
from apimd.engine.memory import MemoryStateStore
from apimd.engine.runner import Engine
from apimd.engine.signin import SignInError, SignInFlows, callback_params
from apimd.engine.signin_vars import code_challenge
from apimd.model import Outcome, ResultCode, TokenState
from apimd.model.events import Event
from tests.support.projects import build, token_saved
from tests.support.web import app_of

CALLBACK = "http://127.0.0.1:8765/tokens/callback"


@pytest.fixture
async def api() -> AsyncIterator[RunningServer]:
    """An 'exchange' endpoint that turns a code into a token, and a protected endpoint."""

    async def exchange(request: web.Request) -> web.Response:
        form = await request.post()
        if form.get("code") != "good-code":
            return web.json_response({"error": "invalid_grant"}, status=400)
        return web.json_response({"access_token": "tok-for-good-code", "expires_in": 300})

    async def me(request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != "Bearer tok-for-good-code":
            return web.json_response({"error": "invalid_token"}, status=401)
        return web.json_response({"user": "ops"})

    app = app_of(web.post("/exchange", exchange), web.get("/me", me))
    async with RunningServer(app) as server:
        yield server


@asynccontextmanager
async def signing_in(
    doc: Any, store: MemoryStateStore, events: EventSink = discard
) -> AsyncIterator[tuple[Engine, SignInFlows]]:
    """An engine on `doc` with its sign-in flows, closed at the end."""
    engine = Engine(doc, store, events=events, callback_url=CALLBACK)
    try:
        yield engine, SignInFlows(engine)
    finally:
        await engine.close()


def state_of(url: str) -> str:
    return parse_qs(urlsplit(url).query)["state"][0]


def project(base: str, workflows: list[dict[str, Any]] | None = None, **auth_extra: Any) -> Any:
    return build(
        {
            "auth": [
                {
                    "name": "sso",
                    "type": "manual",
                    "signin_workflow": "signin",
                    "refresh_workflow": "signin",
                    **auth_extra,
                }
            ],
            "tokens": [
                {
                    "name": "t",
                    "auth": "sso",
                    "headers": {"Authorization": "Bearer %%ACCESS_TOKEN%%"},
                }
            ],
            "calls": [
                {
                    "name": "authorize",
                    "url": "https://login.example.test/authorize",
                    "tags": ["apimd:browser"],
                    "params": {
                        "redirect_uri": "%%CALLBACK_URL%%",
                        "code_challenge": "%%CODE_CHALLENGE%%",
                    },
                },
                {
                    "name": "exchange",
                    "method": "POST",
                    "url": f"{base}/exchange",
                    "form": {"code": "%%CODE%%", "verifier": "%%CODE_VERIFIER%%"},
                    "conditions": token_saved(),
                },
                {
                    "name": "me",
                    "url": f"{base}/me",
                    "token": "t",
                    "conditions": [{"source": "status", "op": "eq", "value": 200}],
                },
                {
                    "name": "bad-state",
                    "url": "https://login.example.test/a",
                    "tags": ["apimd:browser"],
                    "params": {"state": "fixed"},
                },
            ],
            "workflows": workflows
            or [
                {"name": "signin", "steps": ["authorize", "exchange"]},
                {"name": "bad", "steps": ["bad-state"]},
            ],
        }
    )


async def test_browser_step_records_a_pending_sign_in_with_its_url(api: RunningServer) -> None:
    events: list[Event] = []
    store = MemoryStateStore()
    async with signing_in(project(api.url), store, events=events.append) as (_, flows):
        begun = await flows.start_for_token("t")
    query = parse_qs(urlsplit(begun.url).query)
    pending = (await store.pending_signins())[0]
    assert begun.url.startswith("https://login.example.test/authorize?")
    assert query["redirect_uri"] == [CALLBACK]
    assert query["state"] == [pending.state]
    assert len(pending.state) >= 43  # 256 random bits
    assert query["code_challenge"] == [code_challenge(pending.code_verifier or "")]
    assert pending.remaining_steps == ["exchange"]
    assert pending.token == "t"
    assert pending.expires_at - pending.created_at == timedelta(minutes=10)
    opened = [e for e in events if e.type == "signin.open"]
    assert opened and opened[0].payload()["url"] == begun.url
    assert begun.result is not None and begun.result.outcome == Outcome.SKIPPED
    assert begun.result.steps[-1].result == ResultCode.BROWSER
    assert pending.code_verifier and pending.code_verifier not in begun.result.model_dump_json()


async def test_callback_runs_the_remaining_steps_and_saves_the_token(api: RunningServer) -> None:
    events: list[Event] = []
    store = MemoryStateStore()
    async with signing_in(project(api.url), store, events=events.append) as (engine, flows):
        begun = await flows.start_for_token("t")
        state = state_of(begun.url)
        done = await flows.complete({"state": state, "code": "good-code", "session_state": "xyz"})
        me = await engine.run("me")
        with pytest.raises(SignInError) as replay:
            await flows.complete({"state": state, "code": "good-code"})
    assert done.ok, done.message
    assert done.token == "t"
    saved = store.tokens["t"]
    assert saved.state == TokenState.VALID
    assert saved.variables["ACCESS_TOKEN"] == "tok-for-good-code"
    assert saved.variables["SESSION_STATE"] == "xyz"  # callback parameters, upper-cased
    assert not {"STATE", "CODE", "CODE_VERIFIER"} & saved.variables.keys()
    assert me.outcome == Outcome.PASS
    assert replay.value.refused
    assert [e.payload()["ok"] for e in events if e.type == "signin.done"] == [True]
    continuation = [r for r in store.results if r.trigger == "callback"]
    assert [s.name for s in continuation[0].steps] == ["exchange"]
    assert "good-code" not in continuation[0].model_dump_json()  # callback params are secrets


async def test_forged_and_expired_states_run_nothing(api: RunningServer) -> None:
    store = MemoryStateStore()
    async with signing_in(project(api.url), store) as (_, flows):
        await flows.start_for_token("t")
        with pytest.raises(SignInError) as forged:
            await flows.complete({"state": "forged-" + "x" * 40, "code": "good-code"})
        for key, (pending, used) in store.signins.items():
            store.signins[key] = (
                pending.model_copy(update={"expires_at": datetime.now(UTC) - timedelta(seconds=1)}),
                used,
            )
            state = pending.state
        with pytest.raises(SignInError) as expired:
            await flows.complete({"state": state, "code": "good-code"})
        with pytest.raises(SignInError):
            await flows.complete({"code": "good-code"})
    assert forged.value.refused and expired.value.refused
    assert not [r for r in store.results if r.trigger == "callback"]
    assert "t" not in store.tokens or not store.tokens["t"].variables


async def test_error_answer_ends_the_sign_in_with_its_message(api: RunningServer) -> None:
    store = MemoryStateStore()
    async with signing_in(project(api.url), store) as (_, flows):
        begun = await flows.start_for_token("t")
        state = state_of(begun.url)
        done = await flows.complete(
            {"state": state, "error": "access_denied", "error_description": "The user said no"}
        )
    assert not done.ok
    assert "The user said no" in done.message


async def test_state_param_must_be_the_state_template(api: RunningServer) -> None:
    async with signing_in(project(api.url), MemoryStateStore()) as (_, flows):
        result, pending = await flows.start_workflow("bad")
    assert pending is None
    assert result.steps[0].result == ResultCode.SETUP_ERROR
    assert "%%STATE%%" in (result.steps[0].error or "")


async def test_needs_sign_in_token_is_signed_in_again_through_its_signin_workflow(
    api: RunningServer,
) -> None:
    """The refresh reaches the browser step unattended: needs_sign_in; a person signs in; the
    scheduled call passes again."""
    store = MemoryStateStore()
    async with signing_in(project(api.url), store) as (engine, flows):
        skipped = await engine.run("me", RunOrder(trigger="schedule"))
        assert skipped.result == ResultCode.NEEDS_SIGN_IN
        assert store.tokens["t"].state == TokenState.NEEDS_SIGN_IN
        begun = await flows.start_for_token("t")
        url = f"{CALLBACK}?code=good-code&state={state_of(begun.url)}"
        done = await flows.complete_url(url)
        again = await engine.run("me", RunOrder(trigger="schedule"))
    assert done.ok
    assert again.outcome == Outcome.PASS


async def test_auth_callback_runs_when_no_steps_remain(api: RunningServer) -> None:
    workflows = [
        {"name": "signin", "steps": ["authorize"]},
        {"name": "finish", "steps": ["exchange"]},
    ]
    store = MemoryStateStore()
    doc = project(api.url, workflows, callback={"workflow": "finish"})
    async with signing_in(doc, store) as (_, flows):
        begun = await flows.start_for_token("t")
        state = state_of(begun.url)
        done = await flows.complete({"state": state, "code": "good-code"})
    assert done.ok, done.message
    assert store.tokens["t"].variables["ACCESS_TOKEN"] == "tok-for-good-code"


def test_pasted_urls_give_their_query_or_fragment() -> None:
    assert callback_params("http://127.0.0.1:1/tokens/callback?code=a&state=b") == {
        "code": "a",
        "state": "b",
    }
    assert callback_params("http://127.0.0.1:1/tokens/callback#access_token=x&state=s") == {
        "access_token": "x",
        "state": "s",
    }
    with pytest.raises(SignInError):
        callback_params("http://127.0.0.1:1/tokens/callback")
