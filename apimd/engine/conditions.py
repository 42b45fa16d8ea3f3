"""The one condition evaluator (SPEC §2 "Conditions").

Values are looked up from the response (status, headers, body regex, RFC 9535 JSONPath, XPath 1.0,
response time, size), compared with `op`, and optionally extracted into run variables.

Comparison rules: both sides that read as decimal numbers compare as `Decimal` ("1.0" == 1); JSON
literals compare in their JSON form (True == "true", None == "null"); everything else compares as
text. Lists and objects compare structurally (an expected JSON text is parsed first). `contains` on a
list is true when an element equals the value or, for a string element, contains it as a substring;
on an object, when the value is one of its keys; otherwise it is a substring test on the text form.

Extracted values are strings: strings as they are, everything else as `json.dumps` text with its
default separators (`[1, 2]`, `{"a": 1}`), so a saved list or object reads like JSON written by hand.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

import regex
from jsonpath import JSONPath, JSONPathEnvironment, JSONPathError
from jsonpath.function_extensions import Match, Search
from lxml import etree

from apimd.model.resources import Condition
from apimd.model.result import ConditionResult

LARGE_BODY_BYTES = 1024 * 1024
REGEX_TIMEOUT_S = 1.0

REGEX_TIMED_OUT = "regex timed out"

_BODY_SOURCES = frozenset({"body", "json", "xml"})
_JSONPATH_REGEX = re.compile(r"\b(?:match|search)\s*\(")
_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


@dataclass
class ResponseView:
    """What conditions look at."""

    status: int
    headers: Mapping[str, str]  # case-insensitive multidict in practice (CIMultiDict)
    body: bytes
    text: str
    response_time_ms: float
    size: int
    content_type: str | None = None


@dataclass
class Evaluation:
    """Every condition's result, the variables extracted, and whether any failed or warned."""

    results: list[ConditionResult] = field(default_factory=list)
    extracted: dict[str, str] = field(default_factory=dict)
    failed: bool = False
    warned: bool = False


Render = Callable[[str, str], str]
"""`render(template, where)` → text; raises `SetupError` for an unknown variable."""


async def evaluate(
    conditions: list[Condition], response: ResponseView, render: Render
) -> Evaluation:
    """Evaluate `conditions` in order against `response`. `path` and `value` are templates rendered
    through `render` (where = e.g. "conditions[2].value"); a variable extracted by an earlier
    condition is visible to later ones only through the caller's scope, so extraction results
    are returned in `extracted` (name → string form: JSON values other than strings as JSON text)."""
    evaluation = Evaluation()
    body = _ParsedBody(response)
    # Parsing and matching a large body can take long enough to stall every other run.
    offload = len(response.body) > LARGE_BODY_BYTES
    for index, condition in enumerate(conditions):
        path = condition.path
        if isinstance(path, str):
            path = render(path, f"conditions[{index}].path")
        expected = condition.value
        if condition.op in ("exists", "not_exists") or condition.op is None:
            expected = None
        elif isinstance(expected, str):
            expected = render(expected, f"conditions[{index}].value")

        if (offload and condition.source in _BODY_SOURCES) or _runs_user_regex(condition, path):
            result, value = await asyncio.to_thread(_check, condition, path, expected, body)
        else:
            result, value = _check(condition, path, expected, body)

        evaluation.results.append(result)
        if condition.save_as and value is not _MISSING:
            evaluation.extracted[condition.save_as] = _extracted_text(value)
        if not result.passed:
            if condition.on_fail == "warning":
                evaluation.warned = True
            else:
                evaluation.failed = True
    return evaluation


def _runs_user_regex(condition: Condition, path: str | None) -> bool:
    """Whether the condition runs a regex the user wrote. Even on a small body one can take up
    to `REGEX_TIMEOUT_S`: in a worker thread, that stalls only this run, not every other."""
    if condition.op == "matches" or (condition.source == "body" and path):
        return True
    return condition.source == "json" and _JSONPATH_REGEX.search(path or "") is not None


def _extracted_text(value: Any) -> str:
    """A looked-up value as a run variable: strings as-is, other JSON values as JSON text."""
    if isinstance(value, str):
        return value
    return json.dumps(value)


# --- looking values up -------------------------------------------------------------------------


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


_MISSING: Any = _Missing()


