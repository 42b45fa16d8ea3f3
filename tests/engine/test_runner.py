"""Calls, workflows, webhooks, redaction and templates through the whole engine (SPEC §2–§4)."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import pytest
from aiohttp import web

from apimd.demo.server import RunningServer
from apimd.engine.context import RunOrder
from apimd.engine.memory import MemoryStateStore
from apimd.engine.runner import Engine
from apimd.engine.tokens import NothingToRefresh
from apimd.model import Outcome, ResultCode, TokenState
from apimd.model.events import Event
from apimd.model.runtime import TokenRuntime
from tests.support import engine as support
from tests.support.projects import build, get_token_call, manual_auth


class Receiver:
    """A loopback HTTP server recording every request (webhook target, echo API)."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.status = 200
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        self.server = RunningServer(app)

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.text()
        self.requests.append(
            {
                "method": request.method,
                "path": request.path,
                "query": dict(request.query),
                "headers": dict(request.headers),
                "body": body,
            }
        )
        if request.path.startswith("/echo"):
            return web.json_response(
                {"headers": dict(request.headers), "query": dict(request.query), "body": body},
                status=self.status,
            )
        # A notifier that got an error would retry: webhook targets (/hook…) always take it.
        status = 200 if request.path.startswith("/hook") else self.status
        return web.json_response({"ok": True}, status=status)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    rec = Receiver()
    async with rec.server:
        yield rec


def status_call(token_server: RunningServer, **more: Any) -> dict[str, Any]:
    """The `status` call: it saves the demo API's version as VERSION."""
    return {
        "name": "status",
        "url": f"{token_server.url}/api/status",
        "conditions": [{"source": "json", "path": "version", "save_as": "VERSION"}],
        **more,
    }


async def run_once(
    project_doc: dict[str, Any], name: str, order: RunOrder | None = None
) -> tuple[Any, MemoryStateStore]:
    store = MemoryStateStore()
    return await support.run_once(Engine(build(project_doc), store), name, order), store


async def test_workflow_variables_flow_forward_and_outcome_is_worst_step(
    token_server: RunningServer, receiver: Receiver
) -> None:
    doc = {
        "calls": [
            status_call(token_server),
            {
                "name": "echo",
                "url": f"{receiver.server.url}/echo",
                "params": {"v": "%%VERSION%%", "who": "{{ who }}"},
                "sla": {"slow_ms": 0.001},
            },
        ],
        "workflows": [{"name": "flow", "steps": ["status", "echo"], "variables": {"who": "ops"}}],
    }
    result, store = await run_once(doc, "flow")
    assert result.kind == "workflow"
    assert [s.name for s in result.steps] == ["status", "echo"]
    assert receiver.requests[0]["query"] == {"v": "1.4.2", "who": "ops"}
    assert result.outcome == Outcome.SLOW  # the worst step is SLOW_COMPLETE
    assert result.result == ResultCode.SLOW_COMPLETE
    assert result.variables["VERSION"] == "1.4.2"
    assert store.results == [result]  # steps live inside the workflow result
    assert result.steps[0].workflow_run_id == result.id


async def test_stop_on_failure_and_skipped_always_stops(token_server: RunningServer) -> None:
    base = token_server.url
    calls = [
        {"name": "broken", "url": f"{base}/api/broken"},
        {"name": "ok", "url": f"{base}/api/status"},
        {"name": "browser", "url": f"{base}/authorize", "tags": ["apimd:browser"]},
    ]
    doc = {
        "calls": calls,
        "workflows": [
            {"name": "stops", "steps": ["broken", "ok"]},
            {"name": "goes-on", "steps": ["broken", "ok"], "stop_on_failure": False},
            {"name": "skips", "steps": ["ok", "browser", "ok"], "stop_on_failure": False},
        ],
    }
    stops, _ = await run_once(doc, "stops")
    goes_on, _ = await run_once(doc, "goes-on")
    skips, _ = await run_once(doc, "skips")
    assert [s.name for s in stops.steps] == ["broken"]
    assert stops.outcome == Outcome.FAIL and stops.result == ResultCode.HTTP_SERVER_ERROR
    assert "step broken" in (stops.error or "")
    assert [s.result for s in goes_on.steps] == [ResultCode.HTTP_SERVER_ERROR, ResultCode.COMPLETE]
    assert goes_on.outcome == Outcome.FAIL
    assert [s.result for s in skips.steps] == [ResultCode.COMPLETE, ResultCode.BROWSER]
    assert skips.outcome == Outcome.SKIPPED


