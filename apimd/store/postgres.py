"""The PostgreSQL database (psycopg 3, async, with a pool): connecting, migrations applied once
under an advisory lock, and transactions for the repositories. Every statement uses bound
parameters; the repositories' `?` placeholders become psycopg's `%s` here."""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from apimd.dburl import describe_url, without_secrets
from apimd.store.errors import NewerSchemaError, StoreError, StoreInUse, StoreUnavailable
from apimd.store.pg_migrations import PG_LATEST_VERSION, PG_MIGRATIONS, procrastinate_schema
from apimd.store.sql import Connection, Database, Params, Row
from apimd.store.timestamps import utc_now

# Held while migrating, so of several agents starting together exactly one migrates.
MIGRATION_LOCK = 0x6170696D64_01
# Held by the process that owns the database (a daemon, `apimd run --db`, `apimd migrate`), as the
# SQLite file's flock is: until agents share a store (SPEC §13, part 2), two daemons on one
# database would run every schedule twice and spend a rotated refresh token twice.
OWNER_LOCK = (0x61706D64, 2)
# Advisory locks of `PgDatabase.exclusive` (a token's refresh across agents): (class, hash of key).
EXCLUSIVE_CLASS = 0x61706D64 + 4
# Repositories, group commit and (SPEC §13) advisory locks of agents share the pool.
POOL_SIZE = 10
CONNECT_TIMEOUT_S = 10


class NamedRow(tuple[Any, ...]):
    """A row read by position or by column name, like `sqlite3.Row`."""

    __slots__ = ()
    names: dict[str, int]

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            key = self.names[key]
        return super().__getitem__(key)


def _row_factory(cursor: Any) -> Callable[[Sequence[Any]], NamedRow]:
    return _row_class(tuple(column.name for column in cursor.description or ()))


@functools.lru_cache(maxsize=512)
def _row_class(columns: tuple[str, ...]) -> type[NamedRow]:
    """A `NamedRow` class for one list of columns: a row is then a plain tuple (the names are
    the class's; setting them on each row gave every row a `__dict__`, a third of the time of
    reading 20,000 rows)."""
    names = {name: i for i, name in enumerate(columns)}
    return type("NamedRow", (NamedRow,), {"names": names, "__slots__": ()})


@functools.lru_cache(maxsize=512)
def pg_sql(sql: str) -> str:
    """`sql` with `?` placeholders as psycopg's (the repositories' SQL has no `?` elsewhere)."""
    return sql.replace("%", "%%").replace("?", "%s")


class PgConnection:
    """`apimd.store.sql.Connection` on a psycopg connection."""

    dialect = "postgresql"

    def __init__(self, conn: psycopg.AsyncConnection[Any]) -> None:
        self.raw = conn

    async def execute(self, sql: str, params: Params = ()) -> int:
        cursor = await self.raw.execute(pg_sql(sql), params)
        return cursor.rowcount

    async def executemany(self, sql: str, rows: Iterable[Params]) -> None:
        batch = list(rows)
        if batch:
            async with self.raw.cursor() as cursor:
                await cursor.executemany(pg_sql(sql), batch)

    async def fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        cursor = await self.raw.execute(pg_sql(sql), params)
        rows: list[Row] = await cursor.fetchall()
        return rows


class PgDatabase(Database):
    """A pool of autocommit connections; each transaction holds one connection."""

    dialect = "postgresql"

    def __init__(
        self,
        url: str,
        pool: AsyncConnectionPool[Any],
        owner: psycopg.AsyncConnection[Any] | None = None,
    ) -> None:
        self.url = url
        self.name = describe_url(url)
        self._pool = pool
        self._owner = owner

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        owner_description: str | None = None,
        pool_size: int = POOL_SIZE,
        wait_s: float = CONNECT_TIMEOUT_S * 3,
    ) -> PgDatabase:
        """Connect to `url` and migrate the database; a clear `StoreError` if it cannot. With
        `owner_description`, the database is this process's until `close()` (`StoreInUse` names
        the owner otherwise). A query waits up to `wait_s` for a connection before it fails."""
        name = describe_url(url)
        try:
            conn = await _connect(url, owner_description)
        except psycopg.Error as exc:
            reason = without_secrets(_first_line(exc), url)
            raise StoreError(f"cannot connect to the {name}: {reason}") from None
        try:
            if owner_description is not None:
                await _own(conn, name)
            await migrate(conn, name)
        except BaseException as exc:
            await conn.close()
            if isinstance(exc, psycopg.Error):
                reason = without_secrets(_first_line(exc), url)
                raise StoreError(f"cannot migrate the {name}: {reason}") from None
            raise
        if owner_description is None:
            await conn.close()
        pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
            url,
            min_size=1,
            max_size=pool_size,
            open=False,
            kwargs={"autocommit": True, "row_factory": _row_factory},
            # A connection the server dropped (restart, failover, idle timeout) is replaced at
            # checkout, so a restarted server costs no failed write.
            check=AsyncConnectionPool.check_connection,
            timeout=wait_s,
            name="apimd",
        )
        try:
            await pool.open(wait=True, timeout=CONNECT_TIMEOUT_S)
        except BaseException:
            await pool.close()
            if owner_description is not None:
                await conn.close()
            raise
        return cls(url, pool, conn if owner_description is not None else None)

    @contextlib.asynccontextmanager
    async def transaction(self, *, immediate: bool = True) -> AsyncIterator[Connection]:
        with self._explained():
            async with self._pool.connection() as conn, conn.transaction():
                yield PgConnection(conn)

    @contextlib.asynccontextmanager
    async def exclusive(self, key: str) -> AsyncIterator[object]:
        """A transaction-level advisory lock on `key`, held on a connection of its own until the
        block ends (or its session dies with the process holding it)."""
        async with self.transaction() as conn:
            await conn.execute(
                "SELECT pg_advisory_xact_lock(?, hashtext(?))", (EXCLUSIVE_CLASS, key)
            )
            yield conn

    async def fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        with self._explained():
            async with self._pool.connection() as conn:
                return await PgConnection(conn).fetchall(sql, params)

    async def stream(
        self, sql: str, params: Params = (), *, size: int = 1000
    ) -> AsyncIterator[list[Row]]:
        """Rows of a read-only query from a server-side cursor, `size` at a time."""
        with self._explained():
            async with (
                self._pool.connection() as conn,
                conn.transaction(),
                conn.cursor(name="apimd_stream") as cursor,
            ):
                await cursor.execute(pg_sql(sql), params)
                while rows := await cursor.fetchmany(size):
                    yield list(rows)

    @contextlib.contextmanager
    def _explained(self) -> Iterator[None]:
        """The server gone or overloaded, as a `StoreError` naming the database (not a trace)."""
        try:
            yield
        except (psycopg.OperationalError, psycopg.InterfaceError, PoolTimeout) as exc:
            raise StoreUnavailable(f"the {self.name} is unavailable: {_first_line(exc)}") from None

    async def integrity_check(self) -> list[str]:
        """`["ok"]` when the server answers and the schema is this apimd's."""
        row = await self.fetchone("SELECT COALESCE(MAX(version), 0) FROM schema_version")
        version = 0 if row is None else int(row[0])
        if version != PG_LATEST_VERSION:
            return [f"schema version {version}, expected {PG_LATEST_VERSION}"]
        return ["ok"]

    async def close(self) -> None:
        try:
            await self._pool.close()
        finally:
            if self._owner is not None:
                await _release_owner(self._owner)


