"""Results history: body cap, newest-first cursor pages, retention, rollups and statistics."""

from __future__ import annotations

import asyncio
import math
import random
from datetime import UTC, datetime, timedelta

import pytest

from apimd.model.outcome import Outcome, ResultCode
from apimd.model.result import RequestRecord, ResponseRecord, Result
from apimd.store import BODY_LIMIT, InvalidCursor, SqliteStore
from apimd.store.histogram import (
    BUCKET_BOUNDS_MS,
    BUCKET_RATIO,
    bucket_of,
    bucket_range,
    percentile,
    percentiles,
)
from apimd.store.results import PART, latest_including_steps
from tests.store.conftest import make_result

T0 = datetime(2026, 3, 1, 0, 0, tzinfo=UTC)


async def test_bodies_are_capped_at_64_kib(store: SqliteStore) -> None:
    big = "é" * BODY_LIMIT  # 2 bytes each in UTF-8
    result = make_result(
        "r-1",
        request=RequestRecord(method="POST", url="https://x", body=big),
        response=ResponseRecord(body=big),
        steps=[make_result("s-1", response=ResponseRecord(body="x" * (BODY_LIMIT + 1)))],
    )
    await store.add_result(result)
    stored = await store.get_result("r-1")
    assert stored is not None and stored.response and stored.request
    assert stored.response.body_truncated
    assert len((stored.response.body or "").encode()) == BODY_LIMIT
    assert len((stored.request.body or "").encode()) == BODY_LIMIT
    step = stored.steps[0].response
    assert step is not None and step.body == "x" * BODY_LIMIT
    assert step.body_truncated
    small = make_result("r-2", response=ResponseRecord(body="é" * 100))
    await store.add_result(small)
    assert await store.get_result("r-2") == small


