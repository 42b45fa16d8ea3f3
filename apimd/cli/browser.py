"""Handing a sign-in URL to the person: open a browser when there is one to open, else print the
URL with the `ssh -L` hint, and accept a pasted redirect URL (SPEC §5, §8)."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import webbrowser
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit


def over_ssh() -> bool:
    return bool(os.environ.get("SSH_CONNECTION") or os.environ.get("SSH_TTY"))


def has_display() -> bool:
    return (
        bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
        or sys.platform == "darwin"
    )


def ssh_hint(callback_url: str) -> str:
    port = urlsplit(callback_url).port or 8765
    host = socket.gethostname()
    return f"ssh -L {port}:127.0.0.1:{port} {host}"


def present_url(url: str, callback_url: str | None) -> None:
    """Print the URL; open it in a browser when there is a display and no SSH session."""
    print(f"\nSign in here:\n  {url}\n")
    if has_display() and not over_ssh():
        opened = webbrowser.open(url)
        if opened:
            print("(opened in your browser)")
    elif callback_url:
        print(
            "You are on SSH (or there is no display): open the URL in the browser on your own\n"
            "machine. For the browser to come back to apimd, forward the callback port first:\n"
            f"  {ssh_hint(callback_url)}\n"
            "Or, after signing in, paste the address the browser ended on here and press Enter."
        )
    sys.stdout.flush()


async def read_pasted_url(on_url: Callable[[str], Awaitable[bool]]) -> None:
    """Read lines from a terminal; each that looks like a URL is offered to `on_url` until it
    returns True. Ends quietly off a terminal."""
    if not sys.stdin.isatty():
        return
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line:
            return
        line = line.strip()
        if line.startswith(("http://", "https://")) and await on_url(line):
            return
        if line:
            print("That does not look like the address the browser ended on; paste the whole URL.")
