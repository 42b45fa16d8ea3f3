"""The fixed latency histogram of the hourly rollups. The bucket bounds never change (rollups are
kept forever and merged across any window), so they are a constant of the storage format."""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Mapping, Sequence
from itertools import accumulate

# 20 log-spaced buckets per decade from 1 ms to ~316 s (the longest timeout is 300 s), rounded to 4
# significant digits so the bounds are the same on every platform. Bucket 0 holds [0, 1 ms); bucket
# k holds [BOUNDS[k-1], BOUNDS[k]); the last bucket holds everything from BOUNDS[-1] up. Adjacent
# bounds differ by 12.2 %, which bounds the error of a percentile read from the histogram.
BUCKET_BOUNDS_MS: tuple[float, ...] = tuple(float(f"{10 ** (i / 20):.4g}") for i in range(111))
BUCKET_COUNT = len(BUCKET_BOUNDS_MS) + 1
BUCKET_RATIO = 10 ** (1 / 20)


def bucket_of(latency_ms: float) -> int:
    """The index of the bucket holding `latency_ms`."""
    return bisect_right(BUCKET_BOUNDS_MS, max(0.0, latency_ms))


def bucket_range(index: int) -> tuple[float, float]:
    """The bounds of bucket `index`; the last bucket's upper bound is infinite."""
    lower = 0.0 if index == 0 else BUCKET_BOUNDS_MS[index - 1]
    upper = BUCKET_BOUNDS_MS[index] if index < len(BUCKET_BOUNDS_MS) else float("inf")
    return lower, upper


def percentile(
    counts: Mapping[int, int], q: float, *, minimum: float, maximum: float
) -> float | None:
    """The `q`-quantile (0 < q ≤ 1) of the latencies counted in `counts` (bucket → count); see
    `percentiles`."""
    return percentiles(counts, (q,), minimum=minimum, maximum=maximum)[0]


def percentiles(
    counts: Mapping[int, int], qs: Sequence[float], *, minimum: float, maximum: float
) -> list[float | None]:
    """The quantiles `qs` (ascending, each 0 < q ≤ 1) of the latencies counted in `counts`
    (bucket → count), each interpolated linearly inside its bucket, whose range is narrowed to the
    observed min/max.

    The nearest-rank quantile (the ⌈q·n⌉-th smallest latency) lies in the bucket this picks, so each
    answer is within one bucket width of it."""
    total = sum(counts.values())
    if total == 0:
        return [None] * len(qs)
    out: list[float | None] = []
    pending = iter(qs)
    q = next(pending, None)
    seen = 0
    for index in sorted(counts):
        count = counts[index]
        if count <= 0:
            continue
        while q is not None and seen + count >= q * total:
            out.append(_inside(index, count, seen, q * total, minimum, maximum))
            q = next(pending, None)
        if q is None:
            break
        seen += count
    out += [maximum] * (len(qs) - len(out))
    return out


def sorted_percentiles(
    buckets: Sequence[int],
    counts: Sequence[int],
    qs: Sequence[float],
    *,
    minimum: float,
    maximum: float,
) -> list[float | None]:
    """`percentiles` of a histogram given as its bucket indexes in ascending order, each once, and
    their counts (≥ 0): the same answers, with the running counts summed and searched in C rather
    than walked in Python (a stats window reads one histogram per hour). The bucket of q is the
    first whose running count reaches q·n, as there."""
    running = list(accumulate(counts))
    total = running[-1] if running else 0
    if total <= 0:
        return [None] * len(qs)
    out: list[float | None] = []
    for q in qs:
        rank = q * total
        at = bisect_left(running, rank)
        if at == len(running):
            out.append(maximum)
            continue
        count = counts[at]
        out.append(_inside(buckets[at], count, running[at] - count, rank, minimum, maximum))
    return out


def _inside(
    index: int, count: int, seen: int, rank: float, minimum: float, maximum: float
) -> float:
    """The latency of rank `rank` (a fractional count) inside bucket `index`, which holds `count`
    latencies above the `seen` below it: interpolated linearly in the bucket's range narrowed to
    the observed min/max."""
    lower, upper = bucket_range(index)
    lower, upper = max(lower, minimum), min(upper, maximum)
    if upper <= lower:
        return lower
    return lower + (upper - lower) * max(0.0, rank - seen) / count
