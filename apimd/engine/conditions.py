"""The one condition evaluator (SPEC §2 "Conditions").

Values are looked up from the response (status, headers, body regex, RFC 9535 JSONPath, XPath 1.0,
response time, size), compared with `op` (rules in `compare`), and optionally extracted into run
variables. `contains` on a list is true when an element equals the value or, for a string element,
contains it as a substring; on an object, when the value is one of its keys; otherwise it is a
substring test on the text form.

Extracted values are strings: strings as they are, everything else as `json.dumps` text with its
default separators (`[1, 2]`, `{"a": 1}`), so a saved list or object reads like JSON written by hand.

What one response can cost is bounded (see `bounds`): a JSONPath or XPath collects at most
`MAX_MATCHES` matches, actual values and saved variables are cut with a visible marker, the body is
parsed once for all conditions, and a large body is parsed and searched off the event loop: in a
thread above `THREAD_BODY_BYTES`, in a worker process above `PROCESS_BODY_BYTES`.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import regex

from apimd.engine import compare, lookups
from apimd.engine.bounds import (
    CONDITION_VALUE_CHARS,
    MAX_MATCHES,
    cap_value,
    saved_text,
    shown_matches,
)
from apimd.engine.http import decode_body
from apimd.engine.worker_pool import WorkerFailed, run_in_worker
from apimd.model.resources import Condition
from apimd.model.result import ConditionResult

THREAD_BODY_BYTES = 64 * 1024
PROCESS_BODY_BYTES = 1024 * 1024
BODY_SOURCES = frozenset({"body", "json", "xml"})
_JSONPATH_REGEX = re.compile(r"\b(?:match|search)\s*\(")
# Ops whose verdict one match can settle; any other needs every match.
_SETTLED_BY_ONE = frozenset({"contains", "matches"})


@dataclass(slots=True)
class ResponseView:
    """What conditions look at."""

    status: int
    headers: Mapping[str, str]  # case-insensitive multidict in practice (CIMultiDict)
    body: bytes
    text: str
    response_time_ms: float
    size: int
    content_type: str | None = None
    client_cert_days: float | None = None
    """Days until the client certificate expires, when the call presented one."""
    cookies: Mapping[str, str] = field(default_factory=dict)  # name -> value set by this response
    cert_days: float | None = None  # days the server certificate has left (https only)


@dataclass(slots=True)
class Evaluation:
    """Every condition's result, the variables extracted, and whether any failed or warned."""

    results: list[ConditionResult] = field(default_factory=list)
    extracted: dict[str, str] = field(default_factory=dict)
    failed: bool = False
    warned: bool = False
    body_json: tuple[Any] | None = None
    """The response body's JSON document, when a condition parsed it (in this process): the
    recorder reuses it rather than parse the body again."""


Render = Callable[[str, str], str]
"""`render(template, where)` → text; raises `SetupError` for an unknown variable."""


@dataclass(slots=True)
class _Check:
    """One condition with its path and expected value rendered."""

    condition: Condition
    path: str | None
    expected: Any


@dataclass(slots=True)
class _Checked:
    """A condition's result, and the variable text it saves (None when it saves nothing)."""

    result: ConditionResult
    saved: str | None = None


async def evaluate(
    conditions: list[Condition], response: ResponseView, render: Render
) -> Evaluation:
    """Evaluate `conditions` in order against `response`. `path` and `value` are templates rendered
    through `render` (where = e.g. "conditions[2].value"); a variable extracted by an earlier
    condition is visible to later ones only through the caller's scope, so extraction results
    are returned in `extracted` (name → string form: JSON values other than strings as JSON text)."""
    checks = [_rendered(index, condition, render) for index, condition in enumerate(conditions)]
    evaluation = Evaluation()
    body = lookups.ParsedBody(response)
    for check, checked in zip(checks, await _check_every(checks, response, body), strict=True):
        evaluation.results.append(checked.result)
        if check.condition.save_as and checked.saved is not None:
            evaluation.extracted[check.condition.save_as] = checked.saved
        if not checked.result.passed:
            if check.condition.on_fail == "warning":
                evaluation.warned = True
            else:
                evaluation.failed = True
    evaluation.body_json = body.parsed_json()
    return evaluation


def _rendered(index: int, condition: Condition, render: Render) -> _Check:
    path = condition.path
    if isinstance(path, str):
        path = render(path, f"conditions[{index}].path")
    expected = condition.value
    if condition.op in ("exists", "not_exists") or condition.op is None:
        expected = None
    elif isinstance(expected, str):
        expected = render(expected, f"conditions[{index}].value")
    return _Check(condition, path, expected)


async def _check_every(
    checks: list[_Check], response: ResponseView, body: lookups.ParsedBody
) -> list[_Checked]:
    """Each check's outcome, in order. The checks on the body share one parse of it (`body`)."""
    done: dict[int, _Checked] = {}
    on_body = [i for i, check in enumerate(checks) if check.condition.source in BODY_SOURCES]
    size = len(response.body)
    if on_body and size > PROCESS_BODY_BYTES:
        # Sent without the text: the worker decodes the body itself rather than unpickle both.
        bare = replace(response, headers={}, text="")
        jobs = [checks[i] for i in on_body]
        try:
            outcomes = await run_in_worker(_check_in_worker, jobs, bare)
        except WorkerFailed as exc:
            why = f"could not evaluate the {size}-byte body: {exc}"
            outcomes = [_not_evaluated(check, why) for check in jobs]
        done.update(zip(on_body, outcomes, strict=True))
    elif on_body and size > THREAD_BODY_BYTES:
        outcomes = await asyncio.to_thread(_check_all, [checks[i] for i in on_body], body)
        done.update(zip(on_body, outcomes, strict=True))
    for index, check in enumerate(checks):
        if index in done:
            continue
        if _runs_user_regex(check.condition, check.path):
            done[index] = await asyncio.to_thread(_check, check, body)
        else:
            done[index] = _check(check, body)
    return [done[index] for index in range(len(checks))]


