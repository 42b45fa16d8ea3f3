"""Conditions made ready at load (issue 18): the prepared lookup, comparison and check give what
the general ones give, for every source, op and value kind."""

from __future__ import annotations

import dataclasses
import gc
import json
from typing import Any, cast, get_args

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict

from apimd.engine import compare, conditions, lookups
from apimd.engine.conditions import ResponseView, evaluate
from apimd.model.resources import Condition, ConditionOp

# --- values, documents and paths ---------------------------------------------------------------

NAMES = ["a", "b", "id", "items", "_x"]
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**20), max_value=10**20)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from(["", "1", "1.0", " 2 ", "1e3", "-0", "abc", "true", "null", "a", "[1]"])
    | st.text(max_size=6)
)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(NAMES) | st.text(max_size=3), children, max_size=4)
    ),
    max_leaves=12,
)
# Values that read alike in another kind (a bool and 1, an int and its text, a list and its JSON):
# drawn on both sides often, so the comparisons meet them.
LOOKALIKES = [
    0,
    1,
    -1,
    True,
    False,
    None,
    0.0,
    1.0,
    0.1,
    2.5,
    10**30,
    "0",
    "1",
    "1.0",
    "0.1",
    "1e30",
    "true",
    "false",
    "null",
    "",
    "a",
    "ab",
    [1],
    [1, "a"],
    {"a": 1},
    "[1]",
    '{"a": 1}',
    ["a", "ab"],
]
# Expected values as a project file gives them: JSON values, numbers as text, non-finite floats.
expected_values = (
    st.sampled_from(LOOKALIKES)
    | json_values
    | st.sampled_from(
        [float("inf"), float("-inf"), float("nan"), "1e99999999999999", "[1, 2]", '{"a": 1}', "[x"]
    )
)


@st.composite
def plain_paths(draw: st.DrawFn) -> str:
    """`$.a[0].b`-like paths (the ones walked directly), often naming what the documents hold."""
    steps = draw(
        st.lists(
            st.sampled_from(NAMES).map(lambda name: f".{name}")
            | st.integers(min_value=0, max_value=4).map(lambda index: f"[{index}]"),
            max_size=4,
        )
    )
    path = "$" + "".join(steps)
    if draw(st.booleans()) and path != "$":
        path = path[2:] if path.startswith("$.") else path[1:]  # the root left out
    return path


json_paths = plain_paths() | st.sampled_from(
    ["$..id", "$[*]", "$.items[*].id", "$[-1]", "$['a']", "$[0:2]", "$[?@.id > 1]", "$.", "[", "$$"]
)


def response(
    body: bytes, *, status: int = 200, headers: list[tuple[str, str]] | None = None
) -> ResponseView:
    return ResponseView(
        status=status,
        headers=CIMultiDict(headers or []),
        body=body,
        text=body.decode("utf-8", errors="replace"),
        response_time_ms=12.5,
        size=len(body),
    )


# --- comparisons -------------------------------------------------------------------------------


@settings(max_examples=1500, deadline=None)
@given(actual=st.sampled_from(LOOKALIKES) | json_values, expected=expected_values)
def test_prepared_expected_compares_as_the_general_functions(actual: Any, expected: Any) -> None:
    prepared = compare.Expected(expected)
    assert prepared.equal(actual) == compare.equal(actual, expected)
    assert prepared.order(actual) == compare.order(actual, expected)
    assert prepared.contains(actual) == compare.contains(actual, expected)


@pytest.mark.parametrize(
    ("actual", "expected"),
    [
        (200, 200),
        (200, "200"),
        (200, "2e2"),
        (10**30, "1e30"),
        (1, True),
        (True, 1),
        (False, 0),
        (True, "true"),
        (0.1, "0.1"),
        (1.0, 1),
        (1, 1.0),
    ],
)
def test_prepared_expected_on_numbers_reads_them_as_decimals(actual: Any, expected: Any) -> None:
    prepared = compare.Expected(expected)
    assert prepared.equal(actual) == compare.equal(actual, expected)
    assert prepared.order(actual) == compare.order(actual, expected)


# --- lookups -----------------------------------------------------------------------------------


@settings(max_examples=1500, deadline=None)
@given(document=json_values | st.just("not json {"), path=json_paths)
def test_prepared_json_lookup_is_the_general_one(document: Any, path: str) -> None:
    body = document.encode() if document == "not json {" else json.dumps(document).encode()
    parsed = lookups.ParsedBody(response(body))
    prepared = lookups.prepare("json", path, {})
    assert prepared is not None
    assert prepared(parsed) == lookups.look_up("json", path, {}, parsed)