@dataclass
class _Lookup:
    """A looked-up value; `broken` means the condition itself could not run (bad path, timeout)."""

    value: Any = _MISSING
    message: str | None = None
    broken: bool = False

    @property
    def found(self) -> bool:
        return self.value is not _MISSING


class _ParsedBody:
    """The response plus its JSON and XML parses, each made at most once, on first use."""

    def __init__(self, response: ResponseView) -> None:
        self.response = response
        self._json: tuple[Any, str | None] | None = None
        self._xml: tuple[etree._ElementTree | None, str | None] | None = None

    def json(self) -> tuple[Any, str | None]:
        """(document, None), or (_MISSING, why the body is not JSON)."""
        if self._json is None:
            self._json = _parse_json(self.response.text)
        return self._json

    def xml(self) -> tuple[etree._ElementTree | None, str | None]:
        """(tree, None), or (None, why the body is not XML)."""
        if self._xml is None:
            self._xml = _parse_xml(self.response.body)
        return self._xml


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _parse_json(text: str) -> tuple[Any, str | None]:
    try:
        return json.loads(text, parse_constant=_reject_constant), None
    except (ValueError, RecursionError) as exc:
        return _MISSING, f"body is not valid JSON: {exc}"


def _parse_xml(body: bytes) -> tuple[etree._ElementTree | None, str | None]:
    # No entities, DTDs or network: a hostile body can neither expand nor fetch anything.
    parser = etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False
    )
    try:
        root = etree.fromstring(body, parser)
    except (etree.XMLSyntaxError, ValueError) as exc:
        return None, f"body is not valid XML: {exc}"
    return root.getroottree(), None


def _look_up(
    source: str, path: str | None, namespaces: Mapping[str, str], body: _ParsedBody
) -> _Lookup:
    response = body.response
    if source == "status":
        return _Lookup(response.status)
    if source == "response_time":
        return _Lookup(response.response_time_ms)
    if source == "size":
        return _Lookup(response.size)
    if source == "header":
        return _header(path, response.headers)
    if source == "body":
        return _body_regex(path, response.text)
    if source == "json":
        return _json_path(path, body)
    if source == "xml":
        return _xpath(path, namespaces, body)
    return _Lookup(message=f"unknown source {source!r}", broken=True)


def _header(name: str | None, headers: Mapping[str, str]) -> _Lookup:
    if not name:
        return _Lookup(message="a header condition needs `path` (the header name)", broken=True)
    wanted = name.strip().casefold()
    values = [value for key, value in headers.items() if key.casefold() == wanted]
    if not values:
        return _Lookup(message=f"header {name} not found")
    return _Lookup(values[0] if len(values) == 1 else values)


def _body_regex(pattern: str | None, text: str) -> _Lookup:
    if not pattern:
        return _Lookup(text)
    try:
        compiled = regex.compile(pattern)
    except (regex.error, ValueError, OverflowError) as exc:
        return _Lookup(message=f"invalid regex in path: {exc}", broken=True)
    try:
        match = compiled.search(text, timeout=REGEX_TIMEOUT_S, concurrent=True)
    except TimeoutError:
        return _Lookup(message=REGEX_TIMED_OUT, broken=True)
    if match is None:
        return _Lookup(message="no match for the path regex in the body")
    value = match.group(1) if compiled.groups else match.group(0)
    if value is None:
        return _Lookup(message="the path regex matched, but its first group did not")
    return _Lookup(value)


class _TimedMatch(Match):
    """RFC 9535 `match()` whose regex cannot hang on a hostile body."""

    def __call__(self, value: object, pattern: object) -> bool:
        if not isinstance(value, str) or not isinstance(pattern, str):
            return False
        compiled = self.check_cache(pattern)
        return compiled is not None and bool(
            compiled.fullmatch(value, timeout=REGEX_TIMEOUT_S, concurrent=True)
        )


class _TimedSearch(Search):
    """RFC 9535 `search()` whose regex cannot hang on a hostile body."""

    def __call__(self, value: object, pattern: object) -> bool:
        if not isinstance(value, str) or not isinstance(pattern, str):
            return False
        compiled = self.check_cache(pattern)
        return compiled is not None and bool(
            compiled.search(value, timeout=REGEX_TIMEOUT_S, concurrent=True)
        )


class _JSONPathEnvironment(JSONPathEnvironment):
    """Strict RFC 9535 JSONPath with regex timeouts and caches safe across worker threads."""

    def setup_function_extensions(self) -> None:
        super().setup_function_extensions()
        self.function_extensions["match"] = _TimedMatch(thread_safe=True)
        self.function_extensions["search"] = _TimedSearch(thread_safe=True)