async def test_unknown_variable_is_a_setup_error_naming_it(token_server: RunningServer) -> None:
    doc = {
        "calls": [
            {"name": "c", "url": f"{token_server.url}/api/status", "headers": {"X": "%%NOPE%%"}}
        ]
    }
    result, _ = await run_once(doc, "c")
    assert result.outcome == Outcome.FAIL
    assert result.result == ResultCode.SETUP_ERROR
    assert "NOPE" in (result.error or "") and "headers" in (result.error or "")


async def test_lookup_order_and_system_variables(receiver: Receiver) -> None:
    doc = {
        "variables": {"WHO": "environment", "ONLY_ENV": "env-value"},
        "auth": [{"name": "a", "type": "manual", "client_id": "cid-1"}],
        "tokens": [{"name": "t", "auth": "a", "variables": {"WHO": "token"}}],
        "calls": [
            {
                "name": "echo",
                "url": f"{receiver.server.url}/echo",
                "auth": "a",
                "json": {
                    "who": "%%WHO%%",
                    "env": "%%ONLY_ENV%%",
                    "client": "%%CLIENT_ID%%",
                    "call": "%%CALL_NAME%%",
                    "uuid": "%%UUID%%",
                    "guid": "%%GUID%%",
                    "literal": "100%%%%",
                    "dunder": "__init__",
                },
            }
        ],
    }
    # The token is not used by the call, so WHO comes from the run variables, then environment.
    result, _ = await run_once(doc, "echo", RunOrder(variables={"who": "run"}))
    sent = json.loads(receiver.requests[0]["body"])
    assert result.outcome == Outcome.PASS, result.error
    assert sent["who"] == "run"
    assert sent["env"] == "env-value"
    assert sent["client"] == "cid-1"
    assert sent["call"] == "echo"
    assert sent["uuid"] == sent["guid"] and len(sent["uuid"]) == 36
    assert sent["literal"] == "100%%"
    assert sent["dunder"] == "__init__"


async def test_json_body_values_cannot_break_the_json(receiver: Receiver) -> None:
    nasty = 'a"b\\c\n{"x": 1}'
    doc = {
        "calls": [
            {"name": "echo", "url": f"{receiver.server.url}/echo", "json": {"v": ["%%V%%", 1]}}
        ]
    }
    result, _ = await run_once(doc, "echo", RunOrder(variables={"V": nasty}))
    assert result.outcome == Outcome.PASS
    assert json.loads(receiver.requests[0]["body"]) == {"v": [nasty, 1]}
    assert receiver.requests[0]["headers"]["Content-Type"] == "application/json"


async def test_auth_kinds_send_what_they_should(receiver: Receiver) -> None:
    url = f"{receiver.server.url}/echo"
    doc = {
        "auth": [
            {"name": "basic", "type": "basic", "username": "u", "password": "pw-secret-1"},
            {
                "name": "key",
                "type": "api_key",
                "key_name": "api_key",
                "key_value": "kv-secret-2",
                "in": "query",
            },
            {"name": "bearer", "type": "bearer", "token": "bt-secret-3"},
        ],
        "calls": [
            {"name": "b", "url": url, "auth": "basic"},
            {"name": "k", "url": url, "auth": "key"},
            {"name": "t", "url": url, "auth": "bearer"},
        ],
    }
    results = [(await run_once(doc, n))[0] for n in ("b", "k", "t")]
    sent = receiver.requests
    assert (
        sent[0]["headers"]["Authorization"]
        == "Basic " + base64.b64encode(b"u:pw-secret-1").decode()
    )
    assert sent[1]["query"]["api_key"] == "kv-secret-2"
    assert sent[2]["headers"]["Authorization"] == "Bearer bt-secret-3"
    for result, secret in zip(results, ("pw-secret-1", "kv-secret-2", "bt-secret-3"), strict=True):
        dumped = result.model_dump_json()
        assert secret not in dumped
        assert base64.b64encode(f"u:{secret}".encode()).decode() not in dumped
        assert quote(secret) not in dumped


