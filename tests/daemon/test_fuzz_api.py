"""Property-based run of every operation in `/v1/openapi.json` (SPEC §6): the real app, mounted on
a loopback TCP port, gets generated requests — JSON shaped like the resource with wrong types and
unknown fields, arbitrary JSON and bytes, odd path names and query values — and must never answer
5xx, must give every 4xx the `{"error": {code, message}}` shape, and every 2xx must validate against
the response model of the route table.

Nothing generated sends real traffic: every `*url` field is pointed at 127.0.0.1:9 (refused), and
the endpoints that run, refresh or sign in only get names that do not exist."""

from __future__ import annotations

import asyncio
import json
import shutil
import string
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from apimd.daemon.api import routes
from apimd.daemon.app import create_app
from apimd.daemon.routes import Route
from apimd.model.api import CompleteSignInRequest, ErrorBody, RunRequest
from apimd.model.project import Project
from apimd.model.resources import AuthSetting, Call, Schedule, Token, Variable, Workflow
from apimd.settings import Settings
from tests.daemon.conftest import short_home
from tests.daemon.hostile_input import (
    MALFORMED_URLS,
    deep_json,
    malformed_urls,
    surrogate_texts,
    with_surrogate,
)
from tests.support.socket_http import SocketHTTP

EXAMPLES = 50
JSON = "application/json"
SAFE_URL = "http://127.0.0.1:9/fuzz"

# --- the app on a loopback port, in a thread of its own ---------------------------------------


@dataclass
class Served:
    port: int
    loop: asyncio.AbstractEventLoop
    runner: web.AppRunner

    def request(
        self, method: str, target: str, body: bytes | None = None, content_type: str = JSON
    ) -> tuple[int, str, bytes]:
        reply = SocketHTTP(port=self.port).request(method, target, body, content_type=content_type)
        return reply.status, reply.content_type, reply.body


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    home = short_home()
    app = create_app(Settings.load({"APIMD_HOME": str(home), "APIMD_CALLBACK_PORT": "0"}))
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="fuzzed-app", daemon=True)
    thread.start()

    async def start() -> tuple[web.AppRunner, int]:
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        return runner, int(runner.addresses[0][1])

    runner, port = asyncio.run_coroutine_threadsafe(start(), loop).result(30)
    try:
        served = Served(port, loop, runner)
        seed(served)
        yield served
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
        shutil.rmtree(home, ignore_errors=True)


SEED = {
    "version": 1,
    "variables": {"A": "plain", "B_1": {"value": "hidden", "secret": True}},
    "auth": [{"name": "a", "type": "manual", "client_id": "id", "client_secret": "s3cret"}],
    "tokens": [{"name": "b", "auth": "a", "variables": {"ACCESS_TOKEN": "at-seeded"}}],
    "calls": [
        {"name": "a", "url": SAFE_URL},
        {"name": "b", "url": SAFE_URL, "token": "b"},
        {"name": "c-1", "url": SAFE_URL, "auth": "a"},
    ],
    "workflows": [{"name": "d.e", "steps": ["a", "b"]}],
    "schedules": [{"name": "F_G", "every": "1h", "targets": ["d.e"], "enabled": False}],
}
RESULT_IDS: list[str] = []


def seed(served: Served) -> None:
    """Exactly the resources of SEED (pool names, so generated requests meet existing ones), and
    a few results."""
    status, _type, raw = served.request("POST", "/v1/apply?prune=true", json.dumps(SEED).encode())
    assert status == 200, raw
    if RESULT_IDS:
        return
    for target in ("calls/a", "workflows/d.e"):
        body = json.dumps({"wait": True}).encode()
        status, _type, raw = served.request("POST", f"/v1/{target}/run", body)
        assert status == 200, raw
        RESULT_IDS.append(json.loads(raw)["run_id"])


# --- strategies ---------------------------------------------------------------------------------

