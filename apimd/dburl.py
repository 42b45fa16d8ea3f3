"""PostgreSQL URLs (`APIMD_DATABASE_URL`): recognised, and named in messages without secrets."""

from __future__ import annotations

from urllib.parse import urlsplit

URL_SCHEMES = ("postgresql://", "postgres://")


def is_postgres_url(location: object) -> bool:
    """Whether `location` (a store location: file path or URL) is a PostgreSQL URL."""
    return isinstance(location, str) and location.startswith(URL_SCHEMES)


def describe_url(url: str) -> str:
    """The database and server of `url`, for messages: never its user's password."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname or "localhost", parts.port or 5432
    except ValueError:
        return "PostgreSQL database (malformed URL)"
    database = parts.path.lstrip("/") or parts.username or "?"
    return f"PostgreSQL database {database} on {host}:{port}"
