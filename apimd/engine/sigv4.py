"""AWS Signature Version 4 (SPEC §10): sign a request as it will be sent.

Signed: every header the request holds at this step of the pipeline (except hop-by-hop and
tracing headers, which proxies and clients may change), plus `host` and `x-amz-date`, and
`x-amz-security-token` with a session token. S3 takes the path as sent and an
`x-amz-content-sha256` header; every other service gets the path's segments normalised and
encoded once more, as AWS's documentation asks.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import quote

from yarl import URL

from apimd.engine.request_vars import canonical_query, host_header

_UNSIGNED = frozenset(
    {
        "authorization",
        "baggage",
        "connection",
        "expect",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "traceparent",
        "tracestate",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "user-agent",
        "x-amzn-trace-id",
    }
)
ALGORITHM = "AWS4-HMAC-SHA256"


@dataclass(frozen=True)
class AwsCredentials:
    """What `aws_sigv4` auth signs with."""

    access_key_id: str
    secret_access_key: str
    region: str
    service: str
    session_token: str | None = None


def _normalized_path(raw_path: str) -> str:
    """Dot segments resolved and empty segments dropped (RFC 3986 §5.2.4, as AWS does)."""
    if not raw_path:
        return "/"
    kept: list[str] = []
    for segment in raw_path.split("/"):
        if segment == "..":
            if kept:
                kept.pop()
        elif segment not in ("", "."):
            kept.append(segment)
    lead = "/" if raw_path.startswith("/") else ""
    trail = "/" if raw_path.endswith("/") and kept else ""
    return lead + "/".join(kept) + trail


def canonical_uri(url: URL, service: str) -> str:
    if service == "s3":
        return url.raw_path or "/"
    return quote(_normalized_path(url.raw_path), safe="/~")


def _signing_key(credentials: AwsCredentials, day: str) -> bytes:
    key = ("AWS4" + credentials.secret_access_key).encode()
    for part in (day, credentials.region, credentials.service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def sign(
    method: str,
    url: URL,
    headers: list[tuple[str, str]],
    body: bytes | None,
    credentials: AwsCredentials,
    instant: datetime,
) -> list[tuple[str, str]]:
    """`headers` with `X-Amz-Date`, `X-Amz-Security-Token` (with a session token),
    `X-Amz-Content-Sha256` (S3) and the `Authorization` signature set."""
    stamp = instant.strftime("%Y%m%dT%H%M%SZ")
    payload_hash = hashlib.sha256(body or b"").hexdigest()
    added = {"X-Amz-Date": stamp}
    if credentials.session_token:
        added["X-Amz-Security-Token"] = credentials.session_token
    if credentials.service == "s3":
        added["X-Amz-Content-SHA256"] = payload_hash
    replaced = {name.lower() for name in added} | {"authorization", "date"}
    out = [(k, v) for k, v in headers if k.lower() not in replaced]
    out += added.items()

    signed: dict[str, list[str]] = {"host": [host_header(url)]}
    for name, value in out:
        lname = name.lower()
        if lname not in _UNSIGNED and lname != "host":
            signed.setdefault(lname, []).append(" ".join(value.split()))
    names = sorted(signed)
    canonical_headers = "".join(f"{n}:{','.join(signed[n])}\n" for n in names)
    signed_headers = ";".join(names)
    canonical_request = "\n".join(
        [
            method.upper(),
            canonical_uri(url, credentials.service),
            canonical_query(url),
            canonical_headers,
            signed_headers,
            payload_hash,
        ]
    )
    day = stamp[:8]
    scope = f"{day}/{credentials.region}/{credentials.service}/aws4_request"
    string_to_sign = "\n".join(
        [ALGORITHM, stamp, scope, hashlib.sha256(canonical_request.encode()).hexdigest()]
    )
    signature = hmac.new(
        _signing_key(credentials, day), string_to_sign.encode(), hashlib.sha256
    ).hexdigest()
    out.append(
        (
            "Authorization",
            f"{ALGORITHM} Credential={credentials.access_key_id}/{scope}, "
            f"SignedHeaders={signed_headers}, Signature={signature}",
        )
    )
    return out
