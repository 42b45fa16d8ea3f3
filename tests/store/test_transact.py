"""`Database.transact`: a whole transaction handed to the database at once (on SQLite, run in its
own thread in one trip), committed together or not at all."""

from __future__ import annotations

import asyncio

import pytest

from apimd.store import SqliteStore
from apimd.store.sql import Connection
from tests.store.conftest import OpenStore


async def _meta(store: SqliteStore, key: str) -> str | None:
    row = await store.db.fetchone("SELECT value FROM meta WHERE key = ?", (key,))
    return None if row is None else str(row[0])


async def test_transact_commits_every_statement_and_returns_what_the_work_returns(
    store: SqliteStore,
) -> None:
    async def work(conn: Connection) -> list[str]:
        await conn.execute("INSERT INTO meta (key, value) VALUES ('t-one', '1')")
        await conn.executemany(
            "INSERT INTO meta (key, value) VALUES (?, ?)", [("t-two", "2"), ("t-three", "3")]
        )
        rows = await conn.fetchall("SELECT value FROM meta WHERE key LIKE 't-%' ORDER BY value")
        return [str(row[0]) for row in rows]

    assert await store.db.transact(work) == ["1", "2", "3"]
    assert await _meta(store, "t-three") == "3"


async def test_a_failing_work_keeps_none_of_its_statements(store: SqliteStore) -> None:
    async def work(conn: Connection) -> None:
        await conn.execute("INSERT INTO meta (key, value) VALUES ('t-kept', 'no')")
        raise LookupError("the work failed half-way")

    with pytest.raises(LookupError, match="half-way"):
        await store.db.transact(work)
    assert await _meta(store, "t-kept") is None
    # The database takes the next transaction as usual.
    async with store.db.transaction() as conn:
        await conn.execute("INSERT INTO meta (key, value) VALUES ('t-after', 'yes')")
    assert await _meta(store, "t-after") == "yes"


async def test_sqlite_refuses_work_that_waits_for_something_else(
    open_test_store: OpenStore,
) -> None:
    """On SQLite the work runs in the database's thread, where nothing but its connection can be
    awaited: such work fails and writes nothing, rather than hanging the thread."""
    store = await open_test_store()

    async def work(conn: Connection) -> None:
        await conn.execute("INSERT INTO meta (key, value) VALUES ('t-slept', 'no')")
        await asyncio.sleep(0)

    with pytest.raises(RuntimeError, match="awaited something else"):
        await store.db.transact(work)
    assert await _meta(store, "t-slept") is None
