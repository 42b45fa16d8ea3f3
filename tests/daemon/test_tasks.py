"""Stopping the daemon's background loops: a cancellation that reaches a loop disguised as a
library's error (seen as a test's teardown hanging for 120 s with the loop on a 1 s timer) must
still end the loop, and a stop must not wait forever for one that goes round again."""

from __future__ import annotations

import asyncio
import logging

import pytest

from apimd.daemon.tasks import cancelling, end_tasks


class LibraryError(Exception):
    """What a client library may raise while cleaning up after a cancellation."""


async def disguising_call(released: asyncio.Event) -> None:
    """A library call whose clean-up, on cancellation, fails with an error of its own."""
    try:
        await released.wait()
    except asyncio.CancelledError as exc:
        raise LibraryError("connection in a bad state") from exc


async def retrying_loop(rounds: list[int], released: asyncio.Event, *, checks: bool) -> None:
    """The daemon's retry-forever shape: a failure is logged and tried again a moment later."""
    while not released.is_set():
        rounds.append(1)
        try:
            await disguising_call(released)
        except Exception:
            if checks and cancelling():
                raise
            await asyncio.sleep(0.01)


async def test_a_loop_that_checks_ends_at_the_first_cancellation() -> None:
    rounds: list[int] = []
    released = asyncio.Event()
    task = asyncio.create_task(retrying_loop(rounds, released, checks=True))
    await asyncio.sleep(0.01)
    await asyncio.wait_for(end_tasks([task], grace_s=5), 10)
    assert task.done()
    assert isinstance(task.exception(), LibraryError)
    assert rounds == [1]


async def test_a_stop_goes_on_without_a_loop_that_swallows_its_cancellation_and_names_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    rounds: list[int] = []
    released = asyncio.Event()
    stubborn = asyncio.create_task(
        retrying_loop(rounds, released, checks=False), name="agent stubborn"
    )
    plain = asyncio.create_task(asyncio.sleep(3600), name="agent plain")
    await asyncio.sleep(0.01)
    try:
        with caplog.at_level(logging.WARNING, logger="apimd.daemon.tasks"):
            await asyncio.wait_for(end_tasks([stubborn, plain], grace_s=0.3), 5)
        assert plain.cancelled()
        assert not stubborn.done() and len(rounds) >= 2  # it went round again
        assert "agent stubborn did not end within 0.3 s of its cancellation" in caplog.text
        assert "agent plain" not in caplog.text
    finally:
        released.set()  # the test's own clean-up
        await asyncio.wait_for(stubborn, 5)