@settings(max_examples=300, deadline=None)
@given(
    source=st.sampled_from(["status", "response_time", "size", "header", "cookie", "body", "xml"]),
    path=st.none() | st.sampled_from(["content-type", " X-A ", "x-a", "(b)", "//a", "server"]),
    headers=st.lists(
        st.tuples(st.sampled_from(["X-A", "x-a", "Content-Type"]), st.text(max_size=3))
    ),
    status=st.integers(min_value=100, max_value=599),
)
def test_prepared_lookup_of_every_source_is_the_general_one(
    source: str, path: str | None, headers: list[tuple[str, str]], status: int
) -> None:
    parsed = lookups.ParsedBody(response(b"<a>b</a>", status=status, headers=headers))
    prepared = lookups.prepare(source, path, {})
    if prepared is not None:
        assert prepared(parsed) == lookups.look_up(source, path, {}, parsed)


# --- whole conditions --------------------------------------------------------------------------

OPS = [*get_args(ConditionOp), None, "bogus"]


@st.composite
def cases(draw: st.DrawFn) -> tuple[Condition, bytes]:
    source = draw(st.sampled_from(["json", "json", "json", "status", "header", "size", "body"]))
    path: str | None = None
    if source == "json":
        path = draw(json_paths)
    elif source == "header":
        path = draw(st.sampled_from(["Content-Type", "x-missing"]))
    elif source == "body":
        path = draw(st.sampled_from([None, "(a)", "["]))
    condition = Condition.model_construct(
        source=cast(Any, source),
        path=path,
        op=draw(st.sampled_from(OPS)),
        value=draw(expected_values),
        save_as=draw(st.none() | st.just("SAVED")),
        on_fail=draw(st.sampled_from(["fail", "warning"])),
        namespaces={},
    )
    body = json.dumps(draw(json_values)).encode()
    return condition, body


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=cases())
def test_prepared_check_gives_the_general_result_and_saved_text(
    case: tuple[Condition, bytes],
) -> None:
    condition, body = case
    view = response(body, headers=[("Content-Type", "application/json")])
    prepared = conditions._rendered(0, condition, lambda text, where: text)
    general = dataclasses.replace(prepared, look=None, compare=None)  # as a worker checks it
    fast = conditions._check(prepared, lookups.ParsedBody(view))
    slow = conditions._check(general, lookups.ParsedBody(view))
    assert fast == slow
    assert fast[0].model_fields_set == slow[0].model_fields_set


# --- plans -------------------------------------------------------------------------------------


def _doc_response() -> ResponseView:
    return response(json.dumps({"items": [{"id": 7}], "n": 3}).encode())


async def test_a_plan_is_made_once_and_again_when_a_field_is_set_anew() -> None:
    condition = Condition(source="json", path="$.items[0].id", op="eq", value=7)
    first = await evaluate([condition], _doc_response(), lambda text, where: text)
    assert first.results[0].passed
    plan = conditions._planned(condition)
    assert conditions._planned(condition) is plan
    condition.value = 8
    second = await evaluate([condition], _doc_response(), lambda text, where: text)
    assert not second.results[0].passed
    assert second.results[0].message == "expected eq 8"
    condition.path = "$.n"
    third = await evaluate([condition], _doc_response(), lambda text, where: text)
    assert third.results[0].actual == 3


async def test_a_plan_goes_with_its_condition() -> None:
    condition = Condition(source="status", op="eq", value=200)
    await evaluate([condition], _doc_response(), lambda text, where: text)
    key = id(condition)
    assert key in conditions._PLANS
    del condition
    gc.collect()
    assert key not in conditions._PLANS


async def test_a_json_path_is_compiled_once_not_per_call(monkeypatch: pytest.MonkeyPatch) -> None:
    compiled: list[str] = []
    compile_path = lookups._JSONPATH.compile

    def counted(path: str) -> Any:
        compiled.append(path)
        return compile_path(path)

    monkeypatch.setattr(lookups._JSONPATH, "compile", counted)
    lookups._compiled_json_path.cache_clear()
    checks = [
        Condition(source="json", path="$.items[*].id", op="exists"),
        Condition(source="json", path="items[0].id", op="eq", value=7),
        Condition(source="json", path="$['n']", op="ge", value="%%N%%"),
    ]

    def render(text: str, where: str) -> str:
        return text.replace("%%N%%", "3")

    for _ in range(5):
        evaluation = await evaluate(checks, _doc_response(), render)
        assert [result.passed for result in evaluation.results] == [True, True, True]
    assert sorted(compiled) == ["$.items[*].id", "$.items[0].id", "$['n']"]