texts = st.text(max_size=20)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | texts
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=8,
)
POOL = ["a", "b", "c-1", "d.e", "F_G"]
pool_names = st.sampled_from(POOL)
odd_names = st.sampled_from(["..", ".", "...", "%2e%2e", "a/b", " ", "é", "名前", "a" * 101, "-x"])
names = pool_names | pool_names | odd_names | texts
variable_names = st.sampled_from(["A", "b", "C_1", "_x", "1x", "a-b"]) | texts
urls = st.just(SAFE_URL) | st.just(SAFE_URL + "?q=%%A%%") | malformed_urls
durations = (
    st.sampled_from(["1s", "30s", "5m", "1h", "0s", "-1s", "1d", "abc", "", "3000000d"])
    | st.integers(1, 10**30).map(lambda n: f"{n}h")
    | texts
)
string_maps = st.dictionaries(texts, texts | json_values, max_size=3)

conditions = st.fixed_dictionaries(
    {},
    optional={
        "source": st.sampled_from(["status", "header", "body", "json", "xml", "size", "nope"]),
        "path": st.sampled_from(["$.a", "a[", "//x", "(", "Content-Type"]) | texts,
        "op": st.sampled_from(["eq", "exists", "matches", "lt", "bogus"]),
        "value": json_values,
        "save_as": variable_names,
        "on_fail": st.sampled_from(["fail", "warning", "never"]),
        "namespaces": string_maps,
        "extra": json_values,
    },
)
webhooks = st.fixed_dictionaries(
    {},
    optional={
        "type": st.sampled_from(
            ["http", "slack", "save_auth_token", "save_variables", "run_call", "run_workflow", "x"]
        ),
        "url": urls | json_values,
        "token": pool_names,
        "call": pool_names,
        "workflow": pool_names,
        "names": st.lists(variable_names, max_size=2),
        "alerts": st.lists(
            st.sampled_from(["PASS", "FAIL", "NEEDS_SIGN_IN", "ERROR", "nope"]), max_size=3
        ),
        "fails_in_a_row": st.integers(-2, 2000) | json_values,
        "resolved": st.booleans(),
    },
)
PLAUSIBLE: dict[str, st.SearchStrategy[Any]] = {
    "name": names,
    "description": texts,
    "tags": st.lists(
        st.sampled_from(["apimd:mutex", "apimd:timeout:5", "apimd:timeout:0", "x"]) | texts,
        max_size=3,
    ),
    "value": texts | st.integers() | st.booleans(),
    "secret": st.booleans(),
    "type": st.sampled_from(["none", "basic", "api_key", "bearer", "manual", "oauth2", "x"]),
    "grant": st.sampled_from(
        ["client_credentials", "authorization_code", "device_code", "password", "x"]
    ),
    "in": st.sampled_from(["header", "query", "body"]),
    "client_secret": texts | st.just("••••"),
    "password": texts | st.just("••••"),
    "token": pool_names | texts,
    "auth": pool_names,
    "refresh_workflow": pool_names,
    "signin_workflow": pool_names,
    "callback": st.fixed_dictionaries({}, optional={"call": pool_names, "workflow": pool_names}),
    "refresh_skew": st.floats(allow_nan=False) | st.integers(),
    "webhooks": st.lists(webhooks, max_size=2),
    "headers": string_maps,
    "params": string_maps,
    "form": string_maps,
    "variables": st.dictionaries(variable_names, texts | json_values, max_size=3),
    "expires_at": st.datetimes().map(lambda d: d.isoformat()) | texts,
    "state": st.sampled_from(["valid", "expired", "needs_sign_in", "x"]),
    "method": st.sampled_from(["GET", "post", "BAD METHOD", ""]),
    "json": json_values,
    "body": texts,
    "timeout": st.sampled_from([0, -1, 0.5, 30, 300, 301, 2**70]),
    "sla": st.fixed_dictionaries(
        {}, optional={k: st.integers(-1, 10**6) | json_values for k in ("slow_ms", "fail_ms")}
    ),
    "conditions": st.lists(conditions, max_size=2),
    "steps": st.lists(pool_names | texts, max_size=3),
    "stop_on_failure": st.booleans(),
    "every": durations,
    "cron": st.sampled_from(["* * * * *", "0 3 * * *", "61 * * * *", "0 0 31 2 *", "x"]),
    "timezone": st.sampled_from(["UTC", "Europe/Paris", "Mars/Base", ""]),
    "targets": st.lists(pool_names | texts, max_size=3),
    "enabled": st.booleans(),
    "jitter": st.integers(-1, 5000) | json_values,
}


