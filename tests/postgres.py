"""PostgreSQL for tests: one new database per test (random name, dropped afterwards) on the server
at APIMD_TEST_POSTGRES_URL (default: the local trust-auth server every dev machine and CI has).

Without a server the PostgreSQL tests skip, and the session ends with one line saying how many
and why; with APIMD_REQUIRE_POSTGRES=1 (as `.ci/run` sets) they fail instead, so CI cannot pass
without having run them."""

from __future__ import annotations

import functools
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

ADMIN_URL = os.environ.get(
    "APIMD_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REQUIRED = os.environ.get("APIMD_REQUIRE_POSTGRES") == "1"
SKIP_PREFIX = "PostgreSQL not available"
skipped: list[str] = []
"""Tests skipped for want of PostgreSQL (see `count_skip`)."""


@functools.cache
def unavailable_reason() -> str | None:
    """Why the test server cannot be used, or None when it answers."""
    try:
        with psycopg.connect(ADMIN_URL, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return f"{SKIP_PREFIX} at {_safe(ADMIN_URL)} ({first})"
    return None


def require_postgres() -> None:
    """Skip (or, with APIMD_REQUIRE_POSTGRES=1, fail) the calling test without a server."""
    reason = unavailable_reason()
    if reason is None:
        return
    if REQUIRED:
        pytest.fail(f"{reason}, and APIMD_REQUIRE_POSTGRES=1 requires it", pytrace=False)
    pytest.skip(reason)


def url_of(database: str) -> str:
    parts = urlsplit(ADMIN_URL)
    return urlunsplit(parts._replace(path=f"/{database}"))


def create_database() -> str:
    """A new empty database; returns its name."""
    name = f"apimd_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return name


def drop_database(name: str) -> None:
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def temporary_database() -> Iterator[str]:
    """The URL of a new database, dropped on exit (skips the test without a server)."""
    require_postgres()
    name = create_database()
    try:
        yield url_of(name)
    finally:
        drop_database(name)


def _safe(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        parts = parts._replace(netloc=netloc)
    return urlunsplit(parts)


def count_skip(report: pytest.TestReport) -> None:
    """Remember a test skipped for want of PostgreSQL (also those skipped by a shared fixture)."""
    if report.skipped and SKIP_PREFIX in str(report.longrepr) and report.nodeid not in skipped:
        skipped.append(report.nodeid)
