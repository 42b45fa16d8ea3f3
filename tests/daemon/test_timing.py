"""Honest timing of scheduled runs (issue 18 item 2): each result records how late it started, a
firing skipped because the previous run still goes is recorded SKIPPED saying so, and the daemon
freezes its long-lived objects after start-up and after each apply so no full collection walks
them in the middle of a run."""

from __future__ import annotations

import asyncio
import gc
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from aiohttp import web

from apimd.client import Client
from apimd.daemon import heap
from apimd.daemon.app import create_app
from apimd.daemon.events import EventHub
from apimd.daemon.metrics import Metrics
from apimd.daemon.service import Broadcast, MonitorService
from apimd.engine.runner import Engine
from apimd.model import Project
from apimd.model.outcome import Outcome
from apimd.model.result import Result
from apimd.settings import Settings
from apimd.store import open_store
from apimd.tui.widgets.result_view import status_line
from tests.daemon.conftest import Api, Daemon, eventually, short_home, start_daemon, stop_daemon


@pytest.fixture
def sqlite_daemon() -> Iterator[Daemon]:
    running = start_daemon()
    try:
        yield running
    finally:
        stop_daemon(running)


async def results_of(client: Client, name: str) -> list[Result]:
    return (await client.results(name=name, limit=200)).results


async def test_scheduled_results_record_their_lateness_and_skips_are_said(
    sqlite_daemon: Daemon, api: Api
) -> None:
    async with sqlite_daemon.client() as client:
        await client.apply(
            {
                "calls": [
                    {"name": "quick", "url": f"{api.url}/quick"},
                    {"name": "slow", "url": f"{api.url}/slow", "timeout": 30},
                ],
                "schedules": [
                    {"name": "s-quick", "every": "1s", "targets": ["quick"]},
                    {"name": "s-slow", "every": "1s", "targets": ["slow"]},
                ],
            }
        )

        async def enough() -> bool:
            quick = [r for r in await results_of(client, "quick") if r.trigger == "schedule"]
            skipped = [r for r in await results_of(client, "slow") if r.result == "CANCELLED"]
            return len(quick) >= 3 and len(skipped) >= 2

        await eventually(enough, timeout=20, interval=0.5)
        manual = await client.run("calls", "quick", wait=True)
        quick = await results_of(client, "quick")
        slow = await results_of(client, "slow")

    scheduled = [r for r in quick if r.trigger == "schedule"]
    late = [r.lateness_ms for r in scheduled]
    # Present on every scheduled run, and sane: never before its due instant, well within its
    # 1 s interval (a loaded test machine still starts a run within a few hundred ms).
    assert all(ms is not None and 0 <= ms < 1000 for ms in late), late
    # SPEC §4: a scheduled run's result names its schedule and the instant it was due.
    assert all(r.schedule == "s-quick" and r.scheduled_at is not None for r in scheduled)
    assert all(
        abs((r.started_at - r.scheduled_at).total_seconds() * 1000 - (r.lateness_ms or 0)) < 1
        for r in scheduled
        if r.scheduled_at is not None
    )
    assert manual.result is not None and manual.result.lateness_ms is None
    assert manual.result.schedule is None and manual.result.scheduled_at is None
    assert next(r for r in quick if r.id == manual.run_id).lateness_ms is None

    skipped = [r for r in slow if r.result == "CANCELLED"]
    assert all(r.outcome == "SKIPPED" and r.trigger == "schedule" for r in skipped)
    assert all(r.schedule == "s-slow" and r.scheduled_at == r.started_at for r in skipped)
    assert all(
        r.error == "skipped: the previous run of slow was still going when schedule s-slow fired"
        for r in skipped
    ), [r.error for r in skipped]
    ran = [r for r in slow if r.result != "CANCELLED"]
    # Each skipped firing is a result of its own: its due instant, not a run's start.
    assert not {r.started_at for r in skipped} & {r.started_at for r in ran}

    code, out, err = await sqlite_daemon.cli("results", "quick")
    assert code == 0, err
    header, *rows = out.splitlines()
    assert "LATE" in header.split()
    late_column = header.split().index("LATE")  # `STARTED (UTC)` is two words, as dates are
    scheduled_rows = [row.split() for row in rows if "schedule" in row.split()]
    assert scheduled_rows, out
    assert all(r[late_column].isdigit() for r in scheduled_rows), out
    assert [r[late_column] for r in map(str.split, rows) if "manual" in r] == ["-"]


def test_the_detail_view_says_how_late_a_scheduled_run_started() -> None:
    now = datetime(2026, 12, 6, 8, 0, tzinfo=UTC)
    result = Result.model_validate(
        {
            "id": "r1",
            "kind": "call",
            "name": "quick",
            "trigger": "schedule",
            "started_at": now,
            "finished_at": now,
            "outcome": "PASS",
            "result": "COMPLETE",
            "lateness_ms": 12.25,
        }
    )
    assert "schedule 12.2 ms late" in status_line(result, lambda: now).plain
    manual = result.model_copy(update={"trigger": "manual", "lateness_ms": None})
    assert "late" not in status_line(manual, lambda: now).plain


