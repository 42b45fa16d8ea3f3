"""`apimd demo --no-tui` on a terminal: when the callback port 8765 is taken it binds a free one
and says which; the sign-in it asks for can be finished by pasting the address the browser ended
on (over SSH the browser cannot reach this machine)."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from apimd.daemon.process import read_lock_pid
from tests.e2e.terminal import PtyCommand
from tests.tui.test_signin import finish_in_browser


@pytest.fixture
def port_8765_taken() -> Iterator[bool]:
    """Hold 127.0.0.1:8765; False when something else already holds it (it is taken either way)."""
    holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        holder.bind(("127.0.0.1", 8765))
        holder.listen()
    except OSError:
        holder.close()
        yield False
        return
    try:
        yield True
    finally:
        holder.close()


async def test_demo_with_port_8765_taken_uses_a_free_one_and_takes_a_pasted_address(
    port_8765_taken: bool,
) -> None:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("APIMD_CALLBACK_PORT", "APIMD_HOME", "DISPLAY", "WAYLAND_DISPLAY")
    }
    env.update(SSH_CONNECTION="10.0.0.2 50122 10.0.0.9 22", NO_COLOR="1")
    demo = PtyCommand([sys.executable, "-m", "apimd", "demo", "--no-tui", "--port", "0"], env)
    try:
        found = await demo.read_until(rb"come back to (http://127\.0\.0\.1:(\d+)/tokens/callback)")
        port = int(found.group(2))
        assert port != 8765
        assert "port 8765 is taken, so a free one is used" in demo.text
        url = (await demo.read_until(rb"Sign in here:\s+(http://\S+)")).group(1).decode()
        await demo.read_until(rb"paste the address the browser ended on")
        landed = await finish_in_browser(url)
        assert landed.startswith(f"http://127.0.0.1:{port}/tokens/callback?")
        demo.type_line(landed)
        await demo.read_until(rb"Signed in: token demo-user saved")
        assert not re.search(r"does not look like", demo.text)
    finally:
        if demo.process.poll() is None:
            demo.process.send_signal(signal.SIGINT)  # Ctrl-C: the demo stops its daemon
            await asyncio.to_thread(demo.process.wait, 30)
        demo.close()
    assert demo.process.returncode == 130, demo.text  # the CLI's exit status for Ctrl-C
    home = re.search(r"export APIMD_HOME=(\S+)", demo.text)
    assert home and not os.path.exists(home.group(1)), "the demo removed its temporary state"


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
async def test_a_signal_to_the_demo_alone_stops_its_daemon_and_removes_its_state(
    signum: signal.Signals,
) -> None:
    """`kill`, a closed SSH session (SIGHUP) or SIGINT sent to the demo process alone, not its
    process group, end it as Ctrl-C does: before, SIGTERM left the daemon running and
    /tmp/apimd-demo-* behind."""
    env = {k: v for k, v in os.environ.items() if k not in ("APIMD_CALLBACK_PORT", "APIMD_HOME")}
    env.update(NO_COLOR="1", APIMD_CALLBACK_PORT="0")
    demo = PtyCommand([sys.executable, "-m", "apimd", "demo", "--no-tui", "--port", "0"], env)
    try:
        home = (await demo.read_until(rb"export APIMD_HOME=(\S+)")).group(1).decode()
        await demo.read_until(rb"Press Ctrl-C to stop the demo")
        daemon_pid = read_lock_pid(Path(home) / "daemon.lock")
        assert daemon_pid is not None
        os.kill(demo.process.pid, signum)
        await asyncio.to_thread(demo.process.wait, 30)
    finally:
        if demo.process.poll() is None:
            demo.process.kill()
        demo.close()
    assert demo.process.returncode == 128 + signum, demo.text
    assert not os.path.exists(home), "the demo removed its temporary state"
    with pytest.raises(ProcessLookupError):
        os.kill(daemon_pid, 0)
