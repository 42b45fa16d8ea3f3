"""The recorder's shortcuts give the result the general path gives (issue 18 item 3): a response
body a condition already parsed as JSON is not parsed again for redaction, the URL the executor
built is the one recorded, and system variables are made only when looked up."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from apimd.engine import redact
from apimd.engine.bounds import cap_value, saved_text
from apimd.engine.codings import decode_body
from apimd.engine.http import HttpRequest
from apimd.engine.recording import STORED_VALUE_CHARS, ResultRecorder, cap_text, full_url
from apimd.engine.redact import Redactor, storable
from apimd.engine.services import Definitions
from apimd.engine.template import Scope, SystemVariables, render, system_variables
from apimd.model.common import LONE_SURROGATE
from apimd.model.project import Project
from apimd.model.result import ConditionResult, RequestRecord, ResponseRecord, Result
from tests.support.projects import run_doc

SECRET = "s3cr3t-value/é"

_BIG = {"items": [{"id": n, "name": f"item-{n}", "note": "é\u2028"} for n in range(4000)]}

BODIES: dict[str, tuple[bytes, str]] = {
    "plain": (b'{"items": [{"id": 7}], "ok": true}', "application/json"),
    "redacted-keys": (
        b'{"items": [{"id": 1}], "access_token": "tok-123", "nested": {"Password": "p"}}',
        "application/json",
    ),
    "escaped-key": (
        b'{"items": [{"id": 1}], "\\u0061ccess_token": "x", "s": "\\u00e9\\u2028\\ud800"}',
        "application/json",
    ),
    "secret-inside": (
        json.dumps({"items": [{"id": 2}], "echo": f"the secret is {SECRET}"}).encode(),
        "application/json; charset=utf-8",
    ),
    "secret-escaped": (
        json.dumps({"items": [{"id": 2}], "echo": SECRET}, ensure_ascii=True).encode(),
        "application/json",
    ),
    "not-utf-8": (b'{"items": [{"id": 3}], "k": "\xff\xfe\xc3"}', "application/json"),
    "latin-1": (
        '{"items": [{"id": 4}], "k": "é"}'.encode("latin-1"),
        "application/json; charset=latin-1",
    ),
    "huge-number": (
        b'{"items": [{"id": 1e400}], "big": 123456789012345678901234567890}',
        "application/json",
    ),
    "nan": (b'{"items": [{"id": NaN}]}', "application/json"),
    "duplicate-keys": (b'{"items": [{"id": 1}], "items": [{"id": 2}]}', "application/json"),
    "array-as-text": (b'[{"id": 1}]', "text/plain"),
    "scalar-json": (b'"just a string"', "application/json"),
    "whitespace": (b'  \n{ "items" : [ { "id" : 5 } ] }\n', "application/json"),
    "big": (json.dumps(_BIG).encode(), "application/json"),
    "not-json": (b"{items: oops", "application/json"),
}


@pytest.fixture
async def site(aiohttp_server: Callable[[web.Application], Awaitable[TestServer]]) -> str:
    async def body(request: web.Request) -> web.Response:
        data, content_type = BODIES[request.match_info["name"]]
        return web.Response(body=data, headers={"Content-Type": content_type})

    app = web.Application()
    app.router.add_get("/{name}", body)
    return str((await aiohttp_server(app)).make_url("")).rstrip("/")


def _project(site: str, name: str, conditions: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "variables": {"S": {"value": SECRET, "secret": True}},
        "calls": [{"name": "c", "url": f"{site}/{name}", "conditions": conditions}],
    }


async def _stored(site: str, name: str, conditions: list[dict[str, Any]]) -> dict[str, Any]:
    result = await run_doc(_project(site, name, conditions), "c")
    assert result.response is not None
    # As the store keeps it: the JSON read back.
    stored = Result.model_validate_json(result.model_dump_json())
    assert stored.response is not None
    recorded = stored.response.model_dump(mode="json")
    del recorded["headers"]["Date"]  # the one part that changes from one second to the next
    return recorded


@pytest.mark.parametrize("name", sorted(BODIES))
async def test_a_body_parsed_by_a_condition_is_recorded_as_an_unparsed_one(
    site: str, name: str
) -> None:
    """A json condition parses the body; the recorder reuses that parse. The stored response is
    the one recorded when no condition parsed it (and the recorder did), byte for byte, and the
    one the redactor gives on its own."""
    parsed_by_condition = await _stored(
        site, name, [{"source": "json", "path": "$.items[0].id", "op": "exists"}]
    )
    parsed_by_recorder = await _stored(site, name, [{"source": "status", "op": "eq", "value": 200}])
    assert parsed_by_condition == parsed_by_recorder
    data, content_type = BODIES[name]
    expected = Redactor([SECRET]).body(decode_body(data, content_type), content_type)
    stored = parsed_by_condition["body"]
    if parsed_by_condition["body_truncated"]:
        assert expected.encode().startswith(stored.encode())
    else:
        assert stored == expected
    assert SECRET not in stored


async def test_the_recorded_url_is_the_one_computed_from_the_request(site: str) -> None:
    """The executor's wire URL (kept for the record) is what `full_url` computes afresh."""
    params = {"q": "a b&c=d", "é": "ü/?#", "empty": ""}
    doc = {"calls": [{"name": "c", "url": f"{site}/plain?x=1#frag", "params": params}]}
    result = await run_doc(doc, "c")
    assert result.request is not None
    fresh = HttpRequest("GET", f"{site}/plain?x=1#frag", params=list(params.items()))
    assert result.request.url == full_url(fresh)
    assert "#" not in result.request.url


