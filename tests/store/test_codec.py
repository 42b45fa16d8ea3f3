"""Result documents: zstd with a dictionary trained from the store's own results, unchanged PASS
bodies kept once per target, and rows of the old encoding (zlib JSON) read back and rewritten."""

from __future__ import annotations

import json
import zlib
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import zstandard

from apimd.model.outcome import ResultCode
from apimd.model.result import ConditionResult, RequestRecord, ResponseRecord, Result, Timings
from apimd.store import SqliteStore
from apimd.store import codec as codec_module
from apimd.store.codec import frame_dict_id
from apimd.store.errors import CorruptRecord
from apimd.store.result_rows import decode_id, encode_id, insert_rows, result_row
from apimd.store.targets import target_ids
from tests.store.conftest import OpenStore, make_result

START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def sample(i: int, *, body: str | None = None) -> Result:
    """A realistic result: redacted headers, a JSON body (changing unless given), conditions,
    every fifth one a failure, a workflow with steps every seventh."""
    code = ResultCode.HTTP_SERVER_ERROR if i % 5 == 4 else ResultCode.COMPLETE
    text = body or json.dumps({"orders": [{"id": i * 7919 % 10007, "total": i / 3}], "n": i})
    fields: dict[str, Any] = {
        "request": RequestRecord(
            method="GET", url=f"https://api.example.com/o?p={i}", headers={"Authorization": "••••"}
        ),
        "response": ResponseRecord(
            headers={"Content-Type": "application/json", "X-Id": f"{i:032x}"}, body=text
        ),
        "conditions": [ConditionResult(source="status", op="eq", expected=200, actual=200)],
    }
    if i % 7 == 6:
        steps = [make_result(f"s{i}-{j}", name=f"step-{j}", **fields) for j in range(2)]
        return make_result(f"r{i:05d}", name="flow", kind="workflow", steps=steps)
    return make_result(
        f"r{i:05d}",
        name=f"target-{i % 3}",
        code=code,
        started_at=START + timedelta(seconds=i),
        total_ms=100 + i % 17,
        **fields,
    )


async def _all(store: SqliteStore) -> dict[str, Result]:
    found: dict[str, Result] = {}
    cursor = None
    while True:
        page = await store.list_results(limit=1000, cursor=cursor)
        found.update((r.id, r) for r in page.results)
        if not page.next_cursor:
            return found
        cursor = page.next_cursor


async def test_old_and_new_encodings_read_back_identical(open_any_store: OpenStore) -> None:
    """Rows written in schema 1's encoding (zlib JSON) and the same results written now read back
    identical, before and after `recode` rewrites the old rows (training the first dictionary)."""
    results = [sample(i) for i in range(300)]
    store = await open_any_store()
    # Schema 1's rows, as the released apimd wrote them.
    async with store.db.transaction() as conn:
        ids = await target_ids(conn, [r.name for r in results])
        await insert_rows(
            conn,
            [
                result_row(r, zlib.compress(r.model_dump_json().encode(), 6), ids[r.name])
                for r in results
            ],
        )
        await conn.execute("DELETE FROM meta WHERE key = 'results_recoded'")
    assert await _all(store) == {r.id: r for r in results}
    await store.close()

    store = await open_any_store()  # opening rewrites the old rows
    rows = await store.db.fetchall("SELECT doc FROM results")
    assert all(bytes(row[0])[0] <= 0x03 for row in rows)  # zstd frames, lean (schema 8)
    dicts = await store.db.fetchall("SELECT id FROM result_dicts")
    assert [int(row[0]) for row in dicts] == [1]
    assert await _all(store) == {r.id: r for r in results}
    # The same results written in the new encoding read back the same too.
    async with store.db.transaction() as conn:
        await conn.execute("DELETE FROM results")
    assert await store.add_results(results) == len(results)
    assert await _all(store) == {r.id: r for r in results}
    for result in results[:5]:
        assert await store.get_result(result.id) == result


async def test_unchanged_pass_bodies_are_stored_once_per_target(open_any_store: OpenStore) -> None:
    store = await open_any_store()
    same = json.dumps({"status": "ok", "items": list(range(200))})
    results = [sample(i, body=same) for i in range(60)]
    await store.add_results(results[:30])
    for result in results[30:]:
        await store.add_result(result)
    bodies = await store.db.fetchall("SELECT hash FROM result_bodies")
    assert len(bodies) == 3  # one per target (targets 0, 1, 2; the workflow's steps stay inline)
    assert await _all(store) == {r.id: r for r in results}
    await store.close()
    store = await open_any_store()  # a new process reads the bodies from the store
    assert await _all(store) == {r.id: r for r in results}
    # Pruning drops the bodies no remaining result refers to.
    await store.prune_results(START + timedelta(days=1))
    assert await store.db.fetchall("SELECT hash FROM result_bodies") == []