async def test_secrets_never_appear_in_results(
    token_server: RunningServer, receiver: Receiver
) -> None:
    """Token values extracted and saved, a secret variable, and the client secret, in every form."""
    base = token_server.url
    doc = {
        "variables": {"API_SECRET": {"value": "var-secret-value-9", "secret": True}},
        "auth": [manual_auth("a", "r")],
        "tokens": [
            {
                "name": "t",
                "auth": "a",
                "headers": {"Authorization": "Bearer %%ACCESS_TOKEN%%"},
                "params": {"sig": "%%ACCESS_TOKEN%%"},
            }
        ],
        "calls": [
            get_token_call(base),
            {
                "name": "echo",
                "url": f"{receiver.server.url}/echo",
                "token": "t",
                "headers": {"X-Key": "%%API_SECRET%%"},
                "body": "secret=%%API_SECRET%%&tok=%%ACCESS_TOKEN%%",
                "conditions": [
                    {
                        "source": "json",
                        "path": "headers.Authorization",
                        "op": "exists",
                        "save_as": "ECHOED",
                    }
                ],
            },
        ],
        "workflows": [{"name": "r", "steps": ["get-token"]}],
    }
    store = MemoryStateStore()
    result = await support.run_once(Engine(build(doc), store), "echo")
    assert result.outcome == Outcome.PASS, result.error
    access = store.tokens["t"].variables["ACCESS_TOKEN"]
    everything = "".join(r.model_dump_json() for r in store.results)
    for secret in (access, "var-secret-value-9", "demo-secret"):
        for form in (
            secret,
            quote(secret, safe=""),
            json.dumps(secret)[1:-1],
            base64.b64encode(secret.encode()).decode(),
        ):
            assert form not in everything, form
    assert result.response is not None and "••••" in (result.response.body or "")
    assert result.request is not None and "sig=" in result.request.url


async def test_save_variables_and_run_call_webhooks(
    token_server: RunningServer, receiver: Receiver
) -> None:
    doc = {
        "calls": [
            status_call(
                token_server,
                webhooks=[
                    {"type": "save_variables", "names": ["version"]},
                    {"type": "run_call", "call": "report"},
                ],
            ),
            {
                "name": "report",
                "url": f"{receiver.server.url}/report",
                "params": {"v": "%%VERSION%%"},
            },
        ]
    }
    result, store = await run_once(doc, "status")
    assert result.outcome == Outcome.PASS
    assert store.variables["VERSION"] == ("1.4.2", False)
    assert receiver.requests[0]["query"] == {"v": "1.4.2"}
    assert [(r.name, r.trigger) for r in store.results] == [
        ("status", "manual"),
        ("report", "webhook"),
    ]


async def test_run_webhook_depth_is_capped_at_three(receiver: Receiver) -> None:
    url = f"{receiver.server.url}/hop"
    doc = {
        "calls": [
            {"name": f"c{i}", "url": url, "webhooks": [{"type": "run_call", "call": f"c{i + 1}"}]}
            for i in range(5)
        ]
        + [{"name": "c5", "url": url}]
    }
    await run_once(doc, "c0")
    assert len(receiver.requests) == 4  # c0 and three levels of webhook runs


async def test_http_webhook_counts_fails_in_a_row_and_sends_resolved(receiver: Receiver) -> None:
    hook_url = f"{receiver.server.url}/hook/secret-path-123"
    doc = {
        "calls": [
            {
                "name": "flaky",
                "url": f"{receiver.server.url}/echo",
                "conditions": [{"source": "status", "op": "eq", "value": 200}],
                "webhooks": [
                    {"type": "http", "url": hook_url, "fails_in_a_row": 2, "resolved": True}
                ],
            }
        ]
    }
    store = MemoryStateStore()
    engine = Engine(build(doc), store)
    outcomes = []
    try:
        for status in (500, 200, 500, 500, 500, 500, 200, 200):
            receiver.status = status
            outcomes.append((await engine.run("flaky")).outcome)
    finally:
        await engine.close()
    hooks = [json.loads(r["body"]) for r in receiver.requests if r["path"].startswith("/hook")]
    assert [h["event"] for h in hooks] == ["alert", "resolved"]
    assert hooks[0]["consecutive"] == 2 and hooks[0]["outcome"] == "FAIL"
    assert hooks[0]["name"] == "flaky"
    assert outcomes[:2] == [Outcome.FAIL, Outcome.PASS]
    assert "secret-path-123" not in "".join(r.model_dump_json() for r in store.results)


