"""Events of every agent on every agent's `/v1/events` (SPEC §13): each agent NOTIFYs its own
events on one channel and delivers the others' to its hub. A payload over 7 KB goes through the
`cluster_events` table by id; an agent ignores its own echoes; the listener, on reconnecting,
delivers `lagged` (events of that gap are lost)."""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from datetime import datetime
from typing import Any

from apimd.daemon.events import EventHub
from apimd.daemon.tasks import cancelling
from apimd.model.events import Event, Lagged, decode_event
from apimd.store import Store
from apimd.store.timestamps import to_us, utc_now

log = logging.getLogger(__name__)

CHANNEL = "apimd_events"
INLINE_LIMIT = 7 * 1024
QUEUE_LIMIT = 50_000
BATCH = 500
SHOWN = 80
"""How much of a payload that is no event a log line shows."""


class EventRelay:
    """Sends this agent's events to the others and delivers theirs to `hub`."""

    def __init__(self, agent: str, store: Store, hub: EventHub) -> None:
        self.agent = agent
        self.instance = secrets.token_hex(8)
        """This process among the agents: two agents given one name still hear each other."""
        self._store = store
        self._hub = hub
        self._queue: asyncio.Queue[Event] = asyncio.Queue(QUEUE_LIMIT)
        self.dropped = 0

    def offer(self, event: Event) -> None:
        """The hub's relay hook: queue a local event for the others (never blocks)."""
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            self.dropped += 1  # the others see `lagged` only for their own gaps

    async def send_forever(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                await self._send(batch)
            except Exception as exc:
                if cancelling():  # a cancellation disguised as an error: stop
                    raise
                log.warning("%d event(s) not sent to the other agents: %s", len(batch), exc)

    async def _send(self, batch: list[Event]) -> None:
        """One transaction and one NOTIFY statement for the batch (a statement per event was a
        fifth of a busy agent's CPU), in the batch's order; a payload over the NOTIFY limit goes
        by id."""
        async with self._store.db.transaction() as conn:
            payloads: list[str] = []
            for event in batch:
                data = event.payload()
                kind, at = data.pop("type"), data.pop("at")
                payload = json.dumps(
                    {"a": self.agent, "i": self.instance, "t": kind, "d": data, "at": at},
                    separators=(",", ":"),
                )
                if len(payload.encode()) > INLINE_LIMIT:
                    rows = await conn.fetchall(
                        "INSERT INTO cluster_events (created_at, payload) VALUES (?, ?)"
                        " RETURNING id",
                        (to_us(utc_now()), payload),
                    )
                    payload = json.dumps(
                        {"a": self.agent, "i": self.instance, "id": int(rows[0][0])}
                    )
                payloads.append(payload)
            await conn.execute(
                "SELECT pg_notify(?, e.p) FROM unnest(?::text[]) WITH ORDINALITY AS e(p, n)"
                " ORDER BY e.n",
                (CHANNEL, payloads),
            )

    async def receive(self, payload: str) -> None:
        """A notification on `CHANNEL`: deliver another agent's event. Any database user can
        NOTIFY there: what is no event of ours is skipped with one log line, and the listener
        goes on (a reconnect would lose the events queued behind it)."""
        message = _message(payload)
        if message is None:
            return _skip(payload, "not a JSON object")
        if message.get("i") == self.instance:
            return None
        if "id" in message:
            ident = message["id"]
            if type(ident) is not int or not 0 < ident < 2**63:
                return _skip(payload, "no event id")
            row = await self._store.db.fetchone(
                "SELECT payload FROM cluster_events WHERE id = ?", (ident,)
            )
            if row is None:
                return None
            payload = str(row[0])
            message = _message(payload)
            if message is None:
                return _skip(payload, "not a JSON object")
        data, kind = message.get("d"), message.get("t")
        if not isinstance(data, dict) or not isinstance(kind, str):
            return _skip(payload, "no event type and data")
        try:
            text = json.dumps({**data, "type": kind, "at": message.get("at")})
        except (ValueError, RecursionError):
            return _skip(payload, "too deep")
        event = decode_event(text)
        if event is None:
            return _skip(payload, "not an event")
        self._hub.deliver(event)
        return None

    def reconnected(self) -> None:
        """Events sent while this agent was not listening are lost: tell the clients."""
        self._hub.deliver(Lagged(missed=0, reason="reconnected to the store"))

    async def prune(self, before: datetime) -> None:
        async with self._store.db.transaction() as conn:
            await conn.execute("DELETE FROM cluster_events WHERE created_at < ?", (to_us(before),))


def _message(payload: str) -> dict[str, Any] | None:
    try:
        message = json.loads(payload)
    except (ValueError, RecursionError):
        return None
    return message if isinstance(message, dict) else None


def _skip(payload: str, why: str) -> None:
    shown = payload[:SHOWN].encode("unicode_escape").decode("ascii")
    more = f" (+{len(payload) - SHOWN} characters)" if len(payload) > SHOWN else ""
    log.warning(
        "skipped a notification on %s that is not an event (%s): %s%s", CHANNEL, why, shown, more
    )
