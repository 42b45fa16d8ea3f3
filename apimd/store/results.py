"""Stored results: every field of SPEC §4, bodies capped at 64 KiB, newest-first cursor pages,
retention, and the rollups that outlive them."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import cast

from apimd.model.outcome import Outcome
from apimd.model.result import Result
from apimd.store.codec import ResultCodec, store_bodies
from apimd.store.errors import InvalidCursor
from apimd.store.group_commit import GroupCommit
from apimd.store.result_keys import result_keys
from apimd.store.result_rows import (
    OUTCOMES,
    SELECT,
    START,
    code_of,
    decode_id,
    doc_fields,
    encode_id,
    insert_rows,
    result_row,
    select,
)
from apimd.store.rollups import RollupBatch
from apimd.store.sql import Connection, Database, Row
from apimd.store.targets import TARGET_OF, name_of, target_ids, targets_in
from apimd.store.timestamps import to_us

__all__ = ["BODY_LIMIT", "RecentRuns", "ResultPage", "ResultStore", "cap_bodies", "result_row"]

BODY_LIMIT = 64 * 1024
"""Bytes of a request or response body kept in a stored result (UTF-8)."""

_WORKFLOW = code_of("kind", "workflow")
_SKIPPED = code_of("outcome", Outcome.SKIPPED)


@dataclass(frozen=True)
class ResultPage:
    """One page of results, newest first; `next_cursor` fetches the next (older) page."""

    results: list[Result]
    next_cursor: str | None


def cap_bodies(result: Result) -> Result:
    """`result` with request/response bodies (its steps' too) cut to `BODY_LIMIT` bytes."""
    update: dict[str, object] = {}
    if result.response and result.response.body is not None:
        body, cut = _cap(result.response.body)
        if cut:
            update["response"] = result.response.model_copy(
                update={"body": body, "body_truncated": True}
            )
    if result.request and result.request.body is not None:
        body, cut = _cap(result.request.body)
        if cut:
            update["request"] = result.request.model_copy(update={"body": body})
    if result.steps:
        update["steps"] = [cap_bodies(step) for step in result.steps]
    return result.model_copy(update=update) if update else result


def _cap(text: str) -> tuple[str, bool]:
    if len(text) <= _SHORT:  # cheap: no UTF-8 character is longer than 4 bytes
        return text, False
    encoded = text.encode()
    if len(encoded) <= BODY_LIMIT:
        return text, False
    return encoded[:BODY_LIMIT].decode(errors="ignore"), True


@dataclass
class RecentRuns:
    """What `ResultStore.recent` knows of one target."""

    latest: Result | None = None
    totals: list[float] = field(default_factory=list)
    counts: dict[Outcome, int] = field(default_factory=dict)


@dataclass(frozen=True)
class _EncodedBatch:
    """Results ready to be written: (stored id, capped result) pairs, their docs
    (`ResultCodec.encode_payload`, compressed), and the rows of the bodies they refer to
    (`ResultCodec.body_rows`)."""

    items: list[tuple[bytes, Result]]
    docs: list[bytes]
    bodies: list[tuple[bytes, int, bytes]]


PART = 100
"""Results encoded at a time by `ResultStore.add_many`: SQLite writes a part while the next is
encoded (~3 ms of a core each), and its last part is all that waits for the encoding to end."""


def _capped(results: Sequence[Result]) -> list[tuple[bytes, Result]]:
    """`results` with their bodies capped, each id once: (stored id, result) pairs."""
    capped: dict[bytes, Result] = {}
    for result in results:
        key = encode_id(result.id)
        if key not in capped:
            capped[key] = result if _within_caps(result) else cap_bodies(result)
    return list(capped.items())


def _within_caps(result: Result) -> bool:
    """Whether `cap_bodies` would surely leave `result` as it is (a call's, with short bodies:
    `_cap`'s cheap test) — without its calls, most results' case."""
    if result.steps:
        return False
    response, request = result.response, result.request
    return (response is None or response.body is None or len(response.body) <= _SHORT) and (
        request is None or request.body is None or len(request.body) <= _SHORT
    )


_SHORT = BODY_LIMIT // 4
"""Characters a body may have that `_cap` keeps without encoding it (no UTF-8 character is longer
than 4 bytes)."""


def _nobody_waits(result: Result) -> bool:
    """A scheduled run's result may wait a few ms for others to share its commit; any other run
    is one a person, a client or a workflow is waiting for."""
    return result.trigger == "schedule"


class _BatchEnd:
    """What a batch writes after its last part: the bodies its parts refer to, all at once (in
    hash order: batches sharing a PostgreSQL store upserting the same bodies part by part locked
    them in different orders, and deadlocked), and the rollups of its new results."""

    def __init__(self) -> None:
        self.bodies: dict[bytes, tuple[bytes, int, bytes]] = {}
        self.rollups = RollupBatch()
        self.targets: dict[str, int] = {}
        """Numbers of target names its parts looked up (`ResultStore._targets` once committed)."""

    def add(
        self, batch: _EncodedBatch, stored: set[bytes], rows: Sequence[tuple[object, ...]]
    ) -> None:
        """Add a part: its bodies, and the rollups of its results that were new (`stored`),
        their starts read from their `rows`."""
        bodies = self.bodies
        for row in batch.bodies:
            kept = bodies.get(row[0])
            if kept is None or row[1] > kept[1]:  # the latest start using it
                bodies[row[0]] = row
        self.rollups.add(
            (result, cast(int, row[START]))
            for (key, result), row in zip(batch.items, rows, strict=True)
            if key in stored
        )

    async def write(self, conn: Connection) -> int:
        """Write the bodies and rollups; returns how many results were new."""
        await store_bodies(conn, list(self.bodies.values()))
        await self.rollups.write(conn)
        return self.rollups.count


async def _write_rows(
    conn: Connection,
    batch: _EncodedBatch,
    end: _BatchEnd,
    targets: Mapping[str, int],
) -> None:
    """Write an encoded batch's rows; its bodies and the results that were not stored yet are
    added to `end` (here: in SQLite's thread, while the next part is encoded). `targets`: numbers
    of names already committed (a name is numbered once and keeps its number:
    `apimd.store.targets`), the others looked up or numbered here."""
    items = batch.items
    ids = targets
    if any(r.name not in targets for _, r in items):
        ids = await target_ids(conn, [r.name for _, r in items])
        end.targets.update(ids)
    rows = [
        result_row(r, doc, ids[r.name], key)
        for (key, r), doc in zip(items, batch.docs, strict=True)
    ]
    stored = await insert_rows(conn, rows)
    end.add(batch, stored, rows)


class ResultStore:
    """Results of runs, and their hourly rollups (written in the same transaction)."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._keys = result_keys(db.dialect)
        self.codec = ResultCodec()
        self._commits = GroupCommit(self.add_many, may_wait=_nobody_waits)
        self._targets: dict[str, int] = {}
        """Numbers of target names, as committed (`add_many` learns them: a batch then spends
        no statement on them)."""

    async def add(self, result: Result) -> None:
        """Store one result (committed on return); a result whose id is already stored is ignored.

        Group commit (`GroupCommit`): results added close together are written in one
        transaction, so many concurrent runs cost one commit, not one each."""
        await self._commits.add(result)

    async def drain(self) -> None:
        """Wait until every result handed to `add` is written (before closing the database)."""
        await self._commits.drain()
        await self.drain_training()

    async def drain_training(self) -> None:
        """Wait for a dictionary being trained to be stored."""
        await self.codec.wait_training()

    async def add_many(self, results: Sequence[Result]) -> int:
        """Store many results in one transaction; returns how many were new.

        The results are encoded `PART` at a time (here: the codec is not shared with another
        thread), each part written while the next is encoded (`Database.transact_parts`), and
        the bodies and the rollups of the new ones last (`_BatchEnd`); a batch of one part is
        encoded, then written in one go (`Database.transact`)."""
        items = _capped(results)
        end = _BatchEnd()
        if len(items) <= PART:
            # One part (a group commit's usual batch): encoded first, and written with the end
            # in one trip to SQLite's thread (`Database.transact`): pipelining a lone part
            # overlaps nothing, and costs a task, a queue and a turn of the loop.
            part = self._encoded(items)

            async def whole(conn: Connection) -> int:
                await _write_rows(conn, part, end, self._targets)
                return await end.write(conn)

            count = await self._db.transact(whole)
        else:

            def parts() -> Iterator[Callable[[Connection], Awaitable[None]]]:
                for start in range(0, len(items), PART):
                    part = self._encoded(items[start : start + PART])
                    yield partial(_write_rows, batch=part, end=end, targets=self._targets)

            count = await self._db.transact_parts(parts(), end.write)
        self._targets.update(end.targets)  # committed: numbers kept for good
        await self.codec.train_when_due(self._db)
        return count

    async def write(self, conn: Connection, results: Sequence[Result]) -> int:
        """Store `results` (bodies capped, rollups counted) in the caller's transaction; returns
        how many were new."""
        end = _BatchEnd()
        await _write_rows(conn, self._encoded(_capped(results)), end, self._targets)
        return await end.write(conn)

    def _encoded(self, items: list[tuple[bytes, Result]]) -> _EncodedBatch:
        """Capped results (`_capped`) encoded, with the bodies they refer to.

        Their docs are compressed here, on the event loop, not in SQLite's thread: zstd frees the
        GIL for each doc, and a thread taking the GIL back from a busy loop waits for a moment the
        loop lets go of it (a lone batch of 7 took 3.1 ms in that thread under the engine bench's
        load, 0.6 ms of it compressing ~40 µs of docs; issue 18)."""
        bodies: dict[bytes, tuple[str, int]] = {}
        payloads = self._encode_payloads([result for _, result in items], bodies)
        return _EncodedBatch(
            items, self.codec.compress_docs(payloads), self.codec.body_rows(bodies)
        )

    async def open(self) -> None:
        """Load the compression dictionaries; rewrite rows of an older encoding (see `recode`)."""
        await self.codec.load(self._db)
        await self.recode()

    async def recode(self, *, batch: int = 2000) -> int:
        """Rewrite results stored in an older encoding (zlib JSON, schema 1) in the current one,
        training the first dictionary from them; returns how many were rewritten."""
        row = await self._db.fetchone("SELECT value FROM meta WHERE key = 'results_recoded'")
        if row is not None:
            return 0
        # In the order of an indexed key: seq on SQLite, id on PostgreSQL (no index on seq since
        # schema 8; SQLite indexes only an id's last bytes since schema 9).
        key = self._keys.row_key
        rewritten, after = 0, None
        while True:
            rows = await self._db.fetchall(
                f"SELECT {key} AS k, id, doc FROM results ORDER BY {key} LIMIT ?"
                if after is None
                else f"SELECT {key} AS k, id, doc FROM results WHERE {key} > ? ORDER BY {key}"
                " LIMIT ?",
                (batch,) if after is None else (after, batch),
            )
            if not rows:
                break
            after = rows[-1]["k"]
            old = [r for r in rows if not self.codec.is_current(bytes(r["doc"]))]
            # Schema 1's docs are whole results: their rows add nothing.
            docs = [bytes(r["doc"]) for r in old]
            bodies = await self.codec.prepare(self._db, docs)
            results = [
                self.codec.decode(doc, decode_id(r["id"]), bodies)
                for r, doc in zip(old, docs, strict=True)
            ]
            if results and self.codec.wants_first_dictionary():
                await self.codec.train(self._db, self.codec.samples_of(results))
            if results:
                async with self._db.transaction() as conn:
                    docs = await self._encode(conn, results)
                    await conn.executemany(
                        f"UPDATE results SET doc = ? WHERE {key} = ?",
                        [(doc, r["k"]) for r, doc in zip(old, docs, strict=True)],
                    )
                rewritten += len(results)
        async with self._db.transaction() as conn:
            await conn.execute(
                "INSERT INTO meta (key, value) VALUES ('results_recoded', '2')"
                " ON CONFLICT (key) DO NOTHING"
            )
        return rewritten

    async def _encode(self, conn: Connection, results: Sequence[Result]) -> list[bytes]:
        """The docs of `results`, storing the bodies they refer to by hash."""
        bodies: dict[bytes, tuple[str, int]] = {}
        payloads = self._encode_payloads(results, bodies)
        await store_bodies(conn, self.codec.body_rows(bodies))
        return self.codec.compress_docs(payloads)

    def _encode_payloads(
        self, results: Sequence[Result], bodies: dict[bytes, tuple[str, int]]
    ) -> list[bytes]:
        """The docs of `results` before compression; the bodies they refer to by hash are added
        to `bodies` (hash → body, latest start using it)."""
        payloads: list[bytes] = []
        for result in results:
            payload, ref = self.codec.encode_payload(result)
            payloads.append(payload)
            if ref is not None:
                used = max(to_us(result.started_at), bodies.get(ref[0], ("", 0))[1])
                bodies[ref[0]] = (ref[1], used)
        return payloads

    async def _decode(self, rows: Sequence[Row]) -> list[Result]:
        """The results of rows selected with `result_rows.SELECT`."""
        docs = [bytes(row["doc"]) for row in rows]
        bodies = await self.codec.prepare(self._db, docs)
        return [
            self.codec.decode(doc, decode_id(row["id"]), bodies, doc_fields(row), row["total_us"])
            for row, doc in zip(rows, docs, strict=True)
        ]

    async def get(self, result_id: str) -> Result | None:
        where, params = self._keys.by_id(encode_id(result_id))
        row = await self._db.fetchone(f"SELECT {SELECT} FROM results WHERE {where}", params)
        return None if row is None else (await self._decode([row]))[0]

    async def page(
        self,
        *,
        name: str | None = None,
        outcome: Outcome | str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
        cursor: str | None = None,
        parents: Sequence[str] = (),
    ) -> ResultPage:
        """Results matching every given filter (`since` inclusive, `until` exclusive, on
        `started_at`), newest first, at most `limit` (1–1000) per page.

        With `name`, `parents` are the workflows that have a step of that name: their runs'
        steps called `name` are listed too, each marked with its `workflow` (a step's result is
        kept inside its workflow's)."""
        limit = max(1, min(limit, 1000))
        where: list[str] = []
        params: list[object] = []
        if name is not None:
            parents = [p for p in parents if p != name]
            where.append(
                f"(target = {TARGET_OF} OR (kind = {_WORKFLOW} AND target IN"
                f" {targets_in(len(parents))}))"
                if parents
                else f"target = {TARGET_OF}"
            )
            params += [name, *parents]
        if outcome is not None:
            where.append("outcome = ?")
            params.append(code_of("outcome", Outcome(str(outcome).upper())))
        for bound in (
            None if since is None else self._keys.since(to_us(since)),
            None if until is None else self._keys.until(to_us(until)),
        ):
            if bound is not None:
                where.append(bound[0])
                params.append(bound[1])
        if cursor is not None:
            condition, values = self._keys.before(*_parse_cursor(cursor))
            where.append(condition)
            params += values
        sql = f"SELECT seq, {SELECT} FROM results"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += f" ORDER BY {self._keys.newest_first} LIMIT ?"
        rows = await self._db.fetchall(sql, [*params, limit + 1])
        results = await self._decode(rows[:limit])
        if name is not None and parents:
            results = [
                found
                for result in results
                for found in steps_named(result, name)
                if outcome is None or found.outcome == Outcome(str(outcome).upper())
            ]
        next_cursor = None
        if len(rows) > limit:
            last = rows[limit - 1]
            next_cursor = _make_cursor(int(last["started_at"]), int(last["seq"]))
        return ResultPage(results, next_cursor)

    async def recent(self, since: datetime, *, per_name: int = 20) -> dict[str, RecentRuns]:
        """Per target with results since `since`: its latest result, the totals of its latest
        `per_name` non-skipped runs (oldest first) and its counts per outcome."""
        started, since_key = self._keys.since(to_us(since))
        newest = self._keys.newest_first
        out: dict[str, RecentRuns] = {}
        for row in await self._db.fetchall(
            f"SELECT {name_of()} AS name, outcome, COUNT(*) AS n FROM {self._keys.in_time}"
            f" WHERE {started} AND maintenance = 0 GROUP BY target, outcome",
            (since_key,),
        ):
            runs = out.setdefault(row["name"], RecentRuns())
            runs.counts[OUTCOMES[row["outcome"]]] = int(row["n"])
        for row in await self._db.fetchall(
            f"SELECT {name_of('ranked')} AS name, total_us FROM (SELECT target, total_us,"
            f" ROW_NUMBER() OVER (PARTITION BY target ORDER BY {newest}) AS rn"
            f" FROM {self._keys.in_time}"
            f" WHERE {started} AND outcome != {_SKIPPED} AND total_us IS NOT NULL"
            " AND maintenance = 0) AS ranked"
            " WHERE rn <= ? ORDER BY target, rn DESC",
            (since_key, per_name),
        ):
            out.setdefault(row["name"], RecentRuns()).totals.append(int(row["total_us"]) / 1000)
        rows = await self._db.fetchall(
            f"SELECT {select('ranked')} FROM (SELECT *, ROW_NUMBER() OVER"
            f" (PARTITION BY target ORDER BY {newest}) AS rn FROM {self._keys.in_time}"
            f" WHERE {started}) AS ranked WHERE rn = 1",
            (since_key,),
        )
        decoded = await self._decode(rows)
        for row, result in zip(rows, decoded, strict=True):
            out.setdefault(row["name"], RecentRuns()).latest = result
        return out

    async def latest(self, names: Iterable[str] | None = None) -> dict[str, Result]:
        """The most recent result of each of `names` (default: every target that has results)."""
        if names is None:
            names = [
                row[0]
                for row in await self._db.fetchall(
                    "SELECT name FROM targets WHERE EXISTS"
                    " (SELECT 1 FROM results WHERE results.target = targets.id)"
                )
            ]
        out: dict[str, Result] = {}
        for name in names:
            row = await self._db.fetchone(
                f"SELECT {SELECT} FROM results WHERE target = {TARGET_OF}"
                f" ORDER BY {self._keys.newest_first} LIMIT 1",
                (name,),
            )
            if row is not None:
                out[name] = (await self._decode([row]))[0]
        return out

    async def prune(self, older_than: datetime, *, batch: int = 5000) -> int:
        """Delete raw results started before `older_than` (rollups stay), in short transactions so
        other writes are not held up; returns how many were deleted."""
        cutoff = to_us(older_than)
        before, key = self._keys.until(cutoff)
        row_key = self._keys.row_key
        deleted = 0
        while True:
            async with self._db.transaction() as conn:
                count = await conn.execute(
                    f"DELETE FROM results WHERE {row_key} IN"
                    f" (SELECT {row_key} FROM results WHERE {before} LIMIT ?)",
                    (key, batch),
                )
            deleted += count
            if count < batch:
                break
        async with self._db.transaction() as conn:
            # A body's `last_used` is the start of the latest result that refers to it.
            await conn.execute("DELETE FROM result_bodies WHERE last_used < ?", (cutoff,))
        return deleted


def steps_named(result: Result, name: str) -> list[Result]:
    """`result` when it is `name`'s own, else its steps called `name`, marked with the workflow
    they ran in and where that ran, newest first (a workflow may run the same call twice)."""
    if result.name == name:
        return [result]
    marks = {
        "workflow": result.name,
        "workflow_run_id": result.id,
        "location": result.location,
        "agent": result.agent,
    }
    steps = [s.model_copy(update=marks) for s in result.steps if s.name == name]
    return steps[::-1]


def latest_including_steps(
    name: str, own: Result | None, parents: Iterable[Result | None]
) -> Result | None:
    """The latest run of call `name`: its own latest result, or a step of that name in its
    workflows' latest results (marked with `workflow`) when one of those is more recent."""
    latest = own
    for parent in parents:
        for step in steps_named(parent, name) if parent is not None else []:
            if latest is None or step.started_at > latest.started_at:
                latest = step
    return latest


def _make_cursor(started_us: int, seq: int) -> str:
    return base64.urlsafe_b64encode(f"{started_us}:{seq}".encode()).decode().rstrip("=")


def _parse_cursor(cursor: str) -> tuple[int, int]:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        started, seq = text.split(":")
        return int(started), int(seq)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidCursor() from None
