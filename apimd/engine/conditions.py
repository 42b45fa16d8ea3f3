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
from apimd.engine.identity_cache import IdentityCache
from apimd.engine.template import is_literal
from apimd.engine.worker_pool import WorkerFailed, run_in_worker
from apimd.model.resources import Condition
from apimd.model.result import ConditionResult

THREAD_BODY_BYTES = 64 * 1024
PROCESS_BODY_BYTES = 1024 * 1024
BODY_SOURCES = frozenset({"body", "json", "xml"})
_JSONPATH_REGEX = re.compile(r"\b(?:match|search)\s*\(")
# Ops whose verdict one match can settle; any other needs every match.
_SETTLED_BY_ONE = frozenset({"contains", "matches"})
_VALUELESS_OPS = frozenset({"exists", "not_exists"})
# The orders (-1, 0, 1 as the actual value is below, equal to, above the expected) each op accepts.
_ORDERS = {"lt": (-1,), "le": (-1, 0), "gt": (1,), "ge": (0, 1)}


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


Comparison = Callable[[Any], tuple[bool, "str | None"]]
"""A condition's op and expected value made ready: actual value → (passed, message)."""


@dataclass(slots=True)
class _Check:
    """One condition with its path and expected value rendered, and what of it was made ready
    once (`_Plan`): its lookup, its comparison, whether it runs a user regex. Without `look` or
    `compare` it is checked the general way. It holds the condition's fields, not the condition:
    a plan keeps its check, and must not keep its condition alive."""

    source: str
    path: str | None
    op: str | None
    expected: Any
    on_fail: str
    save_as: str | None
    namespaces: Mapping[str, str]
    look: lookups.LookUp | None = None
    compare: Comparison | None = None
    user_regex: bool = False


@dataclass(slots=True)
class _Plan:
    """What of a condition is the same on every call, made once: its path and expected value
    when they hold no template token (rendering would give them back as they are), the lookup
    and comparison made ready for them, and whether it runs a user regex. `check` is the
    condition's whole check when both are fixed."""

    source: str
    path: str | None
    op: str | None
    value: Any
    on_fail: str
    save_as: str | None
    namespaces: Mapping[str, str]
    path_fixed: bool
    expected_fixed: bool
    expected: Any
    look: lookups.LookUp | None = None
    compare: Comparison | None = None
    user_regex: bool = False
    check: _Check | None = None


# Plans by the id of their condition (a project's conditions live as long as it is loaded); an
# entry goes when its condition does.
_PLANS: IdentityCache[Condition, _Plan] = IdentityCache()


_Checked = tuple[ConditionResult, "str | None"]
"""A condition's result, and the variable text it saves (None when it saves nothing)."""

# ConditionResult's own validator (what its constructor runs), called without the constructor's
# Python frame: a result is made per condition per call.
_new_result = ConditionResult.__pydantic_validator__.validate_python


async def evaluate(
    conditions: list[Condition], response: ResponseView, render: Render
) -> Evaluation:
    """Evaluate `conditions` in order against `response`. `path` and `value` are templates rendered
    through `render` (where = e.g. "conditions[2].value") when they hold a token (not `is_literal`:
    one without is used as it is); a variable extracted by an earlier condition is visible to later
    ones only through the caller's scope, so extraction results are returned in `extracted` (name →
    string form: JSON values other than strings as JSON text)."""
    checks = [_rendered(index, condition, render) for index, condition in enumerate(conditions)]
    evaluation = Evaluation()
    body = lookups.ParsedBody(response)
    if len(response.body) <= THREAD_BODY_BYTES:
        outcomes = [
            await asyncio.to_thread(_check, check, body)
            if check.user_regex
            else _check(check, body)
            for check in checks
        ]
    else:
        outcomes = await _check_every(checks, response, body)
    results, extracted = evaluation.results, evaluation.extracted
    for check, (result, saved) in zip(checks, outcomes, strict=True):
        results.append(result)
        if saved is not None and check.save_as:
            extracted[check.save_as] = saved
        if not result.passed:
            if check.on_fail == "warning":
                evaluation.warned = True
            else:
                evaluation.failed = True
    evaluation.body_json = body.parsed_json()
    return evaluation