def test_system_variables_made_on_lookup_are_the_eager_ones() -> None:
    instant = datetime(2026, 12, 6, 23, 59, 59, 999_999, tzinfo=UTC)
    names = {
        "CALL_NAME": "c",
        "WORKFLOW_NAME": "",
        "RUN_ID": "r-1",
        "TOKEN_NAME": "",
        "AUTH_NAME": "",
    }
    eager = system_variables(call_name="c", run_id="r-1", instant=instant)
    lazy = SystemVariables(names, instant)
    assert lazy["GUID"] == lazy["UUID"]  # one v4, whichever is asked first
    assert list(lazy) == list(eager) and len(lazy) == len(eager)
    as_dict = dict(lazy)
    for key in ("UUID", "GUID", "RANDINT"):
        assert as_dict.pop(key) and eager.pop(key)
    assert as_dict == eager
    assert eager["DATETIME"] == "2026-12-06T23:59:59Z" and eager["UNIXTIME"] == "1796601599"


def test_a_call_name_wins_over_system_values_and_unknown_names_are_unknown() -> None:
    instant = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    lazy = SystemVariables({"STATE": "s-1", "DATE": "from sign-in"}, instant)
    assert lazy["DATE"] == "from sign-in"
    assert lazy["TIME"] == "03:04:05"
    assert lazy.get("NOPE") is None
    scope = Scope({}, lazy, instant=instant)
    assert render("%%state%% %%time%% {{ RANDINT }}", scope, "t").startswith("s-1 03:04:05 ")
    first = render("%%UUID%%", scope, "t")
    assert render("%%GUID%% %%UUID%%", scope, "t") == f"{first} {first}"


_CONDITIONS = [
    ConditionResult(source="status", op="eq", expected=200, actual=200),
    ConditionResult(source="json", path="$.id", op="exists", actual=1000, save_as="ID"),
    ConditionResult(source="json", path="$.s", op="eq", expected="x", actual=f"is {SECRET}"),
    ConditionResult(source="json", path="$.n", op="eq", expected=4321, actual=4321),
    ConditionResult(source="json", path="$['\ud800']", actual="\ud800", message="no \ud800"),
    ConditionResult(source="body", path=SECRET, op="matches", expected=SECRET, message=SECRET),
    ConditionResult(source="json", path="$.l", actual=["a", SECRET, {"k": 4321}]),
    ConditionResult(source="json", path="$.long", actual="y" * 5000, message=""),
    ConditionResult(source="header", path="X", op="eq", expected=None, actual=None, found=False),
]


def _redacted_the_long_way(item: ConditionResult, redactor: Redactor) -> ConditionResult:
    """`item` as the recorder's general path stores it: every field redacted, `actual` capped."""
    return item.model_copy(
        update={
            "path": redactor.text(item.path) if item.path else item.path,
            "actual": cap_value(redactor.value(item.actual), STORED_VALUE_CHARS),
            "expected": redactor.value(item.expected),
            "message": redactor.text(item.message) if item.message else None,
        }
    )


@pytest.mark.parametrize("secrets", [[], [SECRET, "4321"]])
def test_a_condition_redaction_leaves_alone_is_recorded_as_the_copy_would_be(
    secrets: list[str],
) -> None:
    """The recorder keeps a condition's result as it is when redaction and the cut change none
    of its values; what it records is the redacted copy, whichever way it went."""
    recorder = ResultRecorder(secrets)
    redactor = Redactor(secrets)
    for item in _CONDITIONS:
        copy = _redacted_the_long_way(item, redactor)
        recorded = recorder._condition(item)
        assert recorded.model_dump() == copy.model_dump()
    assert recorder._condition(_CONDITIONS[0]) is _CONDITIONS[0]


