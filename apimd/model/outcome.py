"""Outcomes and result codes (SPEC §4)."""

from __future__ import annotations

from enum import StrEnum


class Outcome(StrEnum):
    PASS = "PASS"
    SLOW = "SLOW"
    WARNING = "WARNING"
    SKIPPED = "SKIPPED"
    FAIL = "FAIL"

    @property
    def severity(self) -> int:
        return _OUTCOME_ORDER.index(self)

    @property
    def is_success(self) -> bool:
        return self in (Outcome.PASS, Outcome.SLOW)


_OUTCOME_ORDER = [Outcome.PASS, Outcome.SLOW, Outcome.WARNING, Outcome.SKIPPED, Outcome.FAIL]


class ResultCode(StrEnum):
    COMPLETE = "COMPLETE"
    SLOW_COMPLETE = "SLOW_COMPLETE"
    HTTP_CLIENT_ERROR = "HTTP_CLIENT_ERROR"
    HTTP_REDIRECT_ERROR = "HTTP_REDIRECT_ERROR"
    CONTENT_WARNING = "CONTENT_WARNING"
    SLA_WARNING = "SLA_WARNING"
    HTTP_SERVER_ERROR = "HTTP_SERVER_ERROR"
    CONTENT_ERROR = "CONTENT_ERROR"
    SLA_ERROR = "SLA_ERROR"
    CONNECTION_ERROR = "CONNECTION_ERROR"
    TIMEOUT = "TIMEOUT"
    SETUP_ERROR = "SETUP_ERROR"
    AUTH_ERROR = "AUTH_ERROR"
    NEEDS_SIGN_IN = "NEEDS_SIGN_IN"
    BROWSER = "BROWSER"
    CANCELLED = "CANCELLED"

    @property
    def outcome(self) -> Outcome:
        return _CODE_OUTCOME[self]

    @property
    def rank(self) -> tuple[int, int]:
        """Sort key: worse outcome first, then the more specific cause within an outcome."""
        return (self.outcome.severity, _CODE_ORDER.index(self))


_CODE_OUTCOME = {
    ResultCode.COMPLETE: Outcome.PASS,
    ResultCode.SLOW_COMPLETE: Outcome.SLOW,
    ResultCode.HTTP_CLIENT_ERROR: Outcome.WARNING,
    ResultCode.HTTP_REDIRECT_ERROR: Outcome.WARNING,
    ResultCode.CONTENT_WARNING: Outcome.WARNING,
    ResultCode.SLA_WARNING: Outcome.WARNING,
    ResultCode.HTTP_SERVER_ERROR: Outcome.FAIL,
    ResultCode.CONTENT_ERROR: Outcome.FAIL,
    ResultCode.SLA_ERROR: Outcome.FAIL,
    ResultCode.CONNECTION_ERROR: Outcome.FAIL,
    ResultCode.TIMEOUT: Outcome.FAIL,
    ResultCode.SETUP_ERROR: Outcome.FAIL,
    ResultCode.AUTH_ERROR: Outcome.FAIL,
    ResultCode.NEEDS_SIGN_IN: Outcome.SKIPPED,
    ResultCode.BROWSER: Outcome.SKIPPED,
    ResultCode.CANCELLED: Outcome.SKIPPED,
}
# Within one outcome, later entries are "worse" (more specific about the failure).
_CODE_ORDER = [
    ResultCode.COMPLETE,
    ResultCode.SLOW_COMPLETE,
    ResultCode.SLA_WARNING,
    ResultCode.CONTENT_WARNING,
    ResultCode.HTTP_REDIRECT_ERROR,
    ResultCode.HTTP_CLIENT_ERROR,
    ResultCode.CANCELLED,
    ResultCode.BROWSER,
    ResultCode.NEEDS_SIGN_IN,
    ResultCode.SLA_ERROR,
    ResultCode.CONTENT_ERROR,
    ResultCode.HTTP_SERVER_ERROR,
    ResultCode.TIMEOUT,
    ResultCode.CONNECTION_ERROR,
    ResultCode.AUTH_ERROR,
    ResultCode.SETUP_ERROR,
]


# Each code's `rank`, looked up without its two properties and `list.index` (~5 k instructions
# a code).
_RANK = {code: code.rank for code in ResultCode}


def worst(codes: list[ResultCode]) -> ResultCode:
    """The worst of `codes` (COMPLETE when empty)."""
    return max(codes, key=_RANK.__getitem__, default=ResultCode.COMPLETE)
