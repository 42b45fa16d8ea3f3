"""bench/loopback_server.py reports its own handling time of the requests in a time window."""

from __future__ import annotations

import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from loopback_server import handling_ms, start_server


def test_the_server_reports_the_handling_time_of_the_requests_in_a_window() -> None:
    server, port = start_server("/ok", {"ok": True})
    try:
        before = time.time()
        for _ in range(5):
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ok", timeout=10) as response:
                assert response.read() == b'{"ok": true}'
        middle = time.time()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ok", timeout=10) as response:
            response.read()
        after = time.time()
        first = handling_ms(server, before, middle)
        assert len(first) == 5
        assert all(0 < ms < (middle - before) * 1000 for ms in first)
        assert len(handling_ms(server, middle, after)) == 1
        assert handling_ms(server, after + 1, after + 2) == []
    finally:
        assert server.stdin is not None
        server.stdin.close()  # EOF stops it
        assert server.wait(10) == 0
        assert server.stdout is not None
        server.stdout.close()