@pytest.mark.parametrize(
    "value", [0, -7, 10**30, True, False, None, 1.5, float("nan"), 1e400, [1, "a"], {"k": 2}]
)
def test_a_saved_value_is_its_json_text(value: Any) -> None:
    """Integers skip the encoder; every value still saves as `json.dumps` writes it."""
    assert saved_text(value) == json.dumps(value)


def test_a_system_variable_got_is_the_one_looked_up() -> None:
    lazy = SystemVariables({"CALL_NAME": "c"}, datetime(2026, 1, 2, tzinfo=UTC))
    assert lazy.get("UUID") == lazy["UUID"] == lazy.get("GUID")
    assert lazy.get("CALL_NAME") == "c" and lazy.get("DATE") == "2026-01-02"
    assert lazy.get("NOPE") is None and lazy.get("NOPE", "x") == "x"


@pytest.mark.parametrize("secrets", [[], [SECRET]])
def test_headers_are_redacted_as_their_values_would_be(secrets: list[str]) -> None:
    """Without a known secret the headers skip `text`; they come out as `text` would make them."""
    headers = {
        "X-Plain": "v",
        "X-Lone": "a\ud800b",
        "X-Echo": f"is {SECRET}",
        "Authorization": "Bearer t",
        "X-\udcff": "k",
    }
    redactor = Redactor(secrets)
    expected = {
        storable(k): "••••" if k.lower() == "authorization" else redactor.text(v)
        for k, v in headers.items()
    }
    assert redactor.headers(headers) == expected


def test_the_environment_merged_once_follows_updates_and_saved_variables() -> None:
    definitions = Definitions(Project.model_validate({"variables": {"A": "1", "B": "2"}}))
    first = definitions.environment()
    first["A"] = "changed by a caller"
    assert definitions.environment() == {"A": "1", "B": "2"}
    definitions.remember_variables({"B": "saved", "C": "3"}, secret=False)
    assert definitions.environment() == {"A": "1", "B": "saved", "C": "3"}
    definitions.update(Project.model_validate({"variables": {"A": "new"}}))
    assert definitions.environment() == {"A": "new", "B": "saved", "C": "3"}


def _slow_json_body(text: str, content_type: str, secrets: list[str]) -> str:
    """A JSON body as stored, computed the long way: parsed, keys masked, re-encoded compact,
    every lone surrogate written back as its escape, then secrets masked."""
    redactor = Redactor(secrets)
    document = redact._mask_json_keys(json.loads(text))
    compact = json.dumps(document, ensure_ascii=False, separators=(",", ":"))
    compact = LONE_SURROGATE.sub(lambda match: f"\\u{ord(match[0]):04x}", compact)
    return redactor.text(compact)


_JSON_BODIES = [
    name for name in sorted(BODIES) if name not in ("not-json", "not-utf-8", "big", "nan")
]


@pytest.mark.parametrize("secrets", [[], [SECRET]])
@pytest.mark.parametrize("name", _JSON_BODIES)
def test_a_json_body_seen_before_is_stored_as_it_was_computed(
    name: str, secrets: list[str]
) -> None:
    """The compact text of a small body is remembered by its text: the second, third time the
    same body is recorded (from memory, whether parsed by a condition or not) it is byte for byte
    the first, and the text computed the long way; an ASCII one skips the surrogate scan."""
    data, content_type = BODIES[name]
    text = decode_body(data, content_type)
    expected = _slow_json_body(text, content_type, secrets)
    redact._remembered_json.clear()
    redactor = Redactor(secrets)
    first = redactor.body(text, content_type)
    again = redactor.body(text, content_type, parsed=(json.loads(text),))
    copy = redactor.body("".join(list(text)), content_type)  # an equal string, not the same one
    assert first == again == copy == expected
    assert (text, "json" not in content_type) in redact._remembered_json


def test_the_same_text_as_json_and_as_plain_text_is_remembered_apart() -> None:
    """Whether the body must be an object or array (not declared JSON) is part of what is
    remembered: a scalar JSON text is re-encoded as JSON, kept as written as plain text."""
    redact._remembered_json.clear()
    redactor = Redactor()
    for _ in range(2):
        assert redactor.body('"a"  ', "application/json") == '"a"'
        assert redactor.body('"a"  ', "text/plain") == '"a"  '
        assert redactor.body("[1,  2]", "text/plain") == "[1,2]"
        assert redactor.body("not json", "application/json") == "not json"


