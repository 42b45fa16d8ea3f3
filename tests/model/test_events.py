"""The typed event contract (SPEC §6, issue 11): one model per event type, the JSON payload each
one puts on the wire, and reading payloads back (strictly, and never raising)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from apimd.model.events import (
    Event,
    Lagged,
    ResourceChanged,
    RunFinished,
    RunStarted,
    SignInEnded,
    SignInOpened,
    TokenStateChanged,
    UnknownEvent,
    decode_event,
)
from apimd.model.outcome import Outcome, ResultCode
from apimd.model.resources import TokenState
from apimd.model.result import Result, Timings
from tests.support.events import AT, EVERY_EVENT, LATER


def test_every_event_type_of_the_spec_has_one_model() -> None:
    assert [event.type for event in EVERY_EVENT] == [
        "run.started",
        "run.step",
        "run.finished",
        "token.saved",
        "token.state",
        "signin.open",
        "signin.done",
        "resource.changed",
        "schedule.fired",
        "lagged",
    ]


@pytest.mark.parametrize("event", EVERY_EVENT, ids=lambda event: event.type)
def test_each_event_reads_back_equal_from_its_payload(event: Event) -> None:
    text = json.dumps(event.payload())

    back = decode_event(text)

    assert type(back) is type(event)
    assert back == event


def test_the_payload_keeps_the_wire_keys_type_and_time_first_in_utc() -> None:
    payload = SignInEnded(at=AT, id="s1", token="user", ok=False, message="no").payload()

    assert list(payload) == ["type", "at", "id", "token", "ok", "message", "expires_at"]
    assert payload["at"] == "2026-12-06T07:30:15.250000Z"
    assert payload["expires_at"] is None  # always sent, null when unknown
    # A naive time is taken as UTC, an aware one converted to it.
    naive = Lagged(at=datetime(2026, 1, 2, 3, 4, 5), missed=1).payload()
    assert naive == {"type": "lagged", "at": "2026-01-02T03:04:05Z", "missed": 1}


def test_optional_keys_are_left_out_while_empty_as_they_always_were() -> None:
    refreshing = TokenStateChanged(at=AT, token="api", state=TokenState.REFRESHING)
    opened = SignInOpened(at=AT, id="s1", url="https://x.test/a", token=None, expires_at=LATER)

    assert refreshing.payload() == {
        "type": "token.state",
        "at": "2026-12-06T07:30:15.250000Z",
        "token": "api",
        "state": "refreshing",
    }
    assert set(opened.payload()) == {"type", "at", "id", "url", "token", "expires_at"}
    assert "reason" not in Lagged(missed=2).payload()


def test_run_finished_is_built_from_the_result_it_announces() -> None:
    result = Result(
        id="r9",
        kind="call",
        name="health",
        trigger="webhook",
        started_at=AT,
        finished_at=LATER,
        outcome=Outcome.FAIL,
        result=ResultCode.SLA_ERROR,
        http_status=200,
        timings_ms=Timings(total=812.5),
    )

    event = RunFinished.of(result, "r9")

    assert (event.run_id, event.result_id, event.kind, event.name) == ("r9", "r9", "call", "health")
    assert (event.trigger, event.outcome, event.result) == ("webhook", Outcome.FAIL, "SLA_ERROR")
    assert (event.http_status, event.total_ms) == (200, 812.5)


def test_resource_changed_names_split_into_kind_and_name() -> None:
    changed = ResourceChanged(resources=("calls/a", "tokens/t", "bad"))
    assert changed.pairs == (("calls", "a"), ("tokens", "t"))


def test_a_type_not_known_here_is_kept_as_an_unknown_event_and_goes_out_again_unchanged() -> None:
    text = '{"type":"alert.raised","at":"2026-12-06T07:30:15Z","rule":"p95","value":[1,2]}'

    event = decode_event(text)

    assert isinstance(event, UnknownEvent)
    assert (event.type, event.at) == ("alert.raised", datetime(2026, 12, 6, 7, 30, 15, tzinfo=UTC))
    assert event.payload() == json.loads(text)


@pytest.mark.parametrize(
    "payload",
    [
        # A known type whose fields do not fit: kept, never half-read into the typed model.
        {"type": "run.finished", "at": "2026-03-14T12:00:00Z", "outcome": "NOPE", "total_ms": "x"},
        {"type": "run.started", "at": "2026-03-14T12:00:00Z", "name": "a", "trigger": "schedule"},
        {"type": "signin.open", "at": "garbage"},
        {"type": "lagged", "missed": True},
        {"type": "token.state", "token": "t", "state": "valid", "error": {"deep": [1]}},
    ],
)
def test_a_known_type_with_fields_that_do_not_fit_is_an_unknown_event(
    payload: dict[str, object],
) -> None:
    event = decode_event(json.dumps(payload))

    assert isinstance(event, UnknownEvent)
    assert event.type == payload["type"]
    assert event.data == payload


def test_numbers_and_flags_are_read_strictly() -> None:
    step = {
        "type": "run.step",
        "at": "2026-03-14T12:00:00Z",
        "run_id": "w1",
        "workflow": "flow",
        "name": "a",
        "index": 1,
        "of": 3,
        "outcome": "PASS",
        "result": "COMPLETE",
        "http_status": None,
        "total_ms": 12,
    }
    assert decode_event(json.dumps(step)) is not None
    assert not isinstance(decode_event(json.dumps(step)), UnknownEvent)
    for odd in ({"http_status": True}, {"http_status": "200"}, {"index": 1.5}):
        assert isinstance(decode_event(json.dumps(step | odd)), UnknownEvent), odd


@pytest.mark.parametrize(
    "text",
    [
        "",
        "not json",
        "[1, 2]",
        '"run.finished"',
        "null",
        '{"no": "type"}',
        '{"type": 5}',
        '{"type": "run.finished\\ndata: forged"}',
        "[" * 100_000 + "]" * 100_000,
        '{"type": "x", "at": "' + "9" * 5000 + '"}',
    ],
)
def test_text_that_is_no_event_reads_as_nothing_and_never_raises(text: str) -> None:
    event = decode_event(text)
    assert event is None or (isinstance(event, UnknownEvent) and event.type == "x")


def test_events_are_frozen_values() -> None:
    event = RunStarted(run_id="r", kind="call", name="a", trigger="manual")
    with pytest.raises(ValueError, match="frozen"):
        event.name = "b"  # type: ignore[misc]
    assert event == event.model_copy()


@pytest.mark.parametrize("event", EVERY_EVENT, ids=lambda event: event.type)
def test_each_events_json_is_its_payload_on_one_line(event: Event) -> None:
    """What an SSE frame's data holds: the payload, leaving out the same fields while None."""
    text = event.payload_json()

    assert b"\n" not in text and b"\r" not in text
    assert json.loads(text) == event.payload()


def test_text_the_serializer_cannot_encode_still_goes_out_escaped() -> None:
    """A lone surrogate (a hostile body's `"\\ud800"` in a reason) is no UTF-8: the JSON escapes
    it, and the payload reads back the same."""
    event = RunFinished(
        at=AT,
        run_id="r",
        result_id="r",
        kind="call",
        name="naïve",
        trigger="schedule",
        outcome=Outcome.FAIL,
        result=ResultCode.CONTENT_ERROR,
        reason="got \ud800 and \u2028 and a\nline break",
    )

    text = event.payload_json()

    assert json.loads(text) == event.payload()
    assert b"\n" not in text and b"\r" not in text
    unknown = UnknownEvent(type="alert.raised", at=AT, data={"rule": "p95"})
    assert json.loads(unknown.payload_json()) == unknown.payload()