async def _connect(url: str, owner: str | None = None) -> psycopg.AsyncConnection[Any]:
    # The owner's session names it, for the error the next process gets (63 bytes at most).
    name = f"apimd {os.getpid()} {owner}"[:63] if owner else "apimd"
    return await psycopg.AsyncConnection.connect(
        url,
        autocommit=True,
        connect_timeout=CONNECT_TIMEOUT_S,
        row_factory=_row_factory,
        application_name=name,
    )


async def _own(conn: psycopg.AsyncConnection[Any], db_name: str) -> None:
    """Take the owner lock on `conn`'s session without waiting, or raise `StoreInUse`."""
    cursor = await conn.execute("SELECT pg_try_advisory_lock(%s, %s)", OWNER_LOCK)
    row = await cursor.fetchone()
    if row is not None and row[0]:
        return
    cursor = await conn.execute(
        "SELECT a.application_name FROM pg_locks AS l JOIN pg_stat_activity AS a USING (pid)"
        " WHERE l.locktype = 'advisory' AND l.granted AND l.classid = %s AND l.objid = %s"
        " AND l.objsubid = 2"
        # Advisory locks are per database: not the owner of another database on the server.
        " AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())",
        OWNER_LOCK,
    )
    holder = await cursor.fetchone()
    parts = str(holder[0] if holder else "").split(" ", 2)
    pid = int(parts[1]) if len(parts) == 3 and parts[1].isdigit() else None
    who = parts[2] if pid is not None else "another apimd process"
    raise StoreInUse(f"the {db_name}", who, pid)


async def _release_owner(conn: psycopg.AsyncConnection[Any]) -> None:
    """Give the owner lock back, then close its session. Closing alone would release it too, but
    only once the server has ended the session, after `close()` returned: a process opening the
    store right after (a restart) could still find it held."""
    try:
        await conn.execute("SELECT pg_advisory_unlock(%s, %s)", OWNER_LOCK)
    except psycopg.Error:
        pass  # the session is gone already, and the lock with it
    finally:
        await conn.close()


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


async def migrate(conn: psycopg.AsyncConnection[Any], db_name: str) -> int:
    """Bring the schema to `PG_LATEST_VERSION` under the migration lock, one transaction per
    migration; refuses a database written by a newer apimd. Returns the version."""
    await conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK,))
    try:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_version ("
            " version INTEGER PRIMARY KEY, description TEXT NOT NULL, applied_at TEXT NOT NULL)"
        )
        cursor = await conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version")
        row = await cursor.fetchone()
        version = 0 if row is None else int(row[0])
        if version > PG_LATEST_VERSION:
            raise NewerSchemaError(db_name, version, PG_LATEST_VERSION)
        for migration in PG_MIGRATIONS:
            if migration.version <= version:
                continue
            async with conn.transaction():
                for statement in migration.statements:
                    await conn.execute(statement)
                if migration.procrastinate:
                    release, schema = procrastinate_schema()
                    await conn.execute(schema)  # no parameters: several statements are allowed
                    await conn.execute(
                        "INSERT INTO meta (key, value) VALUES ('procrastinate_schema', %s)",
                        (release,),
                    )
                await conn.execute(
                    "INSERT INTO schema_version (version, description, applied_at)"
                    " VALUES (%s, %s, %s)",
                    (migration.version, migration.description, utc_now().isoformat()),
                )
        return max(version, PG_LATEST_VERSION)
    finally:
        await conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK,))
