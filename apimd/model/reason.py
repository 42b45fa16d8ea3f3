"""Why a result is not a PASS, in a few words (the dashboard's `why` column, SPEC §8): from what
the result already holds (its code, its error, its first failed condition and the value that
condition saw, redacted as stored)."""

from __future__ import annotations

import json
import re

from apimd.model.outcome import Outcome, ResultCode
from apimd.model.resources import SLA
from apimd.model.result import ConditionResult, Result

MAX_REASON = 120
"""A reason longer than this is cut (with `…`): the full text is in the result's detail."""
MAX_VALUE = 40
"""A condition's expected or actual value longer than this is cut."""

_TIMEOUT = re.compile(r"timed out after (\S+)")
_CERTIFICATE = re.compile(r"certificate verify failed: ([^(]+)")
_CONNECT = re.compile(r"^cannot connect to \S+: (.+)$")
_SLA_LIMIT = {
    ResultCode.SLA_ERROR: "fail_ms",
    ResultCode.SLA_WARNING: "warn_ms",
    ResultCode.SLOW_COMPLETE: "slow_ms",
}
_PLAIN = {
    ResultCode.NEEDS_SIGN_IN: "needs sign-in",
    ResultCode.BROWSER: "handed to the browser",
}


def short_reason(result: Result, sla: SLA | None = None) -> str | None:
    """Why `result` is not a PASS (`HTTP 503`, `status eq 200 → 503`, `timeout after 10s`, …);
    None for a PASS. `sla` (the call's) names the threshold a slow run went over."""
    if result.outcome is Outcome.PASS:
        return None
    return _cut(" ".join(_reason(result, sla).split()), MAX_REASON)


def _reason(result: Result, sla: SLA | None) -> str:
    code = result.result
    if result.kind == "workflow" and result.steps:
        step = _deciding_step(result)
        if step is not None:
            return f"{step.name}: {_reason(step, None)}"
    if code in (ResultCode.CONTENT_ERROR, ResultCode.CONTENT_WARNING):
        wanted = "fail" if code is ResultCode.CONTENT_ERROR else "warning"
        failed = [c for c in result.conditions if not c.passed and c.on_fail == wanted]
        if failed:
            return condition_reason(failed[0])
    if code in (ResultCode.HTTP_SERVER_ERROR, ResultCode.HTTP_CLIENT_ERROR) and result.http_status:
        return f"HTTP {result.http_status}"
    if code in _SLA_LIMIT:
        return _slow(result, sla)
    if code in _PLAIN:
        return _PLAIN[code]
    error = result.error or ""
    if code is ResultCode.TIMEOUT:
        match = _TIMEOUT.search(error)
        return f"timeout after {match.group(1)}" if match else "timeout"
    if code is ResultCode.CONNECTION_ERROR:
        return _connection(error)
    return error or code.value.lower().replace("_", " ")


def _deciding_step(result: Result) -> Result | None:
    """The first step whose outcome is the workflow's (the one that made it so)."""
    for step in result.steps:
        if step.outcome is result.outcome:
            return step
    return None


def _slow(result: Result, sla: SLA | None) -> str:
    took = f"SLOW {result.timings_ms.total / 1000:.1f}s"
    limit = getattr(sla, _SLA_LIMIT[result.result]) if sla is not None else None
    return f"{took} > {limit / 1000:g}s" if limit is not None else took


def _connection(error: str) -> str:
    if "TLS" in error:
        match = _CERTIFICATE.search(error)
        if match:
            return "TLS: " + match.group(1).strip().replace("has expired", "expired")
        return "TLS handshake failed" if "handshake" in error else error
    if error.startswith("cannot resolve "):
        return "DNS: " + error.split(" (for ")[0].removeprefix("cannot resolve ") + " unknown"
    match = _CONNECT.match(error)
    if match:
        return match.group(1)[:1].lower() + match.group(1)[1:]
    return error or "connection failed"


def condition_reason(condition: ConditionResult) -> str:
    """`status eq 200 → 503`, `$.ok eq true → false`, `header X-Id exists → missing`."""
    subject = _subject(condition)
    if condition.op is None:
        return f"{subject} not found"
    expected = "" if condition.op in ("exists", "not_exists") else f" {_value(condition.expected)}"
    actual = _value(condition.actual) if condition.found else "missing"
    return f"{subject} {condition.op}{expected} → {actual}"


def _subject(condition: ConditionResult) -> str:
    if condition.source in ("json", "xml") and condition.path:
        return condition.path
    if condition.path:
        return f"{condition.source} {condition.path}"
    return condition.source


def _value(value: object) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return _cut(text, MAX_VALUE)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
