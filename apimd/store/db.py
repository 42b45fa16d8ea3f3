"""The SQLite database: file creation (0600), PRAGMAs on connect, migrations, and the single writer's
transactions. Every statement uses bound parameters."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable
from pathlib import Path
from queue import SimpleQueue
from typing import Any, TypeVar, cast

import aiosqlite

from apimd.store.errors import NewerSchemaError, StoreError
from apimd.store.migrations import LATEST_VERSION, MIGRATIONS, Migration
from apimd.store.sql import Connection, Database, Params, Row
from apimd.store.timestamps import utc_now

T = TypeVar("T")

# FULL: a commit is on disk (WAL fsynced) before it is reported, so acknowledged token saves and
# results survive power loss too, not just a killed process. One fsync per commit is cheap at a
# monitor's write rate; bulk writers batch (`SqliteStore.add_results`).
_PRAGMAS: tuple[str, ...] = (
    # A new file's pages (no effect on an existing one): a result row is ~330 bytes, and a 4 KiB
    # page of a dozen of them leaves ~9 % of it unused; 8 KiB pages took 4 % fewer bytes per
    # stored result (issue 18; bench/README.md "Schema 8").
    "PRAGMA page_size = 8192",
    "PRAGMA journal_mode = WAL",
    "PRAGMA foreign_keys = ON",
    "PRAGMA busy_timeout = 5000",
    "PRAGMA synchronous = FULL",
    # A big batch grows the WAL; give the space back after the next checkpoint.
    "PRAGMA journal_size_limit = 16777216",
)


class SqliteConnection:
    """`apimd.store.sql.Connection` on an aiosqlite connection."""

    dialect = "sqlite"

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self.raw = conn

    async def execute(self, sql: str, params: Params = ()) -> int:
        async with self.raw.execute(sql, params) as cursor:
            return cursor.rowcount

    async def executemany(self, sql: str, rows: Iterable[Params]) -> None:
        await self.raw.executemany(sql, rows)

    async def fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        return list(await self.raw.execute_fetchall(sql, params))


class _InThreadConnection:
    """`Connection` on the sqlite3 connection itself, for work running in its aiosqlite thread:
    each coroutine method finishes without suspending (see `_finish`)."""

    dialect = "sqlite"

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.raw = conn

    async def execute(self, sql: str, params: Params = ()) -> int:
        cursor = self.raw.execute(sql, params)
        try:
            return cursor.rowcount
        finally:
            cursor.close()

    async def executemany(self, sql: str, rows: Iterable[Params]) -> None:
        self.raw.executemany(sql, rows).close()

    async def fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        cursor = self.raw.execute(sql, params)
        try:
            return list(cursor.fetchall())
        finally:
            cursor.close()


def _finish(work: Awaitable[T]) -> T:
    """Run a coroutine that never suspends (it awaits only `_InThreadConnection`) to its end."""
    coro = cast(Coroutine[Any, Any, T], work)
    try:
        coro.send(None)
    except StopIteration as done:
        return cast(T, done.value)
    coro.close()
    raise RuntimeError("work in the database's thread awaited something else than its connection")


def _transact_here(conn: sqlite3.Connection, work: Callable[[Connection], Awaitable[T]]) -> T:
    """`SqliteDatabase.transact`'s transaction, in the aiosqlite thread that owns `conn`."""
    conn.execute("BEGIN IMMEDIATE").close()
    try:
        result = _finish(work(_InThreadConnection(conn)))
        conn.execute("COMMIT").close()
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK").close()
        raise
    return result


_Part = tuple[bool, Callable[[Connection], Awaitable[Any]]] | None
"""A part of `SqliteDatabase.transact_parts` for its thread: (is the last, work), or None to
roll back (making the parts failed on the event loop's side)."""