_JSONPATH = _JSONPathEnvironment(strict=True)


def _json_path(path: str | None, body: _ParsedBody) -> _Lookup:
    if not path:
        return _Lookup(message="a json condition needs `path` (a JSONPath)", broken=True)
    if not path.startswith("$"):
        path = ("$" if path.startswith("[") else "$.") + path
    try:
        compiled = _JSONPATH.compile(path)
    except (JSONPathError, RecursionError) as exc:
        return _Lookup(message=f"invalid JSONPath {path!r}: {_first_line(exc)}", broken=True)
    document, error = body.json()
    if error is not None:
        return _Lookup(message=error)
    try:
        if isinstance(document, str):
            # The library would re-parse a string document as JSON text. Under RFC 9535 every
            # selector on a scalar selects nothing, so only `$` itself matches.
            values: list[Any] = [document] if _is_root(compiled) else []
        else:
            values = compiled.findall(document)
    except TimeoutError:
        return _Lookup(message=REGEX_TIMED_OUT, broken=True)
    except (JSONPathError, RecursionError) as exc:
        return _Lookup(message=f"JSONPath {path!r} failed: {_first_line(exc)}", broken=True)
    if not values:
        return _Lookup(message=f"nothing matches {path}")
    return _Lookup(values[0] if len(values) == 1 else values)


def _is_root(compiled: object) -> bool:
    return isinstance(compiled, JSONPath) and not compiled.segments


def _xpath(path: str | None, namespaces: Mapping[str, str], body: _ParsedBody) -> _Lookup:
    if not path:
        return _Lookup(message="an xml condition needs `path` (an XPath)", broken=True)
    try:
        # EXSLT regular expressions would run Python's `re`, which has no timeout.
        compiled = etree.XPath(
            path, namespaces=dict(namespaces) or None, regexp=False, smart_strings=False
        )
    except (etree.XPathError, ValueError, TypeError) as exc:
        return _Lookup(message=f"invalid XPath {path!r}: {exc}", broken=True)
    tree, error = body.xml()
    if tree is None:
        return _Lookup(message=error)
    try:
        raw = compiled(tree)
    except (etree.XPathError, ValueError, TypeError) as exc:
        return _Lookup(message=f"XPath {path!r} failed: {exc}", broken=True)
    if isinstance(raw, list):
        texts = [_node_text(node) for node in raw]
        if not texts:
            return _Lookup(message=f"nothing matches {path}")
        return _Lookup(texts[0] if len(texts) == 1 else texts)
    if isinstance(raw, bool):
        return _Lookup(raw)
    if isinstance(raw, float):
        # XPath numbers are doubles; count() = 3 should extract as "3", not "3.0".
        return _Lookup(int(raw) if raw.is_integer() else raw)
    return _Lookup(str(raw))


def _node_text(node: object) -> str:
    if isinstance(node, etree._Comment | etree._ProcessingInstruction | etree._Entity):
        return node.text or ""
    if isinstance(node, etree._Element):
        # itertext() keeps entity references as written (`&e;`) instead of expanding them.
        return "".join(str(part) for part in node.itertext())
    if isinstance(node, tuple):  # a namespace node: (prefix, uri)
        return str(node[-1])
    return str(node)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# --- checking one condition --------------------------------------------------------------------


def _check(
    condition: Condition, path: str | None, expected: Any, body: _ParsedBody
) -> tuple[ConditionResult, Any]:
    """The condition's result and the value it found (`_MISSING` when none)."""
    lookup = _Lookup()
    try:
        lookup = _look_up(condition.source, path, condition.namespaces, body)
        op = condition.op
        if lookup.broken:
            passed, message = False, lookup.message
        elif op is None:
            passed, message = True, lookup.message
        else:
            passed, message = _apply(op, lookup, expected)
    except Exception as exc:
        # A bug or an input nobody foresaw must fail this condition, not the whole run.
        passed, message = False, f"could not evaluate: {type(exc).__name__}: {exc}"
    result = ConditionResult(
        source=condition.source,
        path=path,
        op=condition.op,
        expected=expected,
        actual=lookup.value if lookup.found else None,
        found=lookup.found,
        passed=passed,
        on_fail=condition.on_fail,
        save_as=condition.save_as,
        message=message,
    )
    return result, lookup.value


