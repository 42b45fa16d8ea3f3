"""How a span of time reads to a person, in the TUI and the CLI alike: `4m12s`, `in 5m`,
`3m ago`, `expired 4m ago`. (`common.format_duration` writes durations back into project files.)"""

from __future__ import annotations

from datetime import datetime
from itertools import pairwise

_SIZES = (("d", 86400), ("h", 3600), ("m", 60), ("s", 1))


def short_duration(seconds: float, *, units: int = 2) -> str:
    """`seconds` (its size: the sign is the caller's `in`/`ago`), rounded down, in at most
    `units` units: `42s`, `4m12s`, `2h03m`, `3d04h`; with `units=1`, `42s`, `4m`, `2h`, `3d`."""
    total = abs(int(seconds))
    for (unit, size), (smaller, smaller_size) in pairwise(_SIZES):
        if total >= size:
            whole, rest = divmod(total, size)
            if units < 2:
                return f"{whole}{unit}"
            return f"{whole}{unit}{rest // smaller_size:02d}{smaller}"
    return f"{total}s"


def ago(moment: datetime, now: datetime, *, units: int = 1) -> str:
    """`now` within a second, else `3m ago`."""
    seconds = (now - moment).total_seconds()
    return "now" if seconds < 1 else f"{short_duration(seconds, units=units)} ago"


def until(moment: datetime, now: datetime, *, units: int = 1) -> str:
    """`in 5m` ahead, `4m ago` behind."""
    delta = (moment - now).total_seconds()
    left = short_duration(delta, units=units)
    return f"in {left}" if delta >= 0 else f"{left} ago"


def expiry(moment: datetime, now: datetime, *, units: int = 1) -> str:
    """`expires in 5m` or `expired 4m ago`."""
    delta = (moment - now).total_seconds()
    left = short_duration(delta, units=units)
    return f"expires in {left}" if delta >= 0 else f"expired {left} ago"
