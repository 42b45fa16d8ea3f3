"""Client TLS (SPEC §10): a call's `tls` over its auth's, PEM files read at use (a rotated certificate
is picked up), and SSL contexts built once per distinct setting. An inline key reaches OpenSSL through
an anonymous memory file, never a file another user could read."""

from __future__ import annotations

import os
import ssl
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

from cryptography import x509

from apimd.engine.errors import SetupError
from apimd.model.result import ClientCertificate
from apimd.model.tls import PemFile, TlsSettings

MAX_PEM_BYTES = 1024 * 1024
"""A PEM file larger than this is no certificate or key (and is not read whole)."""


@dataclass(frozen=True)
class TlsConfig:
    """Resolved TLS settings of one request; equal configs share connections and SSL contexts."""

    verify: bool | Literal["ca_only"] = True
    client_cert: str | None = None
    client_key: str | None = None
    client_key_password: str | None = None
    ca_bundle: str | None = None

    @property
    def ssl(self) -> ssl.SSLContext | bool:
        """What aiohttp's connector takes: a context, or a plain verify flag when nothing else."""
        if self.client_cert is None and self.ca_bundle is None and self.verify != "ca_only":
            return bool(self.verify)
        return ssl_context(self)

    def client_certificate(self) -> ClientCertificate | None:
        """The client certificate's subject and expiry, if one is used."""
        if self.client_cert is None:
            return None
        return _certificate_info(self.client_cert)


@lru_cache(maxsize=64)
def _certificate_info(pem: str) -> ClientCertificate | None:
    try:
        cert = x509.load_pem_x509_certificate(pem.encode())
    except ValueError:
        return None
    return ClientCertificate(
        subject=cert.subject.rfc4514_string(), expires_at=cert.not_valid_after_utc
    )


def resolve_tls(
    call_tls: TlsSettings | None, auth_tls: TlsSettings | None, verify_tls: bool = True
) -> TlsConfig:
    """The TLS config of a request: the call's fields over its auth's; `verify_tls: false` stays a
    shorthand for `verify: false`. Files are read now. Raises `SetupError` naming the field."""
    merged = call_tls.merged_over(auth_tls) if call_tls else auth_tls
    if merged is None:
        return TlsConfig(verify=verify_tls)
    verify = merged.verify if merged.verify is not None else verify_tls
    config = TlsConfig(
        verify=verify,
        client_cert=_read(merged.client_cert, "tls client_cert"),
        client_key=_read(merged.client_key, "tls client_key"),
        client_key_password=merged.client_key_password,
        ca_bundle=_read(merged.ca_bundle, "tls ca_bundle"),
    )
    if (config.client_cert is None) != (config.client_key is None):
        raise SetupError("tls: give both client_cert and client_key, or neither")
    return config


def _read(value: str | PemFile | None, where: str) -> str | None:
    """A PEM file's text: a regular file of at most `MAX_PEM_BYTES` (a FIFO or a device would
    block the event loop or never end), opened without blocking."""
    if not isinstance(value, PemFile):
        return value
    try:
        fd = os.open(Path(value.file).expanduser(), os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise SetupError(f"{where}: {value.file} is not a regular file")
        with os.fdopen(fd, "rb") as handle:
            data = handle.read(MAX_PEM_BYTES + 1)
        if len(data) > MAX_PEM_BYTES:
            raise SetupError(f"{where}: {value.file} is over {MAX_PEM_BYTES} bytes: not a PEM file")
        return data.decode("ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise SetupError(f"{where}: cannot read {value.file}: {exc}") from None


@lru_cache(maxsize=64)
def ssl_context(config: TlsConfig) -> ssl.SSLContext:
    """An SSL context for `config`, built once per distinct config."""
    if config.verify == "ca_only":
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    else:
        context = ssl.create_default_context()
    if config.ca_bundle:
        try:
            context.load_verify_locations(cadata=config.ca_bundle)
        except (ssl.SSLError, ValueError) as exc:
            raise SetupError(f"tls ca_bundle: not a PEM certificate bundle ({exc})") from None
    if config.verify is False:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if config.client_cert and config.client_key:
        with _private_file(config.client_cert) as cert, _private_file(config.client_key) as key:
            # Never None: OpenSSL would then ask for the passphrase on the terminal.
            password = config.client_key_password or _no_password
            try:
                context.load_cert_chain(cert, key, password=password)
            except ssl.SSLError as exc:
                if "ENCRYPTED" in config.client_key:
                    raise SetupError(
                        "tls client_key: the key is encrypted and client_key_password is"
                        f" {'wrong' if config.client_key_password else 'missing'}"
                    ) from None
                raise SetupError(f"tls client_cert/client_key: {exc.reason or exc}") from None
    return context


def _no_password() -> bytes:
    return b""


@contextmanager
def _private_file(text: str) -> Iterator[str]:
    """A path OpenSSL can read `text` from: an anonymous memory file where the OS has them, else a
    0600 file in a 0700 folder, removed at once."""
    if hasattr(os, "memfd_create"):
        fd = os.memfd_create("apimd-tls", 0)
        try:
            os.write(fd, text.encode())
            yield f"/proc/self/fd/{fd}"
        finally:
            os.close(fd)
        return
    with tempfile.TemporaryDirectory(prefix="apimd-tls-") as folder:
        path = Path(folder) / "pem"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        yield str(path)
