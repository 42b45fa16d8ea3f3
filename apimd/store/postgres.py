"""The PostgreSQL database (psycopg 3, async, with a pool): connecting, migrations applied once
under an advisory lock, and transactions for the repositories. Every statement uses bound
parameters; the repositories' `?` placeholders become psycopg's `%s` here."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from apimd.dburl import describe_url
from apimd.store.errors import NewerSchemaError, StoreError
from apimd.store.pg_migrations import PG_LATEST_VERSION, PG_MIGRATIONS, procrastinate_schema
from apimd.store.sql import Connection, Database, Params, Row
from apimd.store.timestamps import utc_now

# Held while migrating, so of several agents starting together exactly one migrates.
MIGRATION_LOCK = 0x6170696D64_01
# Repositories, group commit and (SPEC §13) advisory locks of agents share the pool.
POOL_SIZE = 10
CONNECT_TIMEOUT_S = 10


class NamedRow(tuple[Any, ...]):
    """A row read by position or by column name, like `sqlite3.Row`."""

    names: dict[str, int]

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            key = self.names[key]
        return super().__getitem__(key)


def _row_factory(cursor: Any) -> Callable[[Sequence[Any]], NamedRow]:
    names = {column.name: i for i, column in enumerate(cursor.description or ())}

    def make(values: Sequence[Any]) -> NamedRow:
        row = NamedRow(values)
        row.names = names
        return row

    return make


@functools.lru_cache(maxsize=512)
def pg_sql(sql: str) -> str:
    """`sql` with `?` placeholders as psycopg's (the repositories' SQL has no `?` elsewhere)."""
    return sql.replace("%", "%%").replace("?", "%s")


class PgConnection:
    """`apimd.store.sql.Connection` on a psycopg connection."""

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

    def __init__(self, url: str, pool: AsyncConnectionPool[Any]) -> None:
        self.url = url
        self.name = describe_url(url)
        self._pool = pool

    @classmethod
    async def open(
        cls, url: str, *, pool_size: int = POOL_SIZE, wait_s: float = CONNECT_TIMEOUT_S * 3
    ) -> PgDatabase:
        """Connect to `url` and migrate the database; a clear `StoreError` if it cannot. A query
        waits up to `wait_s` for a connection before it fails."""
        name = describe_url(url)
        try:
            conn = await _connect(url)
        except psycopg.Error as exc:
            raise StoreError(f"cannot connect to the {name}: {_first_line(exc)}") from None
        try:
            await migrate(conn, name)
        except psycopg.Error as exc:
            raise StoreError(f"cannot migrate the {name}: {_first_line(exc)}") from None
        finally:
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
        await pool.open(wait=True, timeout=CONNECT_TIMEOUT_S)
        return cls(url, pool)

    @contextlib.asynccontextmanager
    async def transaction(self, *, immediate: bool = True) -> AsyncIterator[Connection]:
        with self._explained():
            async with self._pool.connection() as conn, conn.transaction():
                yield PgConnection(conn)

    async def fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        with self._explained():
            async with self._pool.connection() as conn:
                return await PgConnection(conn).fetchall(sql, params)

    @contextlib.contextmanager
    def _explained(self) -> Iterator[None]:
        """The server gone or overloaded, as a `StoreError` naming the database (not a trace)."""
        try:
            yield
        except (psycopg.OperationalError, psycopg.InterfaceError, PoolTimeout) as exc:
            raise StoreError(f"the {self.name} is unavailable: {_first_line(exc)}") from None

    async def integrity_check(self) -> list[str]:
        """`["ok"]` when the server answers and the schema is this apimd's."""
        row = await self.fetchone("SELECT COALESCE(MAX(version), 0) FROM schema_version")
        version = 0 if row is None else int(row[0])
        if version != PG_LATEST_VERSION:
            return [f"schema version {version}, expected {PG_LATEST_VERSION}"]
        return ["ok"]

    async def close(self) -> None:
        await self._pool.close()


async def _connect(url: str) -> psycopg.AsyncConnection[Any]:
    return await psycopg.AsyncConnection.connect(
        url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S, row_factory=_row_factory
    )


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
