"""The event hub behind `GET /v1/events` and its SSE framing (SPEC §6, issue 4)."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from apimd.daemon.events import (
    EventHub,
    Subscription,
    format_sse,
    format_sse_comment,
    keepalive_frame,
)
from apimd.engine.events import EventSink
from apimd.model.events import (
    Event,
    Lagged,
    RunFinished,
    RunStarted,
    ScheduleFired,
    TokenSaved,
    TokenStateChanged,
    UnknownEvent,
    utc_iso,
)
from apimd.model.outcome import Outcome, ResultCode
from apimd.model.resources import TokenState


def run_event(number: int) -> RunFinished:
    return RunFinished(
        run_id=str(number),
        result_id=str(number),
        kind="call",
        name="health",
        trigger="schedule",
        outcome=Outcome.PASS,
        result=ResultCode.COMPLETE,
    )


def started(number: int) -> RunStarted:
    return RunStarted(run_id=str(number), kind="call", name="health", trigger="manual")


def number_of(event: Event) -> int:
    """The number `run_event`/`started` gave an event."""
    assert isinstance(event, RunFinished | RunStarted), event
    return int(event.run_id)


async def next_event(subscription: Subscription) -> Event:
    async with asyncio.timeout(1):
        return await anext(subscription)


async def test_every_subscriber_gets_every_event_in_order() -> None:
    hub = EventHub()
    sink: EventSink = hub.publish
    first, second = hub.subscribe(), hub.subscribe()
    assert hub.subscribers == 2

    for number in range(5):
        sink(run_event(number))

    for subscription in (first, second):
        assert [number_of(await next_event(subscription)) for _ in range(5)] == [0, 1, 2, 3, 4]


async def test_a_subscription_filters_by_type() -> None:
    hub = EventHub()
    tokens = hub.subscribe({"token.saved", "token.state"})

    hub.publish(started(1))
    hub.publish(TokenSaved(token="api"))
    hub.publish(run_event(1))
    hub.publish(TokenStateChanged(token="api", state=TokenState.VALID))

    assert [(await next_event(tokens)).type for _ in range(2)] == ["token.saved", "token.state"]
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.05):
            await anext(tokens)


async def test_a_slow_subscriber_is_told_what_it_missed_while_a_fast_one_misses_nothing() -> None:
    hub = EventHub(queue_size=5)
    slow = hub.subscribe()
    fast_seen: list[Event] = []

    async def read_fast(subscription: Subscription) -> None:
        async for event in subscription:
            fast_seen.append(event)

    fast_reader = asyncio.create_task(read_fast(hub.subscribe()))
    await asyncio.sleep(0)
    for number in range(12):
        hub.publish(run_event(number))
        await asyncio.sleep(0)

    lagged = await next_event(slow)
    assert lagged == Lagged(missed=7, at=lagged.at)
    assert [number_of(await next_event(slow)) for _ in range(5)] == [7, 8, 9, 10, 11]

    # Caught up: the next event comes without another `lagged`.
    hub.publish(run_event(12))
    assert number_of(await next_event(slow)) == 12

    await asyncio.sleep(0)
    assert [number_of(event) for event in fast_seen] == list(range(13))
    await hub.close()
    async with asyncio.timeout(1):
        await fast_reader


async def test_lagged_gets_through_a_type_filter_and_counts_only_wanted_events() -> None:
    hub = EventHub(queue_size=2)
    runs = hub.subscribe({"run.finished"})
    for number in range(4):
        hub.publish(run_event(number))
        hub.publish(TokenSaved(token="api"))

    lagged = await next_event(runs)
    assert lagged == Lagged(missed=2, at=lagged.at)
    assert [number_of(await next_event(runs)) for _ in range(2)] == [2, 3]


async def test_a_read_cancelled_by_a_keepalive_timeout_loses_nothing() -> None:
    # The SSE handler waits for the next event with a timeout and sends a keep-alive on expiry.
    hub = EventHub()
    subscription = hub.subscribe()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(anext(subscription), 0.05)

    hub.publish(run_event(1))

    assert number_of(await next_event(subscription)) == 1


async def test_closing_the_hub_ends_a_subscriber_waiting_for_an_event() -> None:
    hub = EventHub()
    seen: list[Event] = []

    async def stream(subscription: Subscription) -> None:
        async with subscription:
            async for event in subscription:
                seen.append(event)

    streams = [asyncio.create_task(stream(hub.subscribe())) for _ in range(3)]
    hub.publish(run_event(1))
    await asyncio.sleep(0.05)
    assert hub.subscribers == 3

    async with asyncio.timeout(0.5):
        await hub.close()
        await asyncio.gather(*streams)

    assert len(seen) == 3
    assert hub.subscribers == 0
    # A subscription made after close() is already over, and publishing is harmless.
    late = hub.subscribe()
    hub.publish(run_event(2))
    with pytest.raises(StopAsyncIteration):
        await next_event(late)


async def test_closing_a_subscription_wakes_its_reader_and_unsubscribes() -> None:
    hub = EventHub()
    subscription = hub.subscribe()
    waiting = asyncio.create_task(next_event(subscription))
    await asyncio.sleep(0.05)

    subscription.close()

    with pytest.raises(StopAsyncIteration):
        await waiting
    assert hub.subscribers == 0


async def test_leaving_the_context_manager_unsubscribes() -> None:
    hub = EventHub()
    async with hub.subscribe() as subscription:
        assert hub.subscribers == 1
    assert hub.subscribers == 0
    assert subscription.closed


def parse_sse(stream: bytes) -> list[dict[str, str]]:
    """Dispatch events as the HTML Living Standard's SSE parsing rules describe."""
    events: list[dict[str, str]] = []
    data: list[str] = []
    fields: dict[str, str] = {}
    for line in re.split(r"\r\n|\r|\n", stream.decode("utf-8")):
        if line == "":
            if data:
                events.append({**fields, "data": "\n".join(data)})
            data, fields = [], {}
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            data.append(value)
        elif name in ("event", "id"):
            fields[name] = value
    return events


