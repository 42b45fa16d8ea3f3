"""Unicode block sparklines for latency histories."""

from __future__ import annotations

from collections.abc import Sequence

BLOCKS = "▁▂▃▄▅▆▇█"


def sparkline(values: Sequence[float], width: int) -> str:
    """The last `width` values as blocks scaled from 0 to their maximum, newest on the right,
    left-padded with spaces to `width`."""
    if width <= 0:
        return ""
    recent = [max(0.0, v) for v in values[-width:]]
    if not recent:
        return " " * width
    peak = max(recent)
    top = len(BLOCKS) - 1
    if peak <= 0:
        chars = BLOCKS[0] * len(recent)
    else:
        chars = "".join(BLOCKS[min(top, round(v / peak * top))] for v in recent)
    return chars.rjust(width)
