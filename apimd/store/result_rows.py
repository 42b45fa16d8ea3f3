"""A result's `results` row (schema 8): its id in 16 bytes when it is a UUID, kind, trigger,
outcome and result code as small integers (schema 7; `CODES`), its end as a duration and its
total time in integer microseconds (schema 8: SQLite stores an integer in as few bytes as it
takes, 3 for up to 8 s, where a time since the epoch or a REAL takes 8), and the columns a doc no
longer repeats (the row holds them; decoding puts them back).

Ids: a canonical UUID string (lowercase, hyphenated, as `str(uuid.uuid4())` writes every run id)
is kept as its 16 bytes; any other id as `\\xff` + its UTF-8 (`\\xff\\xff` + it when that would be
16 bytes long), so a 16-byte value is always a UUID and every id reads back as the same string.
UTF-8 never contains the byte 0xff, so the prefix is unambiguous."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import UTC, timedelta
from typing import Any, cast

from apimd.model.outcome import Outcome, ResultCode
from apimd.model.result import Result, Trigger
from apimd.store.result_keys import ID_TAIL, NEXT_SEQ, id_tail, seq_start
from apimd.store.sql import Connection
from apimd.store.targets import name_of
from apimd.store.timestamps import from_us, to_us

_UUID_BYTES = 16
_TEXT = b"\xff"
_ZERO = timedelta(0)

KINDS = ("call", "workflow")
TRIGGERS: tuple[Trigger, ...] = ("schedule", "manual", "refresh", "signin", "callback", "webhook")
OUTCOMES = tuple(Outcome)
RESULT_CODES = tuple(ResultCode)
CODES: dict[str, tuple[str, ...]] = {
    "kind": KINDS,
    "trigger": TRIGGERS,
    "outcome": OUTCOMES,
    "result": RESULT_CODES,
}
"""The integer a column holds for each value (its index; since schema 7). Values are only ever
appended: a stored number keeps its meaning. The commonest value of each is 0 (a SQLite record
stores 0 and 1 in no bytes)."""
_KIND = {value: code for code, value in enumerate(KINDS)}
_TRIGGER = {value: code for code, value in enumerate(TRIGGERS)}
_OUTCOME = {value: code for code, value in enumerate(OUTCOMES)}
_RESULT = {value: code for code, value in enumerate(RESULT_CODES)}


def code_of(column: str, value: str) -> int:
    """The stored integer of a kind, trigger, outcome or result code (`CODES`)."""
    return CODES[column].index(value)


def value_case(column: str, source: str | None = None) -> str:
    """SQL giving the integer of `column`'s text value (of `source`, default the column): the
    migration from text columns."""
    whens = " ".join(f"WHEN '{value}' THEN {code}" for code, value in enumerate(CODES[column]))
    return f"(CASE {source or column} {whens} END)"


RESULT_COLUMNS = (
    "id",
    "kind",
    "target",
    "trigger",
    "started_at",
    "duration_us",
    "outcome",
    "result",
    "http_status",
    "total_us",
    "doc",
    "maintenance",
)
"""The columns of `results` (but `seq`), in `result_row`'s order (`blobs_bound` knows where
the id and the doc are)."""

ROW_FIELDS = (frozenset(RESULT_COLUMNS) - {"total_us", "doc", "duration_us", "target"}) | {
    "finished_at",
    "name",
}
"""Fields of a result that its row holds, left out of a doc written in the row-aware form."""


def select(table: str = "") -> str:
    """The columns a result is decoded from (`doc_fields` and the doc), by name, of `table`'s
    rows (default: `results`)."""
    return (
        f"id, kind, {name_of(table)} AS name, trigger, started_at, duration_us, outcome, result,"
        " http_status, total_us, maintenance, doc"
    )


SELECT = select()


def encode_id(result_id: str) -> bytes:
    """The stored form of a result id (see the module doc)."""
    if len(result_id) == 36 and result_id[8::5][:4] == "----":
        digits = result_id.replace("-", "", 4)
        try:
            raw = bytes.fromhex(digits)
        except ValueError:
            raw = b""
        if len(raw) == _UUID_BYTES and raw.hex() == digits:  # lowercase, nothing else
            return raw
    text = result_id.encode(errors="surrogatepass")
    return (_TEXT * 2 if len(text) + 1 == _UUID_BYTES else _TEXT) + text


def decode_id(stored: Any) -> str:
    """The result id `encode_id` stored (a text id of a row written before schema 6 as it is)."""
    if isinstance(stored, str):
        return stored
    data = bytes(stored)
    if len(data) == _UUID_BYTES:
        return str(uuid.UUID(bytes=data))
    return data.lstrip(_TEXT).decode(errors="surrogatepass")


def result_row(
    result: Result, doc: bytes, target: int, stored_id: bytes | None = None
) -> tuple[object, ...]:
    """The `results` row of an already capped result, its doc encoded, `target` the number of
    its name (`apimd.store.targets`; `stored_id`: its `encode_id`, when already known). `total_us` is the total time to the microsecond (what the
    engine measures; the doc keeps the exact value)."""
    started = to_us(result.started_at)
    return (
        encode_id(result.id) if stored_id is None else stored_id,
        _KIND[result.kind],
        target,
        _TRIGGER[result.trigger],
        started,
        to_us(result.finished_at) - started,
        _OUTCOME[result.outcome],
        _RESULT[result.result],
        result.http_status,
        round(result.timings_ms.total * 1000),
        doc,
        int(result.maintenance),
    )


def row_restores(result: Result) -> bool:
    """Whether the row gives back `ROW_FIELDS` exactly: its times are UTC (a row holds instants,
    so another offset, or none, stays in the doc)."""
    started, finished = result.started_at, result.finished_at
    if started.tzinfo is UTC and finished.tzinfo is UTC:  # the engine's: no call needed
        return True
    return all(
        moment.tzinfo is not None and moment.utcoffset() == _ZERO for moment in (started, finished)
    )


def doc_fields(row: Any) -> bytes:
    """`ROW_FIELDS` of a row as the start of a JSON object (`{"id": …, …,`), to put in front of
    a row-aware doc's other fields."""
    fields = {
        "id": decode_id(row["id"]),
        "kind": KINDS[row["kind"]],
        "name": row["name"],
        "trigger": TRIGGERS[row["trigger"]],
        "started_at": from_us(int(row["started_at"])).isoformat(),
        "finished_at": from_us(int(row["started_at"]) + int(row["duration_us"])).isoformat(),
        "outcome": OUTCOMES[row["outcome"]].value,
        "result": RESULT_CODES[row["result"]].value,
        "http_status": row["http_status"],
        "maintenance": bool(row["maintenance"]),
    }
    return json.dumps(fields, separators=(",", ":"))[:-1].encode() + b","


