"""apimd's side of the peer comparison: workflow `token-then-orders` of workflow.apimd.yaml run N
times, one after another, through the engine in this one process (results kept in memory).

    .venv/bin/python bench/peers/apimd_workflow.py --base http://127.0.0.1:PORT -n N

Exits 1 unless every run ends PASS with ORDER_ID extracted, like `newman run -n N` and `stepci run`
exit non-zero when an assertion fails.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from apimd.engine.memory import MemoryStateStore
from apimd.engine.runner import Engine
from apimd.model import Outcome
from apimd.model.loader import load_project_file

WORKFLOW_FILE = Path(__file__).with_name("workflow.apimd.yaml")
WORKFLOW = "token-then-orders"


async def run(base: str, iterations: int) -> int:
    project = load_project_file(WORKFLOW_FILE, environ={"BENCH_BASE_URL": base})
    engine = Engine(project, MemoryStateStore())
    failed = 0
    try:
        for _ in range(iterations):
            result = await engine.run(WORKFLOW)
            if result.outcome != Outcome.PASS or "ORDER_ID" not in result.variables:
                failed += 1
                print(f"# run failed: {result.result} {result.error or ''}", file=sys.stderr)
    finally:
        await engine.close()
    return 1 if failed else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", required=True, help="the local token server, http://127.0.0.1:P")
    parser.add_argument("-n", "--iterations", type=int, default=20)
    args = parser.parse_args()
    return asyncio.run(run(args.base, args.iterations))


if __name__ == "__main__":
    sys.exit(main())
