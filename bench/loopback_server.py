"""A loopback HTTP server for the benchmarks, in its own process so neither it nor the bench
competes with the code under test for an event loop.

    start_server("/ok", {"ok": True})  ->  (process, port); close its stdin to stop it
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
from typing import Any

from aiohttp import web


async def _serve(path: str, payload: Any) -> None:
    """Answer `GET path` with `payload` as JSON on a loopback port printed on stdout, until stdin
    closes."""

    async def answer(_request: web.Request) -> web.Response:
        return web.json_response(payload)

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
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
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


if __name__ == "__main__":
    asyncio.run(_serve(sys.argv[1], json.loads(sys.argv[2])))