async def test_pages_are_newest_first_and_cover_everything_once(store: SqliteStore) -> None:
    results = [
        make_result(f"r-{i:03}", name=f"t{i % 3}", started_at=T0 + timedelta(minutes=i // 2))
        for i in range(45)
    ]
    shuffled = results[:]
    random.Random(7).shuffle(shuffled)
    await store.add_results(shuffled[:20])
    for result in shuffled[20:]:
        await store.add_result(result)
    seen = []
    cursor = None
    while True:
        page = await store.list_results(limit=10, cursor=cursor)
        seen += page.results
        cursor = page.next_cursor
        if cursor is None:
            break
    assert len(seen) == 45
    assert len({r.id for r in seen}) == 45
    starts = [r.started_at for r in seen]
    assert starts == sorted(starts, reverse=True)
    named = await store.list_results(name="t1", limit=100)
    assert {r.name for r in named.results} == {"t1"}
    assert len(named.results) == 15
    assert named.next_cursor is None
    window = await store.list_results(
        since=T0 + timedelta(minutes=5), until=T0 + timedelta(minutes=7)
    )
    assert {r.started_at for r in window.results} == {T0 + timedelta(minutes=m) for m in (5, 6)}


async def test_filter_by_outcome(store: SqliteStore) -> None:
    await store.add_results(
        [
            make_result("a", code=ResultCode.COMPLETE),
            make_result("b", code=ResultCode.TIMEOUT),
            make_result("c", code=ResultCode.SLA_ERROR),
        ]
    )
    page = await store.list_results(outcome="fail")
    assert sorted(r.id for r in page.results) == ["b", "c"]


async def test_an_invalid_cursor_is_a_clear_error(store: SqliteStore) -> None:
    with pytest.raises(InvalidCursor):
        await store.list_results(cursor="not-a-cursor!")


async def test_a_result_stored_twice_counts_once(store: SqliteStore) -> None:
    result = make_result("r-1")
    await store.add_result(result)
    await store.add_result(result)
    assert await store.add_results([result, make_result("r-2"), make_result("r-2")]) == 1
    stats = await store.stats("list-orders", T0, T0 + timedelta(days=30))
    assert stats.total == 2


async def test_latest_result_per_target(store: SqliteStore) -> None:
    await store.add_results(
        [
            make_result("a1", name="a", started_at=T0),
            make_result("a2", name="a", started_at=T0 + timedelta(minutes=1)),
            make_result("b1", name="b", started_at=T0),
        ]
    )
    latest = await store.latest_results()
    assert {name: r.id for name, r in latest.items()} == {"a": "a2", "b": "b1"}
    only = await store.latest_results(["a", "never-ran"])
    assert {name: r.id for name, r in only.items()} == {"a": "a2"}


async def test_pruning_results_keeps_the_rollups(store: SqliteStore) -> None:
    old = [make_result(f"old-{i}", started_at=T0 + timedelta(hours=i)) for i in range(6)]
    new = [make_result(f"new-{i}", started_at=T0 + timedelta(days=40, hours=i)) for i in range(3)]
    await store.add_results(old + new)
    before = await store.stats("list-orders", T0, T0 + timedelta(days=50))
    deleted = await store.prune_results(T0 + timedelta(days=30))
    assert deleted == 6
    remaining = await store.list_results()
    assert sorted(r.id for r in remaining.results) == [f"new-{i}" for i in range(3)]
    assert await store.stats("list-orders", T0, T0 + timedelta(days=50)) == before
    assert before.total == 9


async def test_prune_in_batches(store: SqliteStore) -> None:
    await store.add_results([make_result(f"r-{i}", started_at=T0) for i in range(25)])
    assert await store.results.prune(T0 + timedelta(seconds=1), batch=10) == 25
    assert (await store.list_results()).results == []


def nearest_rank(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


async def test_statistics_match_a_reference_within_bucket_precision(store: SqliteStore) -> None:
    rng = random.Random(2026)
    latencies: list[float] = []
    results = []
    codes = (
        [ResultCode.COMPLETE] * 90
        + [ResultCode.HTTP_SERVER_ERROR] * 6
        + [ResultCode.NEEDS_SIGN_IN] * 4
    )
    for i in range(3000):
        code = codes[i % len(codes)]
        latency = rng.lognormvariate(math.log(180), 0.6)
        hour = i % 48
        if code is not ResultCode.NEEDS_SIGN_IN:
            latencies.append(latency)
        results.append(
            make_result(
                f"r-{i}",
                code=code,
                total_ms=latency,
                started_at=T0 + timedelta(hours=hour, seconds=i % 3600),
            )
        )
    await store.add_results(results[:1000])
    for result in results[1000:1100]:
        await store.add_result(result)
    await store.add_results(results[1100:])
    stats = await store.stats("list-orders", T0, T0 + timedelta(days=2))
    assert stats.total == 3000
    assert stats.counts[Outcome.PASS] == 2700
    assert stats.counts[Outcome.FAIL] == 180
    assert stats.counts[Outcome.SKIPPED] == 120
    assert stats.uptime == pytest.approx(2700 / 2880)
    summary = stats.latency
    assert summary.count == len(latencies)
    assert summary.min_ms == pytest.approx(min(latencies))
    assert summary.max_ms == pytest.approx(max(latencies))
    assert summary.mean_ms == pytest.approx(sum(latencies) / len(latencies))
    for q, estimate in ((0.5, summary.p50_ms), (0.95, summary.p95_ms), (0.99, summary.p99_ms)):
        reference = nearest_rank(latencies, q)
        assert estimate is not None, q
        assert reference / BUCKET_RATIO <= estimate <= reference * BUCKET_RATIO, (
            q,
            estimate,
            reference,
        )
        lower, upper = bucket_range(bucket_of(reference))
        assert lower <= estimate <= upper
    assert len(stats.series) == 48
    assert [p.start for p in stats.series] == [T0 + timedelta(hours=h) for h in range(48)]
    assert sum(p.counts[Outcome.PASS] for p in stats.series) == 2700
    # Any window merges: the two days' sums equal the whole.
    day1 = await store.stats("list-orders", T0, T0 + timedelta(days=1))
    day2 = await store.stats("list-orders", T0 + timedelta(days=1), T0 + timedelta(days=2))
    assert day1.total + day2.total == 3000
    assert day1.latency.count + day2.latency.count == summary.count


async def test_statistics_of_a_window_without_results(store: SqliteStore) -> None:
    stats = await store.stats("nothing", T0, T0 + timedelta(hours=5))
    assert stats.total == 0
    assert stats.uptime is None
    assert stats.latency.p50_ms is None
    assert stats.series == []


async def test_skipped_results_count_neither_way_for_uptime(store: SqliteStore) -> None:
    await store.add_results(
        [
            make_result("a", code=ResultCode.NEEDS_SIGN_IN),
            make_result("b", code=ResultCode.CANCELLED),
            make_result("c", code=ResultCode.SLA_WARNING),
            make_result("d", code=ResultCode.AUTH_ERROR),
        ]
    )
    stats = await store.stats("list-orders", T0, T0 + timedelta(hours=24))
    assert stats.uptime == 0.5
    assert stats.latency.count == 2


def test_bucket_bounds_are_fixed() -> None:
    """Rollups are kept forever: changing the bounds would misread every stored histogram."""
    assert len(BUCKET_BOUNDS_MS) == 111
    assert BUCKET_BOUNDS_MS[:4] == (1.0, 1.122, 1.259, 1.413)
    assert BUCKET_BOUNDS_MS[20] == 10.0
    assert BUCKET_BOUNDS_MS[-1] == 316200.0
    assert bucket_of(0) == 0
    assert bucket_of(1.0) == 1
    assert bucket_of(10**7) == 111


def test_percentiles_of_small_histograms() -> None:
    one = {bucket_of(100.0): 1}
    assert percentiles(one, (0.5, 0.99), minimum=100.0, maximum=100.0) == [100.0, 100.0]
    # 9 × 10 ms and 1 × 1 s: p50 within the 10 ms bucket, p99 and p100 at the top.
    counts = {bucket_of(10.0): 9, bucket_of(1000.0): 1}
    p50, p99, p100 = percentiles(counts, (0.5, 0.99, 1.0), minimum=10.0, maximum=1000.0)
    assert p50 is not None and 10.0 <= p50 < 10.0 * BUCKET_RATIO
    assert p99 is not None and 1000.0 / BUCKET_RATIO <= p99 <= 1000.0
    assert p100 == 1000.0
    assert percentile({}, 0.5, minimum=0, maximum=0) is None


async def test_the_window_starts_at_the_hour_holding_since(store: SqliteStore) -> None:
    await store.add_result(make_result("a", started_at=T0 + timedelta(minutes=10)))
    stats = await store.stats("list-orders", T0 + timedelta(minutes=30), T0 + timedelta(hours=2))
    assert stats.since == T0
    assert stats.total == 1


async def test_a_calls_runs_as_a_step_are_listed_by_its_name_marked_with_the_workflow(
    store: SqliteStore,
) -> None:
    def flow(result_id: str, minute: int, code: ResultCode) -> Result:
        step = make_result(f"{result_id}-s", name="get-token", code=code)
        other = make_result(f"{result_id}-o", name="list-orders")
        return make_result(
            result_id,
            name="login",
            kind="workflow",
            code=code,
            started_at=T0 + timedelta(minutes=minute),
            steps=[step, other],
        )

    await store.add_results(
        [
            flow("w1", 1, ResultCode.COMPLETE),
            flow("w2", 3, ResultCode.HTTP_SERVER_ERROR),
            make_result("own", name="get-token", started_at=T0 + timedelta(minutes=2)),
            make_result("unrelated", name="other-flow", kind="workflow", started_at=T0),
        ]
    )
    # Without its workflows the step's name finds only its own runs, as before.
    assert [r.id for r in (await store.list_results(name="get-token")).results] == ["own"]
    page = await store.list_results(name="get-token", parents=["login", "other-flow"])
    assert [(r.id, r.name, r.workflow) for r in page.results] == [
        ("w2-s", "get-token", "login"),
        ("own", "get-token", None),
        ("w1-s", "get-token", "login"),
    ]
    failed = await store.list_results(name="get-token", parents=["login"], outcome="fail")
    assert [r.id for r in failed.results] == ["w2-s"]


async def test_a_step_listed_by_its_name_says_where_its_workflow_ran(store: SqliteStore) -> None:
    """The results screen's `where` column: a step is recorded inside its workflow's result,
    which alone carries the location and agent; listed on its own it showed `-/-` (and, beside
    the agent's own results, made one daemon look like several places)."""
    store.origin = ("eu-west", "agent-1")
    step = make_result("w-s", name="get-token")
    await store.add_result(
        make_result("w", name="login", kind="workflow", started_at=T0, steps=[step])
    )
    page = await store.list_results(name="get-token", parents=["login"])
    assert [(r.id, r.location, r.agent) for r in page.results] == [("w-s", "eu-west", "agent-1")]
    parent = (await store.latest_results(["login"]))["login"]
    latest = latest_including_steps("get-token", None, [parent])
    assert latest is not None and (latest.location, latest.agent) == ("eu-west", "agent-1")


async def test_concurrent_batches_sharing_bodies_wait_for_each_other_not_deadlock(
    store: SqliteStore,
) -> None:
    """Batches written at once (agents sharing a PostgreSQL store, or one daemon's scheduled
    results beside a workflow's) store the same bodies (a target's body answered again is
    stored once, by hash) starting from different targets: each batch locked the body rows in
    the order it met them, and PostgreSQL found a deadlock (StoreUnavailable) and lost a batch."""
    targets = [f"target-{index}" for index in range(8)]
    seq = iter(range(10**6))

    def batch(first: int) -> list[Result]:
        return [
            make_result(
                f"b-{next(seq):06d}",
                name=targets[(first + index) % len(targets)],
                started_at=T0 + timedelta(seconds=index),
                response=ResponseRecord(body='{"same": "body"}'),
            )
            for index in range(48)
        ]

    await store.add_results(batch(0))  # every target's body seen: the batches below refer to it
    for _ in range(6):
        batches = [batch(first) for first in range(len(targets))]
        counts = await asyncio.gather(*(store.add_results(b) for b in batches))
        assert counts == [48] * len(batches)

    total = 48 * (1 + 6 * len(targets))
    row = await store.db.fetchone("SELECT COUNT(*) FROM results")
    assert row is not None and int(row[0]) == total
    for target in targets:
        stats = await store.stats(target, T0, T0 + timedelta(days=1))
        assert stats.total == total // len(targets)


async def test_batches_meeting_the_same_bodies_in_other_parts_do_not_deadlock(
    store: SqliteStore,
) -> None:
    """A batch is written a part (`PART` results) at a time: two batches storing the same bodies,
    one in its first part what the other has in its second, locked them part by part in opposite
    orders (PostgreSQL: deadlock detected). Their bodies are written after the last part."""
    low, high = ["a", "b", "c", "d"], ["e", "f", "g", "h"]
    seq = iter(range(10**6))

    def part(names: list[str]) -> list[Result]:
        return [
            make_result(
                f"p-{next(seq):06d}",
                name=names[index % len(names)],
                started_at=T0 + timedelta(seconds=index),
                response=ResponseRecord(body='{"same": "body"}'),
            )
            for index in range(PART)
        ]

    first = part(low + high)
    await store.add_results(first)  # every body seen: the batches below refer to it
    for _ in range(4):
        both = [part(low) + part(high), part(high) + part(low)]
        assert await asyncio.gather(*(store.add_results(b) for b in both)) == [2 * PART] * 2

    for name in low + high:
        stats = await store.stats(name, T0, T0 + timedelta(days=1))
        assert stats.total == sum(r.name == name for r in first) + 4 * 2 * PART // 4