async def test_slack_webhook_on_token_needing_sign_in_fires_once(
    token_server: RunningServer, receiver: Receiver
) -> None:
    from tests.conftest import server_state

    server_state(token_server).invalid_grant = True
    base = token_server.url
    doc = {
        "auth": [
            {
                "name": "a",
                "type": "manual",
                "client_id": "demo-client",
                "client_secret": "demo-secret",
                "refresh_workflow": "r",
                "webhooks": [
                    {
                        "type": "slack",
                        "url": f"{receiver.server.url}/slack",
                        "alerts": ["NEEDS_SIGN_IN", "ERROR"],
                    }
                ],
            }
        ],
        "tokens": [
            {"name": "t", "auth": "a", "headers": {"Authorization": "Bearer %%ACCESS_TOKEN%%"}}
        ],
        "calls": [get_token_call(base), {"name": "use", "url": f"{base}/api/orders", "token": "t"}],
        "workflows": [{"name": "r", "steps": ["get-token"]}],
    }
    store = MemoryStateStore()
    engine = Engine(build(doc), store)
    try:
        for _ in range(3):
            assert (await engine.run("use")).result == ResultCode.NEEDS_SIGN_IN
    finally:
        await engine.close()
    slack = [json.loads(r["body"]) for r in receiver.requests if r["path"] == "/slack"]
    assert len(slack) == 1
    assert "token t needs a person to sign in" in slack[0]["text"]


async def test_events_report_runs_and_token_saves(token_server: RunningServer) -> None:
    from tests.support.projects import manual_token_project

    events: list[Event] = []
    engine = Engine(
        manual_token_project(token_server.url), MemoryStateStore(), events=events.append
    )
    try:
        await engine.run("orders-t1")
    finally:
        await engine.close()
    types = [e.type for e in events]
    assert types[0] == "run.started"
    assert "token.saved" in types and types[-1] == "run.finished"
    assert events[-1].payload()["outcome"] == "PASS"
    assert all("at-" not in json.dumps(e.payload()) for e in events)


async def test_mutex_tag_serialises_runs_of_a_target(token_server: RunningServer) -> None:
    doc = {
        "calls": [
            {"name": "slow", "url": f"{token_server.url}/api/slow?ms=300", "tags": ["apimd:mutex"]}
        ]
    }
    engine = Engine(build(doc), MemoryStateStore())
    loop = asyncio.get_running_loop()
    try:
        started = loop.time()
        await asyncio.gather(engine.run("slow"), engine.run("slow"))
        elapsed = loop.time() - started
    finally:
        await engine.close()
    assert elapsed >= 0.55


async def test_timeout_tag_and_connection_errors(token_server: RunningServer) -> None:
    doc = {
        "calls": [
            {
                "name": "slow",
                "url": f"{token_server.url}/api/slow?ms=2000",
                "tags": ["apimd:timeout:0.3"],
            },
            {"name": "closed", "url": "http://127.0.0.1:9/"},
        ]
    }
    slow, _ = await run_once(doc, "slow")
    closed, _ = await run_once(doc, "closed")
    assert slow.result == ResultCode.TIMEOUT
    assert closed.result == ResultCode.CONNECTION_ERROR
    assert closed.error


async def test_token_headers_and_params_are_dropped_on_a_cross_origin_redirect(
    receiver: Receiver,
) -> None:
    other = Receiver()
    await other.server.start()
    try:
        target = f"{other.server.url}/echo"
        app_url = receiver.server.url.replace("127.0.0.1", "localhost")

        async def redirect(request: web.Request) -> web.Response:
            # The Location carries the query on, as many real APIs' redirects do.
            location = target if request.query.get("away") else "/echo"
            raise web.HTTPFound(f"{location}?{request.query_string}")

        receiver.server.app.router._frozen = False  # add a route to the running test server
        receiver.server.app.router.add_get("/go", redirect)
        doc = {
            "auth": [{"name": "a", "type": "manual"}],
            "tokens": [
                {
                    "name": "t",
                    "auth": "a",
                    "variables": {"ACCESS_TOKEN": "tok-secret-77"},
                    "headers": {"Authorization": "Bearer %%ACCESS_TOKEN%%"},
                    "params": {"sig": "%%ACCESS_TOKEN%%"},
                }
            ],
            "calls": [
                {"name": "same", "url": f"{app_url}/go", "token": "t", "headers": {"X-Plain": "1"}},
                {
                    "name": "away",
                    "url": f"{app_url}/go?away=1",
                    "token": "t",
                    "headers": {"X-Plain": "1"},
                },
            ],
        }
        store = MemoryStateStore()
        await store.save_token(
            TokenRuntime(
                name="t", variables={"ACCESS_TOKEN": "tok-secret-77"}, state=TokenState.VALID
            )
        )
        engine = Engine(build(doc), store)
        try:
            same = await engine.run("same")
            away = await engine.run("away")
        finally:
            await engine.close()
    finally:
        await other.server.stop()
    echoed_same = [r for r in receiver.requests if r["path"] == "/echo"][-1]
    echoed_away = other.requests[-1]
    assert same.outcome == Outcome.PASS and away.outcome == Outcome.PASS
    assert echoed_same["headers"]["Authorization"] == "Bearer tok-secret-77"
    assert echoed_same["query"].get("sig") == "tok-secret-77"
    assert "Authorization" not in echoed_away["headers"]
    assert "sig" not in echoed_away["query"]
    assert echoed_away["headers"]["X-Plain"] == "1"


