"""From status, conditions and SLA to a result code (SPEC §4's outcome table).

STUB — to be implemented.
"""

from __future__ import annotations

from apimd.engine.conditions import Evaluation
from apimd.model.outcome import ResultCode
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
    raise NotImplementedError
