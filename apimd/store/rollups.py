"""Hourly rollups per run target: counts per outcome and a fixed-bucket latency histogram, updated
in the transaction that stores each result and kept after raw results are pruned."""

from __future__ import annotations

from bisect import bisect_right
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any, cast

from apimd.model.outcome import Outcome
from apimd.model.result import Result
from apimd.model.stats import Latency, Stats, StatsPoint
from apimd.store.histogram import (
    BUCKET_BOUNDS_MS,
    BUCKET_COUNT,
    percentiles,
    sorted_percentiles,
)
from apimd.store.sql import Connection, Database
from apimd.store.timestamps import HOUR_US, from_us, hour_floor_us, to_us

_OUTCOME_COLUMNS = {
    Outcome.PASS: "n_pass",
    Outcome.SLOW: "n_slow",
    Outcome.WARNING: "n_warning",
    Outcome.SKIPPED: "n_skipped",
    Outcome.FAIL: "n_fail",
}
_OUTCOMES = tuple(_OUTCOME_COLUMNS)
_COUNT_COLUMNS = ", ".join(_OUTCOME_COLUMNS.values())
_QUANTILES = (0.50, 0.95, 0.99)

_UPSERT_ROLLUP = f"""
    INSERT INTO rollups (name, hour, {_COUNT_COLUMNS}, n_maintenance, lat_count, lat_sum,
                         lat_min, lat_max)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (name, hour) DO UPDATE SET
        {", ".join(f"{c} = rollups.{c} + excluded.{c}" for c in _OUTCOME_COLUMNS.values())},
        n_maintenance = rollups.n_maintenance + excluded.n_maintenance,
        lat_count = rollups.lat_count + excluded.lat_count,
        lat_sum = rollups.lat_sum + excluded.lat_sum,
        lat_min = CASE WHEN rollups.lat_min IS NULL OR excluded.lat_min < rollups.lat_min
                  THEN excluded.lat_min ELSE rollups.lat_min END,
        lat_max = CASE WHEN rollups.lat_max IS NULL OR excluded.lat_max > rollups.lat_max
                  THEN excluded.lat_max ELSE rollups.lat_max END
"""
_UPSERT_BUCKET = """
    INSERT INTO rollup_buckets (name, hour, bucket, count) VALUES (?, ?, ?, ?)
    ON CONFLICT (name, hour, bucket) DO UPDATE SET count = rollup_buckets.count + excluded.count
"""


@dataclass
class _Hour:
    counts: Counter[Outcome] = field(default_factory=Counter)
    maintenance: int = 0  # results inside a maintenance window: counted apart (SPEC §11)
    lat_count: int = 0
    lat_sum: float = 0.0
    lat_min: float | None = None
    lat_max: float | None = None
    buckets: Counter[int] = field(default_factory=Counter)

    def add(
        self,
        counts: dict[Outcome, int],
        maintenance: int,
        lat_count: int,
        lat_sum: float,
        lat_min: float | None,
        lat_max: float | None,
    ) -> None:
        """Add an hour's counts and latency totals (not its buckets)."""
        for outcome, count in counts.items():
            self.counts[outcome] += count
        self.maintenance += int(maintenance)
        self.lat_count += int(lat_count)
        self.lat_sum += float(lat_sum)
        for value in (lat_min, lat_max):
            if value is not None:
                self.lat_min = value if self.lat_min is None else min(self.lat_min, value)
                self.lat_max = value if self.lat_max is None else max(self.lat_max, value)

    def uptime(self) -> float | None:
        counted = sum(self.counts[o] for o in _OUTCOMES if o is not Outcome.SKIPPED)
        return None if counted == 0 else 1 - self.counts[Outcome.FAIL] / counted

    def latency(self) -> Latency:
        if self.lat_count == 0 or self.lat_min is None or self.lat_max is None:
            return Latency.model_construct()
        p50, p95, p99 = percentiles(
            self.buckets, _QUANTILES, minimum=self.lat_min, maximum=self.lat_max
        )
        return Latency.model_construct(
            count=self.lat_count,
            min_ms=self.lat_min,
            max_ms=self.lat_max,
            mean_ms=self.lat_sum / self.lat_count,
            p50_ms=p50,
            p95_ms=p95,
            p99_ms=p99,
        )


