"""The condition evaluator (SPEC §2 "Conditions")."""

from __future__ import annotations

import asyncio
import json
import re
import resource
import threading
import time
from typing import Any, cast, get_args
from unittest import mock

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict

from apimd.engine import lookups as lookups_module
from apimd.engine import worker_pool
from apimd.engine.bounds import CONDITION_VALUE_CHARS, MAX_MATCHES, SAVED_VALUE_CHARS
from apimd.engine.conditions import (
    PROCESS_BODY_BYTES,
    THREAD_BODY_BYTES,
    Evaluation,
    ResponseView,
    evaluate,
)
from apimd.engine.errors import SetupError, UnknownVariable
from apimd.model.resources import Condition, ConditionOp

# --- helpers -----------------------------------------------------------------------------------


class FakeRender:
    """Stands in for the template engine: substitutes `%%X%%` from a dict, records each call."""

    def __init__(self, variables: dict[str, str] | None = None) -> None:
        self.variables = {k.upper(): v for k, v in (variables or {}).items()}
        self.calls: list[tuple[str, str]] = []

    def __call__(self, text: str, where: str) -> str:
        self.calls.append((text, where))

        def substitute(match: re.Match[str]) -> str:
            name = match.group(1).upper()
            if name not in self.variables:
                raise UnknownVariable(name, where)
            return self.variables[name]

        return re.sub(r"%%([A-Za-z_][A-Za-z0-9_]*)%%", substitute, text)


def response(
    body: str | bytes = "",
    *,
    status: int = 200,
    headers: list[tuple[str, str]] | None = None,
    time_ms: float = 120.5,
) -> ResponseView:
    raw = body.encode() if isinstance(body, str) else body
    return ResponseView(
        status=status,
        headers=CIMultiDict(headers or []),
        body=raw,
        text=raw.decode("utf-8", errors="replace"),
        response_time_ms=time_ms,
        size=len(raw),
    )


def cond(
    source: str, path: str | None = None, op: str | None = None, value: Any = None, **kw: Any
) -> Condition:
    return Condition(source=source, path=path, op=op, value=value, **kw)


async def run(
    conditions: list[Condition], resp: ResponseView, render: FakeRender | None = None
) -> Evaluation:
    return await evaluate(conditions, resp, render or FakeRender())


async def one(condition: Condition, resp: ResponseView) -> Any:
    evaluation = await run([condition], resp)
    return evaluation.results[0]


DOC = {
    "n": 200,
    "f": 1.0,
    "s": "abc",
    "ns": "200",
    "t": True,
    "z": None,
    "l": [1, "two", True],
    "o": {"a": 1},
    "items": [{"id": 1, "name": "x"}, {"id": 2, "name": "y"}],
}
JSON_BODY = json.dumps(DOC)


# --- sources -----------------------------------------------------------------------------------


async def test_status_source() -> None:
    result = await one(cond("status", op="eq", value=201), response(status=201))
    assert result.passed
    assert result.actual == 201
    assert result.source == "status"


async def test_response_time_and_size_sources() -> None:
    resp = response("hello", time_ms=250.25)
    evaluation = await run(
        [
            cond("response_time", op="lt", value=300),
            cond("response_time", op="gt", value="250.2"),
            cond("size", op="eq", value=5),
        ],
        resp,
    )
    assert [r.passed for r in evaluation.results] == [True, True, True]
    assert evaluation.results[0].actual == 250.25
    assert evaluation.results[2].actual == 5


async def test_header_is_case_insensitive() -> None:
    resp = response(headers=[("Content-Type", "application/json")])
    result = await one(cond("header", "content-TYPE", "eq", "application/json"), resp)
    assert result.passed
    assert result.actual == "application/json"


async def test_header_with_several_values_gives_a_list() -> None:
    resp = response(headers=[("Set-Cookie", "a=1"), ("X-Other", "z"), ("set-cookie", "b=2")])
    evaluation = await run(
        [
            cond("header", "Set-Cookie", "contains", "b=2"),
            cond("header", "Set-Cookie", "contains", "b="),
            cond("header", "Set-Cookie", save_as="COOKIES"),
        ],
        resp,
    )
    assert evaluation.results[0].actual == ["a=1", "b=2"]
    assert all(r.passed for r in evaluation.results)
    assert evaluation.extracted == {"COOKIES": '["a=1", "b=2"]'}


async def test_missing_header_is_not_found() -> None:
    resp = response(headers=[("A", "1")])
    evaluation = await run(
        [
            cond("header", "B", "eq", "1"),
            cond("header", "B", "not_exists"),
            cond("header", "A", "exists"),
            cond("header", "B", "exists"),
        ],
        resp,
    )
    first, absent, present, exists = evaluation.results
    assert (first.found, first.passed) == (False, False)
    assert "not found" in (first.message or "")
    assert absent.passed and present.passed
    assert not exists.passed


