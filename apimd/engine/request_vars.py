"""Request variables (SPEC §10): the request as it will be sent at this point of the pipeline,
for token headers that sign it (`REQUEST_METHOD`, `REQUEST_PATH`, `REQUEST_BODY_SHA256`, …)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from urllib.parse import quote

from yarl import URL

_DEFAULT_PORTS = {"http": 80, "https": 443}


def url_as_sent(url: str, params: Iterable[tuple[str, str]]) -> URL:
    """The URL with the query params appended, encoded as the executor sends it."""
    built = URL(url)
    pairs = list(params)
    if pairs:
        built = built.extend_query(pairs)
    return built.with_fragment(None)


def rfc3986(text: str) -> str:
    """Percent-encode everything but the unreserved characters (RFC 3986 §2.3)."""
    return quote(text, safe="-_.~")


def canonical_query(url: URL) -> str:
    """Query pairs sorted by name then value, each RFC 3986 encoded."""
    pairs = sorted((rfc3986(k), rfc3986(v)) for k, v in url.query.items())
    return "&".join(f"{k}={v}" for k, v in pairs)


def host_header(url: URL) -> str:
    """`host[:port]`, the port only when it is not the scheme's default."""
    host = url.raw_host or ""
    if ":" in host:  # IPv6
        host = f"[{host}]"
    if url.explicit_port is not None and url.explicit_port != _DEFAULT_PORTS.get(url.scheme):
        return f"{host}:{url.explicit_port}"
    return host


def request_variables(
    method: str,
    url: str,
    params: Iterable[tuple[str, str]],
    headers: Iterable[tuple[str, str]],
    body: bytes | None,
) -> dict[str, str]:
    """The `REQUEST_*` variables of a request about to be sent."""
    sent = url_as_sent(url, params)
    content_type = next((v for k, v in headers if k.lower() == "content-type"), "")
    payload = body or b""
    return {
        "REQUEST_METHOD": method.upper(),
        "REQUEST_URL": str(sent),
        "REQUEST_HOST": host_header(sent),
        "REQUEST_PATH": sent.raw_path,
        "REQUEST_QUERY": sent.raw_query_string,
        "REQUEST_QUERY_CANONICAL": canonical_query(sent),
        "REQUEST_BODY": payload.decode("utf-8", errors="replace"),
        "REQUEST_BODY_SHA256": hashlib.sha256(payload).hexdigest(),
        "REQUEST_CONTENT_TYPE": content_type,
    }
