"""The daemon under a service manager (SPEC §11 "Always on"): sd_notify READY=1 once the socket
serves and STOPPING=1 on SIGTERM, journal-friendly stderr under JOURNAL_STREAM, APIMD_LOG_LEVEL,
and a rotating daemon.log."""

from __future__ import annotations

import logging
import re
import socket
import time
from pathlib import Path

import pytest

from apimd.daemon.journal import LOG_BACKUPS, LOG_MAX_BYTES, configure_logging
from apimd.settings import Settings
from tests.daemon.conftest import short_home, start_daemon, stop_daemon

TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")


def receive(sock: socket.socket, timeout: float = 15.0) -> str:
    sock.settimeout(timeout)
    return sock.recv(4096).decode()


def test_the_daemon_notifies_ready_and_stopping_on_a_real_notify_socket() -> None:
    home = short_home()
    path = home / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        daemon = start_daemon(home, NOTIFY_SOCKET=str(path), JOURNAL_STREAM="8:12345")
        try:
            assert receive(sock) == "READY=1"
            # READY comes once the socket serves: the fixture's start already got an answer
            assert daemon.socket_path.exists()
            daemon.process.send_signal(15)
            assert receive(sock) == "STOPPING=1"
            assert daemon.process.wait(15) == 0
            lines = [line for line in daemon.stderr().splitlines() if " apimd." in line]
            assert lines, daemon.stderr()
            assert not any(TIMESTAMP.match(line) for line in lines), lines
            assert any(line.startswith("INFO apimd.daemon: apimd daemon pid") for line in lines)
        finally:
            stop_daemon(daemon)


def test_log_level_warning_keeps_info_lines_out() -> None:
    home = short_home()
    daemon = start_daemon(home, APIMD_LOG_LEVEL="warning")
    try:
        time.sleep(0.2)
        assert "apimd daemon pid" not in daemon.log_path.read_text()
    finally:
        stop_daemon(daemon)


def test_daemon_log_rotates_at_ten_mib_keeping_five(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("APIMD_LOG_STDERR", "0")
    settings = Settings.load({"APIMD_HOME": str(tmp_path)})
    root = logging.getLogger()
    saved = (root.level, list(root.handlers))
    try:
        configure_logging(settings)
        chunk = "x" * 1024 * 1024
        for _ in range(7 * LOG_MAX_BYTES // len(chunk)):
            logging.getLogger("apimd.test").info(chunk)
        logs = sorted(p.name for p in tmp_path.glob("daemon.log*"))
        assert logs == ["daemon.log"] + [f"daemon.log.{i}" for i in range(1, LOG_BACKUPS + 1)]
        assert all(p.stat().st_size <= LOG_MAX_BYTES + 2 * len(chunk) for p in tmp_path.iterdir())
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
            handler.close()
        root.setLevel(saved[0])
        for handler in saved[1]:
            root.addHandler(handler)