def _check_all(checks: list[_Check], body: lookups.ParsedBody) -> list[_Checked]:
    return [_check(check, body) for check in checks]


def _check_in_worker(checks: list[_Check], response: ResponseView) -> list[_Checked]:
    """In a worker process: `response` came without its text, which is decoded here."""
    response.text = decode_body(response.body, response.content_type)
    return _check_all(checks, lookups.ParsedBody(response))


def _runs_user_regex(condition: Condition, path: str | None) -> bool:
    """Whether the condition runs a regex the user wrote. Even on a small body one can take up
    to `lookups.REGEX_TIMEOUT_S`: in a worker thread, that stalls only this run, not every other."""
    if condition.op == "matches" or (condition.source == "body" and path):
        return True
    return condition.source == "json" and _JSONPATH_REGEX.search(path or "") is not None


# --- checking one condition --------------------------------------------------------------------


def _check(check: _Check, body: lookups.ParsedBody) -> _Checked:
    """The condition's result, its actual value cut to `CONDITION_VALUE_CHARS`, and the text it
    saves."""
    condition, path, expected = check.condition, check.path, check.expected
    lookup = lookups.Lookup()
    try:
        lookup = lookups.look_up(condition.source, path, condition.namespaces, body)
        op = condition.op
        if lookup.broken:
            passed, message = False, lookup.message
        elif op is None:
            passed, message = True, lookup.message
        else:
            passed, message = _apply(op, lookup, expected)
        actual = _shown(lookup)
        saved = None
        if condition.save_as and lookup.found:
            saved = saved_text(lookup.value, more=lookup.more)
    except Exception as exc:
        # A bug or an input nobody foresaw must fail this condition, not the whole run.
        passed, message = False, f"could not evaluate: {type(exc).__name__}: {exc}"
        actual, saved = None, None
    result = ConditionResult(
        source=condition.source,
        path=path,
        op=condition.op,
        expected=expected,
        actual=actual,
        found=lookup.found,
        passed=passed,
        on_fail=condition.on_fail,
        save_as=condition.save_as,
        message=message,
    )
    return _Checked(result, saved)


def _not_evaluated(check: _Check, message: str) -> _Checked:
    condition = check.condition
    result = ConditionResult(
        source=condition.source,
        path=check.path,
        op=condition.op,
        expected=check.expected,
        found=False,
        passed=False,
        on_fail=condition.on_fail,
        save_as=condition.save_as,
        message=message,
    )
    return _Checked(result)


def _shown(lookup: lookups.Lookup) -> Any:
    """The looked-up value as recorded: at most `SHOWN_MATCHES` matches, cut to size."""
    if not lookup.found:
        return None
    if lookup.total is not None:
        return shown_matches(lookup.value, lookup.total, CONDITION_VALUE_CHARS)
    return cap_value(lookup.value, CONDITION_VALUE_CHARS)


def _apply(op: str, lookup: lookups.Lookup, expected: Any) -> tuple[bool, str | None]:
    if op == "exists":
        return lookup.found, None if lookup.found else lookup.message or "not found"
    if op == "not_exists":
        return not lookup.found, lookup.message if not lookup.found else "expected no value"
    if not lookup.found:
        return False, lookup.message or "not found"
    passed, message = _compared(op, lookup.value, expected)
    if lookup.more and not (passed and op in _SETTLED_BY_ONE):
        # The matches not collected could change the verdict: say so rather than guess.
        return False, (
            f"{lookup.total} matches, only the first {MAX_MATCHES} were compared, which cannot "
            f"settle `{op}`: narrow the path"
        )
    return passed, message


def _compared(op: str, actual: Any, expected: Any) -> tuple[bool, str | None]:
    if op in ("eq", "ne"):
        equal = compare.equal(actual, expected)
        return _verdict(equal if op == "eq" else not equal, op, expected)
    if op in ("lt", "le", "gt", "ge"):
        order = compare.order(actual, expected)
        if order is None:
            return False, f"cannot order a list or object with {op}"
        passed = {"lt": order < 0, "le": order <= 0, "gt": order > 0, "ge": order >= 0}[op]
        return _verdict(passed, op, expected)
    if op in ("contains", "not_contains"):
        contained = compare.contains(actual, expected)
        return _verdict(contained if op == "contains" else not contained, op, expected)
    if op == "matches":
        return _matches(actual, expected)
    return False, f"unknown op {op!r}"


def _verdict(passed: bool, op: str, expected: Any) -> tuple[bool, str | None]:
    return passed, None if passed else f"expected {op} {expected!r}"


def _matches(actual: Any, expected: Any) -> tuple[bool, str | None]:
    pattern = compare.text(expected)
    try:
        compiled = regex.compile(pattern)
    except (regex.error, ValueError, OverflowError) as exc:
        return False, f"invalid regex {pattern!r}: {exc}"
    candidates = actual if isinstance(actual, list) else [actual]
    try:
        passed = any(
            compiled.search(compare.text(item), timeout=lookups.REGEX_TIMEOUT_S, concurrent=True)
            for item in candidates
        )
    except TimeoutError:
        return False, lookups.REGEX_TIMED_OUT
    return _verdict(passed, "matches", pattern)
