"""How a result is kept in `results.doc`: a zstd frame of its JSON, compressed with a dictionary
trained from the store's own results, and an unchanged PASS body kept once per target.

- Dictionaries live in `result_dicts`, numbered; a frame names its dictionary (zstd's own
  dictionary id), so every row stays readable after a newer dictionary is trained. The first is
  trained once `TRAIN_AFTER` results were written, a new one every `RETRAIN_AFTER`.
- A PASS result whose response body is the same as its target's previous PASS body keeps only a
  16-byte hash; the body itself is in `result_bodies` (once per target and body), with the start
  of the latest result that uses it, so `prune` drops bodies no result refers to any more.
- Rows written before (zlib-compressed JSON, from schema 1) are still read, and `recode` rewrites
  them in the current encoding.
- Since schema 8 a frame is written without zstd's 4-byte magic number and without its content
  size (~5 bytes less a row); its first byte, zstd's frame header descriptor, is then 0x00-0x03
  (no content size, no checksum, a dictionary id of 0-4 bytes), which neither a zstd frame with
  its magic number (0x28) nor a zlib stream (0x78) starts with. Docs and bodies written before
  (whole frames) are read as they are.

The frame's content: the result's JSON (`{…}`), or `\\x01`, the body hash, then the JSON without
the response body. Since schema 6 the JSON leaves out the fields its row holds
(`apimd.store.result_rows.ROW_FIELDS`): `\\x02` then that JSON, or `\\x03`, the body hash, then
that JSON without the response body; decoding puts the row's fields back."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
import zlib
from collections import OrderedDict, deque
from datetime import datetime, timedelta

import zstandard
from pydantic.main import IncEx

from apimd.model.outcome import Outcome
from apimd.model.result import Result
from apimd.store.errors import CorruptRecord
from apimd.store.result_rows import ROW_FIELDS, replace_docs, row_restores
from apimd.store.sql import Connection, Database

TRAIN_AFTER = 1000
"""Results written before the first dictionary is trained (from the latest `SAMPLES`)."""
RETRAIN_AFTER = 200_000
"""Results written with one dictionary before this process trains the next."""
SAMPLES = 2000
DICT_SIZE = 32 * 1024
LEVEL = 3
UNDICTED_LEVEL = -5
"""The level of docs written before the store's first dictionary: they are compressed again with
it once it is trained (`_recompress_undicted`), so what they take until then is what matters
least. Level 3 without a dictionary cost ~100 k instructions a realistic doc (~680 B); -5 ~28 k
(~990 B), and with the dictionary, at level 3, ~13 k (~55 B)."""
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_MAGICLESS = zstandard.FORMAT_ZSTD1_MAGICLESS
_LEAN_FIRST_MAX = 0x03  # a lean frame's header descriptor: only the dictionary id flag set
_ZLIB_FIRST = 0x78  # every zlib stream of schema 1 starts with this byte (deflate, 32 KiB window)
_BODY_REF = 0x01
_ROW_AWARE = 0x02
_ROW_AWARE_BODY_REF = 0x03
_TOTAL_IN_ROW = 0x04
"""Added to a row-aware marker (schema 9): the doc leaves out `timings_ms.total` too, which its
row's `total_us` gives back exactly (the engine's totals are whole microseconds)."""
_REFS = frozenset((_BODY_REF, _ROW_AWARE_BODY_REF, _ROW_AWARE_BODY_REF | _TOTAL_IN_ROW))
_ROW_AWARE_MARKERS = frozenset(
    (
        _ROW_AWARE,
        _ROW_AWARE_BODY_REF,
        _ROW_AWARE | _TOTAL_IN_ROW,
        _ROW_AWARE_BODY_REF | _TOTAL_IN_ROW,
    )
)
_TIMINGS = b'{"timings_ms":{'
"""How a row-aware doc's JSON starts (`timings_ms` is the first field a row does not hold)."""
_to_json = Result.__pydantic_serializer__.to_json
_WITHOUT_BODY: IncEx = {"response": {"body"}}


def _without(*, body: bool, total: bool) -> IncEx:
    """What a row-aware doc leaves out: the row's fields, and the body and the total time."""
    exclude: dict[str, IncEx | bool] = dict.fromkeys(ROW_FIELDS, True)
    if body:
        exclude["response"] = {"body"}
    if total:
        exclude["timings_ms"] = {"total"}
    return exclude


def scheduled_at_of(result: Result) -> datetime:
    """When a scheduled result's firing was due, from its start and lateness: a doc leaves
    `scheduled_at` out when this gives it back exactly (~20 B a scheduled result; issue 18)."""
    if result.lateness_ms is None:
        return result.started_at  # a firing that did not run: recorded at its due instant
    return result.started_at - timedelta(milliseconds=result.lateness_ms)


