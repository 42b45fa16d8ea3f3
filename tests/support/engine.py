"""Running the engine in tests: one run on an engine that is closed afterwards."""

from __future__ import annotations

from typing import Any

from apimd.engine.runner import Engine
from apimd.model.result import Result


async def run_once(engine: Engine, target: str, **options: Any) -> Result:
    """`engine.run(target, **options)`, then close the engine (its HTTP sessions) whatever happens."""
    try:
        return await engine.run(target, **options)
    finally:
        await engine.close()
