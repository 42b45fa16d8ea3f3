"""A blocking HTTP client over the daemon's Unix socket: any method, any bytes, any content type.
Used where no event loop may run (hypothesis tests, waiting for a daemon to start)."""

from __future__ import annotations

import http.client
import json
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, socket_path: Path, timeout: float) -> None:
        super().__init__("apimd", timeout=timeout)
        self._socket_path = socket_path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(self.timeout)
            sock.connect(str(self._socket_path))
        except OSError:
            sock.close()
            raise
        self.sock = sock


@dataclass
class Reply:
    status: int
    content_type: str
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class SocketHTTP:
    """Raw requests to the daemon's REST API over its Unix socket, or over TCP to `port` on
    127.0.0.1 (an app served on a loopback port)."""

    def __init__(self, socket_path: Path | None = None, *, port: int = 0) -> None:
        self.socket_path = socket_path
        self.port = port

    def _connection(self, timeout: float) -> http.client.HTTPConnection:
        if self.socket_path is None:
            return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        return _UnixConnection(self.socket_path, timeout)

    def request(
        self,
        method: str,
        target: str,
        body: bytes | None = None,
        *,
        content_type: str = "application/json",
        timeout: float = 30.0,
    ) -> Reply:
        connection = self._connection(timeout)
        try:
            headers = {"Content-Type": content_type} if body is not None else {}
            connection.request(method, target, body=body, headers=headers)
            response = connection.getresponse()
            return Reply(response.status, response.getheader("Content-Type") or "", response.read())
        finally:
            connection.close()

    def json(self, method: str, target: str, document: Any = None, **kw: Any) -> Any:
        """A JSON request that must succeed (2xx); its JSON answer."""
        body = None if document is None else json.dumps(document).encode()
        reply = self.request(method, target, body, **kw)
        assert 200 <= reply.status < 300, f"{method} {target}: {reply.status} {reply.body[:500]!r}"
        return reply.json()
