"""`short_reason`: why a result is not a PASS, in a few words, from what the result holds."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from apimd.model.outcome import ResultCode
from apimd.model.reason import short_reason
from apimd.model.resources import SLA
from apimd.model.result import ConditionResult, Result, Timings

AT = datetime(2026, 3, 14, 12, 0, tzinfo=UTC)


def result(code: ResultCode, **fields: object) -> Result:
    base: dict[str, object] = {
        "id": "r1",
        "kind": "call",
        "name": "c",
        "started_at": AT,
        "finished_at": AT,
        "outcome": code.outcome,
        "result": code,
    }
    return Result.model_validate(base | fields)


@pytest.mark.parametrize(
    ("made", "why"),
    [
        (result(ResultCode.COMPLETE, http_status=200), None),
        (
            result(ResultCode.HTTP_SERVER_ERROR, http_status=503, error="HTTP 503 Unavailable"),
            "HTTP 503",
        ),
        (result(ResultCode.HTTP_CLIENT_ERROR, http_status=404), "HTTP 404"),
        (
            result(
                ResultCode.CONTENT_ERROR,
                http_status=503,
                conditions=[
                    ConditionResult(
                        source="status", op="eq", expected=200, actual=503, passed=False
                    )
                ],
            ),
            "status eq 200 → 503",
        ),
        (
            result(
                ResultCode.CONTENT_ERROR,
                conditions=[
                    ConditionResult(source="json", path="$.v", save_as="V", actual="1"),
                    ConditionResult(
                        source="json",
                        path="$.ok",
                        op="eq",
                        expected=True,
                        actual=False,
                        passed=False,
                    ),
                ],
            ),
            "$.ok eq true → false",
        ),
        (
            result(
                ResultCode.CONTENT_ERROR,
                conditions=[
                    ConditionResult(
                        source="header", path="X-Id", op="exists", found=False, passed=False
                    )
                ],
            ),
            "header X-Id exists → missing",
        ),
        (
            result(ResultCode.TIMEOUT, error="timed out after 10s waiting for the response"),
            "timeout after 10s",
        ),
        (
            result(
                ResultCode.CONNECTION_ERROR,
                error="cannot connect to 127.0.0.1:9: Connection refused",
            ),
            "connection refused",
        ),
        (
            result(
                ResultCode.CONNECTION_ERROR,
                error="TLS certificate of a.example:443 rejected: [SSL: CERTIFICATE_VERIFY_FAILED] "
                "certificate verify failed: certificate has expired (_ssl.c:1000) "
                "(set verify_tls: false to accept it)",
            ),
            "TLS: certificate expired",
        ),
        (
            result(
                ResultCode.CONNECTION_ERROR,
                error="cannot resolve nowhere.invalid (for nowhere.invalid:443): Name unknown",
            ),
            "DNS: nowhere.invalid unknown",
        ),
        (
            result(ResultCode.NEEDS_SIGN_IN, error="token t needs a person to sign in"),
            "needs sign-in",
        ),
        (
            result(ResultCode.AUTH_ERROR, error="refresh of token t failed: ****"),
            "refresh of token t failed: ****",
        ),
    ],
)
def test_each_kind_of_failure_in_a_few_words(made: Result, why: str | None) -> None:
    assert short_reason(made) == why


def test_a_slow_run_names_the_threshold_it_went_over() -> None:
    slow = result(ResultCode.SLA_ERROR, timings_ms=Timings(total=2345.0))
    assert short_reason(slow, SLA(fail_ms=1000)) == "SLOW 2.3s > 1s"
    assert short_reason(slow) == "SLOW 2.3s"


def test_a_workflow_names_the_step_that_failed_it_and_long_reasons_are_cut() -> None:
    step = result(ResultCode.HTTP_SERVER_ERROR, name="pay", http_status=500)
    ok = result(ResultCode.COMPLETE, name="login", http_status=200)
    flow = result(ResultCode.HTTP_SERVER_ERROR, kind="workflow", name="f", steps=[ok, step])
    assert short_reason(flow) == "pay: HTTP 500"
    long = result(ResultCode.SETUP_ERROR, error="x" * 500 + "\nsecond line")
    why = short_reason(long)
    assert why is not None and len(why) == 120 and why.endswith("…") and "\n" not in why
