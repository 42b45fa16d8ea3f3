"""How a store finds results by start time and by id (the SQL each query's conditions take).

SQLite since schema 9 keeps a result under a key made of its start: `seq` (the rowid) is the
start in microseconds shifted left by `SEQ_SHIFT` bits plus the result's rank among those that
started in the same microsecond (in the order they were written). The table itself is then in
time order: `started_at` is a virtual column computed from `seq` (no bytes in a row), the time
index is gone (~19 bytes a result), `results_by_name` is on `target` alone (SQLite appends the
rowid to every index entry, so it is in time order per target). The id's unique index becomes
an index on its last `ID_TAIL` bytes (random in a UUID): an id is found by its tail then compared
whole, and a writer checks the ids it writes against the stored ones before inserting (as it
did), ~15 bytes less a result.

PostgreSQL keeps its columns and indexes (`started_at`, `results_by_time`, the unique id):
`apimd migrate` copies the columns SQLite gives (`started_at` included) into them."""

from __future__ import annotations

from dataclasses import dataclass

from apimd.store.errors import StoreError

SEQ_SHIFT = 11
"""Bits of a SQLite result's `seq` below its start: up to 2,048 results started in one
microsecond, starts from 1827 to 2112 (a signed 64-bit key)."""
_RANKS = 1 << SEQ_SHIFT
_START_LIMIT = 1 << (63 - SEQ_SHIFT)
ID_TAIL = 3
"""Bytes at the end of a stored id that SQLite's `results_by_id` indexes: 16.7 million tails,
so at a million results one lookup in 17 reads a row more than it finds."""


def seq_start(start_us: int) -> int:
    """The smallest `seq` of a result started at `start_us` (SQLite); `StoreError` for a start
    no key can hold."""
    if not -_START_LIMIT <= start_us < _START_LIMIT:
        raise StoreError(
            f"a result's start ({start_us} µs since 1970) is outside the years 1827-2112"
            " that the store keeps"
        )
    return start_us << SEQ_SHIFT


_SEQ_MIN, _SEQ_MAX = -(1 << 63), (1 << 63) - 1  # SQLite's INTEGER


def seq_bound(start_us: int) -> int:
    """`seq_start`, clamped to SQLite's integers: a query's bound at any instant (before 1827 or
    after 2112 too; a start from 2112 on was `1 << 63`, which SQLite cannot bind)."""
    return max(_SEQ_MIN, min(start_us << SEQ_SHIFT, _SEQ_MAX))


NEXT_SEQ = (
    f"(SELECT CASE WHEN MAX(seq) IS NULL THEN {{start}} << {SEQ_SHIFT}"
    f" WHEN MAX(seq) < (({{start}} + 1) << {SEQ_SHIFT}) - 1 THEN MAX(seq) + 1"
    # Not an integer: the insert fails (datatype mismatch) rather than take another start's key.
    f" ELSE 'more than {_RANKS} results started in this microsecond' END"
    f" FROM results WHERE seq >= {{start}} << {SEQ_SHIFT} AND seq < ({{start}} + 1) << {SEQ_SHIFT})"
)
"""SQL giving the `seq` of a result started at `{start}` µs (a parameter), after every result
stored with that start (SQLite)."""


def id_tail(stored_id: bytes) -> bytes:
    """What `results_by_id` indexes of a stored id (`substr(id, -ID_TAIL)`)."""
    return stored_id[-ID_TAIL:]


@dataclass(frozen=True)
class ResultKeys:
    """The SQL conditions and order of result queries on one kind of store."""

    sqlite: bool

    @property
    def row_key(self) -> str:
        """The column that tells one stored row from another (indexed)."""
        return "seq" if self.sqlite else "id"

    @property
    def in_time(self) -> str:
        """The table, for a query of every target's results in a time range: on SQLite read in
        key order (its range of rows), not through `results_by_name` (all of it), which SQLite
        picks for grouping by target."""
        return "results NOT INDEXED" if self.sqlite else "results"

    @property
    def newest_first(self) -> str:
        return "seq DESC" if self.sqlite else "started_at DESC, seq DESC"

    def since(self, start_us: int) -> tuple[str, int]:
        """Started at or after `start_us`."""
        return ("seq >= ?", seq_bound(start_us)) if self.sqlite else ("started_at >= ?", start_us)

    def until(self, start_us: int) -> tuple[str, int]:
        """Started before `start_us`."""
        return ("seq < ?", seq_bound(start_us)) if self.sqlite else ("started_at < ?", start_us)

    def before(self, start_us: int, seq: int) -> tuple[str, list[object]]:
        """After (older than) the row of a page's cursor. A SQLite cursor given before schema 9
        holds another `seq`: it continues before its start."""
        if not self.sqlite:
            return "(started_at < ? OR (started_at = ? AND seq < ?))", [start_us, start_us, seq]
        if seq >> SEQ_SHIFT != start_us:
            seq = seq_bound(start_us)
        return "seq < ?", [seq]

    def by_id(self, stored_id: bytes) -> tuple[str, list[object]]:
        """The row of a stored id (`result_rows.encode_id`)."""
        if self.sqlite:
            return f"substr(id, -{ID_TAIL}) = ? AND id = ?", [id_tail(stored_id), stored_id]
        return "id = ?", [stored_id]


def result_keys(dialect: str) -> ResultKeys:
    return ResultKeys(sqlite=dialect == "sqlite")
