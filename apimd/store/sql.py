"""What the repositories need of a database, whichever it is: `Database` (SQLite or PostgreSQL)
hands out `Connection`s inside transactions. The repositories write one SQL text for both
(`?` placeholders, `ON CONFLICT`, `RETURNING`, table-qualified upserts); each adapter does the rest."""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol, TypeVar

Params = Sequence[Any]
T = TypeVar("T")


class Row(Protocol):
    """A result row, read by column position or by column name."""

    def __getitem__(self, key: int | str, /) -> Any: ...


class Connection(Protocol):
    """A connection inside a transaction (see `Database.transaction`)."""

    dialect: str
    """`sqlite` or `postgresql`, for the rare statement one SQL text cannot serve."""

    async def execute(self, sql: str, params: Params = ()) -> int:
        """Run one statement; returns the number of rows it changed."""
        ...

    async def executemany(self, sql: str, rows: Iterable[Params]) -> None: ...

    async def fetchall(self, sql: str, params: Params = ()) -> list[Row]: ...


class Database(ABC):
    """A migrated database: transactions for writes, and reads that see every committed write."""

    name: str
    """How messages name the database: a file name, or a PostgreSQL database and host."""

    dialect: str
    """`sqlite` or `postgresql`, as `Connection.dialect`, for a read one SQL text cannot serve."""

    @abstractmethod
    def transaction(self, *, immediate: bool = True) -> AbstractAsyncContextManager[Connection]:
        """A transaction, committed when the `async with` block ends and rolled back on any
        error; `immediate=False` for a consistent multi-statement read."""

    async def transact(self, work: Callable[[Connection], Awaitable[T]]) -> T:
        """`work(conn)` in one transaction (as `transaction`), returning what it returns. `work`
        awaits nothing but its connection's methods: SQLite runs it whole in the database's own
        thread, so a transaction of many statements costs one trip there and back."""
        async with self.transaction() as conn:
            return await work(conn)

    async def transact_parts(
        self,
        parts: Iterable[Callable[[Connection], Awaitable[object]]],
        last: Callable[[Connection], Awaitable[T]],
    ) -> T:
        """Each of `parts`, then `last`, in one transaction (as `transact`), returning what `last`
        returns. `parts` may be a generator that does work to make each part (encoding): SQLite
        runs a part in its thread while the generator makes the next, so the two overlap on two
        cores; here they run one after another."""
        async with self.transaction() as conn:
            for part in parts:
                await part(conn)
            return await last(conn)

    @abstractmethod
    async def fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        """Rows of a read-only query."""

    @abstractmethod
    def stream(
        self, sql: str, params: Params = (), *, size: int = 1000
    ) -> AsyncIterator[list[Row]]:
        """The rows of a read-only query, `size` at a time, without holding them all in memory
        (`apimd migrate` reads whole tables this way)."""

    def exclusive(self, key: str) -> AbstractAsyncContextManager[object]:
        """Held by one process at a time among those sharing the database (`key` names what it
        guards). A SQLite file has one owning process: nothing to hold."""
        return contextlib.nullcontext()

    async def fetchone(self, sql: str, params: Params = ()) -> Row | None:
        rows = await self.fetchall(sql, params)
        return rows[0] if rows else None

    @abstractmethod
    async def integrity_check(self) -> list[str]:
        """`["ok"]` when healthy, else what is wrong."""

    @abstractmethod
    async def close(self) -> None: ...
