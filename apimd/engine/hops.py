"""One hop of a send (SPEC §2, §10): the request as it is about to go out, the per-hop steps that
may change it, and what a redirect carries over to the next hop."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from multidict import MultiMapping
from yarl import URL

MAX_REDIRECTS = 10

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
# Dropped on a hop to another origin whatever the caller marked: a credential the user typed into
# a call's headers must not reach a third party either (nor, e.g., a pre-signed storage URL that
# rejects requests carrying one). `host` names the old origin.
CROSS_ORIGIN_DROPPED_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "host"})
_NONE: frozenset[str] = frozenset()
BODY_HEADERS = frozenset(
    {
        "content-type",
        "content-length",
        "content-encoding",
        "content-language",
        "content-location",
        "transfer-encoding",
    }
)


@dataclass(slots=True)
class Hop:
    """One hop of a request as it is about to be sent; `HopStep`s may change its headers."""

    method: str
    url: str
    headers: list[tuple[str, str]]
    body: bytes | None

    def set_header(self, name: str, value: str) -> None:
        """Replace any header of the same name (case-insensitive), else append."""
        self.headers = [(k, v) for k, v in self.headers if k.lower() != name.lower()]
        self.headers.append((name, value))


HopStep = Callable[[Hop], None]
"""Changes a hop just before it is sent (a per-hop signature, a DPoP proof)."""

HopAnswer = Callable[[Hop, int, MultiMapping[str]], bool]
"""Given the hop as later hops carry it, the response's status and headers: changes the hop and
says True when the response asks for the hop to be sent again with an answer (a Digest
challenge), else False."""


@dataclass
class RedirectRules:
    """What a redirect carries over to the next hop (SPEC §2): credentials stay on the origin,
    and 301/302/303 turn a request into a body-less GET."""

    dropped_headers: frozenset[str]  # lower-case names: on another origin they are dropped
    dropped_params: frozenset[str]
    credentials_dropped: bool = False  # once dropped, dropped for every later hop

    @classmethod
    def for_request(
        cls, sensitive_headers: frozenset[str], sensitive_params: frozenset[str]
    ) -> RedirectRules:
        # Most requests mark nothing: then no set is made.
        headers = CROSS_ORIGIN_DROPPED_HEADERS
        if sensitive_headers:
            headers = headers | {name.lower() for name in sensitive_headers}
        params = (
            frozenset({name.lower() for name in sensitive_params}) if sensitive_params else _NONE
        )
        return cls(headers, params)

    def follow(self, carried: Hop, status: int, current: URL, target: URL) -> URL:
        """Turn `carried` into the next hop, to `target`; returns the URL it goes to."""
        # Another origin covers https → http too: the scheme is part of the origin.
        if origin(target) != origin(current):
            self.credentials_dropped = True
        if self.credentials_dropped:
            carried.headers = [
                (k, v) for k, v in carried.headers if k.lower() not in self.dropped_headers
            ]
            target = without_params(target, self.dropped_params)
        if (status == 303 and carried.method != "HEAD") or (
            status in (301, 302) and carried.method == "POST"
        ):
            carried.method, carried.body = "GET", None
            carried.headers = [(k, v) for k, v in carried.headers if k.lower() not in BODY_HEADERS]
        carried.url = str(target)
        return target


def wire_url(url: URL, params: list[tuple[str, str]]) -> URL:
    """The URL as it goes on the wire: `params` appended to its query, no fragment."""
    if params:
        url = url.extend_query(params)
    return url.with_fragment(None)


def redirect_target(status: int, location: str | None, current: URL) -> URL | None:
    """Where a followable redirect points, or None when the response is not one."""
    if status not in REDIRECT_STATUSES or not location:
        return None
    target = _resolve(location, current)
    if isinstance(target, str):
        return None
    if target.user is not None or target.password is not None:
        target = target.with_user(None)
    return target


def unfollowed_redirect(status: int, location: str | None, current: URL) -> str:
    """Why a 3xx was not followed, for its result's error: `HTTP 302 redirect`, and the reason
    when its Location is there but points nowhere apimd goes."""
    reason = _resolve(location, current) if location else None
    return f"HTTP {status} redirect" + (f" {reason}" if isinstance(reason, str) else "")


def _resolve(location: str, current: URL) -> URL | str:
    """The absolute URL a Location names, or why it names none."""
    try:
        given = URL(location, encoded=False)
        target = current.join(given).with_fragment(None)
    except (TypeError, ValueError):
        return "to an invalid address (the Location cannot be parsed)"
    if target.scheme not in ("http", "https"):
        return f"to an unsupported scheme {target.scheme}:"
    # `http://` alone joins to the current URL: an empty authority is no address, not a loop.
    if not target.host or (given.scheme and given.host is None and "//" in location):
        return "to an invalid address (no host)"
    return target


def origin(url: URL) -> tuple[str, str, int | None]:
    return (url.scheme.lower(), (url.host or "").lower(), url.port)


def without_params(url: URL, names: frozenset[str]) -> URL:
    if not any(key.lower() in names for key in url.query):
        return url  # untouched, so its encoding is too
    return url.with_query([(k, v) for k, v in url.query.items() if k.lower() not in names])


def host_port(url: URL) -> str:
    host = url.host or "?"
    return f"[{host}]:{url.port}" if ":" in host else f"{host}:{url.port}"
