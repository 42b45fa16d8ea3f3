"""The in-process event hub behind `GET /v1/events`: fans engine events out to bounded per-client
queues (a slow client loses its oldest events and is told how many), and frames them as SSE."""

from __future__ import annotations

import asyncio
import math
from collections import deque
from collections.abc import AsyncIterator, Callable

from apimd.model.events import Event, Lagged

SSE_LINGER_S = 0.05
"""While events keep coming, an event stream writes at most once per this many seconds (each write
carrying all of them); a person sees no difference."""
SSE_CHUNK_EVENTS = 1000
"""At most this many events per write."""


class EventHub:
    """Publishes events to every open subscription. `publish` is usable directly as the engine's
    `EventSink`; call it from the event loop's thread."""

    def __init__(
        self, *, queue_size: int = 1000, observer: Callable[[Event], None] | None = None
    ) -> None:
        if queue_size < 1:
            raise ValueError("queue_size must be at least 1")
        self._queue_size = queue_size
        self._observer = observer
        self._subscriptions: set[Subscription] = set()
        self._closed = False
        self.relay: Callable[[Event], None] | None = None
        """Sees every event published here (not those delivered from other agents)."""

    @property
    def subscribers(self) -> int:
        """How many subscriptions are open."""
        return len(self._subscriptions)

    def publish(self, event: Event) -> None:
        """Queue `event` for every subscriber that wants it (and show it to the observer, such
        as daemon.log's activity lines); never blocks."""
        if self._observer is not None:
            self._observer(event)
        self.deliver(event)
        if self.relay is not None:
            self.relay(event)

    def deliver(self, event: Event) -> None:
        """Queue `event` for the subscribers only (an event another agent published). Its SSE
        frame is encoded once, by the first stream that writes it, for all of them."""
        if not self._subscriptions:
            return
        shared = _Encoded(event)
        for subscription in tuple(self._subscriptions):
            subscription._offer(shared)

    def subscribe(self, types: set[str] | None = None) -> Subscription:
        """A new subscription to events of `types` (all when None). `lagged` always gets through.
        After `close()` the subscription comes back already ended."""
        subscription = Subscription(self, types, self._queue_size)
        if self._closed:
            subscription.close()
        else:
            self._subscriptions.add(subscription)
        return subscription

    async def close(self) -> None:
        """End every subscription now, waking the ones waiting for an event; later ones start ended.
        Shutdown never waits on an open stream."""
        self._closed = True
        for subscription in tuple(self._subscriptions):
            subscription.close()

    def _discard(self, subscription: Subscription) -> None:
        self._subscriptions.discard(subscription)


class Subscription:
    """One client's view of the hub: an async iterator of events, and an async context manager
    that unsubscribes on exit. When its queue overflows the oldest events are dropped and the next
    event delivered is `Lagged(missed=N)`."""

    def __init__(self, hub: EventHub, types: set[str] | None, queue_size: int) -> None:
        self._hub = hub
        self._types = None if types is None else frozenset(types)
        self._queue: deque[_Encoded] = deque(maxlen=queue_size)
        self._missed = 0
        self._ready = asyncio.Event()
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Unsubscribe; a pending or later `__anext__` ends the iteration. Queued events are
        dropped: writing them to a slow client could hold up shutdown."""
        if self._closed:
            return
        self._closed = True
        self._queue.clear()
        self._ready.set()
        self._hub._discard(self)

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Event:
        while True:
            if self._closed:
                raise StopAsyncIteration
            if self._missed:
                missed, self._missed = self._missed, 0
                return Lagged(missed=missed)
            if self._queue:
                return self._queue.popleft().event
            self._ready.clear()
            await self._ready.wait()

    async def wait(self, seconds: float) -> bool:
        """Wait up to `seconds` for an event (or the end); False when none came."""
        if self._closed or self._missed or self._queue:
            return True
        self._ready.clear()
        try:
            async with asyncio.timeout(seconds):
                await self._ready.wait()
        except TimeoutError:
            return False
        return True

    def drain(self, limit: int = 1000) -> list[Event]:
        """Events already queued (a `lagged` first when some were missed), without waiting; lets
        a writer send a burst in one write."""
        return [shared.event for shared in self._drain(limit)]

    def _drain(self, limit: int) -> list[_Encoded]:
        out: list[_Encoded] = []
        if self._closed:
            return out
        if self._missed:
            out.append(_Encoded(Lagged(missed=self._missed)))
            self._missed = 0
        while self._queue and len(out) < limit:
            out.append(self._queue.popleft())
        return out

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(self, *_exc_info: object) -> None:
        self.close()

    def _offer(self, shared: _Encoded) -> None:
        if self._closed or (self._types is not None and shared.event.type not in self._types):
            return
        if len(self._queue) == self._queue.maxlen:
            self._missed += 1  # the append below pushes the oldest event out
        self._queue.append(shared)
        self._ready.set()


class _Encoded:
    """An event as queued for every subscription: its SSE frame without the `id:` line is built
    on first use and shared (each stream numbers its own frames)."""

    __slots__ = ("_frame", "event")

    def __init__(self, event: Event) -> None:
        self.event = event
        self._frame: bytes | None = None

    def frame(self, event_id: int) -> bytes:
        if self._frame is None:
            self._frame = format_sse(self.event)
        return b"id: %d\n%b" % (event_id, self._frame)


def format_sse(event: Event, event_id: int | None = None) -> bytes:
    """One SSE frame: optional `id:`, `event: <type>`, and `data:` holding the event's payload
    (`{"type", "at", …fields}`) as one line of JSON."""
    if "\n" in event.type or "\r" in event.type:
        raise ValueError(f"event type {event.type!r} contains a line break")
    # JSON escapes every control character, so the data never spans two lines.
    head = b"" if event_id is None else b"id: %d\n" % event_id
    return b"%bevent: %b\ndata: %b\n\n" % (head, event.type.encode(), event.payload_json())


async def sse_chunks(
    subscription: Subscription, *, keepalive: float, linger: float = SSE_LINGER_S
) -> AsyncIterator[bytes]:
    """What `GET /v1/events` writes, chunk by chunk, until the subscription ends: the events in
    SSE frames numbered from 1, a keep-alive comment after `keepalive` seconds without one. An
    event on a quiet stream is written at once; while events keep coming, at most one write per
    `linger` seconds carries all of them: at 10,000 monitors (about 500 events/s) a write per
    event was 7 % of the daemon's CPU."""
    loop = asyncio.get_running_loop()
    sequence = 0
    written = -math.inf
    while True:
        if not await subscription.wait(keepalive):
            yield keepalive_frame()
            continue
        wait = written + linger - loop.time()
        if wait > 0 and not subscription.closed:
            await asyncio.sleep(wait)
        events = subscription._drain(SSE_CHUNK_EVENTS)
        if not events:
            if subscription.closed:
                return
            continue
        frames = []
        for shared in events:
            sequence += 1
            frames.append(shared.frame(sequence))
        written = loop.time()
        yield b"".join(frames)


def format_sse_comment(text: str) -> bytes:
    """A comment frame: clients ignore it."""
    return "".join(f": {line}\n" for line in text.splitlines() or [""]).encode() + b"\n"


def keepalive_frame() -> bytes:
    """The comment frame a stream sends when idle, so clients and proxies see it is alive."""
    return format_sse_comment("keep-alive")
