"""Fixtures for store tests: a short temporary directory, and stores (SQLite, or PostgreSQL in a
database of the test's own) that are always closed."""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from apimd.model.outcome import Outcome, ResultCode
from apimd.model.result import Result, Timings
from apimd.store import SqliteStore, open_store
from tests.postgres import temporary_database

TEST_KEY = "q0Yx8bqgVhq4Xh9b3dUPG1sB5GJzP3b7dXq6W1lW2mY="

OpenStore = Callable[..., Awaitable[SqliteStore]]


@pytest.fixture
def db_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="apimd-") as name:
        yield Path(name)


@pytest.fixture
async def open_test_store(db_dir: Path) -> AsyncIterator[OpenStore]:
    """`await open_test_store(**overrides)`: a store in `db_dir` with the test key, closed at the
    end of the test if the test did not close it."""
    opened: list[SqliteStore] = []

    async def opener(**overrides: Any) -> SqliteStore:
        options: dict[str, Any] = {
            "path": db_dir / "apimd.db",
            "secret_key": TEST_KEY,
            "key_file": None,
            "owner": False,
        }
        options.update(overrides)
        store = await open_store(options.pop("path"), **options)
        opened.append(store)
        return store

    yield opener
    for store in opened:
        await store.close()


@pytest.fixture(params=["sqlite", "postgres"])
def store_location(request: pytest.FixtureRequest, db_dir: Path) -> Iterator[str | Path]:
    """Where a store of each kind lives: a SQLite file, or a new PostgreSQL database."""
    if request.param == "sqlite":
        yield db_dir / "apimd.db"
        return
    with temporary_database() as url:
        yield url


@pytest.fixture
async def open_any_store(open_test_store: OpenStore, store_location: str | Path) -> OpenStore:
    """`open_test_store` on every kind of store: the same database each time within a test."""

    async def opener(**overrides: Any) -> SqliteStore:
        return await open_test_store(**{"path": store_location, **overrides})

    return opener


@pytest.fixture
async def store(open_any_store: OpenStore) -> SqliteStore:
    return await open_any_store()


def make_result(
    result_id: str,
    *,
    name: str = "list-orders",
    started_at: datetime | None = None,
    code: ResultCode = ResultCode.COMPLETE,
    total_ms: float = 120.0,
    **fields: Any,
) -> Result:
    started = started_at or datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    return Result(
        id=result_id,
        kind=fields.pop("kind", "call"),
        name=name,
        trigger=fields.pop("trigger", "schedule"),
        started_at=started,
        finished_at=started,
        outcome=code.outcome,
        result=code,
        http_status=fields.pop("http_status", 200),
        timings_ms=Timings(total=total_ms),
        **fields,
    )


__all__ = ["TEST_KEY", "OpenStore", "Outcome", "make_result"]
