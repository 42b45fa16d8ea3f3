"""From status, conditions and SLA to a result code (SPEC §4's outcome table)."""

from __future__ import annotations

from apimd.engine.conditions import Evaluation
from apimd.model.outcome import ResultCode, worst
from apimd.model.resources import SLA, Condition


def classify(
    *,
    status: int,
    conditions: list[Condition],
    evaluation: Evaluation,
    total_ms: float,
    sla: SLA | None,
    too_many_redirects: bool = False,
) -> ResultCode:
    """The worst applicable code: 4xx → HTTP_CLIENT_ERROR and 5xx → HTTP_SERVER_ERROR unless any
    condition has source `status`; an unfollowed 3xx or too many redirects → HTTP_REDIRECT_ERROR
    (same status-condition exemption for the unfollowed 3xx); failed `on_fail: fail` condition →
    CONTENT_ERROR, failed `on_fail: warning` → CONTENT_WARNING; total > fail_ms → SLA_ERROR,
    > warn_ms → SLA_WARNING, > slow_ms → SLOW_COMPLETE; else COMPLETE."""
    codes: list[ResultCode] = []
    # A status condition says which statuses are acceptable, so the default rule steps aside.
    if not any(condition.source == "status" for condition in conditions):
        if 300 <= status < 400:
            codes.append(ResultCode.HTTP_REDIRECT_ERROR)
        elif 400 <= status < 500:
            codes.append(ResultCode.HTTP_CLIENT_ERROR)
        elif 500 <= status < 600:
            codes.append(ResultCode.HTTP_SERVER_ERROR)
    if too_many_redirects:
        codes.append(ResultCode.HTTP_REDIRECT_ERROR)
    if evaluation.failed:
        codes.append(ResultCode.CONTENT_ERROR)
    if evaluation.warned:
        codes.append(ResultCode.CONTENT_WARNING)
    if sla is not None:
        if sla.fail_ms is not None and total_ms > sla.fail_ms:
            codes.append(ResultCode.SLA_ERROR)
        if sla.warn_ms is not None and total_ms > sla.warn_ms:
            codes.append(ResultCode.SLA_WARNING)
        if sla.slow_ms is not None and total_ms > sla.slow_ms:
            codes.append(ResultCode.SLOW_COMPLETE)
    return worst(codes)
