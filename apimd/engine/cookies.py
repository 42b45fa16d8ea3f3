"""Cookies across the hops of a call and the steps of a workflow (SPEC §2): one jar per run,
with the domain, path, expiry and secure rules of aiohttp's `CookieJar` (RFC 6265)."""

from __future__ import annotations

from http.cookies import SimpleCookie

import aiohttp
from yarl import URL


def new_jar() -> aiohttp.CookieJar:
    """An empty jar. `unsafe` lets hosts given as IP addresses keep cookies, as browsers do."""
    return aiohttp.CookieJar(unsafe=True)


class RunJar:
    """A run's cookies: its `new_jar()`, made when a response first sets a cookie (most runs
    never get one, and an aiohttp jar costs ~10 k instructions to make). Until then it holds
    nothing, as the empty jar would."""

    __slots__ = ("jar",)

    def __init__(self) -> None:
        self.jar: aiohttp.CookieJar | None = None

    def update_cookies(self, cookies: SimpleCookie, url: URL) -> None:
        if self.jar is None:
            self.jar = new_jar()
        self.jar.update_cookies(cookies, url)


def with_jar_cookies(
    headers: list[tuple[str, str]], run_jar: RunJar | None, url: URL
) -> list[tuple[str, str]]:
    """`headers` with the jar's cookies for `url` added to the Cookie header; a cookie the call
    or its auth sets itself wins over the jar's of the same name."""
    jar = run_jar.jar if run_jar is not None else None
    if jar is None:
        return headers
    stored = jar.filter_cookies(url)
    if not stored:
        return headers
    own = next((v for k, v in headers if k.lower() == "cookie"), "")
    own_names = {pair.split("=", 1)[0].strip() for pair in own.split(";") if pair.strip()}
    pairs = [
        f"{name}={morsel.coded_value}" for name, morsel in stored.items() if name not in own_names
    ]
    if not pairs:
        return headers
    merged = "; ".join([own, *pairs] if own else pairs)
    return [(k, v) for k, v in headers if k.lower() != "cookie"] + [("Cookie", merged)]


def remember(jar: RunJar | None, cookies: SimpleCookie, url: URL, into: dict[str, str]) -> None:
    """Store the cookies a response set in the jar, and their values (by name) in `into`."""
    for name, morsel in cookies.items():
        into[name] = morsel.value
    if jar is not None and cookies:
        jar.update_cookies(cookies, url)
