"""Statistics of a run target over a window (`GET /v1/stats/{name}`), from the hourly rollups."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from apimd.model.outcome import Outcome


def _zero_counts() -> dict[Outcome, int]:
    return dict.fromkeys(Outcome, 0)


class Latency(BaseModel):
    """Latency (`timings_ms.total`) of the non-SKIPPED results that have one, in milliseconds.
    Percentiles come from a fixed-bucket histogram: within 12.2 % of the exact value."""

    count: int = 0
    min_ms: float | None = None
    max_ms: float | None = None
    mean_ms: float | None = None
    p50_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None


class StatsPoint(BaseModel):
    """One hour of a target's results."""

    start: datetime
    counts: dict[Outcome, int] = Field(default_factory=_zero_counts)
    maintenance: int = 0
    uptime: float | None = None
    latency: Latency = Field(default_factory=Latency)


class Stats(BaseModel):
    """A target's results in [since, until), in whole UTC hours: the hour holding `since` counts
    whole. `uptime` is non-FAIL / non-SKIPPED results (a fraction, None when there are none);
    `series` has one point per hour that had results, oldest first."""

    name: str
    since: datetime
    until: datetime
    total: int = 0
    counts: dict[Outcome, int] = Field(default_factory=_zero_counts)
    maintenance: int = 0  # results inside maintenance windows, in neither `counts` nor uptime
    uptime: float | None = None
    latency: Latency = Field(default_factory=Latency)
    series: list[StatsPoint] = Field(default_factory=list)