def test_sse_frames_parse_back_to_the_events() -> None:
    at = datetime(2024, 5, 1, 12, 0, 30, tzinfo=UTC)
    finished = UnknownEvent(
        type="run.finished",
        data={"name": "health", "message": "line one\nline two\r\n: not a comment", "note": "é ✓"},
        at=at,
    )
    lagged = Lagged(missed=3, at=at)

    stream = (
        format_sse(finished, 41)
        + keepalive_frame()
        + format_sse(lagged)
        + format_sse_comment("two\nlines")
    )

    events = parse_sse(stream)
    assert [event.get("event") for event in events] == ["run.finished", "lagged"]
    assert events[0]["id"] == "41"
    assert "id" not in events[1]
    payloads: list[dict[str, Any]] = [json.loads(event["data"]) for event in events]
    assert payloads[0] == {
        "type": "run.finished",
        "at": "2024-05-01T12:00:30Z",
        "name": "health",
        "message": "line one\nline two\r\n: not a comment",
        "note": "é ✓",
    }
    assert payloads[1] == {"type": "lagged", "at": "2024-05-01T12:00:30Z", "missed": 3}
    assert keepalive_frame() == b": keep-alive\n\n"


def test_sse_data_keeps_the_events_own_type_and_time() -> None:
    event = UnknownEvent(
        type="token.saved", data={"type": "bearer", "at": "forged", "token": "api"}
    )

    payload = json.loads(parse_sse(format_sse(event))[0]["data"])

    assert payload["type"] == "token.saved"
    assert payload["at"] != "forged"
    expiry = TokenSaved(token="api", expires_at=datetime(2024, 5, 1, tzinfo=UTC))
    assert json.loads(parse_sse(format_sse(expiry))[0]["data"])["expires_at"] == (
        "2024-05-01T00:00:00Z"
    )


def test_an_event_type_with_a_line_break_is_refused() -> None:
    with pytest.raises(ValueError, match="line break"):
        format_sse(UnknownEvent(type="run.finished\ndata: forged"))


async def test_drain_hands_over_a_burst_with_lagged_first() -> None:
    hub = EventHub(queue_size=3)
    subscription = hub.subscribe()
    for i in range(5):
        hub.publish(started(i))
    burst = subscription.drain()
    assert [e.type for e in burst] == ["lagged", "run.started", "run.started", "run.started"]
    assert burst[0] == Lagged(missed=2, at=burst[0].at)
    assert [number_of(e) for e in burst[1:]] == [2, 3, 4]
    assert subscription.drain() == []
    await hub.close()


_MOMENT_ZONES: st.SearchStrategy[tzinfo | None] = st.one_of(
    st.none(),
    st.just(UTC),
    st.builds(
        timezone, st.timedeltas(min_value=-timedelta(hours=23), max_value=timedelta(hours=23))
    ),
    st.timezones(),
)


_NAIVE = st.datetimes(min_value=datetime(2, 1, 1), max_value=datetime(9998, 12, 31))


@settings(max_examples=300, deadline=None)
@given(
    naive=st.tuples(_NAIVE, _NAIVE),
    zones=st.tuples(_MOMENT_ZONES, _MOMENT_ZONES),
    schedule=st.text(max_size=8),
)
def test_a_moment_is_written_as_utc_iso_writes_it_from_any_zone(
    naive: tuple[datetime, datetime], zones: tuple[tzinfo | None, tzinfo | None], schedule: str
) -> None:
    """Moments are held in UTC and written by pydantic's serializer (no Python call per moment):
    the text is `utc_iso`'s for any input, naive (taken as UTC), UTC or another zone, through the
    fast encoding and through the `json.dumps` fallback (a lone surrogate in a name), and the
    event holds the same instant."""
    at, due = (moment.replace(tzinfo=zone) for moment, zone in zip(naive, zones, strict=True))
    event = ScheduleFired(
        at=at, schedule=schedule, targets=("c",), scheduled_at=due, lateness_ms=0.5
    )
    data = json.loads(event.payload_json())
    assert (data["at"], data["scheduled_at"]) == (utc_iso(at), utc_iso(due))
    assert (event.payload()["at"], event.payload()["scheduled_at"]) == (utc_iso(at), utc_iso(due))
    aware = [m if m.tzinfo else m.replace(tzinfo=UTC) for m in (at, due)]
    assert [event.at, event.scheduled_at] == aware
    assert event.at.tzinfo is UTC and event.scheduled_at.tzinfo is UTC
    assert format_sse(event).endswith(b"data: " + event.payload_json() + b"\n\n")
