"""Per-hour series for the statistics screen, with the hours that had no results filled in."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from apimd.model.outcome import Outcome
from apimd.model.stats import Stats, StatsPoint


@dataclass(frozen=True)
class Hour:
    start: datetime
    point: StatsPoint | None
    """None: no results that hour."""


def hourly(stats: Stats, *, max_hours: int = 24 * 31) -> list[Hour]:
    """One entry per whole UTC hour from `stats.since` to `stats.until` (the last `max_hours`)."""
    first = stats.since.replace(minute=0, second=0, microsecond=0)
    by_start = {p.start.replace(minute=0, second=0, microsecond=0): p for p in stats.series}
    hours: list[Hour] = []
    moment = first
    while moment < stats.until:
        hours.append(Hour(moment, by_start.get(moment)))
        moment += timedelta(hours=1)
    return hours[-max_hours:]


def uptime_strip(hours: list[Hour], width: int) -> list[tuple[str, str]]:
    """(character, style) per column, `width` columns at most (hours merged when there are more):
    green block when all passed, yellow/red as uptime drops, dim dot when nothing ran."""
    if width <= 0 or not hours:
        return []
    size = -(-len(hours) // width)  # hours per column, rounded up
    cells: list[tuple[str, str]] = []
    for i in range(0, len(hours), size):
        counted = failed = 0
        for hour in hours[i : i + size]:
            if hour.point is None:
                continue
            counts = hour.point.counts
            counted += sum(counts.values()) - counts.get(Outcome.SKIPPED, 0)
            failed += counts.get(Outcome.FAIL, 0)
        if counted == 0:
            cells.append(("·", "dim"))
            continue
        uptime = 1 - failed / counted
        if uptime >= 0.999:
            cells.append(("█", "green"))
        elif uptime >= 0.9:
            cells.append(("▆", "yellow"))
        else:
            cells.append(("▃", "red"))
    return cells


def latency_series(hours: list[Hour], field: str) -> list[float]:
    """`field` (`p50_ms`, `p95_ms`, …) per hour, 0 where nothing ran."""
    values: list[float] = []
    for hour in hours:
        value = getattr(hour.point.latency, field) if hour.point else None
        values.append(float(value) if value is not None else 0.0)
    return values
