"""apimd against Postman's runner (newman) and Step CI: the same two-step workflow (a
client-credentials token from a local token endpoint, then GET /api/orders with the bearer,
asserting 200 and extracting the first order id) run N times, one after another, in one process
by each tool; wall time and CPU time (user + sys of the tool's process tree), the wall time per
iteration with start-up taken out (each round also runs every tool `--starts` times with N = 1, half
before and half after its run at N: (wall at N − median wall at 1) / (N − 1)), and their ratios.

    .venv/bin/python bench/peers/bench.py [-n N] [--rounds R] [--starts K] [--no-network-check]

Set-up: `npm ci` in bench/peers (newman and stepci pinned in package.json). A peer whose package is
not installed (or no `node`) is printed as unavailable. The workflows are workflow.postman_collection
.json (`newman run -n N`), workflow.stepci.yml (its test copied N times, concurrency 1) and
workflow.apimd.yaml (apimd_workflow.py: the engine runs it N times in one Python process).

The demo token server (`apimd.demo.server`) runs in this process on 127.0.0.1; every tool is a
child process, timed from spawn to exit (start-up included: that is what running the tool costs),
its CPU read from getrusage(RUSAGE_CHILDREN) deltas. Each round runs every tool once; medians over
the rounds are printed, each ratio taken within a round (same machine load) before its median.
The server's counters must show N token requests and N API requests per tool run, and the tool
must exit 0 (all its assertions passed).

Nothing may leave the machine: Step CI runs with STEPCI_DISABLE_ANALYTICS=1 (its only telemetry,
a PostHog event sent at exit, is then never queued, so nothing is flushed), its config (a random
uid) goes to a temporary XDG_CONFIG_HOME, and proxies are cleared from the environment. Unless
--no-network-check, each tool first runs once (N = 2) under `strace -f -e trace=network`, and
every connect()/sendto() must go to 127.0.0.1 — else the bench exits 1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import resource
import shutil
import signal
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web
from ruamel.yaml import YAML

from apimd.demo.server import TokenServerState, create_app

HERE = Path(__file__).resolve().parent
MODULES = HERE / "node_modules"
NEWMAN_JS = MODULES / "newman" / "bin" / "newman.js"
STEPCI_JS = MODULES / "stepci" / "dist" / "index.js"
COLLECTION = HERE / "workflow.postman_collection.json"
STEPCI_WORKFLOW = HERE / "workflow.stepci.yml"
APIMD_WORKFLOW = HERE / "apimd_workflow.py"
PEERS = ("newman", "stepci")
TOOLS = (*PEERS, "apimd")
CHECK_ITERATIONS = 2
_CONNECT = re.compile(r"\b(connect|sendto|sendmsg)\((\d+), (\{[^}]*\}|NULL)")
_INET = re.compile(r'inet_addr\("([^"]+)"\)|inet_pton\(AF_INET6?, "([^"]+)"')
_LOOPBACK = frozenset({"127.0.0.1", "::1", "::ffff:127.0.0.1"})


@dataclass
class Timing:
    wall_s: float
    cpu_s: float
    # (wall of N iterations − wall of 1, in the same round) / (N − 1): start-up taken out
    per_iteration_ms: float | None = None


@dataclass
class Tool:
    name: str
    command: list[str]
    unavailable: str | None = None


def tools(iterations: int, base: str, scratch: Path) -> list[Tool]:
    node = shutil.which("node")
    stepci_file = scratch / f"workflow.stepci.{iterations}.json"
    stepci_file.write_text(json.dumps(stepci_workflow(iterations)))
    listed = [
        Tool(
            "newman",
            [
                node or "node",
                str(NEWMAN_JS),
                "run",
                str(COLLECTION),
                "-n",
                str(iterations),
                "--env-var",
                f"base={base}",
                "--silent",
            ],
        ),
        Tool(
            "stepci",
            [node or "node", str(STEPCI_JS), "run", str(stepci_file), "-e", f"base={base}"],
        ),
        Tool(
            "apimd",
            [sys.executable, str(APIMD_WORKFLOW), "--base", base, "-n", str(iterations)],
        ),
    ]
    for tool in listed:
        script = Path(tool.command[1])
        if tool.name in PEERS and node is None:
            tool.unavailable = "node not found"
        elif not script.exists():
            tool.unavailable = (
                f"not installed: no {script.relative_to(HERE)}; npm ci in bench/peers"
            )
    return listed


def stepci_workflow(iterations: int) -> dict[str, object]:
    """workflow.stepci.yml with its one test copied `iterations` times, run one at a time."""
    workflow: dict[str, Any] = YAML(typ="safe").load(STEPCI_WORKFLOW.read_text())
    (test,) = workflow["tests"].values()
    workflow["tests"] = {f"flow-{i + 1}": test for i in range(iterations)}
    workflow["config"] = {**workflow.get("config", {}), "concurrency": 1}
    return workflow


def child_env(scratch: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k.lower() not in ("http_proxy", "https_proxy", "all_proxy", "npm_config_proxy")
    }
    env.update(
        STEPCI_DISABLE_ANALYTICS="1",
        XDG_CONFIG_HOME=str(scratch / "config"),
        NO_PROXY="*",
        no_proxy="*",
        NO_UPDATE_NOTIFIER="1",
        NO_COLOR="1",
        FORCE_COLOR="0",
    )
    return env


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-3000:]


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


async def run_tool(
    tool: Tool, state: TokenServerState, iterations: int, env: dict[str, str], log: Path
) -> Timing:
    """Run once; check it exited 0 and made N token and N API requests."""
    tokens, api = state.token_requests, state.api_requests
    with log.open("wb") as out:
        cpu, wall = children_cpu(), time.perf_counter()
        process = await asyncio.create_subprocess_exec(
            *tool.command, stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=out, env=env
        )
        code = await process.wait()
        timing = Timing(time.perf_counter() - wall, children_cpu() - cpu)
    made = (state.token_requests - tokens, state.api_requests - api)
    if code != 0 or made != (iterations, iterations):
        tail = _tail(log)
        raise RuntimeError(
            f"{tool.name} exited {code} after {made[0]} token and {made[1]} API requests"
            f" (expected {iterations} each):\n{tail}"
        )
    return timing


async def network_check(
    tool: Tool, strace: str, state: TokenServerState, env: dict[str, str], scratch: Path
) -> list[str]:
    """Run the tool under strace; the network calls that did not go to 127.0.0.1."""
    trace = scratch / f"{tool.name}.strace"
    command = list(tool.command)
    if tool.name == "stepci":
        small = scratch / "workflow.check.json"
        small.write_text(json.dumps(stepci_workflow(CHECK_ITERATIONS)))
        command = [*command[:3], str(small), *command[4:]]
    else:
        command[command.index("-n") + 1] = str(CHECK_ITERATIONS)
    traced = Tool(
        tool.name,
        [strace, "-f", "-qq", "-e", "trace=network", "-s", "256", "-o", str(trace), *command],
    )
    await run_tool(traced, state, CHECK_ITERATIONS, env, scratch / f"{tool.name}.check.log")
    return outside_loopback(trace.read_text(errors="replace"))


def outside_loopback(trace: str) -> list[str]:
    """connect/sendto/sendmsg calls of a strace log whose address is not 127.0.0.1 or ::1 (unix
    sockets, e.g. the Node inspector's or nscd's, are listed too: none are expected)."""
    found = []
    for line in trace.splitlines():
        match = _CONNECT.search(line)
        if match is None or match.group(3) == "NULL":
            continue  # a send on a connected socket: its connect() was checked
        address = match.group(3)
        if "AF_NETLINK" in address or "msg_name=NULL" in address:
            continue  # the kernel (interface listing), or a send on a connected socket
        host = _INET.search(address)
        if host is None or (host.group(1) or host.group(2)) not in _LOOPBACK:
            found.append(line.strip())
    return found


async def serve(state: TokenServerState) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(create_app(state), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
    await site.start()
    return runner, f"http://127.0.0.1:{int(runner.addresses[0][1])}"


async def bench(args: argparse.Namespace) -> int:
    task = asyncio.current_task()
    assert task is not None
    # SIGTERM (bench/run stopping) cancels the bench, so the cleanup below still runs.
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    state = TokenServerState()
    runner, base = await serve(state)
    scratch = Path(tempfile.mkdtemp(prefix="apimd-peers-"))
    env = child_env(scratch)
    n = args.iterations
    listed = tools(n, base, scratch)
    once = {t.name: t for t in tools(1, base, scratch)}
    timings: dict[str, list[Timing]] = {t.name: [] for t in listed}
    failures: list[str] = []
    try:
        strace = None if args.no_network_check else shutil.which("strace")
        if strace is None and not args.no_network_check:
            print("# network check skipped: strace not found (apt-get install strace)")
        for tool in listed:
            if tool.unavailable or strace is None:
                continue
            try:
                outside = await network_check(tool, strace, state, env, scratch)
            except RuntimeError as exc:
                tool.unavailable = f"failed: {str(exc).splitlines()[0]}"
                print(f"# {tool.name} failed its network check run:\n{exc}", file=sys.stderr)
                continue
            if outside:
                failures.append(f"{tool.name} tried to reach beyond loopback")
                for line in outside[:10]:
                    print(f"# {tool.name} network call outside 127.0.0.1: {line}")
            else:
                print(f"# {tool.name}: every connect() went to 127.0.0.1 (strace, N = 2)")
        for index in range(args.rounds):
            # Every other round runs the tools in reverse order, so a drift of the machine's
            # speed over the run favours none of them.
            for tool in listed if index % 2 == 0 else listed[::-1]:
                if tool.unavailable:
                    continue
                try:
                    log = scratch / f"{tool.name}.log"
                    timing = await _timed_round(
                        tool, once[tool.name], state, n, args.starts, env, log
                    )
                    timings[tool.name].append(timing)
                except RuntimeError as exc:
                    tool.unavailable = f"failed: {str(exc).splitlines()[0]}"
                    print(f"# {tool.name} failed:\n{exc}", file=sys.stderr)
    finally:
        await runner.cleanup()
        shutil.rmtree(scratch, ignore_errors=True)
    report(listed, timings, n)
    if any(t.unavailable for t in listed if t.name == "apimd"):
        failures.append("apimd failed")
    for failure in failures:
        print(f"# FAILED: {failure}", file=sys.stderr)
    return 1 if failures else 0


async def _timed_round(
    tool: Tool,
    once: Tool,
    state: TokenServerState,
    n: int,
    starts: int,
    env: dict[str, str],
    log: Path,
) -> Timing:
    """One round of `tool`: a run at N, and for N > 1 its per-iteration time with start-up taken
    out. The start-up is the median wall of `starts` runs at N = 1, half before the run at N and
    half after: one run's start-up moves by a fifth of a second (Step CI's by more), which
    divided by N − 1 was most of the per-iteration figure's spread."""
    if n == 1:
        return await run_tool(tool, state, n, env, log)
    walls = [(await run_tool(once, state, 1, env, log)).wall_s for _ in range(starts // 2)]
    timing = await run_tool(tool, state, n, env, log)
    walls += [
        (await run_tool(once, state, 1, env, log)).wall_s for _ in range(starts - starts // 2)
    ]
    timing.per_iteration_ms = (timing.wall_s - statistics.median(walls)) / (n - 1) * 1e3
    return timing


def report(listed: list[Tool], timings: dict[str, list[Timing]], n: int) -> None:
    """Medians over the rounds; each ratio is taken within a round (the tools of one round ran
    back to back, under the same machine load), then its median printed."""
    size = f"N={n}"
    usable = {t.name: timings[t.name] for t in listed if timings[t.name] and not t.unavailable}
    reasons = {t.name: t.unavailable or "no run" for t in listed}
    for metric, unit in (("wall", "s"), ("CPU", "s"), ("per iteration", "ms")):
        if metric == "per iteration" and n < 2:
            continue
        for tool in listed:
            label = f"workflow {metric} [{size}, {tool.name}]"
            runs = usable.get(tool.name)
            if runs is None:
                print(f"{label}: unavailable ({reasons[tool.name]})")
                continue
            value = statistics.median(_metric(t, metric) for t in runs)
            peers = [peer for peer in PEERS if peer in usable] if tool.name == "apimd" else []
            if not peers:
                print(f"{label}: {value:.2f} {unit}")
            for peer in peers:
                ratio = statistics.median(
                    _metric(theirs, metric) / _metric(ours, metric)
                    for theirs, ours in zip(usable[peer], runs, strict=False)
                )
                print(f"{label}: {value:.2f} {unit} (ratio {ratio:.2f} vs {peer})")
    for name, runs in timings.items():
        if runs:
            walls = ", ".join(f"{t.wall_s:.2f}" for t in runs)
            cpus = ", ".join(f"{t.cpu_s:.2f}" for t in runs)
            each = ", ".join(f"{t.per_iteration_ms:.2f}" for t in runs if t.per_iteration_ms)
            print(
                f"# {name}: wall per round {walls} s; CPU per round {cpus} s"
                + (f"; per iteration per round {each} ms" if each else "")
            )


def _metric(timing: Timing, metric: str) -> float:
    if metric == "per iteration":
        assert timing.per_iteration_ms is not None  # measured in every round when N > 1
        return timing.per_iteration_ms
    return timing.wall_s if metric == "wall" else timing.cpu_s


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--iterations", type=int, default=20, help="N (default 20)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; the median is printed")
    parser.add_argument(
        "--starts",
        type=int,
        default=4,
        help="runs at N = 1 per tool and round whose median wall is the start-up (default 4)",
    )
    parser.add_argument(
        "--no-network-check", action="store_true", help="skip the strace run of each tool"
    )
    args = parser.parse_args()
    if args.iterations < 1 or args.rounds < 1 or args.starts < 1:
        parser.error("-n, --rounds and --starts must be positive")
    return asyncio.run(bench(args))


if __name__ == "__main__":
    sys.exit(main())
