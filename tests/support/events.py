"""One event of every type the daemon publishes (SPEC §6), with every field set, for the tests of
the event contract on each side of the wire."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from apimd.model.events import (
    Event,
    Lagged,
    ResourceChanged,
    RunFinished,
    RunStarted,
    RunStep,
    ScheduleFired,
    SignInEnded,
    SignInOpened,
    TokenSaved,
    TokenStateChanged,
)
from apimd.model.outcome import Outcome, ResultCode
from apimd.model.resources import TokenState

AT = datetime(2026, 12, 6, 7, 30, 15, 250000, tzinfo=UTC)
LATER = AT + timedelta(minutes=10)

EVERY_EVENT: list[Event] = [
    RunStarted(at=AT, run_id="r1", kind="call", name="list-orders", trigger="schedule"),
    RunStep(
        at=AT,
        run_id="r2",
        workflow="checkout",
        name="pay",
        index=1,
        of=3,
        outcome=Outcome.FAIL,
        result=ResultCode.HTTP_SERVER_ERROR,
        http_status=503,
        total_ms=12.5,
    ),
    RunFinished(
        at=AT,
        run_id="r2",
        result_id="r2",
        kind="workflow",
        name="checkout",
        trigger="manual",
        outcome=Outcome.PASS,
        result=ResultCode.COMPLETE,
        http_status=200,
        total_ms=40.25,
    ),
    TokenSaved(at=AT, token="api", expires_at=LATER),
    TokenStateChanged(
        at=AT, token="api", state=TokenState.ERROR, previous=TokenState.VALID, error="HTTP 500"
    ),
    SignInOpened(
        at=AT,
        id="s1",
        run_id="r3",
        url="https://login.example.test/device?user_code=WDJB",
        token="user",
        user_code="WDJB-MJHT",
        verification_uri="https://login.example.test/device",
        expires_at=LATER,
    ),
    SignInEnded(
        at=AT,
        id="s1",
        token="user",
        ok=True,
        message="token user saved — é ✓",
        expires_at=LATER,
        result_id="r3",
    ),
    ResourceChanged(at=AT, resources=("calls/list-orders", "variables/BASE_URL")),
    ScheduleFired(
        at=AT,
        schedule="every-20s",
        targets=("list-orders", "checkout"),
        scheduled_at=AT - timedelta(milliseconds=3),
        lateness_ms=3.0,
    ),
    Lagged(at=AT, missed=7, reason="reconnected to the store"),
]
"""Each type once; `type` names are what SPEC §6 lists."""
