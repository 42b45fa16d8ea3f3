"""A small recording proxy, run as its own process: `python -m tests.support.proxy http|socks5
LOG [USER PASSWORD]`. Prints its port, then appends one line per request to LOG: `CONNECT
host:port`, `GET http://…` (plain HTTP proxying) or `SOCKS host:port`, with `auth=ok` when the
client's credentials matched. Wrong or missing credentials are refused (407 / SOCKS failure)."""

from __future__ import annotations

import asyncio
import base64
import socket
import sys
from pathlib import Path


class Recorder:
    def __init__(self, log: Path, user: str | None, password: str | None) -> None:
        self.log = log
        self.credentials = (user, password) if user is not None else None

    def note(self, line: str) -> None:
        with self.log.open("a") as out:
            out.write(line + "\n")


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


async def splice(
    client: tuple[asyncio.StreamReader, asyncio.StreamWriter],
    upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter],
) -> None:
    await asyncio.gather(pipe(client[0], upstream[1]), pipe(upstream[0], client[1]))


async def http_proxy(
    recorder: Recorder, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, target, version = lines[0].split(" ", 2)
    headers = [line for line in lines[1:] if line]
    auth = next(
        (
            h.split(":", 1)[1].strip()
            for h in headers
            if h.lower().startswith("proxy-authorization:")
        ),
        "",
    )
    ok = (
        recorder.credentials is None
        or auth
        == "Basic "
        + base64.b64encode(f"{recorder.credentials[0]}:{recorder.credentials[1]}".encode()).decode()
    )
    recorder.note(f"{method} {target}" + (" auth=ok" if ok and recorder.credentials else ""))
    if not ok:
        writer.write(b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()
        return
    if method == "CONNECT":
        host, port = target.rsplit(":", 1)
        upstream = await asyncio.open_connection(host, int(port))
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        await writer.drain()
        await splice((reader, writer), upstream)
        return
    rest = target.split("://", 1)[1]
    authority, _, path = rest.partition("/")
    host, _, port = authority.partition(":")
    upstream = await asyncio.open_connection(host, int(port or 80))
    kept = [h for h in headers if not h.lower().startswith("proxy-")]
    upstream[1].write(
        f"{method} /{path} {version}\r\n".encode() + "\r\n".join(kept).encode() + b"\r\n\r\n"
    )
    await splice((reader, writer), upstream)


async def socks_proxy(
    recorder: Recorder, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    _version, count = await reader.readexactly(2)
    methods = await reader.readexactly(count)
    wanted = 2 if recorder.credentials else 0
    if wanted not in methods:
        writer.write(b"\x05\xff")
        writer.close()
        return
    writer.write(bytes([5, wanted]))
    ok = True
    if recorder.credentials:
        await reader.readexactly(1)
        user = (await reader.readexactly((await reader.readexactly(1))[0])).decode()
        password = (await reader.readexactly((await reader.readexactly(1))[0])).decode()
        ok = (user, password) == recorder.credentials
        writer.write(b"\x01\x00" if ok else b"\x01\x01")
        if not ok:
            recorder.note("SOCKS refused")
            writer.close()
            return
    _ver, _cmd, _rsv, kind = await reader.readexactly(4)
    if kind == 1:
        host = socket.inet_ntoa(await reader.readexactly(4))
    elif kind == 3:
        host = (await reader.readexactly((await reader.readexactly(1))[0])).decode()
    else:
        host = socket.inet_ntop(socket.AF_INET6, await reader.readexactly(16))
    port = int.from_bytes(await reader.readexactly(2), "big")
    recorder.note(f"SOCKS {host}:{port}" + (" auth=ok" if recorder.credentials else ""))
    upstream = await asyncio.open_connection(host, port)
    writer.write(b"\x05\x00\x00\x01" + bytes(4) + bytes(2))
    await writer.drain()
    await splice((reader, writer), upstream)


async def main(kind: str, log: Path, user: str | None, password: str | None) -> None:
    recorder = Recorder(log, user, password)
    handler = http_proxy if kind == "http" else socks_proxy

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await handler(recorder, reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError, OSError, ValueError):
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    args = sys.argv[1:]
    asyncio.run(main(args[0], Path(args[1]), *(args[2:4] if len(args) > 2 else (None, None))))