_COLUMNS = ", ".join(RESULT_COLUMNS)
START = RESULT_COLUMNS.index("started_at")
"""Where a `result_row` holds its start (µs since the epoch)."""
PACKED = {
    "outcome": (0, 3),
    "result": (3, 5),
    "trigger": (8, 4),
    "kind": (12, 2),
    "maintenance": (14, 1),
}
"""SQLite (schema 9): kind, trigger, outcome, result code and the maintenance flag are packed in
one integer column, `codes` (each at a bit offset, of a width), and each is a virtual column
computed from it: a record then spends one header byte on the five, where it spent one each,
and most rows' `codes` is 0, stored in no bytes."""
STATUS_BASE = 200
"""SQLite (schema 9) stores `http_status` less this, in `status_delta`: 0 for the commonest
status, which a record keeps in no bytes (200 took 2)."""
SQLITE_COLUMNS = ("seq", "id", "target", "duration_us", "status_delta", "total_us", "doc", "codes")
"""The stored columns of SQLite's `results` (schema 9); `started_at` is computed from `seq`,
`http_status` from `status_delta`, the `PACKED` columns from `codes`."""


def packed_codes(values: dict[str, str]) -> str:
    """SQL giving `codes` from the SQL of each `PACKED` column's value."""
    return "(" + " | ".join(f"({values[c]} << {at})" for c, (at, _) in PACKED.items()) + ")"


_SQLITE_INSERT = (
    f"INSERT INTO results ({', '.join(SQLITE_COLUMNS)}) VALUES ("
    + ", ".join(
        NEXT_SEQ.format(start=f"?{RESULT_COLUMNS.index('started_at') + 1}")
        if column == "seq"
        else packed_codes({c: f"?{RESULT_COLUMNS.index(c) + 1}" for c in PACKED})
        if column == "codes"
        else f"?{RESULT_COLUMNS.index('http_status') + 1} - {STATUS_BASE}"
        if column == "status_delta"
        else f"?{RESULT_COLUMNS.index(column) + 1}"
        for column in SQLITE_COLUMNS
    )
    + ")"
)