async def test_an_update_that_changes_a_template_or_jsonpath_takes_effect_at_once(
    receiver: Receiver,
) -> None:
    # Templates and JSONPaths are compiled once and kept: a changed definition must not run as
    # the one compiled before it.
    def doc(header: str, path: str) -> dict[str, Any]:
        echo: dict[str, Any] = {
            "name": "echo",
            "url": f"{receiver.server.url}/echo",
            "params": {"page": "7"},
        }
        echo["headers"] = {"X-Tag": header}
        echo["conditions"] = [{"source": "json", "path": path, "op": "exists", "save_as": "GOT"}]
        return {"variables": {"WHO": "me"}, "calls": [echo]}

    engine = Engine(build(doc("one-%%WHO%%", "$.headers['X-Tag']")), MemoryStateStore())
    try:
        first = await engine.run("echo")
        engine.update_project(build(doc("two-%%WHO%%", "$.headers['X-Tag']")))
        second = await engine.run("echo")
        engine.update_project(build(doc("two-%%WHO%%", "$.query.page")))
        third = await engine.run("echo")
    finally:
        await engine.close()
    assert [r.outcome for r in (first, second, third)] == [Outcome.PASS] * 3
    assert [r.variables["GOT"] for r in (first, second, third)] == ["one-me", "two-me", "7"]
    assert [r.conditions[0].path for r in (first, second, third)] == [
        "$.headers['X-Tag']",
        "$.headers['X-Tag']",
        "$.query.page",
    ]


async def test_a_secret_a_workflow_extracts_is_masked_in_every_result_of_the_run() -> None:
    """A value read from a secret's place (`$.access_token`, saved as TOK) or saved under a
    secret's name (ACCESS_TOKEN, CODE_VERIFIER) was recorded in clear in the workflow's and its
    steps' variables, and in the next step's request (a newcomer's run of the demo's sign-in)."""
    token, verifier = "at-live-token-0123456789", "verifier-0123456789abcdef"

    async def handle(request: web.Request) -> web.Response:
        if request.path == "/token":
            return web.json_response({"access_token": token, "id": "order-7", "v": verifier})
        return web.json_response({"seen": request.headers.get("X-Token")})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    async with RunningServer(app) as server:
        doc = {
            "calls": [
                {
                    "name": "get",
                    "url": f"{server.url}/token",
                    "conditions": [
                        {"source": "json", "path": "$.access_token", "save_as": "TOK"},
                        {"source": "json", "path": "$.access_token", "save_as": "ACCESS_TOKEN"},
                        {"source": "json", "path": "$.v", "save_as": "CODE_VERIFIER"},
                        {"source": "json", "path": "$.id", "save_as": "ORDER"},
                    ],
                },
                {"name": "use", "url": f"{server.url}/use", "headers": {"X-Token": "%%TOK%%"}},
            ],
            "workflows": [{"name": "flow", "steps": ["get", "use"]}],
        }
        result, _store = await run_once(doc, "flow")
    assert result.outcome == Outcome.PASS, result.error
    assert result.variables["ORDER"] == "order-7"  # not a secret: left as it was
    for name in ("TOK", "ACCESS_TOKEN", "CODE_VERIFIER"):
        assert result.variables[name] == "••••", result.variables
    recorded = result.model_dump_json()
    assert token not in recorded and verifier not in recorded
    assert result.steps[1].request is not None
    assert dict(result.steps[1].request.headers)["X-Token"] == "••••"


