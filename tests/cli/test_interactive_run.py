"""`apimd run -f` on a terminal with a browser step: it starts its own callback listener, prints the
URL, and finishes the run when the browser comes back (SPEC §5 "Standalone runs")."""

from __future__ import annotations

import asyncio
import os
import pty
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import aiohttp
from aiohttp import web

from apimd.demo.server import RunningServer

PROJECT = """
calls:
  - name: authorize
    url: https://login.example.test/authorize
    tags: [apimd:browser]
    params: {{redirect_uri: "%%CALLBACK_URL%%"}}
  - name: exchange
    method: POST
    url: {base}/exchange
    form: {{code: "%%CODE%%"}}
    conditions:
      - {{source: status, op: eq, value: 200}}
      - {{source: json, path: access_token, save_as: ACCESS_TOKEN}}
workflows:
  - name: signin
    steps: [authorize, exchange]
"""


async def test_standalone_run_on_a_terminal_waits_for_the_browser(tmp_path: Path) -> None:
    async def exchange(request: web.Request) -> web.Response:
        code = (await request.post())["code"]
        assert isinstance(code, str)
        return web.json_response({"access_token": f"at-{code}"}, status=200)

    app = web.Application()
    app.router.add_post("/exchange", exchange)
    server = await RunningServer(app).start()
    project = tmp_path / "p.yaml"
    project.write_text(PROJECT.format(base=server.url))
    leader, follower = pty.openpty()
    env = {**os.environ, "APIMD_HOME": str(tmp_path), "APIMD_CALLBACK_PORT": "0", "NO_COLOR": "1"}
    env.pop("DISPLAY", None)
    env["SSH_CONNECTION"] = "10.0.0.1 5000 10.0.0.2 22"  # as if over SSH: print, don't open
    proc = subprocess.Popen(
        [sys.executable, "-m", "apimd", "run", "signin", "-f", str(project)],
        stdin=follower,
        stdout=follower,
        stderr=follower,
        env=env,
        close_fds=True,
    )
    os.close(follower)
    output = b""
    loop = asyncio.get_running_loop()
    # One reader for the whole test: a read cut short by a timeout must never drop what it read.
    chunks: asyncio.Queue[bytes] = asyncio.Queue()
    os.set_blocking(leader, False)

    def on_readable() -> None:
        try:
            chunks.put_nowait(os.read(leader, 4096))
        except BlockingIOError:
            pass
        except OSError:  # the child closed the terminal
            loop.remove_reader(leader)
            chunks.put_nowait(b"")

    loop.add_reader(leader, on_readable)

    async def read_until(pattern: bytes, timeout: float = 30) -> re.Match[bytes]:
        nonlocal output
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            found = re.search(pattern, output)
            if found:
                return found
            try:
                chunk = await asyncio.wait_for(chunks.get(), 1)
            except TimeoutError:
                continue
            if not chunk:
                break
            output += chunk
        raise AssertionError(f"{pattern!r} not in output:\n{output.decode(errors='replace')}")

    try:
        url = (
            (await read_until(rb"(https://login\.example\.test/authorize\?\S+)")).group(1).decode()
        )
        await read_until(rb"ssh -L \d+:127\.0\.0\.1:\d+")
        query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
        callback = query["redirect_uri"]
        async with (
            aiohttp.ClientSession() as http,
            http.get(callback, params={"state": query["state"], "code": "c0de"}) as answer,
        ):
            page = await answer.text()
        await read_until(rb"Signed in")
        code = await loop.run_in_executor(None, proc.wait, 30)
        await read_until(rb"Signed in[\s\S]*PASS +COMPLETE +workflow signin", timeout=5)
    finally:
        if proc.poll() is None:
            proc.kill()
        loop.remove_reader(leader)
        os.close(leader)
        await server.stop()
    assert answer.status == 200
    assert "Signed in" in page
    assert code == 0, output.decode(errors="replace")
