"""Numbered, append-only schema migrations. Never edit a released migration: add the next one.

Each migration runs in its own transaction and records its version in `schema_version`, so a crash
mid-upgrade leaves the database at the previous version, and the next start retries.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiosqlite

from apimd.store.errors import StoreError
from apimd.store.result_keys import ID_TAIL, SEQ_SHIFT, seq_start
from apimd.store.result_rows import (
    CODES,
    PACKED,
    RESULT_COLUMNS,
    SQLITE_COLUMNS,
    STATUS_BASE,
    encode_id,
    packed_codes,
    value_case,
)


@dataclass(frozen=True)
class Migration:
    """One schema step: SQL statements, then an optional data-migration coroutine."""

    version: int
    description: str
    statements: tuple[str, ...]
    run: Callable[[aiosqlite.Connection], Awaitable[None]] | None = None


# Documents (`doc` columns) of resources, token runtime state and sign-ins are Fernet tokens of
# their JSON (see `apimd.store.secrets`); result documents are zlib-compressed JSON (results are
# redacted by the engine before they get here). Times are integer microseconds since the epoch, UTC.
_INITIAL = (
    """CREATE TABLE meta (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    ) WITHOUT ROWID""",
    """CREATE TABLE variables (
        name TEXT PRIMARY KEY,
        secret INTEGER NOT NULL CHECK (secret IN (0, 1)),
        value BLOB NOT NULL,
        updated_at INTEGER NOT NULL
    ) WITHOUT ROWID""",
    """CREATE TABLE resources (
        kind TEXT NOT NULL CHECK (kind IN ('auth', 'tokens', 'calls', 'workflows', 'schedules')),
        name TEXT NOT NULL,
        doc BLOB NOT NULL,
        updated_at INTEGER NOT NULL,
        PRIMARY KEY (kind, name)
    ) WITHOUT ROWID""",
    # No foreign key to `resources`: `apimd run -f FILE --db PATH` keeps token state for tokens
    # whose definitions live in the file, not in the database.
    """CREATE TABLE token_runtime (
        name TEXT PRIMARY KEY,
        state TEXT NOT NULL,
        expires_at INTEGER,
        saved_at INTEGER NOT NULL,
        doc BLOB NOT NULL
    ) WITHOUT ROWID""",
    """CREATE TABLE results (
        seq INTEGER PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        kind TEXT NOT NULL,
        name TEXT NOT NULL,
        trigger TEXT NOT NULL,
        started_at INTEGER NOT NULL,
        finished_at INTEGER NOT NULL,
        outcome TEXT NOT NULL,
        result TEXT NOT NULL,
        http_status INTEGER,
        total_ms REAL,
        doc BLOB NOT NULL
    )""",
    "CREATE INDEX results_by_name ON results (name, started_at)",
    "CREATE INDEX results_by_time ON results (started_at)",
    "CREATE INDEX results_by_outcome ON results (outcome, started_at)",
    """CREATE TABLE rollups (
        name TEXT NOT NULL,
        hour INTEGER NOT NULL,
        n_pass INTEGER NOT NULL DEFAULT 0,
        n_slow INTEGER NOT NULL DEFAULT 0,
        n_warning INTEGER NOT NULL DEFAULT 0,
        n_skipped INTEGER NOT NULL DEFAULT 0,
        n_fail INTEGER NOT NULL DEFAULT 0,
        lat_count INTEGER NOT NULL DEFAULT 0,
        lat_sum REAL NOT NULL DEFAULT 0,
        lat_min REAL,
        lat_max REAL,
        PRIMARY KEY (name, hour)
    ) WITHOUT ROWID""",
    """CREATE TABLE rollup_buckets (
        name TEXT NOT NULL,
        hour INTEGER NOT NULL,
        bucket INTEGER NOT NULL,
        count INTEGER NOT NULL,
        PRIMARY KEY (name, hour, bucket),
        FOREIGN KEY (name, hour) REFERENCES rollups (name, hour) ON DELETE CASCADE
    ) WITHOUT ROWID""",
    """CREATE TABLE signins (
        id TEXT PRIMARY KEY,
        state_key BLOB NOT NULL UNIQUE,
        created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        used INTEGER NOT NULL DEFAULT 0 CHECK (used IN (0, 1)),
        doc BLOB NOT NULL
    )""",
    """CREATE TABLE webhook_counters (
        key BLOB PRIMARY KEY,
        count INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
    ) WITHOUT ROWID""",
)

# Result documents become zstd frames (see `apimd.store.codec`): the dictionaries they name, and the
# PASS bodies kept once per target. Rows of schema 1 are rewritten by `ResultStore.recode`.
# `results_by_outcome` goes: no query filters on outcome without a name or a time (which use the
# other two indexes), and it was a fifth of a small result's bytes.
_RESULT_CODEC = (
    """CREATE TABLE result_dicts (
        id INTEGER PRIMARY KEY,
        created_at INTEGER NOT NULL,
        dict BLOB NOT NULL
    )""",
    """CREATE TABLE result_bodies (
        hash BLOB PRIMARY KEY,
        last_used INTEGER NOT NULL,
        body BLOB NOT NULL
    ) WITHOUT ROWID""",
    "DROP INDEX results_by_outcome",
)

# SPEC §11: a notifier's last sending time (and what it sent, encrypted) so `repeat_every` neither
# repeats early nor forgets across a restart; maintenance windows as a resource kind (SQLite cannot
# alter a CHECK: the table is rebuilt); results run in a window are flagged, and the rollups count
# them apart from the outcomes that uptime and latency are made of.
_ALERTS = (
    "ALTER TABLE webhook_counters ADD COLUMN sent_at INTEGER",
    "ALTER TABLE webhook_counters ADD COLUMN alert BLOB",
    """CREATE TABLE resources_v2 (
        kind TEXT NOT NULL CHECK (
            kind IN ('auth', 'tokens', 'calls', 'workflows', 'schedules', 'maintenance')
        ),
        name TEXT NOT NULL,
        doc BLOB NOT NULL,
        updated_at INTEGER NOT NULL,
        PRIMARY KEY (kind, name)
    ) WITHOUT ROWID""",
    "INSERT INTO resources_v2 (kind, name, doc, updated_at)"
    " SELECT kind, name, doc, updated_at FROM resources",
    "DROP TABLE resources",
    "ALTER TABLE resources_v2 RENAME TO resources",
    "ALTER TABLE results ADD COLUMN maintenance INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE rollups ADD COLUMN n_maintenance INTEGER NOT NULL DEFAULT 0",
)


def agents_ddl(big: str) -> tuple[str, ...]:
    """The `agents` and `firings` tables, with `big` the store's 64-bit integer type (SQLite's
    INTEGER, PostgreSQL's BIGINT); PostgreSQL's migration 4 is the same."""
    return (
        f"""CREATE TABLE agents (
        agent TEXT PRIMARY KEY,
        location TEXT NOT NULL,
        pid INTEGER NOT NULL,
        started_at {big} NOT NULL,
        heartbeat_at {big} NOT NULL,
        leader INTEGER NOT NULL DEFAULT 0 CHECK (leader IN (0, 1)),
        running TEXT NOT NULL DEFAULT '[]'
    )""",
        f"""CREATE TABLE firings (
        schedule TEXT NOT NULL,
        target TEXT NOT NULL,
        location TEXT NOT NULL,
        due_at {big} NOT NULL,
        job_id {big},
        state TEXT NOT NULL,
        agent TEXT,
        result_id TEXT,
        created_at {big} NOT NULL,
        PRIMARY KEY (schedule, target, location, due_at)
    )""",
        "CREATE INDEX firings_by_job ON firings (job_id)",
        "CREATE INDEX firings_by_time ON firings (created_at)",
    )


# SPEC §13: the agents sharing a store, and the firings the leader hands them. A single SQLite
# daemon keeps them too (it is every location's agent).
_AGENTS = agents_ddl("INTEGER")

# SPEC §13: events too large for a NOTIFY payload, passed to the other agents by id.
_EVENTS = (
    """CREATE TABLE cluster_events (
        id INTEGER PRIMARY KEY,
        created_at INTEGER NOT NULL,
        payload TEXT NOT NULL
    )""",
)

# Issue 18: a result's id in 16 bytes (a UUID's own bytes; see `apimd.store.result_rows`), in the
# row and in its index, instead of 36 characters. SQLite cannot change a column's type: the table is
# rebuilt (same seq, so cursors and the order of equal start times are kept). Docs written from now
# on leave out what the row holds; the docs already stored are read as they are.
# The table of migration 1 (with migration 3's `maintenance`), its id a BLOB.
_RESULTS_V6 = (
    _INITIAL[4]
    .replace("CREATE TABLE results (", "CREATE TABLE results_v6 (")
    .replace("id TEXT NOT NULL UNIQUE", "id BLOB NOT NULL UNIQUE")
    .replace("doc BLOB NOT NULL\n", "doc BLOB NOT NULL,\n maintenance INTEGER NOT NULL DEFAULT 0\n")
)
_V7_COLUMNS = (
    "id",
    "kind",
    "name",
    "trigger",
    "started_at",
    "finished_at",
    "outcome",
    "result",
    "http_status",
    "total_ms",
    "doc",
    "maintenance",
)
"""The columns of `results` (but `seq`) of schemas 6 and 7, which their migrations copy."""
_RESULT_COLUMNS = ", ".join(_V7_COLUMNS[1:])


async def _binary_result_ids(conn: aiosqlite.Connection) -> None:
    await conn.create_function("apimd_result_id", 1, encode_id, deterministic=True)
    for statement in (
        _RESULTS_V6,
        f"INSERT INTO results_v6 (seq, id, {_RESULT_COLUMNS})"
        f" SELECT seq, apimd_result_id(id), {_RESULT_COLUMNS} FROM results ORDER BY seq",
        "DROP TABLE results",
        "ALTER TABLE results_v6 RENAME TO results",
        "CREATE INDEX results_by_name ON results (name, started_at)",
        "CREATE INDEX results_by_time ON results (started_at)",
    ):
        await conn.execute(statement)


# Issue 18: kind, trigger, outcome and result code as small integers (`result_rows.CODES`) instead
# of their names (~20 bytes a row). The table is rebuilt again, same seq.
_RESULTS_V7 = _RESULTS_V6.replace("results_v6", "results_v7")
for _column in CODES:
    _RESULTS_V7 = _RESULTS_V7.replace(f"{_column} TEXT NOT NULL", f"{_column} INTEGER NOT NULL")
_CODED_COLUMNS = ", ".join(
    value_case(column) if column in CODES else column for column in _V7_COLUMNS
)
_RESULT_CODES = (
    _RESULTS_V7,
    f"INSERT INTO results_v7 (seq, {', '.join(_V7_COLUMNS)})"
    f" SELECT seq, {_CODED_COLUMNS} FROM results ORDER BY seq",
    "DROP TABLE results",
    "ALTER TABLE results_v7 RENAME TO results",
    "CREATE INDEX results_by_name ON results (name, started_at)",
    "CREATE INDEX results_by_time ON results (started_at)",
)

# Issue 18: the end of a run as its duration, the total time in integer microseconds (SQLite
# keeps an integer in 1-8 bytes by its size: 3 for up to 8 s, where a time since the epoch and a
# REAL take 8), and the target's name as a number into `targets` (`apimd.store.targets`; in the
# row and in `results_by_name`). The table is rebuilt again, same seq.
TARGETS = """CREATE TABLE targets (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE
    )"""
_RESULTS_V8 = (
    _RESULTS_V7.replace("results_v7", "results_v8")
    .replace("name TEXT NOT NULL", "target INTEGER NOT NULL")
    .replace("finished_at INTEGER NOT NULL", "duration_us INTEGER NOT NULL")
    .replace("total_ms REAL", "total_us INTEGER")
)
_FROM_V7 = ", ".join(
    {
        "target": "(SELECT id FROM targets WHERE targets.name = results.name)",
        "duration_us": "finished_at - started_at",
        "total_us": "CAST(ROUND(total_ms * 1000) AS INTEGER)",
    }.get(column, column)
    for column in RESULT_COLUMNS
)
_INTEGER_TIMES = (
    TARGETS,
    "INSERT INTO targets (name) SELECT DISTINCT name FROM results ORDER BY name",
    _RESULTS_V8,
    f"INSERT INTO results_v8 (seq, {', '.join(RESULT_COLUMNS)})"
    f" SELECT seq, {_FROM_V7} FROM results ORDER BY seq",
    "DROP TABLE results",
    "ALTER TABLE results_v8 RENAME TO results",
    "CREATE INDEX results_by_name ON results (target, started_at)",
    "CREATE INDEX results_by_time ON results (started_at)",
)

# Issue 18: a result's key is its start (`apimd.store.result_keys`): `seq` is the start in µs
# shifted left by SEQ_SHIFT plus the result's rank among those that started in the same
# microsecond (in the order of their former seq), `started_at` a virtual column computed from it,
# no time index, `results_by_name` on the target alone, and the id indexed by its last bytes
# (a UUID's are random; the whole id is compared after); the codes packed in one integer
# (`result_rows.PACKED`) and the HTTP status stored less 200, each a virtual column. ~45 bytes a
# realistic result less.
_VIRTUAL = ",\n".join(
    f"        {column} INTEGER GENERATED ALWAYS AS ((codes >> {at}) & {(1 << width) - 1}) VIRTUAL"
    for column, (at, width) in PACKED.items()
)
_RESULTS_V9 = f"""CREATE TABLE results_v9 (
        seq INTEGER PRIMARY KEY,
        id BLOB NOT NULL,
        target INTEGER NOT NULL,
        duration_us INTEGER NOT NULL,
        status_delta INTEGER,
        total_us INTEGER,
        doc BLOB NOT NULL,
        codes INTEGER NOT NULL,
        started_at INTEGER GENERATED ALWAYS AS (seq >> {SEQ_SHIFT}) VIRTUAL,
        http_status INTEGER GENERATED ALWAYS AS (status_delta + {STATUS_BASE}) VIRTUAL,
{_VIRTUAL}
    )"""
_V9_COLUMNS = ", ".join(SQLITE_COLUMNS[1:])
_FROM_V8 = ", ".join(
    packed_codes({column: column for column in PACKED})
    if column == "codes"
    else f"http_status - {STATUS_BASE}"
    if column == "status_delta"
    else column
    for column in SQLITE_COLUMNS[1:]
)


async def _time_keys(conn: aiosqlite.Connection) -> None:
    async with conn.execute(
        "SELECT MIN(started_at), MAX(started_at), (SELECT COUNT(*) FROM results"
        " GROUP BY started_at ORDER BY COUNT(*) DESC LIMIT 1) FROM results"
    ) as cursor:
        row = await cursor.fetchone()
    if row is not None and row[0] is not None:
        seq_start(int(row[0]))
        seq_start(int(row[1]))
        if int(row[2]) > 1 << SEQ_SHIFT:
            raise StoreError(
                f"{row[2]} results started in the same microsecond: at most"
                f" {1 << SEQ_SHIFT} can be kept (migration 9)"
            )
    for statement in (
        _RESULTS_V9,
        f"INSERT INTO results_v9 (seq, {_V9_COLUMNS})"
        f" SELECT (started_at << {SEQ_SHIFT})"
        " + ROW_NUMBER() OVER (PARTITION BY started_at ORDER BY seq) - 1,"
        f" {_FROM_V8} FROM results ORDER BY started_at, seq",
        "DROP TABLE results",
        "ALTER TABLE results_v9 RENAME TO results",
        "CREATE INDEX results_by_name ON results (target)",
        f"CREATE INDEX results_by_id ON results (substr(id, -{ID_TAIL}))",
    ):
        await conn.execute(statement)


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "initial schema", _INITIAL),
    Migration(2, "results: zstd with trained dictionaries, bodies stored once", _RESULT_CODEC),
    Migration(3, "alerts: last sending time of notifiers, maintenance", _ALERTS),
    Migration(4, "agents and firings", _AGENTS),
    Migration(5, "cluster events", _EVENTS),
    Migration(6, "results: 16-byte ids, docs without their row's columns", (), _binary_result_ids),
    Migration(7, "results: kind, trigger, outcome and result as small integers", _RESULT_CODES),
    Migration(
        8, "results: integer durations and total times, target names by number", _INTEGER_TIMES
    ),
    Migration(9, "results: kept in start order, ids indexed by their last bytes", (), _time_keys),
)

LATEST_VERSION = MIGRATIONS[-1].version