_FORMS: dict[tuple[bool, bool, bool], tuple[bytes, IncEx | None]] = {
    # (refers to its body, row-aware, total in the row): the payload's marker, what it leaves out
    (False, False, False): (b"", None),
    (True, False, False): (bytes((_BODY_REF,)), _WITHOUT_BODY),
    **{
        (ref, True, total): (
            bytes(
                ((_ROW_AWARE_BODY_REF if ref else _ROW_AWARE) | (_TOTAL_IN_ROW if total else 0),)
            ),
            _without(body=ref, total=total),
        )
        for ref in (False, True)
        for total in (False, True)
    },
}
_FORMS_SCHEDULED: dict[tuple[bool, bool, bool], tuple[bytes, IncEx | None]] = {
    key: (marker, {**(exclude if isinstance(exclude, dict) else {}), "scheduled_at": True})
    for key, (marker, exclude) in _FORMS.items()
}
"""`_FORMS`, leaving out a `scheduled_at` that `scheduled_at_of` gives back."""
_HASH_BYTES = 16
_BODY_CACHE = 2048
_BLOB_CACHE_BYTES = 1 << 20
"""Compressed bodies kept for the next writes that refer to them (`ResultCodec.body_rows`)."""

log = logging.getLogger(__name__)


def _compressor(
    data: zstandard.ZstdCompressionDict | None = None, level: int = LEVEL
) -> zstandard.ZstdCompressor:
    """A compressor of lean frames (see the module doc)."""
    params = zstandard.ZstdCompressionParameters.from_level(
        level, format=_MAGICLESS, write_content_size=False, write_checksum=False, write_dict_id=True
    )
    return zstandard.ZstdCompressor(dict_data=data, compression_params=params)


def frame_dict_id(doc: bytes) -> int | None:
    """The dictionary a zstd frame (lean or whole) was compressed with; None for a zlib stream or
    anything else."""
    try:
        if doc[:1] and doc[0] <= _LEAN_FIRST_MAX:
            return int(zstandard.get_frame_parameters(doc, format=_MAGICLESS).dict_id)
        if doc[:4] == _ZSTD_MAGIC:
            return int(zstandard.get_frame_parameters(doc).dict_id)
    except zstandard.ZstdError:
        return None
    return None


def body_hash(name: str, body: str) -> bytes:
    """The hash of a target's body: BLAKE2b-128 of its name, a NUL, and the body (UTF-8)."""
    digest = hashlib.blake2b(name.encode(errors="surrogatepass"), digest_size=_HASH_BYTES)
    digest.update(b"\0")
    digest.update(body.encode(errors="surrogatepass"))
    return digest.digest()