async def test_body_without_path_is_the_whole_text() -> None:
    result = await one(cond("body", op="contains", value="world"), response("hello world"))
    assert result.passed
    assert result.actual == "hello world"


async def test_body_regex_gives_first_group_or_whole_match() -> None:
    resp = response("order id=A-42 total=17")
    evaluation = await run(
        [
            cond("body", r"id=([A-Z]-\d+)", save_as="ORDER"),
            cond("body", r"total=\d+", save_as="TOTAL"),
            cond("body", r"missing=(\d+)", save_as="NOPE"),
        ],
        resp,
    )
    assert evaluation.extracted == {"ORDER": "A-42", "TOTAL": "total=17"}
    missing = evaluation.results[2]
    assert (missing.found, missing.passed) == (False, True)
    assert not evaluation.failed


async def test_body_regex_invalid_fails_with_message() -> None:
    result = await one(cond("body", "(unclosed", "exists"), response("x"))
    assert not result.passed
    assert "invalid regex" in (result.message or "")


async def test_json_path_gets_root_prepended() -> None:
    evaluation = await run(
        [
            cond("json", "s", "eq", "abc"),
            cond("json", "$.s", "eq", "abc"),
            cond("json", "o.a", "eq", 1),
            cond("json", "items[1].name", "eq", "y"),
        ],
        response(JSON_BODY),
    )
    assert [r.passed for r in evaluation.results] == [True, True, True, True]
    assert evaluation.results[0].path == "s"


async def test_json_path_starting_with_bracket_gets_root() -> None:
    result = await one(cond("json", "[0].id", "eq", 7), response('[{"id": 7}]'))
    assert result.passed


async def test_json_several_matches_give_a_list_none_is_not_found() -> None:
    evaluation = await run(
        [
            cond("json", "$.items[*].id", "eq", "[1, 2]"),
            cond("json", "$.items[*].id", save_as="IDS"),
            cond("json", "$.nothing", save_as="NOTHING"),
            cond("json", "$.nothing", "exists"),
        ],
        response(JSON_BODY),
    )
    several, extracted, nothing, exists = evaluation.results
    assert several.actual == [1, 2]
    assert several.passed
    assert extracted.passed
    assert evaluation.extracted == {"IDS": "[1, 2]"}
    assert (nothing.found, nothing.passed) == (False, True)
    assert (exists.found, exists.passed) == (False, False)


async def test_json_invalid_body_is_not_found_with_message() -> None:
    evaluation = await run(
        [cond("json", "$.a", "exists"), cond("json", "$.a", "not_exists")],
        response("<html>oops</html>"),
    )
    exists, not_exists = evaluation.results
    assert not exists.found
    assert not exists.passed
    assert exists.message == "body is not valid JSON: Expecting value at line 1 column 1"
    assert not_exists.passed


async def test_json_nan_is_not_json() -> None:
    result = await one(cond("json", "$", "exists"), response("NaN"))
    assert not result.found


async def test_json_invalid_path_fails_naming_the_error() -> None:
    evaluation = await run(
        [cond("json", "$.a[", "not_exists"), cond("json", "$.a[", save_as="A")],
        response(JSON_BODY),
    )
    for result in evaluation.results:
        assert not result.passed
        assert "invalid JSONPath '$.a['" in (result.message or "")
    assert evaluation.failed


async def test_json_path_is_strict_rfc9535() -> None:
    # Unions with `|` and non-standard functions belong to the library's lax dialect only.
    evaluation = await run(
        [
            cond("json", "$.s | $.n", "exists"),
            cond("json", "$.l[?isinstance(@, 'str')]", "exists"),
            cond("json", "$.l[?@ == 'two']", "eq", "two"),
            cond("json", "$.items[?@.id > 1].name", "eq", "y"),
        ],
        response(JSON_BODY),
    )
    assert [r.passed for r in evaluation.results] == [False, False, True, True]
    assert "invalid JSONPath" in (evaluation.results[0].message or "")


async def test_json_top_level_string_document_is_not_reparsed() -> None:
    evaluation = await run(
        [cond("json", "$", "eq", "[1]"), cond("json", "$[0]", "exists")],
        response('"[1]"'),
    )
    root, index = evaluation.results
    assert root.actual == "[1]"
    assert root.passed
    assert not index.found


async def test_json_match_filter_times_out(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lookups_module, "REGEX_TIMEOUT_S", 0.2)
    body = json.dumps({"items": ["a" * 40 + "!"]})
    started = time.monotonic()
    result = await one(cond("json", "$.items[?match(@, '(a|aa)+')]", "exists"), response(body))
    assert time.monotonic() - started < 2.0
    assert not result.passed
    assert result.message == "regex timed out"