def _safe_urls(value: Any) -> Any:
    """Point every `*url` field anywhere in a document at a refused loopback port (a URL that
    does not even parse is kept: it cannot send anything)."""
    if isinstance(value, dict):
        return {
            key: SAFE_URL
            if isinstance(key, str)
            and key.lower().endswith("url")
            and isinstance(value[key], str | dict)
            and value[key] not in MALFORMED_URLS
            else _safe_urls(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_safe_urls(item) for item in value]
    return value


header_names = st.text(alphabet=string.ascii_letters + "-", min_size=1, max_size=10)
variable_ids = st.sampled_from(["A", "B_1", "TOKEN", "_x"])
VALID: dict[str, st.SearchStrategy[Any]] = {
    "name": pool_names,
    "description": texts,
    "tags": st.lists(st.sampled_from(["x", "apimd:mutex", "apimd:timeout:5"]), max_size=2),
    "value": texts,
    "secret": st.booleans(),
    "type": st.sampled_from(["none", "manual", "bearer"]),
    "token": pool_names,
    "client_id": texts,
    "client_secret": texts | st.just("••••"),
    "auth": pool_names,
    "refresh_workflow": pool_names,
    "headers": st.dictionaries(header_names, texts, max_size=2),
    "params": st.dictionaries(header_names, texts, max_size=2),
    "variables": st.dictionaries(variable_ids, texts, max_size=2),
    "url": st.just(SAFE_URL) | malformed_urls,
    "method": st.sampled_from(["GET", "POST", "delete"]),
    "timeout": st.integers(1, 300),
    "conditions": st.just([{"source": "status", "op": "eq", "value": 200}]),
    "steps": st.lists(pool_names, min_size=1, max_size=3),
    "targets": st.lists(pool_names, min_size=1, max_size=2),
    "every": st.sampled_from(["1m", "1h"]),
    "cron": st.sampled_from(["0 3 * * *"]),
    "timezone": st.sampled_from(["UTC", "Europe/Paris"]),
    "enabled": st.booleans(),
    "jitter": st.integers(0, 10),
    "stop_on_failure": st.booleans(),
}
ALWAYS = {Schedule: ("every",), AuthSetting: ("type",)}


def shaped_like(model: type[BaseModel]) -> st.SearchStrategy[Any]:
    """Objects shaped like `model`: its required fields and a few others with plausible values
    (so some are stored and later requests meet them), or any subset of its fields with wrong
    types and unknown fields mixed in."""
    keys = {name: info.alias or name for name, info in model.model_fields.items()}
    required = [
        keys[name]
        for name, info in model.model_fields.items()
        if info.is_required() and name != "name"
    ] + list(ALWAYS.get(model, ()))
    optional = sorted(k for k in keys.values() if k in VALID and k not in required)
    anything = {
        key: st.one_of(PLAUSIBLE.get(key, json_values), json_values) for key in keys.values()
    }

    def likely_with(chosen: list[str]) -> st.SearchStrategy[dict[str, Any]]:
        fields = [*required, *chosen]
        return st.fixed_dictionaries({k: VALID.get(k, json_values) for k in fields})

    chosen = (
        st.lists(st.sampled_from(optional), max_size=2, unique=True) if optional else st.just([])
    )
    likely = chosen.flatmap(likely_with)
    extra = st.dictionaries(texts, json_values, max_size=2)
    wrong = st.builds(
        lambda base, more: {**more, **base}, st.fixed_dictionaries({}, optional=anything), extra
    )
    return likely | likely | wrong


def project_documents() -> st.SearchStrategy[Any]:
    variables = st.dictionaries(
        variable_names,
        texts | st.fixed_dictionaries({"value": texts}, optional={"secret": st.booleans()}),
        max_size=3,
    )
    return st.fixed_dictionaries(
        {},
        optional={
            "version": st.just(1) | json_values,
            "variables": variables | json_values,
            "auth": st.lists(shaped_like(AuthSetting), max_size=2),
            "tokens": st.lists(shaped_like(Token), max_size=2),
            "calls": st.lists(shaped_like(Call), max_size=2),
            "workflows": st.lists(shaped_like(Workflow), max_size=2),
            "schedules": st.lists(shaped_like(Schedule), max_size=2),
            "bogus": json_values,
        },
    )


BODIES: dict[type[BaseModel], st.SearchStrategy[Any]] = {
    model: shaped_like(model) for model in (Variable, AuthSetting, Token, Call, Workflow, Schedule)
}
BODIES[Project] = project_documents()
BODIES[RunRequest] = shaped_like(RunRequest)
BODIES[CompleteSignInRequest] = st.fixed_dictionaries(
    {"url": malformed_urls | st.just(SAFE_URL + "?state=x&code=y") | texts}
)


@dataclass
class Generated:
    method: str
    target: str
    body: bytes | None
    content_type: str = "application/json"


def _path_value(name: str, *, run: bool) -> st.SearchStrategy[str]:
    if name == "id":
        # Deferred: the seeded results exist only once the fixture ran.
        seeded = st.deferred(lambda: st.sampled_from(RESULT_IDS))
        return seeded | texts.map(lambda value: quote(value, safe=""))
    if run:
        # Only names that do not exist: a run must never send real traffic.
        suffix = st.text(alphabet=string.ascii_letters + string.digits + "é.-", max_size=12)
        return suffix.map(lambda s: quote("unknown-" + s, safe=""))
    quoted = names.map(lambda value: quote(value, safe=""))
    raw_dots = st.sampled_from(["..", ".", "%2e%2e", "a%2Fb"])
    return quoted | raw_dots


QUERY_VALUES: dict[str, st.SearchStrategy[str]] = {
    "boolean": st.sampled_from(["true", "false", "1", "0", "yes", "no", "maybe", ""]) | texts,
    "integer": st.integers(-5, 2000).map(str) | texts,
    "since": st.sampled_from(["2020-01-01T00:00:00Z", "2020-01-01", "yesterday"]) | texts,
    "outcome": st.sampled_from(["PASS", "fail", "SKIPPED", "nope"]) | texts,
    "window": st.sampled_from(["24h", "7d", "0s", "-1h", "1y", "9999999999d", "3000000d"])
    | st.integers(1, 10**30).map(lambda n: f"{n}s")
    | texts,
}


def requests_for(route: Route) -> st.SearchStrategy[Generated]:
    # Endpoints that act (run, refresh, sign in) get only names that do not exist.
    run = route.path.endswith(("/run", "/refresh", "/signin"))
    path_parts = [
        _path_value(part[1:-1], run=run) if part.startswith("{") else st.just(part)
        for part in route.path.split("/")
    ]
    path = st.tuples(*path_parts).map("/".join)
    query_fields = {
        name: QUERY_VALUES.get(name, QUERY_VALUES.get(kind, texts))
        for name, kind, _text in route.query
    }
    query = st.fixed_dictionaries({}, optional=query_fields)
    extra_query: st.SearchStrategy[dict[str, str]] = st.dictionaries(
        texts, texts, max_size=2
    ) | st.just({})
    full_query = st.builds(lambda q, x: {**x, **q}, query, extra_query)
    body: st.SearchStrategy[tuple[bytes | None, str]]
    if route.request is not None:
        shaped = BODIES.get(route.request, shaped_like(route.request)).map(_safe_urls)
        encoded = st.one_of(shaped, shaped, shaped, json_values).map(
            lambda doc: (json.dumps(doc).encode(), "application/json")
        )
        odd = st.sampled_from(
            [
                (b"", "application/json"),
                (b"{", "application/json"),
                (b"[1]", "text/plain"),
                (b'{"json": NaN, "url": "x", "value": Infinity}', "application/json"),
                (b'{"timeout": 1e999, "url": "x"}', "application/json"),
            ]
        ) | st.binary(max_size=20).map(lambda raw: (raw, "application/json"))
        hostile = deep_json | st.builds(with_surrogate, shaped, surrogate_texts)
        body = st.one_of(
            encoded, encoded, encoded, odd, hostile.map(lambda raw: (raw, "application/json"))
        )
        if run:
            body = body | st.just((None, "application/json"))
    else:
        body = st.just((None, "application/json")) | json_values.map(
            lambda doc: (json.dumps(doc).encode(), "application/json")
        )

    def build(p: str, q: dict[str, str], b: tuple[bytes | None, str], same_name: bool) -> Generated:
        raw, content_type = b
        if same_name and route.method == "PUT" and raw:
            # Mostly the body names what the URL names (or nothing), as a client sends it.
            try:
                document = json.loads(raw)
            except (ValueError, RecursionError):  # deep nesting is one of the strategies
                document = None
            if isinstance(document, dict):
                document.pop("name", None)
                raw = json.dumps(document).encode()
        target = p + ("?" + urlencode(q) if q else "")
        return Generated(route.method, target, raw, content_type)

    return st.builds(build, path, full_query, body, st.booleans() | st.just(True))


OPERATIONS = [route for route in routes() if not route.stream]


def _check(route: Route | None, status: int, content_type: str, raw: bytes) -> None:
    assert status < 500, raw[:2000]
    if route is not None and route.text is not None and status == 200:
        assert content_type == route.text, content_type  # `/metrics`: Prometheus text
        return
    assert content_type.startswith("application/json"), (status, content_type, raw[:200])
    document = json.loads(raw)
    if status >= 400:
        error = ErrorBody.model_validate(document).error
        assert error.code and error.message, document
        return
    assert 200 <= status < 300, (status, document)
    if route is not None and route.response is not None:
        route.response.model_validate(document)


FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.mark.parametrize("route", OPERATIONS, ids=[f"{r.method} {r.path}" for r in OPERATIONS])
def test_generated_requests_get_a_documented_answer(served: Served, route: Route) -> None:
    seed(served)  # what earlier operations changed (or pruned) is put back

    @FUZZ_SETTINGS
    @given(generated=requests_for(route))
    def check(generated: Generated) -> None:
        status, content_type, raw = served.request(
            generated.method, generated.target, generated.body, generated.content_type
        )
        _check(route, status, content_type, raw)

    check()


@FUZZ_SETTINGS
@given(method=st.sampled_from(["GET", "PUT", "POST", "DELETE", "PATCH"]), path=texts)
def test_unknown_paths_and_methods_get_json_errors(served: Served, method: str, path: str) -> None:
    status, content_type, raw = served.request(method, "/v1/" + quote(path), b"{}")
    _check(None, status, content_type, raw)


def test_the_fuzzed_operations_are_every_documented_one(served: Served) -> None:
    status, _type, raw = served.request("GET", "/v1/openapi.json")
    assert status == 200
    documented = {
        (method.upper(), path) for path, ops in json.loads(raw)["paths"].items() for method in ops
    }
    fuzzed = {(r.method, r.path) for r in OPERATIONS}
    streamed = {(r.method, r.path) for r in routes() if r.stream}
    assert documented == fuzzed | streamed | {("GET", "/v1/openapi.json")}
    status, _type, raw = served.request("GET", "/v1/health")
    assert status == 200 and json.loads(raw)["ok"] is True


BODY_TAKING = [route for route in OPERATIONS if route.request is not None]


def _error(raw: bytes) -> dict[str, Any]:
    error: dict[str, Any] = json.loads(raw)["error"]
    return error


@pytest.mark.parametrize("route", BODY_TAKING, ids=[f"{r.method} {r.path}" for r in BODY_TAKING])
def test_json_nested_1000_deep_is_a_400_on_every_body_taking_route(
    served: Served, route: Route
) -> None:
    target = route.path.replace("{kind}", "calls").replace("{name}", "unknown-deep")
    for body in ("[" * 1000 + "]" * 1000, '{"value": ' + "[" * 200 + "]" * 200 + "}"):
        status, _type, raw = served.request(route.method, target, body.encode())
        assert status == 400, raw[:300]
        error = _error(raw)
        assert error["code"] == "too_deep"
        assert "nested more than 64 levels deep" in error["message"]


def test_a_lone_surrogate_in_a_variable_is_a_400_naming_the_field(served: Served) -> None:
    status, _type, raw = served.request("PUT", "/v1/variables/X", b'{"value": "ab\\ud800"}')
    assert status == 400, raw
    error = _error(raw)
    assert error["code"] == "invalid_text"
    assert error["field"] == "value"
    assert "lone UTF-16 surrogate" in error["message"] and "character 3" in error["message"]
    status, _type, raw = served.request("GET", "/v1/variables/X")
    assert status == 404, "the refused variable was stored"


def test_a_malformed_pasted_url_is_a_400_naming_the_url(served: Served) -> None:
    body = json.dumps({"url": "http://[::1/tokens/callback?state=a&code=b"}).encode()
    status, _type, raw = served.request("POST", "/v1/signins/complete", body)
    assert status == 400, raw
    error = _error(raw)
    assert error["field"] == "url"
    assert "not a readable URL" in error["message"]
