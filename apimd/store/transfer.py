"""`apimd migrate --to postgresql://…`: a SQLite store copied row for row into an empty PostgreSQL
store. Both hold the same columns and, under the same key, the same ciphertexts, so secrets are
copied as they are stored: never decrypted, never in clear on the way."""

from __future__ import annotations

from dataclasses import dataclass

from apimd.store.errors import StoreError
from apimd.store.result_rows import RESULT_COLUMNS
from apimd.store.sql import Database

BATCH = 1000

# Every table apimd keeps, in an order that satisfies the foreign keys. `results.seq` is left to
# the target (rows are copied in seq order, so the order of equal start times is kept).
TABLES: dict[str, tuple[str, ...]] = {
    "variables": ("name", "secret", "value", "updated_at"),
    "resources": ("kind", "name", "doc", "updated_at"),
    "token_runtime": ("name", "state", "expires_at", "saved_at", "doc"),
    "result_dicts": ("id", "created_at", "dict"),
    "result_bodies": ("hash", "last_used", "body"),
    "targets": ("id", "name"),
    "results": RESULT_COLUMNS,
    "rollups": (
        "name",
        "hour",
        "n_pass",
        "n_slow",
        "n_warning",
        "n_skipped",
        "n_fail",
        "n_maintenance",
        "lat_count",
        "lat_sum",
        "lat_min",
        "lat_max",
    ),
    "rollup_buckets": ("name", "hour", "bucket", "count"),
    "signins": ("id", "state_key", "created_at", "expires_at", "used", "doc"),
    "webhook_counters": ("key", "count", "updated_at", "sent_at", "alert"),
}
# The primary key of each table: rows are copied in its order.
ORDER = {
    "variables": "name",
    "resources": "kind, name",
    "token_runtime": "name",
    "result_dicts": "id",
    "result_bodies": "hash",
    "targets": "id",
    "results": "seq",
    "rollups": "name, hour",
    "rollup_buckets": "name, hour, bucket",
    "signins": "id",
    "webhook_counters": "key",
}
# Tables of the schema that hold no user data to copy (the target writes its own).
# agents and firings: live cluster state, meaningless in another database.
NOT_COPIED = ("meta", "schema_version", "agents", "firings", "cluster_events")


@dataclass(frozen=True)
class TableCount:
    """Rows of one table in the source and, after the copy, in the target."""

    table: str
    source: int
    target: int


async def count_rows(db: Database) -> dict[str, int]:
    counts = {}
    for table in TABLES:
        row = await db.fetchone(f"SELECT COUNT(*) FROM {table}")
        counts[table] = 0 if row is None else int(row[0])
    return counts


async def copy_database(source: Database, target: Database) -> list[TableCount]:
    """Copy every table of `source` into the empty `target` in one transaction, then compare
    the row counts; `StoreError` if the target holds data or a count differs."""
    occupied = [table for table, n in (await count_rows(target)).items() if n]
    if occupied:
        raise StoreError(
            f"the {target.name} is not empty (it has {', '.join(occupied)}); "
            "migrate into a new, empty database"
        )
    before = await count_rows(source)
    async with target.transaction() as conn:
        for table, columns in TABLES.items():
            names = ", ".join(columns)
            insert = f"INSERT INTO {table} ({names}) VALUES ({', '.join('?' * len(columns))})"
            select = f"SELECT {names} FROM {table} ORDER BY {ORDER[table]}"
            async for rows in source.stream(select, size=BATCH):
                await conn.executemany(
                    insert, [[row[i] for i in range(len(columns))] for row in rows]
                )
    after = await count_rows(target)
    counts = [TableCount(table, before[table], after[table]) for table in TABLES]
    wrong = [c for c in counts if c.source != c.target]
    if wrong:
        detail = ", ".join(f"{c.table} {c.source} → {c.target}" for c in wrong)
        raise StoreError(f"the copy into the {target.name} does not match the source: {detail}")
    return counts
