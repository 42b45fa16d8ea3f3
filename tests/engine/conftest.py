"""Fixtures the engine tests share."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from apimd.engine.http import HttpExecutor


@pytest.fixture
async def executor() -> AsyncIterator[HttpExecutor]:
    """The HTTP executor, its pooled connections closed after the test."""
    executor = HttpExecutor()
    yield executor
    await executor.close()