@pytest.fixture
def restore_gc() -> Iterator[None]:
    thresholds = gc.get_threshold()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)


def in_a_generation(thing: object) -> bool:
    """Whether a collection would walk `thing` (frozen objects are in none of the generations)."""
    return any(o is thing for o in gc.get_objects())


async def test_long_lived_objects_are_frozen_after_start_up_and_after_each_apply(
    api: Api, restore_gc: None
) -> None:
    home = short_home()
    gc.unfreeze()
    app = create_app(Settings.load({"APIMD_HOME": str(home), "APIMD_CALLBACK_PORT": "0"}))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()  # starts the service: the store, the engine, the scheduler
    try:
        assert gc.get_threshold() == heap.THRESHOLDS
        assert gc.get_freeze_count() > 10_000  # the daemon's modules and objects
        await web.UnixSite(runner, str(home / "apimd.sock")).start()
        built_since = [object()]  # stands for what an apply builds (the project, its calls)
        assert in_a_generation(built_since)
        async with Client(home / "apimd.sock") as client:
            await client.apply(
                {"calls": [{"name": f"c{i}", "url": f"{api.url}/c{i}"} for i in range(200)]}
            )
            assert not in_a_generation(built_since)  # frozen by the apply's settle
            assert all(gc.is_tracked(x) for x in (built_since,))
            after_apply = [object()]
            assert in_a_generation(after_apply)  # new objects are collected as usual
            result = await client.run("calls", "c1", wait=True)
            assert result.result is not None and result.result.outcome == "PASS"
    finally:
        await runner.cleanup()
        shutil.rmtree(home, ignore_errors=True)


async def test_a_skipped_firing_leaves_the_summary_on_the_last_run_that_ran(
    sqlite_daemon: Daemon, api: Api
) -> None:
    """SPEC §4: a firing skipped because the previous run is still going is a result in the
    list, not the target's outcome: the summary keeps the last run that ran."""
    async with sqlite_daemon.client() as client:
        await client.apply({"calls": [{"name": "c", "url": f"{api.url}/quick"}]})
        first = await client.run("calls", "c", wait=True)
        assert first.result is not None and first.result.outcome == "PASS"
        await client.apply(
            {
                "calls": [{"name": "c", "url": f"{api.url}/slow", "timeout": 30}],
                "schedules": [{"name": "s", "every": "1s", "targets": ["c"]}],
            }
        )

        async def skipped() -> bool:
            return any(r.result == "CANCELLED" for r in await results_of(client, "c"))

        await eventually(skipped, timeout=20, interval=0.3)
        latest = (await results_of(client, "c"))[0]
        summary = {t.name: t for t in (await client.summary(window="24h")).targets}
    assert latest.outcome == "SKIPPED" and "still going" in (latest.error or "")
    c = summary["c"]
    assert (c.outcome, c.result, c.last_result_id) == ("PASS", "COMPLETE", first.result.id)
    assert c.counts.get(Outcome.SKIPPED, 0) >= 1  # the skip is counted (not in uptime), and listed


async def test_a_scheduled_run_records_its_lateness_and_forgets_its_due_when_it_ends(
    api: Api,
) -> None:
    """`run_scheduled` hands the store the firing's due instant with the run (one done callback
    forgets the run and its due instant together): the stored result says how late it started,
    and nothing of it stays behind; a run by hand has no due instant and no lateness."""
    home = short_home()
    settings = Settings.load({"APIMD_HOME": str(home), "APIMD_CALLBACK_PORT": "0"})
    store = await open_store(
        settings.store_location, secret_key=None, key_file=settings.key_file, owner=True
    )
    project = Project.model_validate({"calls": [{"name": "quick", "url": f"{api.url}/quick"}]})
    publish = Broadcast(EventHub(), Metrics())
    engine = Engine(project, store, events=publish, on_result=publish.metrics.observe_result)
    service = MonitorService(settings, store, engine, publish)
    try:
        due = datetime.now(UTC) - timedelta(milliseconds=250)
        task = service.runs.run_scheduled("quick", "s-quick", due)
        assert task is not None
        assert list(store.due.values()) == [("s-quick", due)] and len(service.runs) == 1
        result = await task
        await asyncio.sleep(0)  # its done callbacks
        assert store.due == {} and len(service.runs) == 0
        expected = round((result.started_at - due) / timedelta(milliseconds=1), 3)
        assert result.lateness_ms == expected and expected >= 250
        stored = await store.get_result(result.id)
        assert stored is not None and stored.lateness_ms == expected

        run_id, manual = service.runs.start("quick")
        assert run_id not in store.due
        assert (await manual).lateness_ms is None
        await asyncio.sleep(0)
        assert len(service.runs) == 0
        assert service.runs.run_scheduled("gone", "s-gone", due) is None
        assert store.due == {}
    finally:
        await engine.close()
        await store.close()
        shutil.rmtree(home, ignore_errors=True)