def _transact_queued(conn: sqlite3.Connection, parts: SimpleQueue[_Part]) -> Any:
    """`SqliteDatabase.transact_parts`'s transaction, in the aiosqlite thread that owns `conn`:
    each part as it arrives, COMMIT after the last."""
    in_thread = _InThreadConnection(conn)
    conn.execute("BEGIN IMMEDIATE").close()
    try:
        while (part := parts.get()) is not None:
            last, work = part
            result = _finish(work(in_thread))
            if last:
                conn.execute("COMMIT").close()
                return result
        conn.execute("ROLLBACK").close()
        return None
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK").close()
        raise


def _retrieved(job: asyncio.Future[Any]) -> None:
    """Take an abandoned job's error (its parts failed first: that error is the one raised)."""
    if not job.cancelled():
        job.exception()


class SqliteDatabase(Database):
    """One writer connection, whose transactions a lock serializes, and one reader connection
    (WAL lets it read committed data while a write is in progress)."""

    dialect = "sqlite"

    def __init__(self, path: Path, writer: aiosqlite.Connection, reader: aiosqlite.Connection):
        self.path = path
        self.name = path.name
        self._writer = writer
        self._reader = reader
        self._write_lock = asyncio.Lock()

    @classmethod
    async def open(cls, path: Path) -> SqliteDatabase:
        """Open (creating with mode 0600) and migrate the database at `path`."""
        _create_private_file(path)
        try:
            writer = await _connect(path)
        except sqlite3.DatabaseError as exc:
            raise _explained(exc, path) from None
        try:
            await migrate(writer, path.name)
            reader = await _connect(path)
        except sqlite3.DatabaseError as exc:
            await writer.close()
            raise _explained(exc, path) from None
        except BaseException:
            await writer.close()
            raise
        try:
            await reader.execute("PRAGMA query_only = ON")
        except BaseException:
            await reader.close()
            await writer.close()
            raise
        return cls(path, writer, reader)

    @contextlib.asynccontextmanager
    async def transaction(self, *, immediate: bool = True) -> AsyncIterator[Connection]:
        """A transaction on the writer (BEGIN IMMEDIATE … COMMIT), rolled back on any error and
        committed before the `async with` block's caller continues. `immediate=False` is for a
        consistent multi-statement read (it still waits for, and holds off, this process's
        writes)."""
        async with self._write_lock:
            await self._writer.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")
            try:
                yield SqliteConnection(self._writer)
                await self._writer.execute("COMMIT")
            except BaseException:
                # Also when COMMIT itself failed (disk full, busy): never leave it open.
                if self._writer.in_transaction:
                    await self._writer.execute("ROLLBACK")
                raise

    async def transact(self, work: Callable[[Connection], Awaitable[T]]) -> T:
        """`work` in one transaction, BEGIN to COMMIT in one job of the writer's thread: each
        statement run through aiosqlite is a trip to that thread and back (two thread wake-ups
        and a wake-up of the event loop), and a batch of results took eight or more. aiosqlite
        has no public way to run a function in its thread; `_execute` and `_conn` are its own."""
        async with self._write_lock:
            writer = self._writer
            run_in_thread: Callable[..., Awaitable[T]] = writer._execute  # (untyped there)
            return await run_in_thread(_transact_here, writer._conn, work)

    async def transact_parts(
        self,
        parts: Iterable[Callable[[Connection], Awaitable[object]]],
        last: Callable[[Connection], Awaitable[T]],
    ) -> T:
        """`Database.transact_parts`, pipelined: one job of the writer's thread runs the
        transaction, taking each part from a queue as the event loop's thread makes it, so making
        the next part (encoding results: the GIL is free while SQLite writes and zstd compresses)
        overlaps with writing this one. The job is queued before the first part is made; whatever
        way the making ends (an error, a cancellation), the job gets its end: the last part, or a
        roll-back."""
        async with self._write_lock:
            writer = self._writer
            queue: SimpleQueue[_Part] = SimpleQueue()
            run_in_thread: Callable[..., Awaitable[T]] = writer._execute  # (untyped there)
            job = asyncio.ensure_future(run_in_thread(_transact_queued, writer._conn, queue))
            ended = False
            try:
                await asyncio.sleep(0)  # the job is in the thread's queue, ahead of any other
                for part in parts:
                    queue.put((False, part))
                queue.put((True, last))
                ended = True
            finally:
                if not ended:
                    queue.put(None)
                    job.add_done_callback(_retrieved)
            return await job

    async def fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        """Rows of a read-only query on the reader connection (sees every committed write)."""
        rows = await self._reader.execute_fetchall(sql, params)
        return list(rows)

    async def stream(
        self, sql: str, params: Params = (), *, size: int = 1000
    ) -> AsyncIterator[list[Row]]:
        """Rows of a read-only query on the reader connection, `size` at a time."""
        async with self._reader.execute(sql, params) as cursor:
            while batch := await cursor.fetchmany(size):
                rows: list[Row] = list(batch)
                yield rows

    async def integrity_check(self) -> list[str]:
        """`PRAGMA integrity_check` lines (`["ok"]` when healthy)."""
        return [str(row[0]) for row in await self.fetchall("PRAGMA integrity_check")]

    async def close(self) -> None:
        try:
            await self._reader.close()
        finally:
            await self._writer.close()