async def test_a_page_reads_back_when_it_refers_to_more_bodies_than_the_cache_holds(
    open_any_store: OpenStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found by the 10,000-monitor daemon bench: a page of 1,000 results referring to more
    bodies than the codec's cache keeps (or a write remembering its own between loading a page's
    bodies and decoding it) failed with "its body is not in the store"."""
    monkeypatch.setattr(codec_module, "_BODY_CACHE", 4)
    store = await open_any_store()
    results = []
    for target in range(12):
        body = json.dumps({"target": target, "ok": True})
        for n in range(2):  # the second result refers to the first one's body
            i = target * 2 + n
            result = sample(i, body=body)
            results.append(result.model_copy(update={"name": f"api-{target}", "steps": []}))
    await store.add_results(results)
    assert len(await store.db.fetchall("SELECT hash FROM result_bodies")) >= 5
    assert await _all(store) == {r.id: r for r in results}
    await store.close()
    store = await open_any_store()  # a new process: every body comes from the store
    assert await _all(store) == {r.id: r for r in results}


async def _first_results(
    open_any_store: OpenStore, monkeypatch: pytest.MonkeyPatch, count: int
) -> tuple[SqliteStore, list[Result]]:
    """A store that trains its first dictionary after 200 results, and `count` results in it."""
    monkeypatch.setattr(codec_module, "TRAIN_AFTER", 200)
    store = await open_any_store()
    first = [sample(i) for i in range(count)]
    await store.add_results(first)
    return store, first


async def test_a_dictionary_is_trained_from_written_results(
    open_any_store: OpenStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, first = await _first_results(open_any_store, monkeypatch, 250)
    await store.results.drain_training()
    assert [int(r[0]) for r in await store.db.fetchall("SELECT id FROM result_dicts")] == [1]
    later = [sample(i) for i in range(250, 300)]
    await store.add_results(later)
    row = await store.db.fetchone("SELECT doc FROM results WHERE id = ?", (encode_id(later[0].id),))
    assert row is not None
    assert frame_dict_id(bytes(row[0])) == 1
    await store.close()
    store = await open_any_store()
    assert await _all(store) == {r.id: r for r in first + later}


async def test_results_written_before_the_first_dictionary_are_compressed_again_with_it(
    open_any_store: OpenStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, first = await _first_results(open_any_store, monkeypatch, 150)  # too few to train
    rows = await store.db.fetchall("SELECT doc FROM results")
    before = sum(len(bytes(row[0])) for row in rows)
    assert {frame_dict_id(bytes(row[0])) for row in rows} == {0}
    later = [sample(i) for i in range(150, 300)]
    await store.add_results(later)  # trains the first dictionary
    rows = await store.db.fetchall("SELECT id, doc FROM results")
    assert {frame_dict_id(bytes(row[1])) for row in rows} == {1}
    first_ids = {encode_id(r.id) for r in first}
    after = sum(len(bytes(row[1])) for row in rows if bytes(row[0]) in first_ids)
    assert after < before * 0.8
    assert await _all(store) == {r.id: r for r in first + later}
    await store.close()
    store = await open_any_store()
    assert await _all(store) == {r.id: r for r in first + later}


async def test_the_room_the_first_results_freed_is_used_again(
    open_test_store: OpenStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Compressed again with the first dictionary, the first results take a fraction of their
    room, and SQLite does not keep the rest unused in their pages (rewriting each doc in place
    did: results are appended, so nothing else sorts into those pages): the rows are written
    back packed, and the pages they freed are used by the next results."""
    monkeypatch.setattr(codec_module, "TRAIN_AFTER", 200)
    store = await open_test_store()
    first = [sample(i) for i in range(210)]
    await store.add_results(first[:150])
    size = "SELECT SUM(LENGTH(doc)) FROM results"
    before = (await store.db.fetchall(size))[0][0]
    await store.add_results(first[150:])  # trains the first dictionary, compresses all again
    after = (await store.db.fetchall(size))[0][0]
    assert after < before / 2
    unused = await store.db.fetchall("SELECT SUM(unused) FROM dbstat WHERE name = 'results'")
    assert unused[0][0] < (before - after) / 2
    later = [sample(i) for i in range(210, 1500)]
    for start in range(0, len(later), 50):
        await store.add_results(later[start : start + 50])
    free = await store.db.fetchall(
        "SELECT freelist_count * page_size FROM pragma_freelist_count, pragma_page_size"
    )
    assert free[0][0] < (before - after) / 4
    assert await _all(store) == {r.id: r for r in first + later}
    await store.close()


