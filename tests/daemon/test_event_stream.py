"""How `GET /v1/events` writes: a burst in one chunk, each event encoded once for every stream
(issue 18: at 10,000 monitors a write per event was 7 % of the daemon's CPU)."""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

from apimd.daemon.events import EventHub, format_sse, keepalive_frame, sse_chunks
from apimd.model.events import RunStarted

DEADLINE_S = 30.0
"""How long a test waits for a chunk before failing: a guard against a stream that never writes,
not a measure of speed. A loaded machine can stall this process for seconds (a stall of over 2 s
while a stream slept made both its sleep and a 2 s deadline expire together)."""


class CountedStart(RunStarted):
    """A `run.started` that counts how often its payload is built (that is, encoded)."""

    encoded: ClassVar[list[str]] = []

    def payload(self) -> dict[str, Any]:
        CountedStart.encoded.append(self.run_id)
        return super().payload()


def started(number: int) -> CountedStart:
    return CountedStart(run_id=str(number), kind="call", name="health", trigger="manual")


async def test_an_event_on_a_quiet_stream_is_written_at_once_and_a_burst_in_one_chunk() -> None:
    hub = EventHub()
    subscription = hub.subscribe()
    chunks = sse_chunks(subscription, keepalive=5, linger=0.2)
    first = started(0)
    # Made before the first write: the burst must start within the linger of that write.
    events = [started(n) for n in range(1, 201)]
    hub.publish(first)
    # Well before the linger: not held back. A write not held back never suspends, so a stalled
    # machine cannot expire this; only a write that waits can.
    async with asyncio.timeout(0.15):
        assert await anext(chunks) == format_sse(first, 1)

    async def publish_burst() -> None:
        for number, event in enumerate(events):
            hub.publish(event)
            if number % 20 == 0:
                await asyncio.sleep(0)  # a burst arrives over several turns of the loop

    publisher = asyncio.create_task(publish_burst())
    async with asyncio.timeout(DEADLINE_S):
        chunk = await anext(chunks)
    await publisher

    # Within the linger of the last write: the whole burst waits for one write.
    expected = b"".join(format_sse(event, number) for number, event in enumerate(events, 2))
    assert chunk == expected
    subscription.close()
    async with asyncio.timeout(DEADLINE_S):
        assert [c async for c in chunks] == []


async def test_each_event_is_encoded_once_however_many_streams_write_it() -> None:
    CountedStart.encoded.clear()
    hub = EventHub()
    first, second = hub.subscribe(), hub.subscribe()
    hub.subscribe()  # a third stream that has not written yet
    first_chunks = sse_chunks(first, keepalive=5, linger=0)
    second_chunks = sse_chunks(second, keepalive=5, linger=0)

    events = [started(1), started(2)]
    hub.publish(events[0])
    async with asyncio.timeout(DEADLINE_S):
        one = await anext(first_chunks)
        also_one = await anext(second_chunks)
    hub.publish(events[1])
    async with asyncio.timeout(DEADLINE_S):
        two = await anext(first_chunks)

    assert CountedStart.encoded == ["1", "2"]  # once each, for every stream
    assert one == also_one == format_sse(events[0], 1)  # each stream numbers its own frames
    assert two == format_sse(events[1], 2)


async def test_a_quiet_stream_sends_keep_alives_and_a_lagging_one_hears_what_it_missed() -> None:
    hub = EventHub(queue_size=3)
    subscription = hub.subscribe()
    chunks = sse_chunks(subscription, keepalive=0.05, linger=0)
    async with asyncio.timeout(DEADLINE_S):
        assert await anext(chunks) == keepalive_frame()

    events = [started(number) for number in range(5)]
    for event in events:
        hub.publish(event)
    async with asyncio.timeout(DEADLINE_S):
        chunk = await anext(chunks)

    frames = chunk.split(b"\n\n")[:-1]
    assert len(frames) == 4
    assert b"event: lagged" in frames[0] and b'"missed":2' in frames[0]
    assert frames[1:] == [format_sse(events[n], n).rstrip(b"\n") for n in (2, 3, 4)]