def _latency(
    lat_count: int,
    lat_sum: float,
    lat_min: float | None,
    lat_max: float | None,
    buckets: Sequence[int],
    counts: Sequence[int],
) -> Latency:
    """An hour's latency figures (`_Hour.latency`, without building an `_Hour`), its histogram
    given as ascending buckets and their counts."""
    if lat_count == 0 or lat_min is None or lat_max is None:
        return Latency.model_construct()
    p50, p95, p99 = sorted_percentiles(
        buckets, counts, _QUANTILES, minimum=lat_min, maximum=lat_max
    )
    return Latency.model_construct(
        count=int(lat_count),
        min_ms=lat_min,
        max_ms=lat_max,
        mean_ms=float(lat_sum) / lat_count,
        p50_ms=p50,
        p95_ms=p95,
        p99_ms=p99,
    )


@dataclass
class _Gathered:
    """One (target, hour) of a `RollupBatch`: its counts, and its latencies as a list, folded
    into sums, extremes and buckets once, by `RollupBatch.write` (C loops over the list, where a
    method call per result cost a third of the rollups' CPU)."""

    counts: Counter[Outcome] = field(default_factory=Counter)
    maintenance: int = 0  # results inside a maintenance window: counted apart (SPEC §11)
    latencies: list[float] = field(default_factory=list)


class RollupBatch:
    """The rollups of results gathered in memory (`add`: a batch's parts as each is written),
    then written as one upsert per (target, hour) and one per histogram bucket (`write`)."""

    def __init__(self) -> None:
        self._hours: dict[tuple[str, int], _Gathered] = {}
        self.count = 0
        """Results added."""

    def add(self, results: Iterable[tuple[Result, int]]) -> None:
        """Count `results` in their (target, hour) rollups, each given with its start in
        microseconds (`to_us`, as its row holds it)."""
        hours = self._hours
        skipped = Outcome.SKIPPED
        for result, started_us in results:
            key = (result.name, started_us - started_us % HOUR_US)
            hour = hours.get(key)
            if hour is None:  # not `setdefault(key, _Gathered())`: that builds one per result
                hour = hours[key] = _Gathered()
            self.count += 1
            if result.maintenance:
                hour.maintenance += 1
                continue
            outcome = result.outcome
            hour.counts[outcome] += 1
            # The latency a result contributes: its total time, unless it was SKIPPED (it sent
            # nothing, so its time says nothing about the API) or has none.
            if outcome is not skipped:
                total = result.timings_ms.total
                if total > 0:
                    hour.latencies.append(total)

    async def write(self, conn: Connection) -> None:
        """Add the gathered rollups to the stored ones, inside the caller's transaction."""
        if not self._hours:
            return
        # Rows in key order: writers sharing a PostgreSQL store then lock them in one order, so
        # concurrent batches wait for each other instead of deadlocking.
        ordered = sorted(self._hours.items())
        await conn.executemany(
            _UPSERT_ROLLUP,
            [
                (
                    name,
                    hour_us,
                    *(h.counts[o] for o in _OUTCOMES),
                    h.maintenance,
                    len(h.latencies),
                    sum(h.latencies, 0.0),
                    min(h.latencies, default=None),
                    max(h.latencies, default=None),
                )
                for (name, hour_us), h in ordered
            ],
        )
        await conn.executemany(
            _UPSERT_BUCKET,
            [
                (name, hour_us, bucket, count)
                for (name, hour_us), h in ordered
                for bucket, count in sorted(Counter(map(_bucket, h.latencies)).items())
            ],
        )


_bucket = partial(bisect_right, BUCKET_BOUNDS_MS)
"""`bucket_of` for a latency known to be positive (a C call)."""


