"""From status, conditions and SLA to a result code (SPEC §4)."""

from __future__ import annotations

import pytest
from multidict import CIMultiDict

from apimd.engine.classify import classify
from apimd.engine.conditions import Evaluation, ResponseView, evaluate
from apimd.model.outcome import Outcome, ResultCode
from apimd.model.resources import SLA, Condition

STATUS_CONDITION = Condition(source="status", op="eq", value=404)
BODY_CONDITION = Condition(source="body", op="contains", value="ok")
SLA_ALL = SLA(slow_ms=100, warn_ms=200, fail_ms=300)


def code(
    *,
    status: int = 200,
    conditions: list[Condition] | None = None,
    failed: bool = False,
    warned: bool = False,
    total_ms: float = 50,
    sla: SLA | None = None,
    too_many_redirects: bool = False,
) -> ResultCode:
    return classify(
        status=status,
        conditions=conditions or [],
        evaluation=Evaluation(failed=failed, warned=warned),
        total_ms=total_ms,
        sla=sla,
        too_many_redirects=too_many_redirects,
    )


# SPEC §4: the outcome table, row by row.
SPEC_TABLE = {
    Outcome.PASS: ["COMPLETE"],
    Outcome.SLOW: ["SLOW_COMPLETE"],
    Outcome.WARNING: [
        "HTTP_CLIENT_ERROR",
        "HTTP_REDIRECT_ERROR",
        "CONTENT_WARNING",
        "SLA_WARNING",
    ],
    Outcome.FAIL: [
        "HTTP_SERVER_ERROR",
        "CONTENT_ERROR",
        "SLA_ERROR",
        "CONNECTION_ERROR",
        "TIMEOUT",
        "SETUP_ERROR",
        "AUTH_ERROR",
    ],
    Outcome.SKIPPED: ["NEEDS_SIGN_IN", "BROWSER", "CANCELLED"],
}


@pytest.mark.parametrize(
    ("outcome", "name"), [(o, n) for o, names in SPEC_TABLE.items() for n in names]
)
def test_every_code_has_the_outcome_of_its_table_row(outcome: Outcome, name: str) -> None:
    assert ResultCode(name).outcome is outcome


def test_the_table_names_every_code() -> None:
    assert {n for names in SPEC_TABLE.values() for n in names} == {c.value for c in ResultCode}


# Every row classify is responsible for (the others come from the executor and the runner).
ROWS = [
    ("COMPLETE", {}),
    ("COMPLETE", {"status": 204, "sla": SLA_ALL, "total_ms": 100}),
    ("SLOW_COMPLETE", {"sla": SLA_ALL, "total_ms": 100.5}),
    ("HTTP_CLIENT_ERROR", {"status": 404}),
    ("HTTP_CLIENT_ERROR", {"status": 499}),
    ("HTTP_REDIRECT_ERROR", {"status": 302}),
    ("HTTP_REDIRECT_ERROR", {"status": 200, "too_many_redirects": True}),
    ("CONTENT_WARNING", {"warned": True}),
    ("SLA_WARNING", {"sla": SLA_ALL, "total_ms": 250}),
    ("HTTP_SERVER_ERROR", {"status": 500}),
    ("HTTP_SERVER_ERROR", {"status": 599}),
    ("CONTENT_ERROR", {"failed": True}),
    ("SLA_ERROR", {"sla": SLA_ALL, "total_ms": 300.1}),
    ("COMPLETE", {"status": 600}),
    ("COMPLETE", {"status": 101}),
]


@pytest.mark.parametrize(("expected", "given"), ROWS)
def test_row(expected: str, given: dict[str, object]) -> None:
    assert code(**given) == ResultCode(expected)  # type: ignore[arg-type]


@pytest.mark.parametrize("status", [302, 404, 500, 503])
def test_status_condition_replaces_the_default_status_rule(status: int) -> None:
    assert code(status=status, conditions=[STATUS_CONDITION]) is ResultCode.COMPLETE
    # Other conditions do not.
    assert code(status=status, conditions=[BODY_CONDITION]) is not ResultCode.COMPLETE


def test_status_condition_does_not_excuse_too_many_redirects() -> None:
    result = code(status=302, conditions=[STATUS_CONDITION], too_many_redirects=True)
    assert result is ResultCode.HTTP_REDIRECT_ERROR


def test_failed_status_condition_is_a_content_error() -> None:
    assert code(status=500, conditions=[STATUS_CONDITION], failed=True) is ResultCode.CONTENT_ERROR
    warned = code(status=500, conditions=[STATUS_CONDITION], warned=True)
    assert warned is ResultCode.CONTENT_WARNING


@pytest.mark.parametrize(
    ("sla", "total_ms", "expected"),
    [
        (SLA(slow_ms=100), 100, ResultCode.COMPLETE),
        (SLA(slow_ms=100), 101, ResultCode.SLOW_COMPLETE),
        (SLA(warn_ms=100), 100, ResultCode.COMPLETE),
        (SLA(warn_ms=100), 100.01, ResultCode.SLA_WARNING),
        (SLA(fail_ms=100), 100, ResultCode.COMPLETE),
        (SLA(fail_ms=100), 5000, ResultCode.SLA_ERROR),
        (SLA_ALL, 150, ResultCode.SLOW_COMPLETE),
        (SLA_ALL, 250, ResultCode.SLA_WARNING),
        (SLA_ALL, 350, ResultCode.SLA_ERROR),
        (SLA(), 10_000, ResultCode.COMPLETE),
        (None, 10_000, ResultCode.COMPLETE),
    ],
)
def test_sla_thresholds(sla: SLA | None, total_ms: float, expected: ResultCode) -> None:
    assert code(sla=sla, total_ms=total_ms) is expected


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ({"status": 404, "failed": True}, ResultCode.CONTENT_ERROR),
        ({"status": 404, "sla": SLA_ALL, "total_ms": 250}, ResultCode.HTTP_CLIENT_ERROR),
        ({"status": 404, "sla": SLA_ALL, "total_ms": 350}, ResultCode.SLA_ERROR),
        ({"status": 503, "failed": True, "sla": SLA_ALL, "total_ms": 350}, "HTTP_SERVER_ERROR"),
        ({"warned": True, "sla": SLA_ALL, "total_ms": 150}, ResultCode.CONTENT_WARNING),
        ({"warned": True, "failed": True}, ResultCode.CONTENT_ERROR),
        ({"failed": True, "sla": SLA_ALL, "total_ms": 350}, ResultCode.CONTENT_ERROR),
        ({"status": 302, "warned": True}, ResultCode.HTTP_REDIRECT_ERROR),
        ({"too_many_redirects": True, "sla": SLA_ALL, "total_ms": 150}, "HTTP_REDIRECT_ERROR"),
    ],
)
def test_worst_applicable_code_wins(given: dict[str, object], expected: str) -> None:
    assert code(**given) == ResultCode(expected)  # type: ignore[arg-type]


async def test_evaluated_conditions_classify_end_to_end() -> None:
    response = ResponseView(
        status=404,
        headers=CIMultiDict(),
        body=b'{"error": "gone"}',
        text='{"error": "gone"}',
        response_time_ms=40,
        size=17,
    )
    conditions = [
        Condition(source="status", op="eq", value=404),
        Condition(source="json", path="error", op="eq", value="missing", on_fail="warning"),
    ]
    evaluation = await evaluate(conditions, response, lambda text, where: text)
    result = classify(
        status=404, conditions=conditions, evaluation=evaluation, total_ms=40, sla=None
    )
    assert result is ResultCode.CONTENT_WARNING
