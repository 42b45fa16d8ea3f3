"""`tls` on an auth or a call (SPEC §10): client certificate and key, CA bundle, verification. Each
PEM is text or `{file: PATH}` (read at use). Inline PEMs are checked at load: a wrong certificate or
key, or a pair that does not match, is a load error naming the field."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from cryptography import x509
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_pem_private_key,
)
from pydantic import Field, model_validator

from apimd.model.common import SECRET, SECRET_MASK, StrictModel


class PemFile(StrictModel):
    """A PEM read from a file each time it is used, so a rotated certificate is picked up."""

    file: str


PemSource = str | PemFile
SecretPem = Annotated[str, SECRET] | PemFile
VerifyMode = bool | Literal["ca_only"]
_PEM = "PEM text or `{file: PATH}`"


class TlsSettings(StrictModel):
    """Client TLS settings; a call's fields override its auth's one by one."""

    client_cert: PemSource | None = Field(default=None, description=_PEM)
    client_key: SecretPem | None = Field(default=None, description=_PEM)
    client_key_password: Annotated[str, SECRET] | None = None
    ca_bundle: PemSource | None = Field(default=None, description=_PEM)
    verify: VerifyMode | None = Field(default=None, description="true, false or `ca_only`")

    @model_validator(mode="after")
    def _check_inline(self) -> TlsSettings:
        cert = _inline(self.client_cert)
        key = _inline(self.client_key)
        password = self.client_key_password
        if password == SECRET_MASK or (password and "%%" in password):
            key = None
        certificate = None
        if cert is not None:
            try:
                certificate = x509.load_pem_x509_certificate(cert.encode())
            except ValueError:
                raise ValueError("client_cert: not a PEM certificate") from None
        if key is not None:
            try:
                private = load_pem_private_key(
                    key.encode(), password=password.encode() if password else None
                )
            except TypeError:
                raise ValueError(
                    "client_key: the key is encrypted: give client_key_password"
                    if not password
                    else "client_key: the key is not encrypted, drop client_key_password"
                ) from None
            except ValueError:
                raise ValueError(
                    "client_key: not a PEM private key (or a wrong client_key_password)"
                ) from None
            if certificate is not None and _public(certificate.public_key()) != _public(
                private.public_key()
            ):
                raise ValueError("client_cert: certificate and key do not match")
        return self

    def merged_over(self, base: TlsSettings | None) -> TlsSettings:
        """These settings with each unset field taken from `base` (a call's over its auth's)."""
        if base is None:
            return self
        mine = self.model_dump(exclude_none=True)
        return base.model_copy(update={name: getattr(self, name) for name in mine})


def _inline(value: str | PemFile | None) -> str | None:
    """An inline PEM that can be checked now (not a file, mask or template)."""
    if not isinstance(value, str) or value == SECRET_MASK or "%%" in value:
        return None
    return value


def _public(key: Any) -> bytes:
    return bytes(key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo))
