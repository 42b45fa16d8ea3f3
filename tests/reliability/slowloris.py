"""A slowloris flood, run as its own process (an attacker is another program than the browser):
`python -m tests.reliability.slowloris PORT CONNECTIONS SECONDS`.

Each of CONNECTIONS clients connects to 127.0.0.1:PORT, sends a request line and headers a few
bytes at a time and never the blank line that ends them, and reconnects the moment it is
dropped. Every 0.2 s, and once at the end, a JSON line on stdout counts connects and drops. The
flood ends after SECONDS, or on SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
from dataclasses import asdict, dataclass

DRIP_INTERVAL_S = 0.5


@dataclass
class FloodStats:
    connects: int = 0
    drops: int = 0
    refused: int = 0


def _pieces(port: int) -> list[bytes]:
    return [
        b"GET /tokens/callback?state=",
        *(b"a" for _ in range(40)),
        f" HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n".encode(),
        *(f"X-Pad-{i}: {i}\r\n".encode() for i in range(10_000)),
    ]


async def _attacker(port: int, stop: asyncio.Event, stats: FloodStats) -> None:
    pieces = _pieces(port)
    while not stop.is_set():
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            stats.refused += 1
            await asyncio.sleep(0.05)
            continue
        stats.connects += 1
        try:
            for piece in pieces:
                writer.write(piece)
                await writer.drain()
                # Wake early when the server hangs up.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(DRIP_INTERVAL_S):
                        if await reader.read(1) == b"":
                            break
                if stop.is_set():
                    break
        except OSError:
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


async def flood(port: int, connections: int, seconds: float) -> FloodStats:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.call_later(seconds, stop.set)
    stats = FloodStats()
    reporter = asyncio.create_task(_report(stats, stop))
    attackers = [asyncio.create_task(_attacker(port, stop, stats)) for _ in range(connections)]
    await stop.wait()
    for task in attackers:
        task.cancel()
    await asyncio.gather(*attackers, reporter, return_exceptions=True)
    print(json.dumps(asdict(stats)), flush=True)
    return stats


if __name__ == "__main__":
    asyncio.run(flood(int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])))
