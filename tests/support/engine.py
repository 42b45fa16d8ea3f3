"""Running the engine in tests: one run on an engine that is closed afterwards."""

from __future__ import annotations

from apimd.engine.context import RunOrder
from apimd.engine.runner import Engine
from apimd.model.result import Result


async def run_once(engine: Engine, target: str, order: RunOrder | None = None) -> Result:
    """`engine.run(target, order)`, then close the engine (its HTTP sessions) whatever happens."""
    try:
        return await engine.run(target, order)
    finally:
        await engine.close()
