"""`Database.transact`: a whole transaction handed to the database at once (on SQLite, run in its
own thread in one trip), committed together or not at all."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from functools import partial

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


def _inserts(keys: list[str]) -> Iterator[Callable[[Connection], Awaitable[object]]]:
    """Parts each inserting one meta key (made one by one, as `add_results` encodes its parts)."""
    for key in keys:
        yield partial(_insert, key=key)


async def _insert(conn: Connection, key: str) -> int:
    return await conn.execute("INSERT INTO meta (key, value) VALUES (?, 'p')", (key,))


async def test_transact_parts_commits_every_part_and_returns_what_the_last_returns(
    store: SqliteStore,
) -> None:
    async def last(conn: Connection) -> list[str]:
        rows = await conn.fetchall("SELECT key FROM meta WHERE key LIKE 'p-%' ORDER BY key")
        return [str(row[0]) for row in rows]

    keys = [f"p-{i}" for i in range(5)]
    assert await store.db.transact_parts(_inserts(keys), last) == keys
    assert await _meta(store, "p-4") == "p"


async def test_parts_that_fail_to_be_made_keep_none_of_the_parts_before(
    store: SqliteStore,
) -> None:
    """The first parts may be written already (SQLite writes each as the next is made): an error
    making a later one rolls them back, and the database takes the next transaction."""

    def parts() -> Iterator[Callable[[Connection], Awaitable[object]]]:
        yield from _inserts(["p-written", "p-too"])
        raise LookupError("encoding failed")

    async def last(conn: Connection) -> None:
        raise AssertionError("not reached")

    with pytest.raises(LookupError, match="encoding failed"):
        await store.db.transact_parts(parts(), last)
    assert await _meta(store, "p-written") is None
    await asyncio.wait_for(store.db.transact_parts(_inserts(["p-after"]), _nothing), 10)
    assert await _meta(store, "p-after") == "p"


async def test_a_part_failing_in_the_database_keeps_none_of_the_parts(store: SqliteStore) -> None:
    with pytest.raises(Exception, match=r"(?i)unique|duplicate"):
        await store.db.transact_parts(_inserts(["p-once", "p-twice", "p-twice", "p-3"]), _nothing)
    assert await _meta(store, "p-once") is None
    await asyncio.wait_for(store.db.transact_parts(_inserts(["p-after"]), _nothing), 10)
    assert await _meta(store, "p-after") == "p"


async def test_a_cancelled_transact_parts_leaves_the_writer_free(store: SqliteStore) -> None:
    """Cancelled after its transaction began (on SQLite: in the writer's thread, waiting for the
    parts), the transaction is rolled back rather than left waiting: the next one runs."""
    started = asyncio.Event()

    def parts() -> Iterator[Callable[[Connection], Awaitable[object]]]:
        started.set()
        yield from _inserts(["p-cancelled"])

    task = asyncio.create_task(store.db.transact_parts(parts(), _nothing))
    await asyncio.sleep(0)  # the task takes the writer and begins
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.wait_for(store.db.transact_parts(_inserts(["p-after"]), _nothing), 10)
    assert await _meta(store, "p-after") == "p"
    assert await _meta(store, "p-cancelled") is None
    assert not started.is_set()


async def _nothing(conn: Connection) -> None:
    return None