async def test_a_token_nothing_refreshes_is_not_refreshed_by_hand_nor_blocked(
    receiver: Receiver,
) -> None:
    """Refreshing a `manual` token with no refresh or sign-in workflow marked it needs_sign_in
    for good (shown `valid`): every call using it was skipped (a helper's attack). Now the
    refresh is refused by name, and a token an older version left so is used again."""
    doc = {
        "auth": [{"name": "man", "type": "manual"}],
        "tokens": [{"name": "tok", "auth": "man", "headers": {"X-Key": "k-{{ uuid() }}"}}],
        "calls": [{"name": "use", "url": f"{receiver.server.url}/use", "token": "tok"}],
    }
    store = MemoryStateStore()
    engine = Engine(build(doc), store)
    try:
        with pytest.raises(NothingToRefresh, match="token tok has nothing to refresh it"):
            await engine.refresh_token("tok")
        assert (await engine.services.tokens.current("tok")).last_error is None  # left alone
        assert (await engine.run("use")).outcome == Outcome.PASS
        # As an older version left it: still used, since nothing could ever fill it.
        await engine.services.tokens.set_state("tok", TokenState.NEEDS_SIGN_IN, "no refresh")
        result = await engine.run("use")
    finally:
        await engine.close()
    assert result.outcome == Outcome.PASS, result.error
    assert receiver.requests[-1]["headers"]["X-Key"].startswith("k-")


@pytest.mark.parametrize(
    ("auth", "sent"),
    [
        ({"type": "none"}, None),
        ({"type": "bearer", "token": "b-1"}, "Bearer b-1"),
        ({"type": "basic", "username": "u", "password": "p"}, "Basic dTpw"),
        ({"type": "api_key", "key_name": "X-Api-Key", "key_value": "k-1"}, None),
    ],
    ids=["none", "bearer", "basic", "api_key"],
)
async def test_a_token_of_an_auth_that_fills_nothing_is_used_as_written(
    receiver: Receiver, auth: dict[str, str], sent: str | None
) -> None:
    """A token of a `none`, `bearer`, `basic` or `api_key` auth with no refresh or sign-in
    workflow (headers of its own beside what the auth sends) was applied, then every call using
    it ended NEEDS_SIGN_IN and a refresh said `needs_sign_in` (a helper's retest): nothing can
    fill such a token, as with a `manual` one, so it is used as written and a refresh is
    refused by name."""
    doc = {
        "auth": [{"name": "a", **auth}],
        "tokens": [{"name": "tok", "auth": "a", "headers": {"X-Tenant": "t-7"}}],
        "calls": [{"name": "use", "url": f"{receiver.server.url}/use", "token": "tok"}],
    }
    engine = Engine(build(doc), MemoryStateStore())
    try:
        result = await engine.run("use")
        with pytest.raises(NothingToRefresh, match=f"its auth a is {auth['type']}"):
            await engine.refresh_token("tok")
    finally:
        await engine.close()
    assert result.outcome == Outcome.PASS, result.error
    headers = receiver.requests[-1]["headers"]
    assert headers["X-Tenant"] == "t-7"
    assert headers.get("Authorization") == sent


async def test_a_refresh_workflow_run_by_itself_says_how_to_run_it_as_a_refresh(
    receiver: Receiver,
) -> None:
    """Run from the dashboard, the demo's refresh workflow (and its step) ended SETUP_ERROR
    `unknown variable CLIENT_ID` and nothing more (a newcomer's run): the auth's variables are a
    run's only as a token's refresh (SPEC §2), which the error now says how to start."""
    doc = {
        "auth": [manual_auth("man", refresh_workflow="renew")],
        "tokens": [{"name": "tok", "auth": "man"}],
        "calls": [get_token_call(receiver.server.url)],
        "workflows": [{"name": "renew", "steps": ["get-token"]}],
    }
    hint = (
        "renew is the refresh_workflow of auth man, whose variables a run gets only as a token's"
        " refresh (apimd token refresh tok, or R on Tokens)"
    )
    for target in ("renew", "get-token"):
        result, _store = await run_once(doc, target)
        assert result.result == ResultCode.SETUP_ERROR
        assert (result.error or "").endswith(hint), result.error
        assert "unknown variable CLIENT_ID" in (result.error or "")
