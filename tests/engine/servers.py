"""Real local HTTP servers and payloads for the engine's HTTP tests."""

from __future__ import annotations

import asyncio
import datetime as dt
import gzip
import ipaddress
import socket
import ssl
import struct
import zlib
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from yarl import URL

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

MiB = 1024 * 1024


def gzip_bomb(decoded_mib: int) -> bytes:
    """One gzip member that inflates to `decoded_mib` MiB of zeros, built without compressing
    them all: after a full flush the deflate output for the next MiB of zeros is the same block."""
    zeros = bytes(MiB)
    deflate = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    block = deflate.compress(zeros) + deflate.flush(zlib.Z_FULL_FLUSH)
    crc = 0
    for _ in range(decoded_mib):
        crc = zlib.crc32(zeros, crc)
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
    trailer = struct.pack("<II", crc, (decoded_mib * MiB) & 0xFFFFFFFF)
    return header + block * decoded_mib + deflate.flush() + trailer


def encode(body: bytes, codings: str) -> bytes:
    """`body` with the content codings named (comma-separated, applied in order)."""
    for coding in (c.strip() for c in codings.split(",")):
        if coding == "gzip":
            body = gzip.compress(body)
        elif coding == "deflate":
            body = zlib.compress(body)
        elif coding == "raw-deflate":
            deflate = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
            body = deflate.compress(body) + deflate.flush()
        else:
            raise ValueError(coding)
    return body


def closed_port() -> int:
    """A local port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def self_signed_tls(folder: Path) -> ssl.SSLContext:
    """A server TLS context with a fresh self-signed certificate for 127.0.0.1 and localhost."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "apimd test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    return context


async def echo(request: web.Request) -> web.Response:
    """What the server saw: method, path, query, headers, body and the client's port."""
    peer = request.transport.get_extra_info("peername") if request.transport else None
    return web.json_response(
        {
            "method": request.method,
            "path": request.path,
            "query": list(request.query.items()),
            "headers": list(request.headers.items()),
            "body": (await request.read()).decode(),
            "peer_port": peer[1] if peer else None,
        }
    )


async def forward(request: web.Request) -> web.Response:
    """Redirect (`status`, default 302) to `to`, passing on every other query param."""
    passed_on = [(k, v) for k, v in request.query.items() if k not in ("status", "to")]
    target = URL(request.query.get("to", "/echo")).extend_query(passed_on)
    status = int(request.query.get("status", "302"))
    return web.Response(status=status, headers={"Location": str(target)})


async def chain(request: web.Request) -> web.Response:
    """`/chain/N` redirects to `/chain/N-1`; `/chain/0` answers 200."""
    left = int(request.match_info["left"])
    if left == 0:
        return web.Response(text="end of chain")
    return web.Response(status=302, headers={"Location": f"/chain/{left - 1}"})


async def slow(request: web.Request) -> web.Response:
    await asyncio.sleep(int(request.query.get("ms", "200")) / 1000)
    return web.Response(text="slow answer")


async def drip(request: web.Request) -> web.StreamResponse:
    """Headers at once, then a byte every 50 ms for 10 s."""
    response = web.StreamResponse()
    await response.prepare(request)
    for _ in range(200):
        await response.write(b".")
        await asyncio.sleep(0.05)
    await response.write_eof()
    return response


async def big(request: web.Request) -> web.StreamResponse:
    """12 MiB of bytes, with a Content-Length or (`?chunked`) without one."""
    if "chunked" not in request.query:
        return web.Response(body=bytes(12 * MiB))
    response = web.StreamResponse()
    response.enable_chunked_encoding()
    await response.prepare(request)
    for _ in range(12):
        await response.write(bytes(MiB))
    await response.write_eof()
    return response


async def encoded(request: web.Request) -> web.Response:
    """`body` (query) sent with the content codings named in `coding`."""
    codings = request.query["coding"]
    header = codings.replace("raw-deflate", "deflate")
    return web.Response(
        body=encode(request.query["body"].encode(), codings),
        headers={"Content-Encoding": header, "Content-Type": "text/plain"},
    )


def make_app(bomb: bytes = b"") -> web.Application:
    """The test server: echo, redirects, slow and dripping answers, big and encoded bodies."""

    async def serve_bomb(request: web.Request) -> web.Response:
        return web.Response(body=bomb, headers={"Content-Encoding": "gzip"})

    async def raw_bytes(request: web.Request) -> web.Response:
        content_type = request.query.get("type", "text/plain")
        body = bytes.fromhex(request.query["hex"])
        return web.Response(body=body, headers={"Content-Type": content_type})

    app = web.Application()
    app.router.add_route("*", "/echo", echo)
    app.router.add_route("*", "/forward", forward)
    gets: dict[str, Handler] = {
        "/chain/{left}": chain,
        "/slow": slow,
        "/drip": drip,
        "/big": big,
        "/encoded": encoded,
        "/bomb": serve_bomb,
        "/bytes": raw_bytes,
    }
    for path, handler in gets.items():
        app.router.add_get(path, handler)
    return app
