"""A flood of the callback port, run as its own process (an attacker is another program than the
browser): `python -m tests.reliability.slowloris PORT CONNECTIONS SECONDS [MODE]`.

Each of CONNECTIONS clients connects to 127.0.0.1:PORT and reconnects the moment it is dropped.
MODE says what it sends:
- `headers` (the default): a request line and headers a few bytes at a time, never the blank
  line that ends them;
- `keepalive`: a whole request, reads the answer, and sends the next one every 4 s on the same
  connection (inside the server's 5 s keep-alive), so it is never idle long;
- `body`: the headers of the capture page's POST (right Origin and Content-Type) announcing
  16,000 bytes, then the body a byte every 0.5 s.
Every 0.2 s, and once at the end, a JSON line on stdout counts connects, drops and answered
requests. The flood ends after SECONDS, or on SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass
from pathlib import Path

DRIP_INTERVAL_S = 0.5
KEEPALIVE_EVERY_S = 4.0


@dataclass
class FloodStats:
    connects: int = 0
    drops: int = 0
    refused: int = 0
    answered: int = 0


def _pieces(port: int, mode: str) -> list[bytes]:
    if mode == "body":
        head = (
            f"POST /tokens/callback HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Origin: http://127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
            "Content-Length: 16000\r\n\r\n"
        )
        return [head.encode(), *(b" " for _ in range(16_000))]
    return [
        b"GET /tokens/callback?state=",
        *(b"a" for _ in range(40)),
        f" HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n".encode(),
        *(f"X-Pad-{i}: {i}\r\n".encode() for i in range(10_000)),
    ]


async def _drip(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    pieces: list[bytes],
    stop: asyncio.Event,
) -> None:
    for piece in pieces:
        writer.write(piece)
        await writer.drain()
        # Wake early when the server hangs up (or answers: a 408 ends the body).
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(DRIP_INTERVAL_S):
                if await reader.read(1) in (b"", b"H"):
                    return
        if stop.is_set():
            return


async def _keep_alive(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    port: int,
    stop: asyncio.Event,
    stats: FloodStats,
) -> None:
    request = f"GET /tokens/callback HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
    while not stop.is_set():
        writer.write(request)
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        await reader.readexactly(length)
        stats.answered += 1
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), KEEPALIVE_EVERY_S)


async def _attacker(port: int, mode: str, stop: asyncio.Event, stats: FloodStats) -> None:
    pieces = _pieces(port, mode)
    while not stop.is_set():
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            stats.refused += 1
            await asyncio.sleep(0.05)
            continue
        stats.connects += 1
        try:
            if mode == "keepalive":
                await _keep_alive(reader, writer, port, stop, stats)
            else:
                await _drip(reader, writer, pieces, stop)
        except (OSError, asyncio.IncompleteReadError, StopIteration):
            pass
        finally:
            stats.drops += 1
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


async def _report(stats: FloodStats, stop: asyncio.Event) -> None:
    while not stop.is_set():
        print(json.dumps(asdict(stats)), flush=True)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.2)


async def flood(port: int, connections: int, seconds: float, mode: str) -> FloodStats:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.call_later(seconds, stop.set)
    stats = FloodStats()
    reporter = asyncio.create_task(_report(stats, stop))
    attackers = [
        asyncio.create_task(_attacker(port, mode, stop, stats)) for _ in range(connections)
    ]
    await stop.wait()
    for task in attackers:
        task.cancel()
    await asyncio.gather(*attackers, reporter, return_exceptions=True)
    print(json.dumps(asdict(stats)), flush=True)
    return stats


REPO = Path(__file__).resolve().parents[2]
WARM_UP_S = 5.0


class Flood:
    """A flood process seen from a test: its latest counts, and whether it still runs."""

    def __init__(self, process: asyncio.subprocess.Process, mode: str, connections: int) -> None:
        self.process = process
        self.mode = mode
        self.connections = connections

    async def counts(self) -> dict[str, int]:
        """The latest report (one comes every 0.2 s; older ones wait in the pipe)."""
        assert self.process.stdout is not None
        line = await self.process.stdout.readline()
        assert line, "the flood process ended early"
        while True:
            try:
                newer = await asyncio.wait_for(self.process.stdout.readline(), 0.05)
            except TimeoutError:
                break
            if not newer:
                break
            line = newer
        counts: dict[str, int] = json.loads(line)
        return counts

    def _on(self, counts: dict[str, int]) -> bool:
        if self.mode == "keepalive":  # every one answered at least once
            return counts["answered"] >= self.connections
        if self.mode == "headers":  # every one connected, and dropped and back once
            return counts["connects"] >= 2 * self.connections
        return counts["connects"] >= self.connections

    async def under_way(self) -> None:
        """Until every attacker is in (and, for keep-alive and bodies, `WARM_UP_S` passed, so
        the first ones are on their next request or far into their bodies)."""
        began = time.monotonic()
        async with asyncio.timeout(20):
            while not self._on(await self.counts()):
                pass
        if self.mode != "headers":
            await asyncio.sleep(max(0.0, began + WARM_UP_S - time.monotonic()))

    @property
    def running(self) -> bool:
        return self.process.returncode is None


@contextlib.asynccontextmanager
async def flooding(port: int, connections: int, seconds: float, mode: str) -> AsyncIterator[Flood]:
    """This module as a process flooding 127.0.0.1:`port`, stopped on exit."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.reliability.slowloris",
        str(port),
        str(connections),
        str(seconds),
        mode,
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        yield Flood(process, mode, connections)
    finally:
        if process.returncode is None:
            process.terminate()
        await asyncio.wait_for(process.communicate(), seconds)


if __name__ == "__main__":
    mode = sys.argv[4] if len(sys.argv) > 4 else "headers"
    asyncio.run(flood(int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), mode))