async def test_xml_element_attribute_and_function_values() -> None:
    body = '<r><item id="1">one <b>bold</b> end</item><item id="2">two</item><e/></r>'
    evaluation = await run(
        [
            cond("xml", "/r/item[1]", "eq", "one bold end"),
            cond("xml", "/r/item[2]/@id", "eq", 2),
            cond("xml", "count(//item)", save_as="COUNT"),
            cond("xml", "count(//item) div 4", "eq", "0.5"),
            cond("xml", "count(//item) div 3", "lt", "0.67"),
            cond("xml", "//item/@id", save_as="IDS"),
            cond("xml", "boolean(//e)", "eq", "true"),
            cond("xml", "string(/r/item[2])", "eq", "two"),
            cond("xml", "//missing", "not_exists"),
        ],
        response(body),
    )
    assert [r.passed for r in evaluation.results] == [True] * 9
    assert evaluation.results[2].actual == 2
    assert evaluation.results[5].actual == ["1", "2"]
    assert evaluation.results[6].actual is True
    assert evaluation.extracted == {"COUNT": "2", "IDS": '["1", "2"]'}


async def test_xml_namespaces() -> None:
    body = (
        '<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/">'
        '<s:Body><m:Price xmlns:m="urn:shop">9.50</m:Price></s:Body></s:Envelope>'
    )
    ns = {"soap": "http://schemas.xmlsoap.org/soap/envelope/", "shop": "urn:shop"}
    evaluation = await run(
        [
            cond("xml", "/soap:Envelope/soap:Body/shop:Price", "eq", 9.5, namespaces=ns),
            cond("xml", "//shop:Price", "lt", 10, namespaces=ns),
            cond("xml", "//Price", "not_exists"),
            cond("xml", "//undeclared:Price", "exists"),
        ],
        response(body),
    )
    full, lookup, unqualified, undeclared = evaluation.results
    assert full.passed and lookup.passed and unqualified.passed
    assert not undeclared.passed
    assert "XPath" in (undeclared.message or "")


async def test_xml_invalid_xpath_and_invalid_body() -> None:
    bad_path = await one(cond("xml", "//[", "not_exists"), response("<r/>"))
    assert not bad_path.passed
    assert "invalid XPath" in (bad_path.message or "")
    bad_body = await one(cond("xml", "//r", "exists"), response("{not xml"))
    assert not bad_body.found
    assert "not valid XML" in (bad_body.message or "")


async def test_xml_exslt_regex_functions_are_unavailable() -> None:
    # They would run Python's `re`, which cannot time out.
    ns = {"re": "http://exslt.org/regular-expressions"}
    result = await one(
        cond("xml", "re:test(/r, 'a+')", "eq", "true", namespaces=ns), response("<r>aa</r>")
    )
    assert not result.passed
    assert "XPath" in (result.message or "")


BILLION_LAUGHS = (
    '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    + "".join(
        f'<!ENTITY lol{i} "{(f"&lol{i - 1};" if i > 1 else "&lol;") * 10}">' for i in range(1, 10)
    )
    + "]><lolz>&lol9;</lolz>"
)


async def test_billion_laughs_is_not_expanded() -> None:
    started = time.monotonic()
    evaluation = await run(
        [cond("xml", "/lolz", save_as="LOL"), cond("xml", "string-length(/lolz)", "lt", 1000)],
        response(BILLION_LAUGHS),
    )
    assert time.monotonic() - started < 1.0
    # libxml2 refuses the document outright, so nothing is found and nothing expanded.
    assert not any(r.found for r in evaluation.results)
    assert "LOL" not in evaluation.extracted


async def test_entities_are_neither_expanded_into_text_nor_loaded() -> None:
    body = (
        '<?xml version="1.0"?><!DOCTYPE r [<!ENTITY e "EXPANDED">'
        '<!ENTITY x SYSTEM "file:///etc/hostname">]><r><a>x&e;y</a><b>&x;</b></r>'
    )
    evaluation = await run(
        [cond("xml", "/r/a", save_as="A"), cond("xml", "/r/b", save_as="B")],
        response(body),
    )
    assert evaluation.extracted == {"A": "x&e;y", "B": "&x;"}


# --- ops and comparison ------------------------------------------------------------------------

