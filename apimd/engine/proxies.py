"""Which proxy a request goes through (SPEC §10): the call's `proxy`, else its auth's, else the
daemon's `HTTPS_PROXY`/`HTTP_PROXY` (minus `NO_PROXY` hosts); `none` turns proxies off."""

from __future__ import annotations

import os
import urllib.request
from collections.abc import Mapping
from typing import Any

import aiohttp
from aiohttp_socks import ProxyConnector
from yarl import URL


def select_proxy(
    configured: str | None, target: URL | str, environ: Mapping[str, str] | None = None
) -> str | None:
    """The proxy URL for `target`, or None to connect directly."""
    if configured is not None:
        return None if configured.strip().lower() == "none" else configured
    proxies = _environment_proxies(environ)
    if not proxies:  # most daemons: then the target's URL is not even parsed
        return None
    if isinstance(target, str):
        target = URL(target)
    chosen = proxies.get(target.scheme)
    if not chosen:
        return None
    if bypassed(target, proxies.get("no", "")):
        return None
    return chosen


def bypassed(target: URL, no_proxy: str) -> bool:
    """Whether `NO_PROXY` (comma-separated hosts, domain suffixes, `host:port`, `*`) covers
    `target`, by the rules curl and Python's standard library share."""
    host = (target.raw_host or "").lower().strip("[]")
    port = target.port
    for entry in (e.strip().lower() for e in no_proxy.split(",")):
        if not entry:
            continue
        if entry == "*":
            return True
        name, _, entry_port = entry.rpartition(":") if entry.count(":") == 1 else (entry, "", "")
        if entry_port and entry_port != str(port):
            continue
        name = name.lstrip(".").strip("[]")
        if host == name or host.endswith("." + name):
            return True
    return False


def _environment_proxies(environ: Mapping[str, str] | None) -> Mapping[str, str]:
    if environ is None:
        return _process_proxies()
    # The same rules as the standard library, over a given environment (tests, agents).
    found: dict[str, str] = {}
    for key, value in environ.items():
        name = key.lower()
        if value and name.endswith("_proxy"):
            found.setdefault(name[: -len("_proxy")], value)
    return found


# The process environment's proxies, with the environment they were read from: reading them walks
# and decodes every variable, too slow for each request; comparing two dicts is not. One tuple, so
# a thread never sees the proxies of one environment beside another.
_read: tuple[dict[Any, Any], dict[str, str]] | None = None


def _process_proxies() -> Mapping[str, str]:
    """`getproxies_environment()`, read again only when the process environment changed (the
    dict read last time: not to be changed)."""
    global _read
    current = getattr(os.environ, "_data", None)  # os.environ's own store (bytes on POSIX)
    if current is None:
        return urllib.request.getproxies_environment()
    read = _read
    if read is None or read[0] != current:
        read = _read = (dict(current), urllib.request.getproxies_environment())
    return read[1]


def is_socks(proxy: str | None) -> bool:
    return proxy is not None and proxy.lower().startswith("socks5")


def socks_connector(proxy: str, *, ssl: Any, force_close: bool) -> aiohttp.BaseConnector:
    """A connector that tunnels through a SOCKS5 proxy; `socks5h` resolves names at the proxy."""
    url = URL(proxy)
    return ProxyConnector(
        host=url.host or "",
        port=url.port or 1080,
        username=url.user,
        password=url.password,
        rdns=url.scheme.lower() == "socks5h",
        ssl=ssl,
        force_close=force_close,
        use_dns_cache=not force_close,
        limit=0 if force_close else 100,  # one-shot connections: as many as there are sends
    )


def through_proxy(
    proxy: str | None, target: URL, headers: list[tuple[str, str]]
) -> tuple[list[tuple[str, str]], dict[str, Any]]:
    """The headers and `session.request` arguments of one hop through an http(s) proxy:
    CONNECT for https targets (credentials on the CONNECT only), absolute URIs for http ones
    (credentials on the request, which the proxy strips)."""
    if proxy is None or is_socks(proxy):
        return headers, {}
    url = URL(proxy)
    if url.user is None:
        return headers, {"proxy": url}
    credentials = aiohttp.encode_basic_auth(url.user, url.password or "")
    if target.scheme == "https":
        return headers, {
            "proxy": url.with_user(None),
            "proxy_headers": {"Proxy-Authorization": credentials},
        }
    return [*headers, ("Proxy-Authorization", credentials)], {"proxy": url.with_user(None)}
