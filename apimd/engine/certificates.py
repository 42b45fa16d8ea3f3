"""The server's leaf certificate of an https response, as a result records it (SPEC §11)."""

from __future__ import annotations

import functools
from datetime import datetime

from cryptography import x509

from apimd.model.result import TlsInfo

DAY_S = 86400.0
_PARSED_CERTIFICATES = 256  # a monitor sees the same few certificates run after run


def tls_info(der: bytes | None, now: datetime) -> TlsInfo | None:
    """Subject, issuer, expiry and days left of a DER certificate; None without one (http, or a
    certificate the parser cannot read — the run itself already passed or failed on TLS)."""
    if not der:
        return None
    parsed = _parsed(der)
    if parsed is None:
        return None
    subject, issuer, not_after = parsed
    return TlsInfo(
        subject=subject,
        issuer=issuer,
        not_after=not_after,
        days_left=round((not_after - now).total_seconds() / DAY_S, 3),
    )


@functools.lru_cache(maxsize=_PARSED_CERTIFICATES)
def _parsed(der: bytes) -> tuple[str, str, datetime] | None:
    """Subject, issuer and expiry of a DER certificate, parsed once per certificate (a result
    reads it twice: for `cert_days` conditions and for the record)."""
    try:
        certificate = x509.load_der_x509_certificate(der)
    except ValueError:
        return None
    return (
        certificate.subject.rfc4514_string(),
        certificate.issuer.rfc4514_string(),
        certificate.not_valid_after_utc,
    )