def test_remembered_bodies_are_bounded_and_large_ones_never_kept() -> None:
    """At most REMEMBERED_JSON_BODIES are kept, the least recently used going first; a body over
    REMEMBERED_JSON_BODY_CHARS is computed every time."""
    redact._remembered_json.clear()
    redactor = Redactor()
    bodies = [
        json.dumps({"n": n, "access_token": "t"}) for n in range(redact.REMEMBERED_JSON_BODIES)
    ]
    for body in bodies:
        redactor.body(body, "application/json")
    redactor.body(bodies[0], "application/json")  # now the most recently used
    redactor.body('{"new": 1}', "application/json")
    assert len(redact._remembered_json) == redact.REMEMBERED_JSON_BODIES
    assert (bodies[0], False) in redact._remembered_json
    assert (bodies[1], False) not in redact._remembered_json
    for body in [bodies[1], *bodies[::7]]:
        assert redactor.body(body, "application/json") == _slow_json_body(body, "json", [])
    large = json.dumps({"k": "x" * redact.REMEMBERED_JSON_BODY_CHARS})
    assert redactor.body(large, "application/json") == large.replace(" ", "")
    assert not any(key[0] == large for key in redact._remembered_json)


def _fields_sets(model: BaseModel) -> list[tuple[str, set[str]]]:
    """Every model's fields set, nested ones included, in order."""
    found = [(type(model).__name__, set(model.model_fields_set))]
    for name in model.model_fields_set:
        value = getattr(model, name)
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, BaseModel):
                found += _fields_sets(item)
    return found


@pytest.mark.parametrize("name", ["plain", "secret-inside", "not-json"])
async def test_a_result_validated_whole_is_the_one_its_models_make(site: str, name: str) -> None:
    """The recorder validates a result in one call, its records as dicts: it is the result the
    records made as models first give, fields set for fields set (what `exclude_unset` and the
    store see) and byte for byte."""
    conditions = [{"source": "json", "path": "$.items[0].id", "op": "exists", "save_as": "ID"}]
    result = await run_doc(_project(site, name, conditions), "c")
    assert result.request is not None and result.response is not None

    # What the recorder gave as keywords when it made each record a model first.
    keywords = {
        "client_cert", "id", "kind", "name", "trigger", "started_at", "finished_at", "outcome",
        "result", "http_status", "timings_ms", "size", "request", "response", "conditions",
        "variables", "retried_after_401", "error", "token", "workflow_run_id", "tls",
    }  # fmt: skip
    made = Result(
        **{field: getattr(result, field) for field in keywords}
        | {"request": RequestRecord(**result.request.model_dump())}
        | {"response": ResponseRecord(**result.response.model_dump())}
    )
    assert made == result
    assert _fields_sets(made) == _fields_sets(result)
    assert made.model_dump_json() == result.model_dump_json()
    assert made.model_dump_json(exclude_unset=True) == result.model_dump_json(exclude_unset=True)


_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(st.sampled_from(["a", "é", "\ud800", "$", " "]), max_size=6),
    st.just("y" * STORED_VALUE_CHARS),
    st.just("y" * (STORED_VALUE_CHARS + 1)),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.sampled_from(["k", "\udcff"]), st.integers(), max_size=2),
)


@settings(max_examples=300, deadline=None)
@given(path=_VALUES, actual=_VALUES, expected=_VALUES, message=_VALUES, secret=st.booleans())
def test_a_condition_left_alone_is_the_one_redacting_it_gives(
    path: Any, actual: Any, expected: Any, message: Any, secret: bool
) -> None:
    """A recorder that knows no secret keeps a plain condition's result as it is: what it
    records is what redacting and cutting each value records (with a secret or without)."""
    path = path if isinstance(path, str) or path is None else str(path)
    message = message if isinstance(message, str) or message is None else str(message)
    item = ConditionResult(
        source="json", path=path, actual=actual, expected=expected, message=message
    )
    secrets = ["a$a$"] if secret else []
    redactor = Redactor(secrets)
    copy = _redacted_the_long_way(item, redactor)
    recorded = ResultRecorder(secrets)._condition(item)
    assert json.dumps(recorded.model_dump()) == json.dumps(copy.model_dump())
    variables = {"A": path, "B": message} if path is not None and message is not None else {}
    expected_variables = {
        k: cap_value(redactor.value(v), STORED_VALUE_CHARS) for k, v in variables.items()
    }
    assert ResultRecorder(secrets).variables(variables) == expected_variables


@settings(max_examples=300, deadline=None)
@given(text=st.text(st.sampled_from(["a", "é", "€", "😀"]), max_size=12), limit=st.integers(0, 20))
def test_a_text_short_enough_is_kept_as_cutting_its_bytes_would(text: str, limit: int) -> None:
    """`cap_text` skips encoding a text of at most `limit // 4` characters: it is what cutting
    its UTF-8 bytes gives."""
    data = text.encode()
    expected = (text, False) if len(data) <= limit else (data[:limit].decode(errors="ignore"), True)
    assert cap_text(text, limit) == expected
