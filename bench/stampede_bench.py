"""Benchmark of the token refresh under a stampede: C concurrent calls on one expired token must
cause exactly one token request (SPEC §5, single-flight per token), and all of them must pass.

    .venv/bin/python bench/stampede_bench.py [--calls C] [--delay S]

The demo token server (`apimd.demo.server`, loopback, listen backlog 4096) answers `/oauth/token`
after S seconds (default 0.2). A `manual` auth keeps token `t` fresh with a client-credentials refresh
workflow; call `orders` (`GET /api/orders` with the bearer, status condition) uses it. One call fills
the token; then it is expired on both sides (its `expires_at` moved into the past in the engine's
store, its access token expired on the server) and C calls are started at once. Prints

    refresh stampede: N token request(s) for C concurrent calls, all done in S s

and exits 1 unless N is 1 and every call ended PASS.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from aiohttp import web

from apimd.demo.server import STATE_KEY, TokenServerState, create_app
from apimd.engine.memory import MemoryStateStore
from apimd.engine.runner import Engine
from apimd.model import Outcome, Project

# Shared with the tests (tests/support): bench/run sets PYTHONPATH, a direct run does not.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.support.projects import build, manual_token_document

TOKEN = "t"


def project(base: str) -> Project:
    """The tests' token flow (tests/support/projects.py): token `t`, call `orders`."""
    return build(manual_token_document(base, tokens={TOKEN: "orders"}))


async def start_server(state: TokenServerState) -> tuple[web.AppRunner, str]:
    app = create_app(state)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    # C fresh connections arrive at once: the default backlog of 128 would drop SYNs and add a 1 s
    # retransmit to some calls.
    site = web.TCPSite(runner, "127.0.0.1", 0, backlog=4096)
    await site.start()
    port = int(runner.addresses[0][1])
    assert app[STATE_KEY] is state
    return runner, f"http://127.0.0.1:{port}"


async def expire(store: MemoryStateStore, state: TokenServerState) -> None:
    """Expire the token for the engine (expires_at in the past) and for the server."""
    runtime = await store.load_token(TOKEN)
    if runtime is None or not runtime.filled:
        raise SystemExit("the first call did not fill the token")
    runtime.expires_at = datetime.now(UTC) - timedelta(seconds=1)
    await store.save_token(runtime)
    state.access_tokens[runtime.variables["ACCESS_TOKEN"]] = 0.0


async def bench(calls: int, delay: float) -> int:
    state = TokenServerState()
    runner, base = await start_server(state)
    store = MemoryStateStore()
    engine = Engine(project(base), store)
    try:
        first = await engine.run("orders")
        if first.outcome != Outcome.PASS:
            raise SystemExit(f"the first call failed: {first.result} {first.error}")
        await expire(store, state)
        state.token_delay_s = delay
        before = state.token_requests
        refreshes_before = _refreshes(store)
        started = time.perf_counter()
        results = await asyncio.gather(*(engine.run("orders") for _ in range(calls)))
        elapsed = time.perf_counter() - started
        requests = state.token_requests - before
    finally:
        await engine.close()
        await runner.cleanup()
    failed = [r for r in results if r.outcome != Outcome.PASS]
    print(
        f"refresh stampede: {requests} token request(s) for {calls} concurrent calls,"
        f" all done in {elapsed:.2f} s"
    )
    waits = sorted(r.timings_ms.auth_wait for r in results)
    print(
        f"# token server delay {delay * 1000:.0f} ms; auth_wait p50 {waits[len(waits) // 2]:.0f} ms,"
        f" max {waits[-1]:.0f} ms; refresh runs recorded: {_refreshes(store) - refreshes_before}"
    )
    if failed:
        codes = sorted({f"{r.result} {r.error or ''}".strip() for r in failed})
        print(f"# {len(failed)} call(s) did not pass: {'; '.join(codes[:5])}", file=sys.stderr)
    if requests != 1 or failed:
        print("# FAILED: expected exactly 1 token request and every call PASS", file=sys.stderr)
        return 1
    return 0


def _refreshes(store: MemoryStateStore) -> int:
    return sum(1 for r in store.results if r.trigger == "refresh")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=500, help="concurrent calls (default 500)")
    parser.add_argument(
        "--delay", type=float, default=0.2, help="token endpoint delay in s (default 0.2)"
    )
    args = parser.parse_args()
    if args.calls < 1 or args.delay < 0:
        parser.error("--calls must be positive and --delay not negative")
    return asyncio.run(bench(args.calls, args.delay))


if __name__ == "__main__":
    sys.exit(main())