OP_CASES = [
    # decimal comparison
    ("n", "eq", "200", True),
    ("n", "eq", 200, True),
    ("n", "eq", "2e2", True),
    ("f", "eq", 1, True),
    ("f", "eq", "1.00", True),
    ("ns", "eq", 200, True),
    ("ns", "gt", "30", True),  # as text "200" < "30"; as numbers it is greater
    ("n", "ne", 201, True),
    ("n", "ne", "200.0", False),
    ("n", "lt", 201, True),
    ("n", "lt", 200, False),
    ("n", "le", 200, True),
    ("n", "gt", "199.5", True),
    ("n", "ge", 200, True),
    ("n", "ge", 201, False),
    # JSON literals
    ("t", "eq", "true", True),
    ("t", "eq", True, True),
    ("t", "eq", "True", False),
    ("t", "ne", "false", True),
    ("z", "eq", "null", True),
    ("z", "ne", "null", False),
    # strings
    ("s", "eq", "abc", True),
    ("s", "eq", "ABC", False),
    ("s", "lt", "abd", True),
    ("s", "gt", "abb", True),
    ("s", "le", "abc", True),
    ("s", "contains", "b", True),
    ("s", "contains", "x", False),
    ("s", "not_contains", "x", True),
    ("s", "not_contains", "b", False),
    ("n", "contains", "0", True),
    ("s", "matches", "^a.c$", True),
    ("s", "matches", "^b", False),
    ("n", "matches", r"^2\d\d$", True),
    # lists
    ("l", "contains", "two", True),
    ("l", "contains", 1, True),
    ("l", "contains", "1.0", True),
    ("l", "contains", "true", True),
    ("l", "contains", "tw", True),
    ("l", "contains", "three", False),
    ("l", "not_contains", "three", True),
    ("l", "not_contains", 1, False),
    ("l", "matches", "^tw", True),
    ("l", "eq", '[1, "two", true]', True),
    ("l", "eq", '[1.0,"two",true]', True),
    ("l", "eq", ["1", "two", "true"], True),
    ("l", "eq", "[1, 2]", False),
    ("l", "eq", "1", False),
    ("l", "ne", "[1]", True),
    ("l", "lt", 5, False),
    # objects
    ("o", "eq", '{"a": 1}', True),
    ("o", "eq", '{"a": "1.0"}', True),
    ("o", "eq", '{"a": 2}', False),
    ("o", "contains", "a", True),
    ("o", "contains", "b", False),
    # existence
    ("z", "exists", None, True),
    ("z", "not_exists", None, False),
    ("missing", "not_exists", None, True),
    ("missing", "exists", None, False),
]


@pytest.mark.parametrize(("field", "op", "value", "passed"), OP_CASES)
async def test_op(field: str, op: str, value: Any, passed: bool) -> None:
    result = await one(cond("json", field, op, value), response(JSON_BODY))
    assert result.passed is passed, result
    if not passed and result.found:
        assert result.message


def test_every_op_is_covered() -> None:
    from typing import get_args

    from apimd.model.resources import ConditionOp

    assert {case[1] for case in OP_CASES} == set(get_args(ConditionOp))


@pytest.mark.parametrize("op", ["eq", "ne", "lt", "contains", "not_contains", "matches"])
async def test_value_ops_fail_when_not_found(op: str) -> None:
    result = await one(cond("json", "missing", op, "x"), response(JSON_BODY))
    assert (result.found, result.passed) == (False, False)
    assert result.actual is None


async def test_order_of_list_fails_with_message() -> None:
    result = await one(cond("json", "l", "lt", 5), response(JSON_BODY))
    assert "cannot order" in (result.message or "")


async def test_header_number_compares_as_decimal() -> None:
    resp = response(headers=[("X-Count", " 10 ")])
    evaluation = await run(
        [cond("header", "x-count", "gt", 9), cond("header", "x-count", "eq", "1e1")], resp
    )
    assert [r.passed for r in evaluation.results] == [True, True]


async def test_huge_exponent_compares_as_text_without_crashing() -> None:
    result = await one(cond("body", op="eq", value="1e99999999999999999999"), response("1"))
    assert not result.passed
    assert result.message == "expected eq '1e99999999999999999999'"


async def test_matches_invalid_regex_fails_with_message() -> None:
    result = await one(cond("json", "s", "matches", "(unclosed"), response(JSON_BODY))
    assert not result.passed
    assert "invalid regex" in (result.message or "")


async def test_catastrophic_regex_times_out_and_fails() -> None:
    started = time.monotonic()
    evaluation = await run([cond("body", op="matches", value="(a|aa)+$")], response("a" * 50 + "!"))
    # REGEX_TIMEOUT_S is 1 s; the rest is slack for a loaded CI machine.
    assert time.monotonic() - started < 10.0  # the pattern alone would run for ages
    result = evaluation.results[0]
    assert (result.found, result.passed, result.message) == (True, False, "regex timed out")
    assert evaluation.failed


