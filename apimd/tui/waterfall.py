"""The timing waterfall of one request: each phase as a bar placed where it ran, scaled to the total."""

from __future__ import annotations

from dataclasses import dataclass

from apimd.model.outcome import ResultCode
from apimd.model.result import Result, Timings

PHASES = ("dns", "connect", "send", "wait", "receive")
PHASE_LABELS = {
    "dns": "DNS",
    "connect": "connect",
    "send": "send",
    "wait": "wait (TTFB)",
    "receive": "receive",
}


@dataclass(frozen=True)
class Bar:
    """One phase: `start` and `length` in cells of a track `width` wide."""

    phase: str
    ms: float
    start: int
    length: int


def waterfall(timings: Timings, width: int) -> list[Bar]:
    """Bars for dns/connect/send/wait/receive, one after another, scaled so the whole request
    (`total`, or the phases' sum when larger) spans `width` cells. A phase that took any time gets
    at least one cell; `auth_wait` is not part of it (it is not in `total`)."""
    durations = [max(0.0, float(getattr(timings, phase))) for phase in PHASES]
    span = max(timings.total, sum(durations))
    bars: list[Bar] = []
    offset = 0.0
    for phase, ms in zip(PHASES, durations, strict=True):
        if span <= 0 or width <= 0:
            bars.append(Bar(phase, ms, 0, 0))
            continue
        start = min(width - 1, round(offset / span * width))
        end = round((offset + ms) / span * width)
        length = max(1 if ms > 0 else 0, end - start)
        length = min(length, width - start)
        bars.append(Bar(phase, ms, start, length))
        offset += ms
    return bars


def untimed(result: Result) -> str | None:
    """Why `result` has no waterfall to show, if it has none: a browser step's request is made
    by the person's browser, and a run that sent nothing timed nothing (its chart was a lone row
    of zeros)."""
    if result.result is ResultCode.BROWSER:
        return "the browser makes this request, not apimd: there is nothing of apimd's to time"
    timings = result.timings_ms
    if timings.total <= 0 and all(getattr(timings, phase) <= 0 for phase in PHASES):
        return "nothing was sent: nothing to time"
    return None