class ResultCodec:
    """Encodes results for one store and decodes any row it ever wrote (see the module doc)."""

    def __init__(self) -> None:
        self._compressor = _compressor()
        # `compress_docs`': by one write at a time; cheap until the first dictionary (see
        # UNDICTED_LEVEL).
        self._write_compressor = _compressor(level=UNDICTED_LEVEL)
        self._dict_id = 0
        self._decompressors: dict[int, zstandard.ZstdDecompressor] = {
            0: zstandard.ZstdDecompressor()
        }
        self._lean: dict[int, zstandard.ZstdDecompressor] = {
            0: zstandard.ZstdDecompressor(format=_MAGICLESS)
        }
        self._last_body: dict[str, tuple[int, str, bytes | None]] = {}
        """Per target: Python's `hash` of its latest PASS body seen by this process (a str's
        hash is a fraction of BLAKE2b's cost; see `encode`), the body, and its `body_hash` once
        computed (a body equal to it has the same: comparing is a fraction of hashing again)."""
        self._bodies: OrderedDict[bytes, str] = OrderedDict()
        self._blobs: OrderedDict[bytes, bytes] = OrderedDict()
        """Bodies as `body_rows` compressed them with the current dictionary, by hash: a body that
        stays the same is written again by every batch that refers to it (its `last_used`)."""
        self._blob_bytes = 0
        self._samples: deque[bytes] = deque(maxlen=SAMPLES)
        self._written = 0
        self._training: asyncio.Task[None] | None = None

    # --- dictionaries --------------------------------------------------------------------------

    async def load(self, db: Database, wanted: set[int] | None = None) -> None:
        """Load the store's dictionaries (only `wanted` ones when given) and write with the newest."""
        rows = await db.fetchall("SELECT id, dict FROM result_dicts ORDER BY id")
        for row in rows:
            dict_id = int(row[0])
            if dict_id not in self._decompressors:
                data = zstandard.ZstdCompressionDict(bytes(row[1]))
                self._decompressors[dict_id] = zstandard.ZstdDecompressor(dict_data=data)
                self._lean[dict_id] = zstandard.ZstdDecompressor(dict_data=data, format=_MAGICLESS)
                if dict_id > self._dict_id:
                    self._dict_id = dict_id
                    # Digested once: otherwise every compress() digests it again (a third of it).
                    data.precompute_compress(level=LEVEL)
                    self._compressor = _compressor(data)
                    self._write_compressor = _compressor(data)  # (the digested dict is shared)
                    self._blobs.clear()
                    self._blob_bytes = 0
                    self._written = 0
        missing = (wanted or set()) - set(self._decompressors)
        if missing:
            raise CorruptRecord(
                f"results use compression dictionaries {sorted(missing)} that are not in the store"
            )

    def wants_training(self) -> bool:
        limit = TRAIN_AFTER if self._dict_id == 0 else RETRAIN_AFTER
        busy = self._training is not None and not self._training.done()
        return (
            self._written >= limit and len(self._samples) >= min(SAMPLES, TRAIN_AFTER) and not busy
        )

    async def wait_training(self) -> None:
        if self._training is not None:
            await asyncio.wait([self._training])

    async def train_when_due(self, db: Database) -> None:
        """Train the next dictionary when enough results were written: the first one at once (a
        fraction of a second, once per store, so every later row uses it), the next ones in the
        background (a thread)."""
        if not self.wants_training():
            return
        if self._dict_id == 0:
            await self._train_quietly(db, list(self._samples))
            if self._dict_id != 0:
                try:
                    await self._recompress_undicted(db)
                except Exception:  # they stay readable as they are
                    log.warning("compressing the first results again failed", exc_info=True)
        else:
            self._training = asyncio.create_task(self._train_quietly(db, list(self._samples)))

    async def _recompress_undicted(self, db: Database, *, batch: int = 2000) -> int:
        """Compress the rows written before the store's first dictionary again, with it (their
        content unchanged), so a store's first results take no more room than the rest; returns
        how many were."""
        rewritten, after = 0, -(2**63)  # the smallest key (a start before 1970 is negative)
        while True:
            rows = await db.fetchall(
                "SELECT seq, doc FROM results WHERE seq > ? ORDER BY seq LIMIT ?", (after, batch)
            )
            if not rows:
                return rewritten
            after = int(rows[-1][0])
            docs = [(int(row[0]), bytes(row[1])) for row in rows]
            undicted = [(seq, doc) for seq, doc in docs if frame_dict_id(doc) == 0]
            if not undicted:
                return rewritten
            again = {
                seq: (doc, self._compressor.compress(self.payload(doc, str(seq))))
                for seq, doc in undicted
            }
            async with db.transaction() as conn:
                await replace_docs(conn, again)
            rewritten += len(undicted)

    async def _train_quietly(
        self, db: Database, samples: list[bytes | bytearray | memoryview]
    ) -> None:
        try:
            await self.train(db, samples)
        except Exception:  # the store keeps writing with the dictionary it has
            log.warning("training a result compression dictionary failed", exc_info=True)
            self._written = 0

    def wants_first_dictionary(self) -> bool:
        return self._dict_id == 0

    @staticmethod
    def is_current(doc: bytes) -> bool:
        """Whether a doc is a zstd frame (lean or whole), not schema 1's zlib."""
        return frame_dict_id(doc) is not None

    def samples_of(self, results: list[Result]) -> list[bytes | bytearray | memoryview]:
        return [r.model_dump_json().encode() for r in results]

    async def train(self, db: Database, samples: list[bytes | bytearray | memoryview]) -> None:
        """Train a dictionary from `samples` (result payloads) and make it the store's newest; a
        dictionary another process stored first under the same number wins."""
        row = await db.fetchone("SELECT COALESCE(MAX(id), 0) FROM result_dicts")
        dict_id = (int(row[0]) if row else 0) + 1
        try:
            trained = await asyncio.to_thread(
                zstandard.train_dictionary, DICT_SIZE, samples, dict_id=dict_id, level=LEVEL
            )
        except zstandard.ZstdError:
            self._written = 0  # too few or too alike samples: try again later
            return
        async with db.transaction() as conn:
            await conn.execute(
                "INSERT INTO result_dicts (id, created_at, dict) VALUES (?, ?, ?)"
                " ON CONFLICT (id) DO NOTHING",
                (dict_id, _now_us(), trained.as_bytes()),
            )
        await self.load(db)

    # --- encoding ------------------------------------------------------------------------------

    def encode(self, result: Result) -> tuple[bytes, tuple[bytes, str] | None]:
        """The doc of `result`, and the body it refers to by hash (to store), if any."""
        payload, ref = self.encode_payload(result)
        return self._compressor.compress(payload), ref

    def compress_docs(self, payloads: list[bytes]) -> list[bytes]:
        """Docs of `encode_payload`s, by the write (on the event loop, as the write encodes)."""
        return list(map(self._write_compressor.compress, payloads))

    def encode_payload(self, result: Result) -> tuple[bytes, tuple[bytes, str] | None]:
        """`encode`'s doc before compression (`compress_docs`), and the body it refers to."""
        ref: tuple[bytes, str] | None = None
        response = result.response
        if result.outcome is Outcome.PASS and response is not None and response.body:
            # BLAKE2b only for a body likely the same as before (a changed one costs its str
            # hash); a chance match of str hashes still refers to this body's own digest.
            body = response.body
            seen = hash(body)
            last = self._last_body.get(result.name)
            digest: bytes | None = None
            if last is not None and last[0] == seen:
                digest = last[2] if last[2] is not None and last[1] == body else None
                if digest is None:
                    digest = body_hash(result.name, body)
                ref = (digest, body)
            self._last_body[result.name] = (seen, body, digest)
        aware = row_restores(result)
        total = result.timings_ms.total
        in_row = aware and round(total * 1000) / 1000 == total  # `result_row`'s total_us
        due = result.scheduled_at
        # (`decode` gives it back to a result naming its schedule: only such leaves it out.)
        derived = due is not None and result.schedule is not None and due == scheduled_at_of(result)
        forms = _FORMS_SCHEDULED if derived else _FORMS
        marker, exclude = forms[(ref is not None, aware, in_row)]
        # The serializer's own bytes: `model_dump_json` would decode them to a str (and this
        # would encode it again), a third of the time.
        payload = _to_json(result, exclude=exclude)
        if ref is not None:
            marker += ref[0]
            self._remember(ref[0], ref[1])
        if marker:
            payload = marker + payload
        self._samples.append(payload)
        self._written += 1
        return payload, ref

    def body_rows(self, refs: dict[bytes, tuple[str, int]]) -> list[tuple[bytes, int, bytes]]:
        """The `result_bodies` rows of the bodies results refer to (hash → body, latest start
        using it), for `store_bodies`: compressed here, as the docs are (a compressor is not
        to be shared between threads)."""
        return [(digest, used, self._blob(digest, body)) for digest, (body, used) in refs.items()]

    def _blob(self, digest: bytes, body: str) -> bytes:
        """`body` compressed, as `body_rows` wrote it before when it did (the digest names the
        body: the same compressor gives the same bytes)."""
        blobs = self._blobs
        blob = blobs.get(digest)
        if blob is not None:
            blobs.move_to_end(digest)
            return blob
        blob = self._compressor.compress(body.encode(errors="surrogatepass"))
        blobs[digest] = blob
        self._blob_bytes += len(blob)
        while self._blob_bytes > _BLOB_CACHE_BYTES:
            self._blob_bytes -= len(blobs.popitem(last=False)[1])
        return blob

    # --- decoding ------------------------------------------------------------------------------

    async def prepare(self, db: Database, docs: list[bytes]) -> dict[bytes, str]:
        """Load what decoding `docs` takes (dictionaries trained by another process) and return
        the bodies they refer to, for `decode`. The bodies are the caller's: the shared cache
        may evict one (writes remember theirs) between this and the decoding."""
        dicts = {frame_dict_id(doc) for doc in docs} - {None, *self._decompressors}
        if dicts:
            await self.load(db, {dict_id for dict_id in dicts if dict_id is not None})
        found: dict[bytes, str] = {}
        wanted: set[bytes] = set()
        for doc in docs:
            try:
                payload: bytes | None = self.payload(doc, "")
            except CorruptRecord:
                payload = None
            if payload is not None and payload[:1] and payload[0] in _REFS:
                digest = payload[1 : 1 + _HASH_BYTES]
                cached = self._bodies.get(digest)
                if cached is not None:
                    found[digest] = cached
                else:
                    wanted.add(digest)
        items = sorted(wanted)
        for start in range(0, len(items), 500):
            chunk = items[start : start + 500]
            rows = await db.fetchall(
                "SELECT hash, body FROM result_bodies WHERE hash IN"
                f" ({', '.join('?' * len(chunk))})",
                chunk,
            )
            # A body is compressed with the dictionary current when it was stored: read it
            # with that one (loaded from the store when another process trained it).
            blobs = [(bytes(row[0]), bytes(row[1])) for row in rows]
            missing = {frame_dict_id(blob) for _, blob in blobs} - {None, *self._decompressors}
            if missing:
                await self.load(db, {dict_id for dict_id in missing if dict_id is not None})
            for digest, blob in blobs:
                body = self.payload(blob, "").decode(errors="surrogatepass")
                found[digest] = body
                self._remember(digest, body)
        return found

    def payload(self, doc: bytes, result_id: str) -> bytes:
        """The uncompressed content of a doc (old zlib rows: their JSON)."""
        try:
            lean = bool(doc[:1]) and doc[0] <= _LEAN_FIRST_MAX
            if lean or doc[:4] == _ZSTD_MAGIC:
                dict_id = frame_dict_id(doc)
                decompressor = (self._lean if lean else self._decompressors).get(dict_id or 0)
                if dict_id is None or decompressor is None:
                    raise CorruptRecord(
                        f"result {result_id} cannot be read: compression dictionary {dict_id}"
                        " is not in the store"
                    )
                if not lean:
                    return decompressor.decompress(doc)
                # No content size in the frame: decompressed as a stream, which must end.
                stream = decompressor.decompressobj()
                data = stream.decompress(doc)
                if not stream.eof or stream.unused_data:
                    raise CorruptRecord(f"result {result_id} cannot be read: truncated")
                return data
            if doc[:1] and doc[0] == _ZLIB_FIRST:
                return zlib.decompress(doc)
        except (zstandard.ZstdError, zlib.error) as exc:
            raise CorruptRecord(f"result {result_id} cannot be read: {exc}") from None
        raise CorruptRecord(f"result {result_id} cannot be read: unknown encoding")

    def decode(
        self,
        doc: bytes,
        result_id: str,
        bodies: dict[bytes, str],
        row_fields: bytes = b"{",
        total_us: int | None = None,
    ) -> Result:
        """The result a doc holds, with `bodies` from `prepare`; `row_fields` are its row's
        (`result_rows.doc_fields`), which a doc of schema 6 leaves out, and `total_us` its
        total time (which a doc of schema 9 may leave out)."""
        payload = self.payload(bytes(doc), result_id)
        marker = payload[0] if payload else 0
        digest = b""
        if marker in _REFS:
            digest, payload = payload[1 : 1 + _HASH_BYTES], payload[1 + _HASH_BYTES :]
        elif marker in _ROW_AWARE_MARKERS:
            payload = payload[1:]
        if marker & _TOTAL_IN_ROW and marker in _ROW_AWARE_MARKERS:
            if total_us is None or not payload.startswith(_TIMINGS):
                raise CorruptRecord(f"result {result_id} cannot be read: its total time is lost")
            total = repr(total_us / 1000).encode()
            payload = (
                row_fields + b'"timings_ms":{"total":' + total + b"," + payload[len(_TIMINGS) :]
            )
        elif marker in _ROW_AWARE_MARKERS:
            payload = row_fields + payload[1:]
        try:
            result = Result.model_validate_json(payload)
        except ValueError as exc:
            raise CorruptRecord(f"result {result_id} cannot be read: {exc}") from None
        if result.schedule is not None and result.scheduled_at is None:
            result = result.model_copy(update={"scheduled_at": scheduled_at_of(result)})
        if not digest:
            return result
        body = bodies.get(digest)
        if body is None or result.response is None:
            raise CorruptRecord(f"result {result_id} cannot be read: its body is not in the store")
        return result.model_copy(
            update={"response": result.response.model_copy(update={"body": body})}
        )

    def _remember(self, digest: bytes, body: str) -> None:
        self._bodies[digest] = body
        self._bodies.move_to_end(digest)
        while len(self._bodies) > _BODY_CACHE:
            self._bodies.popitem(last=False)


async def store_bodies(conn: Connection, rows: list[tuple[bytes, int, bytes]]) -> None:
    """Keep the bodies results refer to (`ResultCodec.body_rows`)."""
    if not rows:
        return
    # In hash order: writers sharing a PostgreSQL store then lock the rows they both upsert in one
    # order, and wait for each other instead of deadlocking.
    await conn.executemany(
        "INSERT INTO result_bodies (hash, last_used, body) VALUES (?, ?, ?)"
        " ON CONFLICT (hash) DO UPDATE SET last_used = CASE"
        " WHEN excluded.last_used > result_bodies.last_used THEN excluded.last_used"
        " ELSE result_bodies.last_used END",
        sorted(rows),
    )


def _now_us() -> int:
    return time.time_ns() // 1000