def _apply(op: str, lookup: _Lookup, expected: Any) -> tuple[bool, str | None]:
    if op == "exists":
        return lookup.found, None if lookup.found else lookup.message or "not found"
    if op == "not_exists":
        return not lookup.found, lookup.message if not lookup.found else "expected no value"
    if not lookup.found:
        return False, lookup.message or "not found"
    actual = lookup.value
    if op in ("eq", "ne"):
        equal = _equal(actual, expected)
        return _verdict(equal if op == "eq" else not equal, op, expected)
    if op in ("lt", "le", "gt", "ge"):
        order = _order(actual, expected)
        if order is None:
            return False, f"cannot order a list or object with {op}"
        passed = {"lt": order < 0, "le": order <= 0, "gt": order > 0, "ge": order >= 0}[op]
        return _verdict(passed, op, expected)
    if op in ("contains", "not_contains"):
        contained = _contains(actual, expected)
        return _verdict(contained if op == "contains" else not contained, op, expected)
    if op == "matches":
        return _matches(actual, expected)
    return False, f"unknown op {op!r}"


def _verdict(passed: bool, op: str, expected: Any) -> tuple[bool, str | None]:
    return passed, None if passed else f"expected {op} {expected!r}"


def _matches(actual: Any, expected: Any) -> tuple[bool, str | None]:
    pattern = _text(expected)
    try:
        compiled = regex.compile(pattern)
    except (regex.error, ValueError, OverflowError) as exc:
        return False, f"invalid regex {pattern!r}: {exc}"
    candidates = actual if isinstance(actual, list) else [actual]
    try:
        passed = any(
            compiled.search(_text(item), timeout=REGEX_TIMEOUT_S, concurrent=True)
            for item in candidates
        )
    except TimeoutError:
        return False, REGEX_TIMED_OUT
    return _verdict(passed, "matches", pattern)


# --- comparison --------------------------------------------------------------------------------


def _number(value: Any) -> Decimal | None:
    """`value` as a decimal number, or None when it does not read as one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(repr(value)) if math.isfinite(value) else None
    if isinstance(value, str):
        text = value.strip()
        if _NUMBER.fullmatch(text):
            try:
                return Decimal(text)
            except (InvalidOperation, ValueError):  # exponent beyond what Decimal holds
                return None
    return None


def _text(value: Any) -> str:
    """The text form used for string comparison: JSON literals and containers as JSON."""
    if isinstance(value, str):
        return value
    if value is None or isinstance(value, bool | list | dict):
        return json.dumps(value)
    return str(value)


def _container(value: Any) -> list[Any] | dict[str, Any] | None:
    """`value` as a list or object, parsing JSON text; None when it is neither."""
    if isinstance(value, list | dict):
        return value
    if isinstance(value, str) and value.lstrip()[:1] in ("[", "{"):
        try:
            parsed = json.loads(value)
        except (ValueError, RecursionError):
            return None
        if isinstance(parsed, list | dict):
            return parsed
    return None


def _equal(actual: Any, expected: Any) -> bool:
    if isinstance(actual, list | dict) or isinstance(expected, list | dict):
        left, right = _container(actual), _container(expected)
        if isinstance(left, list) and isinstance(right, list):
            return len(left) == len(right) and all(
                _equal(a, b) for a, b in zip(left, right, strict=True)
            )
        if isinstance(left, dict) and isinstance(right, dict):
            return left.keys() == right.keys() and all(_equal(left[k], right[k]) for k in left)
        return False
    left_number, right_number = _number(actual), _number(expected)
    if left_number is not None and right_number is not None:
        return left_number == right_number
    return _text(actual) == _text(expected)


def _order(actual: Any, expected: Any) -> int | None:
    """-1, 0 or 1 as `actual` is below, equal to or above `expected`; None if not orderable."""
    if isinstance(actual, list | dict) or isinstance(expected, list | dict):
        return None
    left_number, right_number = _number(actual), _number(expected)
    if left_number is not None and right_number is not None:
        return (left_number > right_number) - (left_number < right_number)
    left, right = _text(actual), _text(expected)
    return (left > right) - (left < right)


def _contains(actual: Any, expected: Any) -> bool:
    if isinstance(actual, list):
        needle = _text(expected)
        return any(
            _equal(item, expected) or (isinstance(item, str) and needle in item) for item in actual
        )
    if isinstance(actual, dict):
        return _text(expected) in actual
    return _text(expected) in _text(actual)