def _rendered(index: int, condition: Condition, render: Render) -> _Check:
    plan = _planned(condition)
    if plan.check is not None:
        return plan.check
    path, look = plan.path, plan.look
    if not plan.path_fixed:
        path, look = render(str(condition.path), f"conditions[{index}].path"), None
    expected, compared = plan.expected, plan.compare
    if not plan.expected_fixed:
        expected, compared = render(condition.value, f"conditions[{index}].value"), None
    return _Check(
        condition.source,
        path,
        condition.op,
        expected,
        condition.on_fail,
        condition.save_as,
        condition.namespaces,
        look,
        compared,
        _runs_user_regex(condition.source, condition.op, path),
    )


def _planned(condition: Condition) -> _Plan:
    """The condition's plan, made on its first evaluation and again if a field of it that the
    plan depends on was set anew since."""
    plan = _PLANS.get(condition)
    if plan is not None:
        # Its fields as pydantic holds them: read there, seven cost what two attributes do.
        fields = condition.__dict__
        if (
            plan.path is fields["path"]
            and plan.value is fields["value"]
            and plan.op is fields["op"]
            and plan.source is fields["source"]
            and plan.save_as is fields["save_as"]
            and plan.on_fail is fields["on_fail"]
            and plan.namespaces is fields["namespaces"]
        ):
            return plan
    plan = _plan(condition)
    _PLANS.put(condition, plan)
    return plan


def _plan(condition: Condition) -> _Plan:
    path, op, value = condition.path, condition.op, condition.value
    path_fixed = not isinstance(path, str) or is_literal(path)
    if op is None or op in _VALUELESS_OPS:
        expected_fixed, expected = True, None
    else:
        expected_fixed = not isinstance(value, str) or is_literal(value)
        expected = value if expected_fixed else None
    source = condition.source
    plan = _Plan(
        source,
        path,
        op,
        value,
        condition.on_fail,
        condition.save_as,
        condition.namespaces,
        path_fixed,
        expected_fixed,
        expected,
    )
    try:
        if path_fixed:
            plan.look = lookups.prepare(source, path, condition.namespaces)
            plan.user_regex = _runs_user_regex(source, op, path)
        if expected_fixed and op is not None:
            plan.compare = _comparison(op, expected)
    except Exception:
        # What cannot be made ready is left to the general way, which says per call what is wrong.
        plan.look, plan.compare = None, None
    if path_fixed and expected_fixed:
        plan.check = _Check(
            source,
            path,
            op,
            expected,
            plan.on_fail,
            plan.save_as,
            plan.namespaces,
            plan.look,
            plan.compare,
            plan.user_regex,
        )
    return plan


async def _check_every(
    checks: list[_Check], response: ResponseView, body: lookups.ParsedBody
) -> list[_Checked]:
    """Each check's outcome, in order, for a body over `THREAD_BODY_BYTES`: the checks on it
    share one parse of it (`body`), made off the event loop."""
    size = len(response.body)
    done: dict[int, _Checked] = {}
    on_body = [i for i, check in enumerate(checks) if check.source in BODY_SOURCES]
    if on_body and size > PROCESS_BODY_BYTES:
        # Sent without the text: the worker decodes the body itself rather than unpickle both.
        # Checked there the general way: what was made ready here stays here.
        bare = replace(response, headers={}, text="")
        jobs = [replace(checks[i], look=None, compare=None) for i in on_body]
        try:
            outcomes = await run_in_worker(_check_in_worker, jobs, bare)
        except WorkerFailed as exc:
            why = f"could not evaluate the {size}-byte body: {exc}"
            outcomes = [_not_evaluated(check, why) for check in jobs]
        done.update(zip(on_body, outcomes, strict=True))
    elif on_body:
        outcomes = await asyncio.to_thread(_check_all, [checks[i] for i in on_body], body)
        done.update(zip(on_body, outcomes, strict=True))
    for index, check in enumerate(checks):
        if index in done:
            continue
        if check.user_regex:
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