# Each hour's histogram in one row, its buckets and their counts as comma-separated text: 720 rows
# for 30 days instead of ~20,000, and no Python object per bucket row (those were half the CPU of
# the read, and set the garbage collector off dozens of times per query).
_HISTOGRAMS = {
    "sqlite": "SELECT hour, group_concat(bucket), group_concat(count) FROM rollup_buckets"
    " WHERE name = ? AND hour >= ? AND hour < ? GROUP BY hour",
    "postgresql": "SELECT hour, string_agg(bucket::text, ',' ORDER BY bucket),"
    " string_agg(count::text, ',' ORDER BY bucket) FROM rollup_buckets"
    " WHERE name = ? AND hour >= ? AND hour < ? GROUP BY hour",
}


def _well_formed(buckets: list[int], counts: list[int]) -> bool:
    return buckets[0] >= 0 and buckets[-1] < BUCKET_COUNT and min(counts) > 0


async def query_stats(db: Database, name: str, since: datetime, until: datetime) -> Stats:
    """Statistics of `name` over the hours from the one holding `since` up to `until`.

    Reads only the rollups (one row per hour, and its histogram's non-empty buckets as one row,
    `_HISTOGRAMS`), so its cost grows with the hours in the window, not the results; each hour's
    percentiles are searched in its running counts (`sorted_percentiles`), and the models are built
    from values already checked (`model_construct`): validating them cost a third."""
    low, high = hour_floor_us(to_us(since)), to_us(until)
    where = (name, low, high)
    rows = await db.fetchall(
        f"SELECT hour, {_COUNT_COLUMNS}, n_maintenance, lat_count, lat_sum, lat_min, lat_max"
        " FROM rollups"
        " WHERE name = ? AND hour >= ? AND hour < ? ORDER BY hour",
        where,
    )
    histograms: dict[int, tuple[list[int], list[int]]] = {}
    summed = [0] * BUCKET_COUNT
    histogram_rows = await db.fetchall(_HISTOGRAMS[db.dialect], where)
    for hour_us, bucket_text, count_text in cast("list[tuple[int, str, str]]", histogram_rows):
        buckets = list(map(int, bucket_text.split(",")))
        counts = list(map(int, count_text.split(",")))
        if buckets != sorted(buckets) or not _well_formed(buckets, counts):
            # SQLite's group_concat has no ORDER BY before 3.44: put the pairs in bucket order.
            # A row no write of ours makes (a bucket out of range, a count below one: the file
            # edited by hand) is left out rather than failing every statistics request.
            pairs = sorted(
                (b, c)
                for b, c in zip(buckets, counts, strict=True)
                if 0 <= b < BUCKET_COUNT and c > 0
            )
            buckets, counts = [b for b, _ in pairs], [c for _, c in pairs]
        histograms[hour_us] = (buckets, counts)
        for bucket, count in zip(buckets, counts, strict=True):
            summed[bucket] += count
    window = _Hour(buckets=Counter({b: c for b, c in enumerate(summed) if c}))
    series: list[StatsPoint] = []
    for (
        hour_us,
        n_pass,
        n_slow,
        n_warning,
        n_skipped,
        n_fail,
        n_maintenance,
        lat_count,
        lat_sum,
        lat_min,
        lat_max,
    ) in cast("list[tuple[Any, ...]]", rows):
        counts_of_hour = dict(
            zip(_OUTCOMES, (n_pass, n_slow, n_warning, n_skipped, n_fail), strict=True)
        )
        window.add(counts_of_hour, n_maintenance, lat_count, lat_sum, lat_min, lat_max)
        buckets, counts = histograms.get(hour_us, ([], []))
        counted = n_pass + n_slow + n_warning + n_fail
        series.append(
            StatsPoint.model_construct(
                start=from_us(hour_us),
                counts=counts_of_hour,
                maintenance=int(n_maintenance),
                uptime=None if counted == 0 else 1 - n_fail / counted,
                latency=_latency(lat_count, lat_sum, lat_min, lat_max, buckets, counts),
            )
        )
    return Stats(
        name=name,
        since=from_us(low),
        until=from_us(high),
        total=sum(window.counts.values()),
        counts={o: window.counts[o] for o in _OUTCOMES},
        maintenance=window.maintenance,
        uptime=window.uptime(),
        latency=window.latency(),
        series=series,
    )
