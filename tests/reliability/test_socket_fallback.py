"""The fallback socket folder (`$TMPDIR/apimd-<uid>`, for socket paths over 100 bytes) cannot be
hijacked by another user (issue 10 point 5). CI runs as root, so the test drops child processes
to uid/gid 65534 ("nobody") as the other user; TMPDIR points at a world-writable folder of the
test's own (as /tmp is), so no other test's fallback folder is touched.

WHAT IT PROVES: the daemon refuses a fallback folder that another user made, or that others may
write to, and says why; and the client, facing a socket another user swapped in (their folder,
their socket, their process), sends it nothing — not even when the socket file and folder look
like ours, because the process answering is checked (SO_PEERCRED) — and says so."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from apimd.settings import Settings
from tests.daemon.conftest import daemon_env, run_cli, short_home
from tests.reliability.conftest import AS_NOBODY, NOBODY

PYTHON = "/usr/bin/python3"  # one that uid 65534 can run (the test's venv may not be)

MAKE_FOLDER = "import os, sys; os.mkdir(sys.argv[1]); os.chmod(sys.argv[1], 0o777)"

# A fake daemon of another user: records every byte it gets, answers 200 to everything.
FAKE_DAEMON = """
import os, socket, sys
path, record = sys.argv[1], open(sys.argv[2], "ab", buffering=0)
server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
server.bind(path)
os.chmod(path, 0o777)
server.listen(16)
print("ready", flush=True)
body = b'{"ok": true, "version": "0.1.0"}'
while True:
    conn, _ = server.accept()
    conn.settimeout(1)
    try:
        while chunk := conn.recv(65536):
            record.write(chunk)
            if chunk.endswith(b"\\r\\n\\r\\n") or b"}" in chunk:
                break
    except OSError:
        pass
    answer = b"HTTP/1.1 200 OK\\r\\nContent-Type: application/json\\r\\nConnection: close\\r\\n"
    conn.sendall(answer + b"Content-Length: %d\\r\\n\\r\\n" % len(body) + body)
    conn.close()
"""

PROJECT = """version: 1
variables:
  API_KEY: {value: hijack-me-SECRET, secret: true}
calls:
  - {name: c, url: "http://127.0.0.1:9/"}
"""


@dataclass
class Fallback:
    env: dict[str, str]
    folder: Path
    socket_path: Path
    home: Path


def _as_nobody(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PYTHON, "-I", *args], capture_output=True, text=True, timeout=30, check=True, **AS_NOBODY
    )


@pytest.fixture
def fallback() -> Iterator[Fallback]:
    assert os.geteuid() == 0, "this test drops children to uid 65534, which needs root (as CI)"
    shared = Path(tempfile.mkdtemp(prefix="apimd-tmp-", dir="/tmp"))
    os.chmod(shared, 0o1777)  # like /tmp: everyone may make folders in it
    home = short_home()
    env = daemon_env(home, TMPDIR=str(shared), APIMD_SOCKET=str(home / ("s" * 100) / "a.sock"))
    socket_path = Settings.load(env).socket_path
    assert socket_path.parent == shared / f"apimd-{os.getuid()}"
    try:
        yield Fallback(env, socket_path.parent, socket_path, home)
    finally:
        # A daemon a failing test left behind (it would have started in a hijacked folder).
        stop = [sys.executable, "-m", "apimd", "stop"]
        subprocess.run(stop, env=env, capture_output=True, timeout=60, check=False)
        shutil.rmtree(shared, ignore_errors=True)
        shutil.rmtree(home, ignore_errors=True)


async def test_the_daemon_refuses_a_fallback_folder_another_user_made(
    fallback: Fallback,
) -> None:
    _as_nobody("-c", MAKE_FOLDER, str(fallback.folder))
    assert fallback.folder.stat().st_uid == NOBODY
    code, out, err = await run_cli("start", env=fallback.env, timeout=60)
    assert code == 1, (out, err)
    assert "refusing the socket folder" in err
    assert f"{fallback.folder} belongs to uid {NOBODY}" in err
    assert not fallback.socket_path.exists()


async def test_the_daemon_refuses_a_fallback_folder_others_may_write(fallback: Fallback) -> None:
    fallback.folder.mkdir(mode=0o700)
    os.chmod(fallback.folder, 0o777)
    code, out, err = await run_cli("daemon", env=fallback.env, timeout=60)
    assert code == 1, (out, err)
    assert f"{fallback.folder} is writable by other users (mode 777)" in err


async def test_a_safe_fallback_folder_is_made_and_used(fallback: Fallback) -> None:
    code, out, err = await run_cli("start", env=fallback.env, timeout=60)
    try:
        assert code == 0, (out, err)
        assert (fallback.folder.stat().st_mode & 0o777) == 0o700
        code, out, err = await run_cli("status", env=fallback.env, timeout=30)
        assert code == 0, (out, err)
    finally:
        await run_cli("stop", env=fallback.env, timeout=60)


@pytest.fixture
def fake_daemon(fallback: Fallback) -> Iterator[Path]:
    """Another user's folder, socket and process on the fallback path; yields its record."""
    _as_nobody("-c", MAKE_FOLDER, str(fallback.folder))
    record = fallback.folder / "record"
    _as_nobody("-c", "import sys; open(sys.argv[1], 'w')", str(record))
    process = subprocess.Popen(
        [PYTHON, "-I", "-c", FAKE_DAEMON, str(fallback.socket_path), str(record)],
        stdout=subprocess.PIPE,
        **AS_NOBODY,
    )
    try:
        assert process.stdout is not None and process.stdout.readline() == b"ready\n"
        yield record
    finally:
        process.kill()
        process.wait(10)
        assert process.stdout is not None
        process.stdout.close()


async def _apply(fallback: Fallback) -> tuple[int, str, str]:
    project = fallback.home / "project.yaml"
    project.write_text(PROJECT)
    return await run_cli("apply", str(project), env=fallback.env, timeout=60)


async def test_the_client_sends_nothing_to_another_users_socket(
    fallback: Fallback, fake_daemon: Path
) -> None:
    code, out, err = await _apply(fallback)
    assert fake_daemon.read_bytes() == b"", "the client sent a request to another user's socket"
    assert code != 0, (out, err)
    assert f"refusing to talk to {fallback.socket_path}" in err
    assert f"belongs to uid {NOBODY}" in err
    assert "nothing was sent" in err


async def test_the_client_checks_the_process_behind_a_socket_that_looks_ours(
    fallback: Fallback, fake_daemon: Path
) -> None:
    # Socket file and folder as if ours: only the peer's uid (SO_PEERCRED) tells them apart.
    os.chown(fallback.socket_path, os.getuid(), os.getgid())
    os.chown(fallback.folder, os.getuid(), os.getgid())
    os.chmod(fallback.folder, 0o700)
    code, out, err = await _apply(fallback)
    assert fake_daemon.read_bytes() == b"", "the client sent a request to another user's process"
    assert code != 0, (out, err)
    assert f"the process answering runs as uid {NOBODY}, not as you" in err


async def test_status_says_why_it_will_not_ask_another_users_socket(
    fallback: Fallback, fake_daemon: Path
) -> None:
    """Not "not running": something answers there, and the person must learn it is not theirs."""
    code, out, err = await run_cli("status", env=fallback.env, timeout=60)
    assert fake_daemon.read_bytes() == b""
    assert code == 1, (out, err)
    assert "not running" not in out + err
    assert f"refusing to talk to {fallback.socket_path}" in err
    assert f"belongs to uid {NOBODY}" in err
