"""The daemon's garbage collector: no full collection in the middle of a run, and no young one
long enough to make a run late (issue 18).

A full (generation 2) collection walks every tracked object; with 10,000 monitors loaded that is
a pause of about 140 ms, landing at random in a run, where it is recorded as the API's response
time and as scheduling lateness. The project, the engine's compiled calls and the store's caches
live as long as the daemon: once they are built (after start-up and after each apply) they are
moved to the permanent generation, which collections skip, so a full collection only walks what
was allocated since.

A young collection's pause is the number of objects it walks (about 1 µs each). What a run leaves
behind for a while makes them many: each run's metrics probe (its `Timings`, a set, two tuples)
lives one schedule interval, and at 167 runs/s that is some 800 objects a second that survive
every young collection until they reach generation 2. Generation 1 holds what piled up since its
last collection. With (10,000, 20, 100), at 10,000 monitors @ 60 s, generation 0 was collected
every ~3 s holding ~18,000 objects (16–39 ms of CPU) and generation 1 once a minute or so holding
~50,000 (67–77 ms). Collecting both more often walks the same survivors once each (each is
promoted whatever the threshold) and fewer objects in all, so it costs no more CPU: with
THRESHOLDS, each collection stayed under ~11 ms of CPU and all of them together took 0.50–0.52 s
of CPU per 120 s against 0.73–0.78 s (bench/README.md, "GC thresholds"). A daemon that has fallen
behind (thousands of runs in flight) collects more often still and pays more for it; its pauses
stay far shorter than they were."""

from __future__ import annotations

import gc
import logging
import time

log = logging.getLogger(__name__)

THRESHOLDS = (2_000, 5, 2_000)
"""Generation 0 is collected after 2,000 net allocations (CPython's default: 700; the count also
drops as older objects die, so it holds ~5,000 objects by then), generation 1 after 5 of those
(every ~5 s at 10,000 monitors @ 60 s: ~5,000 survivors to walk) and generation 2 after 2,000
generation-1 collections: hours apart, as with (10,000, 20, 100), for a full collection walks
every probe of the last interval (~50,000 objects)."""


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
