"""The event contract end to end (SPEC §6, issue 11): what the hub frames as SSE, `Client.events()`
reads back as the same typed models, from a real aiohttp server on a Unix socket; frames that are
odd or hostile never crash the client."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from aiohttp import web

from apimd import client as client_module
from apimd.client import Client, DaemonUnavailable
from apimd.daemon.events import format_sse, keepalive_frame
from apimd.model.events import Event, Lagged, ResourceChanged, RunStarted, UnknownEvent
from tests.support.events import AT, EVERY_EVENT


@asynccontextmanager
async def fake_daemon(
    stream: bytes, *, cut: bool = False, piece: int | None = None
) -> AsyncIterator[Path]:
    """A server answering `GET /v1/events` with `stream` (in writes of `piece` bytes, when set),
    then ending it (with `cut`, by dropping the connection mid-stream); yields its socket."""

    async def events(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        size = piece or len(stream)
        for start in range(0, len(stream), size):
            await response.write(stream[start : start + size])
            if piece:
                await asyncio.sleep(0.001)  # each piece its own read on the client's side
        if cut and request.transport is not None:
            request.transport.abort()
        return response

    app = web.Application()
    app.router.add_get("/v1/events", events)
    runner = web.AppRunner(app)
    await runner.setup()
    home = Path(tempfile.mkdtemp(prefix="apimd-ev-", dir="/tmp"))
    socket_path = home / "s.sock"
    try:
        await web.UnixSite(runner, str(socket_path)).start()
        yield socket_path
    finally:
        await runner.cleanup()
        shutil.rmtree(home, ignore_errors=True)


async def read_all(socket_path: Path) -> list[Event]:
    async with Client(socket_path) as client:
        return [event async for event in client.events()]


async def test_every_event_type_reads_back_equal_through_the_wire() -> None:
    stream = b"".join(format_sse(event, number) for number, event in enumerate(EVERY_EVENT, 1))

    async with fake_daemon(stream + keepalive_frame()) as socket_path:
        seen = await read_all(socket_path)

    assert [type(event) for event in seen] == [type(event) for event in EVERY_EVENT]
    assert seen == EVERY_EVENT


@pytest.mark.parametrize("piece", [1, 7, 64])
async def test_frames_split_anywhere_between_reads_read_back_the_same(piece: int) -> None:
    stream = b"".join(format_sse(event).replace(b"\n", b"\r\n") for event in EVERY_EVENT[:4])

    async with fake_daemon(stream, piece=piece) as socket_path:
        seen = await read_all(socket_path)

    assert seen == EVERY_EVENT[:4]


async def test_an_event_type_the_client_does_not_know_arrives_as_an_unknown_event() -> None:
    newer = b'event: alert.raised\ndata: {"type":"alert.raised","at":"2026-12-06T07:30:15Z","rule":"p95"}\n\n'
    known = format_sse(RunStarted(at=AT, run_id="r", kind="call", name="a", trigger="manual"))

    async with fake_daemon(newer + known) as socket_path:
        first, second = await read_all(socket_path)

    assert isinstance(first, UnknownEvent)
    assert (first.type, first.data["rule"]) == ("alert.raised", "p95")
    assert isinstance(second, RunStarted) and second.name == "a"


HOSTILE_FRAMES = {
    "not JSON": b"data: {not json\n\n",
    "JSON but no object": b"data: [1, 2, 3]\n\n",
    "no type": b'data: {"at": "2026-12-06T07:30:15Z"}\n\n',
    "bad UTF-8": b'data: {"type": "lagged", "missed": 1, "x": "\xff\xfe"}\n\n',
    "fields that do not fit": b'data: {"type": "run.finished", "outcome": 42}\n\n',
    "nested a million deep": b"data: " + b"[" * 1_000_000 + b"\n\n",
    "a 2 MB line": b'data: {"type":"x","pad":"' + b"a" * 2_000_000 + b'"}\n\n',
    "a type forging a frame": b'data: {"type": "lagged\\ndata: forged"}\n\n',
    "only fields the client ignores": b"id: 7\nretry: 10\nevent: lagged\n: comment\n\n",
    "a NUL and CR line endings": b'data: {"type":"\x00"}\r\rdata: {"type":"lagged","missed":2}\r\n\r\n',
}


@pytest.mark.parametrize("frame", HOSTILE_FRAMES.values(), ids=HOSTILE_FRAMES.keys())
async def test_a_hostile_frame_is_skipped_and_the_stream_goes_on(frame: bytes) -> None:
    after = Lagged(at=AT, missed=3)

    async with fake_daemon(frame + format_sse(after)) as socket_path:
        seen = await read_all(socket_path)

    assert seen[-1] == after
    assert all(isinstance(event, UnknownEvent | Lagged) for event in seen)


async def test_a_large_event_on_one_line_is_read_whole() -> None:
    # An apply of thousands of resources announces them in one `resource.changed` line, far
    # over aiohttp's 128 KiB line limit.
    names = tuple(f"calls/call-{i:05d}-{'x' * 40}" for i in range(20_000))
    big = ResourceChanged(at=AT, resources=names)

    async with fake_daemon(format_sse(big, 1)) as socket_path:
        seen = await read_all(socket_path)

    assert seen == [big]


async def test_a_stream_cut_mid_frame_ends_as_the_daemon_gone() -> None:
    whole = format_sse(Lagged(at=AT, missed=1))
    half = format_sse(Lagged(at=AT, missed=2))[:20]
    seen: list[Event] = []

    async def read_into_seen(socket_path: Path) -> None:
        async with Client(socket_path) as client:
            async for event in client.events():
                seen.append(event)

    async with fake_daemon(whole + half, cut=True) as socket_path:
        with pytest.raises(DaemonUnavailable):
            await read_into_seen(socket_path)

    assert seen == [Lagged(at=AT, missed=1)]


async def test_a_line_over_the_limit_is_dropped_and_the_next_frame_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(client_module, "MAX_EVENT_LINE", 10_000)
    over = format_sse(ResourceChanged(at=AT, resources=tuple(f"calls/c{i}" for i in range(2000))))
    after = Lagged(at=AT, missed=4)

    async with fake_daemon(over + format_sse(after)) as socket_path:
        seen = await read_all(socket_path)

    assert seen == [after]
