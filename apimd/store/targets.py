"""Target names by number (schema 8): `results.target` is the `targets.id` of the result's name,
a 1-2 byte integer in the row and in `results_by_name` where the name took its length again in
both. Ids are never reused (no target row is ever deleted), so a number keeps its name."""

from __future__ import annotations

from collections.abc import Iterable

from apimd.store.sql import Connection

NAME_OF = "(SELECT name FROM targets WHERE targets.id = {table}target)"
"""SQL giving the name of a results row's target (`{table}`: `ranked.` for a subquery's rows)."""

TARGET_OF = "(SELECT id FROM targets WHERE targets.name = ?)"
"""SQL giving the number of a name (None when it has no result)."""


def name_of(table: str = "") -> str:
    return NAME_OF.format(table=f"{table}." if table else "")


def targets_in(count: int) -> str:
    """SQL giving the numbers of `count` names (`?` each)."""
    return f"(SELECT id FROM targets WHERE name IN ({', '.join('?' * count)}))"


async def target_ids(conn: Connection, names: Iterable[str]) -> dict[str, int]:
    """The numbers of `names`, numbering those not seen yet, in the caller's transaction (so a
    number given in a transaction that rolls back is not kept anywhere). The next number is the
    largest + 1; a writer that took it first wins, and the other takes the one after."""
    wanted = sorted(set(names))
    found: dict[str, int] = {}
    while True:
        missing = [name for name in wanted if name not in found]
        for start in range(0, len(missing), 500):
            chunk = missing[start : start + 500]
            rows = await conn.fetchall(
                f"SELECT id, name FROM targets WHERE name IN ({', '.join('?' * len(chunk))})",
                chunk,
            )
            found.update((str(row[1]), int(row[0])) for row in rows)
        missing = [name for name in wanted if name not in found]
        if not missing:
            return found
        for start in range(0, len(missing), 500):
            chunk = missing[start : start + 500]
            # All in one statement, numbered in name order after the largest; a name another
            # writer numbered meanwhile is skipped (and found by the next pass).
            await conn.execute(
                f"WITH n (name) AS (VALUES {', '.join(['(?)'] * len(chunk))})"
                " INSERT INTO targets (id, name)"
                " SELECT (SELECT COALESCE(MAX(id), 0) FROM targets)"
                " + ROW_NUMBER() OVER (ORDER BY n.name), n.name FROM n"
                # (`WHERE true`: SQLite's parser needs it before an upsert's ON CONFLICT)
                " WHERE true ON CONFLICT DO NOTHING",
                chunk,
            )