async def test_catastrophic_path_regex_times_out_and_fails(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(lookups_module, "REGEX_TIMEOUT_S", 0.2)
    evaluation = await run([cond("body", "(a|aa)+$", save_as="X")], response("a" * 50 + "!"))
    result = evaluation.results[0]
    assert (result.found, result.passed, result.message) == (False, False, "regex timed out")
    assert evaluation.extracted == {}
    assert evaluation.failed


async def test_nested_quantifier_returns_quickly() -> None:
    # The `regex` module short-cuts `(a+)+$`; whichever way, the answer comes back promptly.
    started = time.monotonic()
    result = await one(cond("body", op="matches", value="(a+)+$"), response("a" * 50 + "!"))
    assert time.monotonic() - started < 2.0
    assert not result.passed


# --- extraction and recording ------------------------------------------------------------------


async def test_extraction_string_forms() -> None:
    names = ["s", "n", "f", "t", "z", "l", "o"]
    evaluation = await run(
        [cond("json", name, save_as=name.upper() + "_") for name in names], response(JSON_BODY)
    )
    assert evaluation.extracted == {
        "S_": "abc",
        "N_": "200",
        "F_": "1.0",
        "T_": "true",
        "Z_": "null",
        "L_": '[1, "two", true]',
        "O_": '{"a": 1}',
    }
    assert all(r.passed for r in evaluation.results)


async def test_extraction_with_op_asserts_and_extracts_when_found() -> None:
    evaluation = await run(
        [
            cond("json", "s", "eq", "abc", save_as="OK"),
            cond("json", "n", "eq", 404, save_as="WRONG"),
            cond("json", "missing", "eq", 1, save_as="MISSING"),
        ],
        response(JSON_BODY),
    )
    assert [r.passed for r in evaluation.results] == [True, False, False]
    assert evaluation.extracted == {"OK": "abc", "WRONG": "200"}
    assert evaluation.failed


async def test_on_fail_warning_warns_and_fail_fails() -> None:
    warned = await run(
        [cond("status", op="eq", value=200, on_fail="warning")], response(status=500)
    )
    assert (warned.warned, warned.failed) == (True, False)
    failed = await run([cond("status", op="eq", value=200)], response(status=500))
    assert (failed.warned, failed.failed) == (False, True)
    passed = await run([cond("status", op="eq", value=200)], response(status=200))
    assert (passed.warned, passed.failed) == (False, False)


async def test_every_field_of_the_record() -> None:
    evaluation = await run(
        [cond("json", "n", "ge", "300", save_as="CODE", on_fail="warning")], response(JSON_BODY)
    )
    record = evaluation.results[0].model_dump()
    assert record == {
        "source": "json",
        "path": "n",
        "op": "ge",
        "expected": "300",
        "actual": 200,
        "found": True,
        "passed": False,
        "on_fail": "warning",
        "save_as": "CODE",
        "message": "expected ge '300'",
    }


async def test_secrets_are_recorded_unredacted_for_the_caller_to_redact() -> None:
    render = FakeRender({"TOKEN": "s3cret-value"})
    evaluation = await run(
        [cond("body", op="contains", value="%%TOKEN%%")], response("has s3cret-value"), render
    )
    assert evaluation.results[0].expected == "s3cret-value"
    assert evaluation.results[0].actual == "has s3cret-value"


# --- templates ---------------------------------------------------------------------------------


async def test_path_and_value_are_rendered_with_where() -> None:
    render = FakeRender({"FIELD": "s", "WANT": "abc"})
    evaluation = await run(
        [
            cond("status", op="eq", value=200),
            cond("json", "$.%%FIELD%%", "eq", "%%WANT%%"),
        ],
        response(JSON_BODY),
        render,
    )
    assert render.calls == [
        ("$.%%FIELD%%", "conditions[1].path"),
        ("%%WANT%%", "conditions[1].value"),
    ]
    result = evaluation.results[1]
    assert (result.path, result.expected, result.passed) == ("$.s", "abc", True)


async def test_non_string_values_are_used_as_is() -> None:
    render = FakeRender({"N": "n"})
    evaluation = await run(
        [cond("json", "%%N%%", "eq", 200), cond("json", "t", "eq", True)],
        response(JSON_BODY),
        render,
    )
    assert [call[1] for call in render.calls] == ["conditions[0].path"]
    assert evaluation.results[0].expected == 200
    assert evaluation.results[1].expected is True


async def test_templates_without_a_token_are_used_as_they_are() -> None:
    # `render` gives back a text without `%`, `{` or `_` unchanged: it is not asked for one.
    render = FakeRender()
    conditions = [cond("json", "s", "eq", "abc"), cond("header", "Content-Type", "exists")]
    evaluation = await run(conditions, response(JSON_BODY), render)
    assert render.calls == []
    assert [result.passed for result in evaluation.results] == [True, False]
    render = FakeRender({"A": "x"})
    await run([cond("json", "s", "eq", "_%%A%%{")], response(JSON_BODY), render)
    assert render.calls == [("_%%A%%{", "conditions[0].value")]


async def test_unknown_variable_raises_setup_error() -> None:
    with pytest.raises(SetupError) as caught:
        await run([cond("json", "s", "eq", "%%NOPE%%")], response(JSON_BODY))
    assert caught.value.where == "conditions[0].value"


async def test_unknown_variable_in_path_raises_setup_error() -> None:
    with pytest.raises(SetupError):
        await run([cond("header", "%%NOPE%%", "exists")], response())


# --- large bodies ------------------------------------------------------------------------------


def _large_json() -> str:
    items = [{"id": i, "name": f"item-{i}", "tags": ["x", "y"]} for i in range(110_000)]
    text = json.dumps(items)
    assert len(text) > 4 * PROCESS_BODY_BYTES
    return text


@pytest.fixture
def parse_threads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The thread of each JSON parse made in this process."""
    threads: list[int] = []
    parse_json = lookups_module._parse_json

    def recording_parse(text: str) -> Any:
        threads.append(threading.get_ident())
        return parse_json(text)

    monkeypatch.setattr(lookups_module, "_parse_json", recording_parse)
    return threads


async def test_large_json_body_is_evaluated_off_the_event_loop(parse_threads: list[int]) -> None:
    body = _large_json()
    ticks = 0
    done = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not done.is_set():
            ticks += 1
            await asyncio.sleep(0.001)

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    before = ticks
    evaluation = await run(
        [
            cond("json", "$[-1].id", "eq", 109_999),
            cond("json", "$[5000].tags", "contains", "y"),
            cond("json", "$[0].name", save_as="FIRST"),
        ],
        response(body),
    )
    during = ticks - before
    done.set()
    await task
    assert [r.passed for r in evaluation.results] == [True, True, True]
    assert evaluation.extracted == {"FIRST": "item-0"}
    # Parsed in a worker process: json.loads holds the GIL, so a thread would stall the loop.
    assert parse_threads == []
    # Evaluated inline, the loop could not have run the ticker at all.
    assert during > 0


async def test_medium_json_body_is_parsed_once_in_a_thread(parse_threads: list[int]) -> None:
    body = json.dumps({"a": 1, "pad": "x" * THREAD_BODY_BYTES})
    evaluation = await run(
        [cond("json", "a", "eq", 1), cond("json", "pad", "exists")], response(body)
    )
    assert [r.passed for r in evaluation.results] == [True, True]
    assert len(parse_threads) == 1
    assert parse_threads[0] != threading.get_ident()


async def test_large_xml_and_regex_bodies_are_evaluated() -> None:
    xml = "<r>" + "".join(f'<i n="{i}">v{i}</i>' for i in range(200_000)) + "</r>"
    assert len(xml) > PROCESS_BODY_BYTES
    evaluation = await run(
        [
            cond("xml", "count(/r/i)", "eq", 200_000),
            cond("xml", "/r/i[last()]/@n", save_as="LAST"),
            cond("body", r"v(199999)<", save_as="RX"),
            cond("body", op="matches", value="v123456<"),
        ],
        response(xml),
    )
    assert all(r.passed for r in evaluation.results)
    assert evaluation.extracted == {"LAST": "199999", "RX": "199999"}


@pytest.mark.parametrize("large", [False, True])
async def test_body_is_parsed_once_per_call(large: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """Small bodies are parsed inline, medium ones in one thread; large ones in one worker
    process call (see test_a_large_body_is_parsed_once_in_a_worker)."""
    counts = {"json": 0, "xml": 0}
    parse_json, parse_xml = lookups_module._parse_json, lookups_module._parse_xml

    def counting_json(text: str) -> Any:
        counts["json"] += 1
        return parse_json(text)

    def counting_xml(body: bytes) -> Any:
        counts["xml"] += 1
        return parse_xml(body)

    monkeypatch.setattr(lookups_module, "_parse_json", counting_json)
    monkeypatch.setattr(lookups_module, "_parse_xml", counting_xml)
    padding = " " * (THREAD_BODY_BYTES + 1) if large else ""
    conditions = [cond("json", "a", "eq", 1), cond("json", "b", "exists")] + [
        cond("xml", "/a", "exists"),
        cond("xml", "/b", "exists"),
    ]
    await run(conditions, response('{"a": 1}' + padding))
    assert counts == {"json": 1, "xml": 1}


# --- property: never raises --------------------------------------------------------------------


def _containers(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.lists(children, max_size=4) | st.dictionaries(
        st.text(max_size=5), children, max_size=4
    )


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    _containers,
    max_leaves=12,
)
XML_SAMPLES = [
    b"<r><a x='1'>t</a><a/></r>",
    b"<r xmlns:p='urn:p'><p:a>1</p:a><!--c--><?pi x?>&amp;</r>",
    BILLION_LAUGHS.encode(),
    b"<?xml version='1.0'?>",
]
BODIES: dict[str, st.SearchStrategy[bytes]] = {
    "bytes": st.binary(max_size=200),
    "text": st.text(max_size=200).map(str.encode),
    "json": json_values.map(lambda v: json.dumps(v).encode()) | st.just(JSON_BODY.encode()),
    "xml": st.sampled_from(XML_SAMPLES),
}
PATHS: dict[str, list[str]] = {
    "json": ["$", "$..*", "$[*]", "$[0]", "items[*].id", "l", "a[0]", "[", "$[?match(@, 'a+')]"],
    "xml": ["//a", "/r/a/@x", "//text()", "//node()", "//p:a", "//@*", "count(//*)", "x:y"],
    "body": ["(a|aa)+$", "(.)", "", "[", "a*"],
}
ALL_OPS = [*get_args(ConditionOp), "bogus"]  # every operator, and one that is none
SOURCES = ["status", "header", "body", "json", "xml", "response_time", "size", "bogus"]
TEMPLATES = ["%%X%%", "%%UNKNOWN%%"]


@st.composite
def conditions_for(draw: st.DrawFn, body_kind: str) -> Condition:
    """A condition, often aimed at the kind of body under test so values are actually found."""
    likely = {"json": "json", "xml": "xml"}.get(body_kind, "body")
    source = draw(st.sampled_from([likely, likely, likely, *SOURCES]))
    known = PATHS.get(source, [])
    aimed = st.sampled_from(known) if known else st.none()
    path = draw(
        st.one_of(aimed, aimed, aimed, st.none(), st.text(max_size=20), st.sampled_from(TEMPLATES))
    )
    value = draw(json_values | st.sampled_from([*TEMPLATES, "(a|aa)+$", "1e99999999999999"]))
    return Condition.model_construct(
        source=cast(Any, source),  # "bogus" on purpose: model_construct does not validate
        path=path,
        op=draw(st.none() | st.sampled_from(ALL_OPS)),
        value=value,
        save_as=draw(st.none() | st.just("SAVED")),
        on_fail=draw(st.sampled_from(["fail", "warning"])),
        namespaces=draw(
            st.just({"p": "urn:p"})
            | st.just({})
            | st.dictionaries(st.text(max_size=3), st.text(max_size=8), max_size=2)
        ),
    )


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[list[Condition], ResponseView]:
    kind = draw(st.sampled_from(["bytes", "text", "json", "json", "xml", "xml"]))
    body = draw(BODIES[kind])
    headers = draw(st.lists(st.tuples(st.text(max_size=8), st.text(max_size=8)), max_size=3))
    status = draw(st.integers(min_value=0, max_value=999))
    conditions = draw(st.lists(conditions_for(kind), max_size=4))
    return conditions, response(body, status=status, headers=headers)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario=scenarios())
def test_evaluate_raises_only_setup_errors(scenario: tuple[list[Condition], ResponseView]) -> None:
    conditions, resp = scenario
    try:
        # A short regex timeout keeps the odd pathological example from slowing the run.
        with mock.patch.object(lookups_module, "REGEX_TIMEOUT_S", 0.05):
            evaluation = asyncio.run(evaluate(conditions, resp, FakeRender({"X": "1"})))
    except SetupError:
        event("setup error")
        return
    for result in evaluation.results:
        event(f"{result.source}: found={result.found}")
    assert len(evaluation.results) == len(conditions)
    for result in evaluation.results:
        assert not (result.message or "").startswith("could not evaluate"), result
    assert all(isinstance(v, str) for v in evaluation.extracted.values())
    assert evaluation.failed == any(
        not r.passed and r.on_fail == "fail" for r in evaluation.results
    )
    assert evaluation.warned == any(
        not r.passed and r.on_fail == "warning" for r in evaluation.results
    )


# --- bounded work and memory -------------------------------------------------------------------


def _ones(count: int) -> str:
    return "[" + ",".join(["1"] * count) + "]"


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def test_a_5_million_match_jsonpath_is_capped_marked_and_cheap() -> None:
    """A 10 MB array of 5 M numbers with `$[*]` took 30 s and 2 GB in the daemon's process."""
    body = _ones(5_000_000)
    assert len(body) < 10 * 1024 * 1024
    peak_before = _peak_rss_mib()
    started = time.perf_counter()
    evaluation = await run(
        [cond("json", "$[*]", "exists"), cond("json", "$[*]", save_as="ALL")], response(body)
    )
    took = time.perf_counter() - started
    first, saved = evaluation.results
    assert first.passed and saved.passed
    assert first.actual[:100] == [1] * 100
    assert first.actual[100:] == [f"… over {MAX_MATCHES} matches, first 100 shown"]
    text = evaluation.extracted["ALL"]
    assert len(text) <= SAVED_VALUE_CHARS + 100
    assert text.startswith("[1, 1, ") and "… [cut: " in text
    assert took < 10, f"took {took:.1f} s"
    # Parsed in a worker process: this process (the daemon's) never held the parse.
    assert _peak_rss_mib() - peak_before < 150


async def test_a_capped_lookup_decides_only_what_its_first_matches_can() -> None:
    body = _ones(MAX_MATCHES + 5)
    evaluation = await run(
        [
            cond("json", "$[*]", "contains", 1),
            cond("json", "$[*]", "not_contains", 2),
            cond("json", "$[*]", "eq", 1),
        ],
        response(body),
    )
    found, not_found, equal = evaluation.results
    assert found.passed
    for undecided in (not_found, equal):
        assert not undecided.passed
        assert (undecided.message or "").startswith(f"over {MAX_MATCHES} matches, only the first")


async def test_xpath_matches_are_counted_and_capped() -> None:
    xml = "<r>" + "<i>v</i>" * (MAX_MATCHES + 1) + "</r>"
    result = await one(cond("xml", "//i", "exists"), response(xml))
    assert result.passed
    assert result.actual[-1] == f"… {MAX_MATCHES + 1} matches, first 100 shown"
    assert len(result.actual) == 101


async def test_long_values_are_cut_with_a_marker_but_a_real_token_is_saved_whole() -> None:
    token = "eyJ" + "a" * (40 * 1024)  # a very large JWT still fits
    huge = "x" * (200 * 1024)
    evaluation = await run(
        [cond("json", "token", save_as="TOKEN"), cond("json", "huge", save_as="HUGE")],
        response(json.dumps({"token": token, "huge": huge})),
    )
    assert evaluation.extracted["TOKEN"] == token
    saved = evaluation.extracted["HUGE"]
    assert saved.startswith("x" * SAVED_VALUE_CHARS)
    assert saved.endswith(f"… [cut: {len(huge)} chars, first {SAVED_VALUE_CHARS} kept]")
    actual = evaluation.results[1].actual
    assert len(actual) < CONDITION_VALUE_CHARS + 100 and "… [cut: " in actual


async def test_a_body_evaluation_that_runs_too_long_is_stopped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(worker_pool, "WORK_TIMEOUT_S", 0.5)
    body = _ones(PROCESS_BODY_BYTES)  # 2 MB: a filter matching nothing walks all of it
    started = time.perf_counter()
    evaluation = await run(
        [cond("json", "$[?@ == 2]", "exists"), cond("status", op="eq", value=200)],
        response(body),
    )
    assert time.perf_counter() - started < 5
    stopped, status = evaluation.results
    assert not stopped.passed
    assert stopped.message == (
        f"could not evaluate the {len(body)}-byte body: used more than 0.5 s of CPU, stopped"
    )
    assert status.passed


async def test_a_worker_is_bounded_by_cpu_time_not_by_waiting() -> None:
    """A worker's bound is CPU time: a niced worker waiting for the CPU on a busy machine (here:
    sleeping, which uses none) is not stopped at `WORK_TIMEOUT_S` of wall-clock time."""
    with mock.patch.object(worker_pool, "WORK_TIMEOUT_S", 0.3):
        began = time.perf_counter()
        await worker_pool.run_in_worker(time.sleep, 0.6)
    assert 0.6 <= time.perf_counter() - began < 5


async def test_a_worker_that_gets_no_cpu_is_stopped_after_a_multiple_of_the_bound() -> None:
    began = time.perf_counter()
    with (
        mock.patch.object(worker_pool, "WORK_TIMEOUT_S", 0.2),
        pytest.raises(worker_pool.WorkerFailed) as failed,
    ):
        await worker_pool.run_in_worker(time.sleep, 30)
    assert time.perf_counter() - began < 5
    assert str(failed.value) == "took longer than 0.6 s (with too little of the CPU), stopped"


async def test_a_body_evaluation_that_needs_too_much_memory_is_stopped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(worker_pool, "WORKER_MEMORY_BYTES", 16 * 1024 * 1024)
    body = json.dumps([{"k": i} for i in range(400_000)])  # ~100 MB once parsed
    result = await one(cond("json", "$[0].k", "eq", 0), response(body))
    assert not result.passed
    assert "MemoryError" in (result.message or "") or "16 MiB" in (result.message or "")


async def test_shutdown_stops_a_worker_at_work() -> None:
    """A stopping daemon does not wait out a hostile body's evaluation."""
    body = _ones(3_000_000)
    task = asyncio.create_task(run([cond("json", "$[?@ == 2]", "exists")], response(body)))
    await asyncio.sleep(2)  # parsed by now, and walking the filter
    assert not task.done()
    started = time.perf_counter()
    worker_pool.shutdown()
    evaluation = await task
    assert time.perf_counter() - started < 2
    assert evaluation.results[0].message == (
        f"could not evaluate the {len(body)}-byte body: the worker process died "
        "(out of memory, or apimd stopping)"
    )


_KEYS = st.sampled_from(["a", "b", "items", "id", "true", "null", "length", "_x", "in"])
_PLAIN_DOCS = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=3),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_KEYS, inner, max_size=3),
    max_leaves=12,
)
_PLAIN_PATHS = st.lists(
    st.one_of(_KEYS.map(lambda key: f".{key}"), st.integers(0, 3).map(lambda i: f"[{i}]")),
    max_size=4,
).map(lambda steps: "$" + "".join(steps))


@settings(max_examples=300, deadline=None)
@given(document=_PLAIN_DOCS.filter(lambda d: isinstance(d, dict | list)), path=_PLAIN_PATHS)
def test_a_plain_jsonpath_selects_what_the_library_selects(document: Any, path: str) -> None:
    # `$.items[0].id`-like paths are evaluated by indexing rather than by python-jsonpath: the
    # same values, for any document.
    compiled, steps = lookups_module._compiled_json_path(path)
    assert steps is not None
    library = [match.obj for match in compiled.finditer(document)]
    assert lookups_module._plain_match(steps, document) == library
