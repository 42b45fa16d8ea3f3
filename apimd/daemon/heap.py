"""The daemon's garbage collector: no full collection in the middle of a run (issue 18).

A full (generation 2) collection walks every tracked object; with 10,000 monitors loaded that is
a pause of about 140 ms, landing at random in a run, where it is recorded as the API's response
time and as scheduling lateness. The project, the engine's compiled calls and the store's caches
live as long as the daemon: once they are built (after start-up and after each apply) they are
moved to the permanent generation, which collections skip, so a full collection only walks what
was allocated since. The thresholds make young collections rarer, and full ones rarer still."""

from __future__ import annotations

import gc
import logging
import time

log = logging.getLogger(__name__)

THRESHOLDS = (10_000, 20, 100)
"""Generation 0 is collected after 10,000 net allocations (CPython's default: 700), generation 1
after 20 of those (10) and generation 2 after 100 generation-1 collections (10). A run allocates a
few thousand objects, mostly freed by reference counting: young collections stay short (they only
walk the young), and the cycles a run leaves are still collected within seconds."""


def settle() -> float:
    """Collect everything (the previously frozen objects too, so what an apply replaced is freed)
    and freeze what survives; returns the pause in milliseconds. Call it at quiet moments."""
    began = time.perf_counter()
    gc.set_threshold(*THRESHOLDS)
    gc.unfreeze()
    gc.collect()
    gc.freeze()
    pause_ms = (time.perf_counter() - began) * 1000
    log.debug("heap settled: %d objects frozen in %.1f ms", gc.get_freeze_count(), pause_ms)
    return pause_ms
