"""Hourly rollups per run target: counts per outcome and a fixed-bucket latency histogram, updated
in the transaction that stores each result and kept after raw results are pruned."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from apimd.model.outcome import Outcome
from apimd.model.result import Result
from apimd.model.stats import Latency, Stats, StatsPoint
from apimd.store.histogram import bucket_of, percentiles
from apimd.store.sql import Connection, Database
from apimd.store.timestamps import from_us, hour_floor_us, to_us

_OUTCOME_COLUMNS = {
    Outcome.PASS: "n_pass",
    Outcome.SLOW: "n_slow",
    Outcome.WARNING: "n_warning",
    Outcome.SKIPPED: "n_skipped",
    Outcome.FAIL: "n_fail",
}
_OUTCOMES = tuple(_OUTCOME_COLUMNS)
_COUNT_COLUMNS = ", ".join(_OUTCOME_COLUMNS.values())

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


def latency_of(result: Result) -> float | None:
    """The latency a result contributes to statistics: `timings_ms.total` of a result that was not
    SKIPPED and has one (a skipped run sent nothing, so its time says nothing about the API)."""
    if result.outcome is Outcome.SKIPPED or result.timings_ms.total <= 0:
        return None
    return result.timings_ms.total


@dataclass
class _Hour:
    counts: Counter[Outcome] = field(default_factory=Counter)
    maintenance: int = 0  # results inside a maintenance window: counted apart (SPEC §11)
    lat_count: int = 0
    lat_sum: float = 0.0
    lat_min: float | None = None
    lat_max: float | None = None
    buckets: Counter[int] = field(default_factory=Counter)

    def add_latency(self, ms: float) -> None:
        self.lat_count += 1
        self.lat_sum += ms
        self.lat_min = ms if self.lat_min is None else min(self.lat_min, ms)
        self.lat_max = ms if self.lat_max is None else max(self.lat_max, ms)

    def add_totals(self, other: _Hour) -> None:
        """Add `other`'s counts and latency totals (not its buckets)."""
        for outcome, count in other.counts.items():
            self.counts[outcome] += count
        self.maintenance += other.maintenance
        self.lat_count += other.lat_count
        self.lat_sum += other.lat_sum
        for value in (other.lat_min, other.lat_max):
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
            self.buckets, (0.50, 0.95, 0.99), minimum=self.lat_min, maximum=self.lat_max
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


async def record_rollups(conn: Connection, results: Iterable[Result]) -> None:
    """Add `results` to their (target, hour) rollups, inside the caller's transaction."""
    hours: dict[tuple[str, int], _Hour] = {}
    for result in results:
        key = (result.name, hour_floor_us(to_us(result.started_at)))
        hour = hours.get(key)
        if hour is None:  # not `setdefault(key, _Hour())`: that builds an _Hour per result
            hour = hours[key] = _Hour()
        if result.maintenance:
            hour.maintenance += 1
            continue
        hour.counts[result.outcome] += 1
        latency = latency_of(result)
        if latency is not None:
            hour.add_latency(latency)
            hour.buckets[bucket_of(latency)] += 1
    if not hours:
        return
    # Rows in key order: writers sharing a PostgreSQL store then lock them in one order, so
    # concurrent batches wait for each other instead of deadlocking.
    ordered = sorted(hours.items())
    await conn.executemany(
        _UPSERT_ROLLUP,
        [
            (
                name,
                hour_us,
                *(h.counts[o] for o in _OUTCOMES),
                h.maintenance,
                h.lat_count,
                h.lat_sum,
                h.lat_min,
                h.lat_max,
            )
            for (name, hour_us), h in ordered
        ],
    )
    await conn.executemany(
        _UPSERT_BUCKET,
        [
            (name, hour_us, bucket, count)
            for (name, hour_us), h in ordered
            for bucket, count in sorted(h.buckets.items())
        ],
    )


async def query_stats(db: Database, name: str, since: datetime, until: datetime) -> Stats:
    """Statistics of `name` over the hours from the one holding `since` up to `until`.

    Reads only the rollups (one row per hour, and its histogram's non-empty buckets), so its cost
    grows with the hours in the window, not the results; the models are built from values already
    checked (`model_construct`): at 720 hours validating them was a third of the time."""
    low, high = hour_floor_us(to_us(since)), to_us(until)
    rows = await db.fetchall(
        f"SELECT hour, {_COUNT_COLUMNS}, n_maintenance, lat_count, lat_sum, lat_min, lat_max"
        " FROM rollups"
        " WHERE name = ? AND hour >= ? AND hour < ? ORDER BY hour",
        (name, low, high),
    )
    per_hour: dict[int, Counter[int]] = {}
    window = _Hour()
    for row in await db.fetchall(
        "SELECT hour, bucket, count FROM rollup_buckets WHERE name = ? AND hour >= ? AND hour < ?",
        (name, low, high),
    ):
        hour_us: int = row[0]
        bucket: int = row[1]
        count: int = row[2]
        buckets = per_hour.get(hour_us)
        if buckets is None:
            buckets = per_hour[hour_us] = Counter()
        buckets[bucket] = count
        window.buckets[bucket] += count
    series: list[StatsPoint] = []
    for row in rows:
        hour = _Hour(
            counts=Counter({o: row[1 + i] for i, o in enumerate(_OUTCOMES)}),
            maintenance=int(row["n_maintenance"]),
            lat_count=int(row["lat_count"]),
            lat_sum=float(row["lat_sum"]),
            lat_min=row["lat_min"],
            lat_max=row["lat_max"],
            buckets=per_hour.get(row[0], Counter()),
        )
        window.add_totals(hour)
        series.append(
            StatsPoint.model_construct(
                start=from_us(row[0]),
                counts={o: hour.counts[o] for o in _OUTCOMES},
                maintenance=hour.maintenance,
                uptime=hour.uptime(),
                latency=hour.latency(),
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