def _runs_user_regex(source: str, op: str | None, path: str | None) -> bool:
    """Whether the condition runs a regex the user wrote. Even on a small body one can take up
    to `lookups.REGEX_TIMEOUT_S`: in a worker thread, that stalls only this run, not every other."""
    if op == "matches" or (source == "body" and path):
        return True
    return source == "json" and _JSONPATH_REGEX.search(path or "") is not None


# --- checking one condition --------------------------------------------------------------------


def _check(check: _Check, body: lookups.ParsedBody) -> _Checked:
    """The condition's result, its actual value cut to `CONDITION_VALUE_CHARS`, and the text it
    saves."""
    found = False
    try:
        if check.look is not None:
            lookup = check.look(body)
        else:
            lookup = lookups.look_up(check.source, check.path, check.namespaces, body)
        value = lookup.value
        found = value is not lookups.MISSING
        op = check.op
        if lookup.broken:
            passed, message = False, lookup.message
        elif op is None:
            passed, message = True, lookup.message
        elif found and not lookup.more and check.compare is not None:
            passed, message = check.compare(value)  # as `_apply` gives it for one value
        elif found and op == "exists":
            passed, message = True, None
        else:
            passed, message = _apply(op, lookup, check.expected, check.compare)
        if not found:
            actual = None
        elif lookup.total is None and not isinstance(value, str | list | dict):
            actual = value  # as `_shown` would give it: nothing to cut
        else:
            actual = _shown(lookup)
        saved = None
        if found and check.save_as:
            saved = saved_text(value, more=lookup.more)
    except Exception as exc:
        # A bug or an input nobody foresaw must fail this condition, not the whole run.
        passed, message = False, f"could not evaluate: {type(exc).__name__}: {exc}"
        actual, saved = None, None
    result = _new_result(
        {
            "source": check.source,
            "path": check.path,
            "op": check.op,
            "expected": check.expected,
            "actual": actual,
            "found": found,
            "passed": passed,
            "on_fail": check.on_fail,
            "save_as": check.save_as,
            "message": message,
        }
    )
    return result, saved


def _not_evaluated(check: _Check, message: str) -> _Checked:
    result = ConditionResult(
        source=check.source,
        path=check.path,
        op=check.op,
        expected=check.expected,
        found=False,
        passed=False,
        on_fail=check.on_fail,
        save_as=check.save_as,
        message=message,
    )
    return result, None


def _shown(lookup: lookups.Lookup) -> Any:
    """The looked-up value as recorded: at most `SHOWN_MATCHES` matches, cut to size."""
    if not lookup.found:
        return None
    if lookup.total is not None:
        return shown_matches(lookup.value, lookup.total, CONDITION_VALUE_CHARS)
    return cap_value(lookup.value, CONDITION_VALUE_CHARS)


def _apply(
    op: str, lookup: lookups.Lookup, expected: Any, compared: Comparison | None = None
) -> tuple[bool, str | None]:
    if op == "exists":
        return lookup.found, None if lookup.found else lookup.message or "not found"
    if op == "not_exists":
        return not lookup.found, lookup.message if not lookup.found else "expected no value"
    if not lookup.found:
        return False, lookup.message or "not found"
    if compared is not None:
        passed, message = compared(lookup.value)
    else:
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


def _comparison(op: str, expected: Any) -> Comparison | None:
    """`_compared(op, ·, expected)` with the expected value's forms made once; None for an op
    it leaves to `_compared` (`matches`, an unknown op)."""
    if op in ("eq", "ne", "contains", "not_contains"):
        prepared = compare.Expected(expected)
        test = prepared.equal if op in ("eq", "ne") else prepared.contains
        wanted = op in ("eq", "contains")
        failure = f"expected {op} {expected!r}"

        def tested(actual: Any) -> tuple[bool, str | None]:
            passed = test(actual) == wanted
            return passed, None if passed else failure

        return tested
    if op in _ORDERS:
        prepared = compare.Expected(expected)
        accepted = _ORDERS[op]
        failure = f"expected {op} {expected!r}"
        unorderable = f"cannot order a list or object with {op}"

        def ordered(actual: Any) -> tuple[bool, str | None]:
            order = prepared.order(actual)
            if order is None:
                return False, unorderable
            passed = order in accepted
            return passed, None if passed else failure

        return ordered
    return None


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
