"""`stats()` reads each hour's percentiles from its histogram rows as ascending columns
(`sorted_percentiles`) instead of folding every bucket row into a dict: the answers must be the
same as before, on both stores. The reference below is the former fold, over the same tables."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from apimd.model.outcome import Outcome, ResultCode
from apimd.model.result import Result
from apimd.model.stats import Latency, Stats, StatsPoint
from apimd.store import SqliteStore
from apimd.store.histogram import bucket_of, percentiles
from apimd.store.timestamps import from_us, hour_floor_us, to_us
from tests.store.conftest import make_result

T0 = datetime(2026, 3, 1, 0, 0, tzinfo=UTC)
OUTCOMES = (Outcome.PASS, Outcome.SLOW, Outcome.WARNING, Outcome.SKIPPED, Outcome.FAIL)
CODES = [ResultCode.COMPLETE] * 6 + [
    ResultCode.SLOW_COMPLETE,
    ResultCode.SLA_WARNING,
    ResultCode.TIMEOUT,
    ResultCode.CANCELLED,
]


def _latency(
    count: int, total: float, low: float | None, high: float | None, buckets: Counter[int]
) -> Latency:
    if count == 0 or low is None or high is None:
        return Latency()
    p50, p95, p99 = percentiles(buckets, (0.50, 0.95, 0.99), minimum=low, maximum=high)
    return Latency(
        count=count,
        min_ms=low,
        max_ms=high,
        mean_ms=total / count,
        p50_ms=p50,
        p95_ms=p95,
        p99_ms=p99,
    )


async def reference_stats(store: SqliteStore, name: str, since: datetime, until: datetime) -> Stats:
    """Stats as `query_stats` computed them before: every bucket row folded into a Counter per
    hour and for the window, percentiles walked bucket by bucket."""
    low, high = hour_floor_us(to_us(since)), to_us(until)
    where = (name, low, high)
    rows = await store.db.fetchall(
        "SELECT hour, n_pass, n_slow, n_warning, n_skipped, n_fail, n_maintenance, lat_count,"
        " lat_sum, lat_min, lat_max FROM rollups WHERE name = ? AND hour >= ? AND hour < ?"
        " ORDER BY hour",
        where,
    )
    per_hour: dict[int, Counter[int]] = {}
    window_buckets: Counter[int] = Counter()
    for row in await store.db.fetchall(
        "SELECT hour, bucket, count FROM rollup_buckets WHERE name = ? AND hour >= ? AND hour < ?",
        where,
    ):
        per_hour.setdefault(row[0], Counter())[row[1]] = row[2]
        window_buckets[row[1]] += row[2]
    counts: Counter[Outcome] = Counter()
    maintenance = lat_count = 0
    lat_sum = 0.0
    lat_min: float | None = None
    lat_max: float | None = None
    series = []
    for row in rows:
        hour_counts = dict(zip(OUTCOMES, (int(row[i]) for i in range(1, 6)), strict=True))
        counts.update(hour_counts)
        maintenance += int(row[6])
        lat_count += int(row[7])
        lat_sum += float(row[8])
        if row[9] is not None:
            lat_min = row[9] if lat_min is None else min(lat_min, row[9])
            lat_max = row[10] if lat_max is None else max(lat_max, row[10])
        counted = sum(v for o, v in hour_counts.items() if o is not Outcome.SKIPPED)
        series.append(
            StatsPoint(
                start=from_us(row[0]),
                counts=hour_counts,
                maintenance=int(row[6]),
                uptime=None if counted == 0 else 1 - hour_counts[Outcome.FAIL] / counted,
                latency=_latency(
                    int(row[7]), float(row[8]), row[9], row[10], per_hour.get(row[0], Counter())
                ),
            )
        )
    counted = sum(v for o, v in counts.items() if o is not Outcome.SKIPPED)
    return Stats(
        name=name,
        since=from_us(low),
        until=from_us(high),
        total=sum(counts.values()),
        counts={o: counts[o] for o in OUTCOMES},
        maintenance=maintenance,
        uptime=None if counted == 0 else 1 - counts[Outcome.FAIL] / counted,
        latency=_latency(lat_count, lat_sum, lat_min, lat_max, window_buckets),
        series=series,
    )


async def test_stats_are_the_same_as_the_bucket_by_bucket_fold(store: SqliteStore) -> None:
    """Hours of every shape: many results over a wide spread, exactly 20 and 100 results (q·n
    lands on a whole rank), one result, all in one bucket, only SKIPPED, only in maintenance,
    latencies below 1 ms and above the last bound; on SQLite and PostgreSQL."""
    rng = random.Random(7)
    results: list[Result] = []

    def add(hour: int, latencies: list[float], **fields: object) -> None:
        for i, ms in enumerate(latencies):
            results.append(
                make_result(
                    f"h{hour}-{len(results)}",
                    started_at=T0 + timedelta(hours=hour, seconds=i),
                    code=fields.get("code", CODES[len(results) % len(CODES)]),  # type: ignore[arg-type]
                    total_ms=ms,
                    maintenance=bool(fields.get("maintenance", False)),
                )
            )

    for hour in range(30):
        add(hour, [rng.lognormvariate(5.2, 0.9) for _ in range(rng.randrange(30, 300))])
    add(30, [float(k) for k in range(1, 21)], code=ResultCode.COMPLETE)
    add(31, [rng.choice([3.0, 50.0, 900.0]) for _ in range(100)], code=ResultCode.COMPLETE)
    add(32, [42.0])
    add(33, [120.0] * 17, code=ResultCode.COMPLETE)
    add(34, [80.0] * 5, code=ResultCode.CANCELLED)
    add(35, [80.0] * 5, maintenance=True)
    add(36, [0.2, 0.5, 400_000.0, 900_000.0], code=ResultCode.COMPLETE)
    add(37, [7.5] * 3 + [7000.0], code=ResultCode.TIMEOUT)
    rng.shuffle(results)
    for start in range(0, len(results), 500):
        await store.add_results(results[start : start + 500])

    for since, until in [
        (T0, T0 + timedelta(hours=40)),  # everything
        (T0 + timedelta(hours=29, minutes=30), T0 + timedelta(hours=37)),  # from mid-hour
        (T0 + timedelta(hours=32), T0 + timedelta(hours=33)),  # one result
        (T0 + timedelta(hours=34), T0 + timedelta(hours=36)),  # skipped and maintenance only
        (T0 + timedelta(days=5), T0 + timedelta(days=6)),  # nothing
    ]:
        got = await store.stats("list-orders", since, until)
        want = await reference_stats(store, "list-orders", since, until)
        assert got.model_dump() == want.model_dump(), (since, until)
    everything = await store.stats("list-orders", T0, T0 + timedelta(hours=40))
    assert len(everything.series) == 38
    assert everything.total == len(results) - 5  # the maintenance hour counts apart
    assert everything.latency.p99_ms is not None


async def test_a_histogram_row_no_write_makes_is_left_out(store: SqliteStore) -> None:
    """A bucket out of range or a count below one (the database edited by hand) raised an
    IndexError, a 500 on every statistics request of the target; now such a row is left out."""
    results = [
        make_result(f"r{i}", started_at=T0 + timedelta(seconds=i), total_ms=10.0 + i)
        for i in range(20)
    ]
    await store.add_results(results)
    until = T0 + timedelta(hours=1)
    before = await store.stats(results[0].name, T0, until)
    hour = hour_floor_us(to_us(T0))
    async with store.db.transaction() as conn:
        await conn.executemany(
            "INSERT INTO rollup_buckets (name, hour, bucket, count) VALUES (?, ?, ?, ?)",
            [
                (results[0].name, hour, 500, 3),
                (results[0].name, hour, -1, 2),
                (results[0].name, hour, 90, -4),
            ],
        )
    assert await store.stats(results[0].name, T0, until) == before


@dataclass
class _Rollup:
    counts: list[int] = field(default_factory=lambda: [0] * len(OUTCOMES))
    maintenance: int = 0
    latencies: list[float] = field(default_factory=list)


async def test_rollups_of_a_batch_written_in_parts_count_each_new_result_once(
    store: SqliteStore,
) -> None:
    """`add_results` gathers rollups part by part (SQLite: in its thread, while the next part is
    encoded): the stored rollups are those of every new result counted one by one, whatever part
    it came in, with results already stored (again in a later batch) left out."""
    rng = random.Random(11)
    results = [
        make_result(
            f"p-{i}",
            name=f"api-{i % 3}",
            started_at=T0 + timedelta(minutes=rng.randrange(0, 240)),
            code=CODES[i % len(CODES)],
            total_ms=rng.choice([0.0, round(rng.lognormvariate(5, 1), 3)]),
            maintenance=i % 13 == 0,
        )
        for i in range(450)
    ]
    await store.add_results(results[:300])
    await store.add_results(results[200:])  # 100 again, in the middle of the batch's parts
    want: dict[tuple[str, int], _Rollup] = {}
    buckets: Counter[tuple[str, int, int]] = Counter()
    for result in results:
        key = (result.name, hour_floor_us(to_us(result.started_at)))
        hour = want.setdefault(key, _Rollup())
        if result.maintenance:
            hour.maintenance += 1
            continue
        hour.counts[OUTCOMES.index(result.outcome)] += 1
        ms = result.timings_ms.total
        if result.outcome is not Outcome.SKIPPED and ms > 0:
            hour.latencies.append(ms)
            buckets[(*key, bucket_of(ms))] += 1
    rows = await store.db.fetchall(
        "SELECT name, hour, n_pass, n_slow, n_warning, n_skipped, n_fail, n_maintenance,"
        " lat_count, lat_sum, lat_min, lat_max FROM rollups"
    )
    got = {(str(r[0]), int(r[1])): tuple(r[i] for i in range(2, 12)) for r in rows}
    assert got.keys() == want.keys()
    for key, hour in want.items():
        lat = hour.latencies
        low, high = (min(lat), max(lat)) if lat else (None, None)
        assert got[key] == (
            *hour.counts,
            hour.maintenance,
            len(lat),
            pytest.approx(sum(lat)),  # two batches: two sums, added
            low,
            high,
        ), key
    stored = await store.db.fetchall("SELECT name, hour, bucket, count FROM rollup_buckets")
    assert Counter({(str(r[0]), int(r[1]), int(r[2])): int(r[3]) for r in stored}) == buckets