async def test_bodies_stored_after_a_dictionary_was_trained_read_back_in_a_new_process(
    open_any_store: OpenStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A daemon killed and restarted must read the bodies it stored with its trained dictionary.
    monkeypatch.setattr(codec_module, "TRAIN_AFTER", 200)
    store = await open_any_store()
    await store.add_results([sample(i) for i in range(250)])
    await store.results.drain_training()
    same = json.dumps({"status": "ok", "items": list(range(200))})
    later = [sample(i, body=same) for i in range(250, 310)]
    await store.add_results(later)
    await store.close()
    store = await open_any_store()
    found = await _all(store)
    assert all(found[r.id] == r for r in later)
    await store.close()


async def test_whole_zstd_frames_of_schema_7_and_lean_frames_read_back_identical(
    open_any_store: OpenStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Docs and bodies written before schema 8 are whole zstd frames (magic number, content
    size) with the store's dictionary; they stay readable beside the lean frames written now,
    which are ~5 bytes shorter; a cut lean frame is refused as corrupt, not read short."""
    same = json.dumps({"status": "ok", "items": list(range(200))})
    store, first = await _first_results(open_any_store, monkeypatch, 250)
    later = [sample(i, body=same if i % 2 else None) for i in range(250, 400)]
    await store.add_results(later)
    data = zstandard.ZstdCompressionDict(
        bytes((await store.db.fetchall("SELECT dict FROM result_dicts WHERE id = 1"))[0][0])
    )
    whole = zstandard.ZstdCompressor(level=3, dict_data=data)  # as schema 7 wrote
    lean = [
        (bytes(row[0]), bytes(row[1]))
        for row in await store.db.fetchall("SELECT id, doc FROM results")
    ]
    bodies = [
        (bytes(row[0]), bytes(row[1]))
        for row in await store.db.fetchall("SELECT hash, body FROM result_bodies")
    ]
    assert bodies and all(body[0] <= 0x03 for _, body in bodies)
    codec = store.results.codec
    rewritten = [(whole.compress(codec.payload(doc, "")), key) for key, doc in lean]
    assert {frame_dict_id(doc) for doc, _ in rewritten} == {1}
    saved = sum(len(doc) for doc, _ in rewritten) - sum(len(doc) for _, doc in lean)
    assert saved >= 4.9 * len(lean)  # 4 to 6 bytes each (the content size took 1 to 2)
    async with store.db.transaction() as conn:
        await conn.executemany("UPDATE results SET doc = ? WHERE id = ?", rewritten[::2])
        await conn.executemany(
            "UPDATE result_bodies SET body = ? WHERE hash = ?",
            [(whole.compress(codec.payload(body, "")), digest) for digest, body in bodies],
        )
    await store.close()
    store = await open_any_store()  # a new process: nothing cached
    assert await _all(store) == {r.id: r for r in first + later}
    key, doc = lean[1]
    async with store.db.transaction() as conn:
        await conn.execute("UPDATE results SET doc = ? WHERE id = ?", (doc[:-3], key))
    with pytest.raises(CorruptRecord):
        await store.get_result(decode_id(key))
    await store.close()


async def test_a_total_time_in_whole_microseconds_is_kept_in_the_row_only(
    open_any_store: OpenStore,
) -> None:
    """The engine's totals are whole microseconds: the row's `total_us` gives them back, and
    the doc leaves them out; any other total stays in the doc. Both read back identical."""
    store = await open_any_store()
    whole = sample(1).model_copy(update={"timings_ms": Timings(dns=1.5, total=256.05)})
    finer = make_result("finer", total_ms=0.1234567)
    body_ref = [sample(2, body="same"), sample(5, body="same")]  # the second refers to its body
    results = [whole, finer, *body_ref]
    assert await store.add_results(results) == len(results)
    for result in results:
        assert await store.get_result(result.id) == result
        row = await store.db.fetchone(
            "SELECT doc FROM results WHERE id = ?", (encode_id(result.id),)
        )
        assert row is not None
        payload = store.results.codec.payload(bytes(row[0]), result.id)
        assert (b'"total":' in payload) == (result is finer)
    assert await _all(store) == {r.id: r for r in results}


async def test_a_body_written_again_after_a_dictionary_and_a_prune_reads_back(
    open_any_store: OpenStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A body that stays the same is compressed once and written again by later batches (its
    `last_used`): stored again after a prune dropped it, it is compressed with the dictionary
    trained meanwhile, and every result reads back."""
    monkeypatch.setattr(codec_module, "TRAIN_AFTER", 200)
    store = await open_any_store()
    same = json.dumps({"status": "ok", "items": list(range(100))})

    def on_api(i: int) -> Result:
        return sample(i, body=same).model_copy(update={"name": "api", "steps": []})

    await store.add_results([on_api(0), on_api(3)])  # the second refers to the body
    await store.add_result(on_api(8))
    calls = [r for r in map(sample, range(1000, 1240)) if r.kind == "call"]
    assert len(calls) >= 200
    await store.add_results(calls)  # trains the first dictionary
    bodies = await store.db.fetchall("SELECT body FROM result_bodies")
    assert {frame_dict_id(bytes(row[0])) for row in bodies} == {0}
    assert await store.prune_results(START + timedelta(seconds=500)) == 3
    assert await store.db.fetchall("SELECT body FROM result_bodies") == []
    later = [on_api(2000), on_api(2003)]
    await store.add_results(later)
    bodies = await store.db.fetchall("SELECT body FROM result_bodies")
    assert {frame_dict_id(bytes(row[0])) for row in bodies} == {1}
    expected = {r.id: r for r in calls + later}
    assert await _all(store) == expected
    await store.close()
    store = await open_any_store()  # a new process reads the body from the store
    assert await _all(store) == expected
