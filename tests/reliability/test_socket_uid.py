"""The daemon's socket serves only its own user (SPEC §9). CI runs as root, so the test can drop
a child process to uid/gid 65534 ("nobody").

WHAT IT PROVES: another user cannot read `/v1/status`: with the home as apimd made it, the
kernel refuses the connection (EACCES); and with the folder and socket opened up by mistake
(0711 / 0666), the daemon itself answers 403 after checking the peer's uid (SO_PEERCRED)."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.reliability.conftest import AS_NOBODY, DaemonProcess

# Runs as 65534 with nothing but the standard library; prints what happened on one line.
PROBE = """
import errno, socket, sys
sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
sock.settimeout(10)
try:
    sock.connect(sys.argv[1])
    sock.sendall(b"GET /v1/status HTTP/1.0\\r\\nHost: apimd\\r\\n\\r\\n")
    answer = b""
    while chunk := sock.recv(65536):
        answer += chunk
    print("http " + answer.decode(errors="replace").replace("\\r\\n", " | "))
except OSError as exc:
    print("refused " + errno.errorcode.get(exc.errno or 0, str(exc.errno)))
"""


def _as_nobody(socket_path: Path) -> str:
    """What a process of uid/gid 65534 gets for GET /v1/status. The test's own interpreter may
    live where that user cannot go (/root), so any Python that user can run will do, or curl."""
    candidates: list[list[str]] = [
        [python, "-I", "-c", PROBE, str(socket_path)]
        for python in (
            "/usr/bin/python3",
            "/usr/local/bin/python3",
            os.path.realpath(sys.executable),
        )
        if os.path.exists(python)
    ]
    if curl := shutil.which("curl"):
        candidates.append(
            [
                curl,
                "-sS",
                "-i",
                "--max-time",
                "10",
                "--unix-socket",
                str(socket_path),
                "http://apimd/v1/status",
            ]
        )
    tried = []
    for command in candidates:
        try:
            done: subprocess.CompletedProcess[str] = subprocess.run(
                command, capture_output=True, text=True, timeout=30, **AS_NOBODY
            )
        except PermissionError as exc:
            tried.append(f"{command[0]}: {exc}")
            continue
        if command[0] == shutil.which("curl"):
            if done.returncode == 7:  # could not connect
                return "refused " + done.stderr.strip()
            return "http " + done.stdout.replace("\r\n", " | ")
        if done.returncode == 0 and done.stdout.startswith(("refused", "http")):
            return done.stdout.strip()
        tried.append(f"{command[0]}: exit {done.returncode} {done.stderr.strip()[:200]}")
    raise AssertionError("no program ran as uid 65534: " + "; ".join(tried))


async def test_another_user_cannot_read_the_status(daemon: DaemonProcess) -> None:
    assert os.geteuid() == 0, "this test drops a child to uid 65534, which needs root (as CI)"
    outcome = await asyncio.to_thread(_as_nobody, daemon.socket_path)
    assert outcome.startswith("refused"), outcome
    # The home apimd made is 0700: the kernel stops the connect (curl only says "(7)").
    assert "EACCES" in outcome or "curl: (7)" in outcome, outcome

    # Opened up by mistake: the kernel lets the connection through, the peer-uid check doesn't.
    home_mode = daemon.home.stat().st_mode & 0o777
    os.chmod(daemon.home, 0o711)
    os.chmod(daemon.socket_path, 0o666)
    try:
        outcome = await asyncio.to_thread(_as_nobody, daemon.socket_path)
    finally:
        os.chmod(daemon.socket_path, 0o600)
        os.chmod(daemon.home, home_mode)
    assert outcome.startswith("http HTTP/1.") and " 403 " in outcome.split(" | ")[0], outcome
    assert '"forbidden"' in outcome, outcome
    assert '"pid"' not in outcome, "the status leaked to another user"
