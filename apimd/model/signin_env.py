"""Where the person signing in sits: at this machine's display, or on SSH (SPEC §8), and the
`ssh -L` hint that brings the browser back. One set of rules for the TUI and the CLI."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from urllib.parse import urlsplit

DEFAULT_CALLBACK_PORT = 8765


def over_ssh(environ: Mapping[str, str]) -> bool:
    return bool(environ.get("SSH_CONNECTION") or environ.get("SSH_TTY"))


def has_display(environ: Mapping[str, str], platform: str = sys.platform) -> bool:
    return bool(environ.get("DISPLAY") or environ.get("WAYLAND_DISPLAY")) or platform == "darwin"


def can_open_browser(environ: Mapping[str, str], platform: str = sys.platform) -> bool:
    """A browser opened here would be in front of the person: a display, and no SSH session."""
    return has_display(environ, platform) and not over_ssh(environ)


def callback_port(callback_url: str | None) -> int:
    try:
        port = urlsplit(callback_url or "").port
    except ValueError:
        port = None
    return port or DEFAULT_CALLBACK_PORT


def ssh_hint(callback_url: str | None, host: str) -> str:
    """The command that forwards the callback port from the person's machine to this one."""
    port = callback_port(callback_url)
    return f"ssh -L {port}:127.0.0.1:{port} {host}"
