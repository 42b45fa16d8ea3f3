"""The one test certificate authority, made with `cryptography`: server certificates for 127.0.0.1
(with the extensions Python's strict verification asks for), client certificates for mTLS, and an
https test site."""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

OK_PATH = "/ok"
CA_NAME = "apimd test CA"
LEAF_NAME = "apimd expiring leaf"


PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def pem_key(key: PrivateKey, password: str | None = None) -> str:
    """`key` as PKCS#8 PEM text, encrypted with `password` if one is given."""
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password.encode())
        if password
        else serialization.NoEncryption()
    )
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    ).decode()


@dataclass
class Issued:
    cert: str
    key: str
    not_after: dt.datetime


class TestCA:
    """A self-signed CA (valid for a year) that issues certificates."""

    __test__ = False

    def __init__(self, name: str = CA_NAME) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.name = _name(name)
        now = dt.datetime.now(dt.UTC)
        unused = ("content_commitment", "key_encipherment", "data_encipherment", "key_agreement")
        usage = x509.KeyUsage(
            digital_signature=True,
            key_cert_sign=True,
            crl_sign=True,
            **dict.fromkeys((*unused, "encipher_only", "decipher_only"), False),
        )
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(self.name)
            .issuer_name(self.name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(usage, critical=True)
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()), critical=False
            )
            .sign(self.key, hashes.SHA256())
        )

    @property
    def pem(self) -> str:
        return self.cert.public_bytes(serialization.Encoding.PEM).decode()

    def issue(
        self,
        common_name: str,
        *,
        server: bool = False,
        days: float = 10,
        password: str | None = None,
    ) -> Issued:
        """A certificate for `common_name` that expires in `days` days; a `server` one is for
        127.0.0.1."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC).replace(microsecond=0)
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name))
            .issuer_name(self.name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=days))
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                critical=False,
            )
        )
        if server:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False,
            ).add_extension(x509.ExtendedKeyUsage([x509.OID_SERVER_AUTH]), critical=False)
        cert = builder.sign(self.key, hashes.SHA256())
        return Issued(
            cert.public_bytes(serialization.Encoding.PEM).decode(),
            pem_key(key, password),
            now + dt.timedelta(days=days),
        )

    def server_context(
        self,
        folder: Path,
        *,
        common_name: str = "127.0.0.1",
        days: float = 10,
        client_auth: bool = True,
    ) -> ssl.SSLContext:
        """A server context for 127.0.0.1 (its certificate expiring in `days` days); with
        `client_auth` it requires a client certificate from this CA."""
        issued = self.issue(common_name, server=True, days=days)
        (folder / "server.pem").write_text(issued.cert)
        (folder / "server.key").write_text(issued.key)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(folder / "server.pem", folder / "server.key")
        if client_auth:
            context.load_verify_locations(cadata=self.pem)
            context.verify_mode = ssl.CERT_REQUIRED
        return context


def ca_and_server_context(folder: Path, *, days_left: float) -> tuple[Path, ssl.SSLContext]:
    """(the CA's PEM file, a server TLS context for 127.0.0.1 whose certificate — `LEAF_NAME`,
    signed by that CA — expires in `days_left` days)."""
    ca = TestCA()
    ca_file = folder / "ca.pem"
    ca_file.write_text(ca.pem)
    context = ca.server_context(folder, common_name=LEAF_NAME, days=days_left, client_auth=False)
    return ca_file, context


@asynccontextmanager
async def tls_site(context: ssl.SSLContext, seen: set[object] | None = None) -> AsyncIterator[str]:
    """An https server on 127.0.0.1 answering `GET /ok`; yields its base URL. `seen` collects the
    client address of every request (one per connection)."""

    async def ok(request: web.Request) -> web.Response:
        if seen is not None and request.transport is not None:
            seen.add(request.transport.get_extra_info("peername"))
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_get(OK_PATH, ok)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context).start()
    try:
        yield f"https://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()
