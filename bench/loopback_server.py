"""A loopback HTTP server for the benchmarks, in its own process so neither it nor the bench
competes with the code under test for an event loop.

    start_server("/ok", {"ok": True})  ->  (process, port); close its stdin to stop it
    handling_ms(process, since, until)  ->  the server's own handling time of each request
                                           that arrived in [since, until) (epoch seconds), in ms

The handling time runs from the handler's start (the request read and parsed) to the response
handed to the socket: what the server itself spent, to compare with the response time a client
records for the same requests.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import time
from typing import Any

from aiohttp import web


async def _serve(path: str, payload: Any) -> None:
    """Answer `GET path` with `payload` as JSON on a loopback port printed on stdout. Each line on
    stdin (`SINCE UNTIL`) is answered with a JSON list of handling times; EOF stops the server."""
    handled: list[tuple[float, float]] = []  # (arrival, epoch seconds; handling time, ms)

    async def answer(request: web.Request) -> web.StreamResponse:
        arrived, started = time.time(), time.perf_counter()
        response = web.json_response(payload)
        # Sent here, so the time includes the write; aiohttp leaves a prepared response alone.
        await response.prepare(request)
        await response.write_eof()
        handled.append((arrived, (time.perf_counter() - started) * 1000))
        return response

    app = web.Application()
    app.router.add_get(path, answer)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    # A burst of N fresh connections arrives at once; the default backlog of 128 would drop SYNs
    # and add a 1 s retransmit to the runs.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(4096)
    site = web.SockSite(runner, sock, backlog=4096)
    await site.start()
    print(sock.getsockname()[1], flush=True)
    loop = asyncio.get_running_loop()
    while line := await loop.run_in_executor(None, sys.stdin.readline):
        since, until = (float(x) for x in line.split())
        print(json.dumps([ms for at, ms in handled if since <= at < until]), flush=True)
    await runner.cleanup()


def start_server(path: str, payload: Any) -> tuple[subprocess.Popen[str], int]:
    """Start the server process; returns it and the port it listens on."""
    process = subprocess.Popen(
        [sys.executable, __file__, path, json.dumps(payload)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    return process, int(process.stdout.readline())


def handling_ms(process: subprocess.Popen[str], since: float, until: float) -> list[float]:
    """The server's handling time (ms) of each request that arrived in [since, until)."""
    assert process.stdin is not None
    assert process.stdout is not None
    process.stdin.write(f"{since} {until}\n")
    process.stdin.flush()
    return [float(ms) for ms in json.loads(process.stdout.readline())]


if __name__ == "__main__":
    asyncio.run(_serve(sys.argv[1], json.loads(sys.argv[2])))