# PostgreSQL: the rows as one array per column, so a batch is one statement whose text psycopg
# parses once (a multi-row VALUES has too many parameters for its cache, and `executemany` costs a
# message per row), and the new ids come back as one array (not a row each).
_PG_INSERT = (
    f"WITH new AS (INSERT INTO results ({_COLUMNS}) SELECT * FROM unnest(?::bytea[], ?::smallint[],"
    " ?::integer[], ?::smallint[], ?::bigint[], ?::bigint[], ?::smallint[], ?::smallint[], ?::integer[],"
    " ?::bigint[], ?::bytea[], ?::integer[]) ON CONFLICT (id) DO NOTHING RETURNING id)"
    " SELECT array_agg(id) FROM new"
)


async def insert_rows(conn: Connection, rows: list[tuple[object, ...]]) -> set[bytes]:
    """Insert result rows (`result_row`); returns the ids of those that were not stored yet."""
    if not rows:
        return set()
    if conn.dialect == "postgresql":
        found = await conn.fetchall(
            _PG_INSERT, [list(column) for column in zip(*rows, strict=True)]
        )
        return {bytes(key) for key in found[0][0] or ()}
    # SQLite: which ids are stored already (found by their tails, a statement per 500), then
    # the others inserted (no unique index on the whole id since schema 9: this is the check).
    ids = [cast(bytes, row[0]) for row in rows]
    known: set[bytes] = set()
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        marks = ", ".join("?" * len(chunk))
        found = await conn.fetchall(
            f"SELECT id FROM results WHERE substr(id, -{ID_TAIL}) IN ({marks})",
            [bytearray(id_tail(key)) for key in chunk],  # (`blob`: bound as bytes are)
        )
        known.update(bytes(row[0]) for row in found)
    starts = [cast(int, row[START]) for row in rows]
    seq_start(min(starts))  # starts the key can hold: the earliest and the latest tell
    seq_start(max(starts))
    await conn.executemany(
        _SQLITE_INSERT, [blobs_bound(row) for row in rows if row[0] not in known]
    )
    return set(ids) - known


_BLOB = cast("Callable[[object], bytearray]", bytearray)  # (typed for a row's values)


def blobs_bound(row: tuple[object, ...]) -> tuple[object, ...]:
    """A `result_row` for SQLite's `executemany`, its id and doc as `bytearray`: Python's sqlite3
    binds a bytearray's bytes as the same BLOB as those of a `bytes`, but passes a `bytes` (like
    any type but int, float, str and bytearray) through its adapter lookup first, ~3 k
    instructions a value (issue 18)."""
    return (
        _BLOB(row[0]), row[1], row[2], row[3], row[4], row[5], row[6], row[7], row[8], row[9],
        _BLOB(row[10]), row[11],
    )  # fmt: skip


async def replace_docs(conn: Connection, docs: dict[int, tuple[bytes, bytes]]) -> None:
    """Give rows (by `seq`: old doc, new doc) their new doc, where they still hold the old one.

    SQLite: the rows are deleted and inserted again. A doc made smaller in place leaves room in
    its page that only a row sorting into that page could use, and results are appended in seq
    order: the room a store's first results freed when they were compressed again with its first
    dictionary (several times smaller) stayed unused for good, ~1 MB a store. Deleted, their
    pages are freed and the rows written back packed."""
    if conn.dialect != "sqlite":
        await conn.executemany(
            "UPDATE results SET doc = ? WHERE seq = ? AND doc = ?",
            [(new, seq, old) for seq, (old, new) in docs.items()],
        )
        return
    columns = SQLITE_COLUMNS
    doc_at = columns.index("doc")
    seqs = sorted(docs)
    marks = ", ".join("?" * len(seqs))
    rows = [
        [docs[row[0]][1] if at == doc_at else row[at] for at in range(len(columns))]
        for row in await conn.fetchall(
            f"SELECT {', '.join(columns)} FROM results WHERE seq IN ({marks}) ORDER BY seq", seqs
        )
        if bytes(row[doc_at]) == docs[row[0]][0]
    ]
    await conn.executemany("DELETE FROM results WHERE seq = ?", [(row[0],) for row in rows])
    await conn.executemany(
        f"INSERT INTO results ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
        rows,
    )
