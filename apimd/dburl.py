"""PostgreSQL URLs (`APIMD_DATABASE_URL`): recognised, and named in messages without secrets."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, unquote, urlsplit

URL_SCHEMES = ("postgresql://", "postgres://")
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")


def is_postgres_url(location: object) -> bool:
    """Whether `location` (a store location: file path or URL) is a PostgreSQL URL."""
    return isinstance(location, str) and location.startswith(URL_SCHEMES)


def url_scheme(location: str) -> str | None:
    """The scheme of `location` when it looks like a URL (`mysql://…`), else None (a path)."""
    match = _SCHEME.match(location)
    return match.group(1) if match else None


def describe_url(url: str) -> str:
    """The database and server of `url`, for messages: never its user's password."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname or "localhost", parts.port or 5432
    except ValueError:
        return "PostgreSQL database (malformed URL)"
    database = parts.path.lstrip("/") or parts.username or "?"
    return f"PostgreSQL database {database} on {host}:{port}"


def without_secrets(text: str, url: str) -> str:
    """`text` (a driver's message about `url`) without the URL or its password: libpq quotes a
    URL it cannot parse whole, and a malformed part of it (the password too) as written."""
    text = text.replace(url, describe_url(url))
    for secret in sorted(_passwords(url), key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def _passwords(url: str) -> set[str]:
    """The password of `url` (user info or `password=` parameter), as written and decoded; the
    URL is split by hand, as one that `urlsplit` refuses may still hold one."""
    rest = url.partition("://")[2]
    authority = re.split(r"[/?#]", rest, maxsplit=1)[0]
    userinfo, at, _host = authority.rpartition("@")
    found = [userinfo.partition(":")[2]] if at else []
    query = rest.partition("?")[2].partition("#")[0]
    found += [value for key, value in parse_qsl(query) if key == "password"]
    found += [part.partition("=")[2] for part in query.split("&") if part.startswith("password=")]
    return {form for secret in found for form in (secret, unquote(secret)) if form}