def _explained(exc: sqlite3.DatabaseError, path: Path) -> Exception:
    if getattr(exc, "sqlite_errorcode", None) in (sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_CORRUPT):
        return StoreError(f"{path} is not an apimd database, or is damaged ({exc})")
    return StoreError(f"cannot open {path}: {exc}")


def _create_private_file(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    os.close(fd)
    # SQLite gives -wal and -shm the main file's mode, so fixing the main file covers them.
    if path.stat().st_mode & 0o077:
        with contextlib.suppress(OSError):
            os.chmod(path, 0o600)


async def _connect(path: Path) -> aiosqlite.Connection:
    conn = await aiosqlite.connect(path, isolation_level=None)
    try:
        conn.row_factory = sqlite3.Row
        for pragma in _PRAGMAS:
            await conn.execute(pragma)
        async with conn.execute("PRAGMA journal_mode") as cursor:
            row = await cursor.fetchone()
        if row is None or str(row[0]).lower() != "wal":
            raise StoreError(f"{path}: SQLite could not switch to WAL mode (got {row and row[0]})")
    except BaseException:
        await conn.close()
        raise
    return conn


async def migrate(conn: aiosqlite.Connection, db_name: str) -> int:
    """Bring the schema to `LATEST_VERSION`, one transaction per migration; returns the version.
    Refuses a database written by a newer apimd."""
    await conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_version ("
        " version INTEGER PRIMARY KEY, description TEXT NOT NULL, applied_at TEXT NOT NULL)"
    )
    version = await _current_version(conn)
    if version > LATEST_VERSION:
        raise NewerSchemaError(db_name, version, LATEST_VERSION)
    for migration in MIGRATIONS:
        if migration.version > version:
            await _apply(conn, migration, db_name)
    return max(version, LATEST_VERSION)


async def _current_version(conn: aiosqlite.Connection) -> int:
    async with conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version") as cursor:
        row = await cursor.fetchone()
    return int(row[0]) if row else 0


async def _apply(conn: aiosqlite.Connection, migration: Migration, db_name: str) -> None:
    await conn.execute("BEGIN IMMEDIATE")
    try:
        # Another process may have migrated between our check and our lock.
        current = await _current_version(conn)
        if current > LATEST_VERSION:
            raise NewerSchemaError(db_name, current, LATEST_VERSION)
        if current >= migration.version:
            await conn.execute("ROLLBACK")
            return
        for statement in migration.statements:
            await conn.execute(statement)
        if migration.run is not None:
            await migration.run(conn)
        await conn.execute(
            "INSERT INTO schema_version (version, description, applied_at) VALUES (?, ?, ?)",
            (migration.version, migration.description, utc_now().isoformat()),
        )
    except BaseException:
        if conn.in_transaction:
            await conn.execute("ROLLBACK")
        raise
    await conn.execute("COMMIT")
