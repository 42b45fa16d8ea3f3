"""Handing a sign-in URL to the person: open a browser when there is one to open, else print the
URL with the `ssh -L` hint, and accept a pasted redirect URL (SPEC §5, §8)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import sys
import webbrowser
from collections.abc import Awaitable, Callable
from typing import TypeVar

from apimd.model.signin_env import can_open_browser, ssh_hint

T = TypeVar("T")
SIGNIN_WAIT_S = 10 * 60


def present_url(url: str, callback_url: str | None) -> None:
    """Print the URL; open it in a browser when there is a display and no SSH session."""
    print(f"\nSign in here:\n  {url}\n")
    if can_open_browser(os.environ):
        opened = webbrowser.open(url)
        if opened:
            print("(opened in your browser)")
    elif callback_url:
        print(
            "You are on SSH (or there is no display): open the URL in the browser on your own\n"
            "machine. For the browser to come back to apimd, forward the callback port first:\n"
            f"  {ssh_hint(callback_url, socket.gethostname())}\n"
            "Or, after signing in, paste the address the browser ended on here and press Enter."
        )
    sys.stdout.flush()


async def read_pasted_url(on_url: Callable[[str], Awaitable[bool]]) -> None:
    """Read lines from a terminal; each that looks like a URL is offered to `on_url` until it
    returns True. Ends quietly off a terminal. Cancellable (no thread stays blocked on stdin)."""
    if not sys.stdin.isatty():
        return
    loop = asyncio.get_running_loop()
    fd = sys.stdin.fileno()
    lines: asyncio.Queue[str] = asyncio.Queue()
    pending = b""

    def readable() -> None:
        nonlocal pending
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            chunk = b""
        if not chunk:
            loop.remove_reader(fd)
            lines.put_nowait("")
            return
        pending += chunk
        while b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            lines.put_nowait(line.decode(errors="replace") + "\n")

    loop.add_reader(fd, readable)
    try:
        while True:
            line = await lines.get()
            if not line:
                return
            line = line.strip()
            if line.startswith(("http://", "https://")):
                if await on_url(line):  # else `on_url` said why it was refused
                    return
            elif line:
                print(
                    "That does not look like the address the browser ended on; paste the whole URL."
                )
    finally:
        loop.remove_reader(fd)


async def wait_with_paste(
    done: Awaitable[T],
    complete: Callable[[str], Awaitable[object]],
    refused: type[Exception],
) -> T | None:
    """Wait up to 10 minutes for `done` while redirect URLs pasted on the terminal finish the
    sign-in through `complete` (a `refused` error is shown, and the next paste awaited); None,
    said on stderr, when the time runs out."""

    async def pasted(url: str) -> bool:
        try:
            await complete(url)
        except refused as exc:
            print(f"apimd: {exc}")
            return False
        return True

    reader = asyncio.create_task(read_pasted_url(pasted))
    try:
        return await asyncio.wait_for(done, SIGNIN_WAIT_S)
    except TimeoutError:
        print("apimd: the sign-in was not completed within 10 minutes", file=sys.stderr)
        return None
    finally:
        reader.cancel()
        with contextlib.suppress(BaseException):
            await reader
