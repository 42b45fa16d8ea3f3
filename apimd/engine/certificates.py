"""The server's leaf certificate of an https response, as a result records it (SPEC §11)."""

from __future__ import annotations

from datetime import datetime

from cryptography import x509

from apimd.model.result import TlsInfo

DAY_S = 86400.0


def tls_info(der: bytes | None, now: datetime) -> TlsInfo | None:
    """Subject, issuer, expiry and days left of a DER certificate; None without one (http, or a
    certificate the parser cannot read — the run itself already passed or failed on TLS)."""
    if not der:
        return None
    try:
        certificate = x509.load_der_x509_certificate(der)
    except ValueError:
        return None
    not_after = certificate.not_valid_after_utc
    return TlsInfo(
        subject=certificate.subject.rfc4514_string(),
        issuer=certificate.issuer.rfc4514_string(),
        not_after=not_after,
        days_left=round((not_after - now).total_seconds() / DAY_S, 3),
    )
