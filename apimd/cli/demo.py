"""`apimd demo`: a loopback demo API and token server, and the example project run against it."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

from apimd.cli.output import format_result, use_colour
from apimd.demo.server import RunningServer, create_app
from apimd.engine.memory import MemoryStateStore
from apimd.engine.runner import Engine
from apimd.model.loader import load_project_file

PROJECT = Path(__file__).resolve().parent.parent / "demo" / "project.yaml"
DEMO_TARGETS = ("service-status", "list-orders", "order-flow", "catalogue-xml", "checkout-health")


async def demo_command(args: argparse.Namespace) -> int:
    server = await _start_server(args.port)
    try:
        os.environ["APIMD_DEMO_URL"] = server.url
        project = load_project_file(PROJECT)
        print(f"apimd demo: API and token server on {server.url} (tokens live 60 s)\n")
        engine = Engine(project, MemoryStateStore())
        colour = use_colour(sys.stdout)
        try:
            for name in DEMO_TARGETS:
                result = await engine.run(name)
                print(format_result(result, colour=colour) + "\n")
        finally:
            await engine.close()
        print("checkout-health fails on purpose: that is what a failing monitor looks like.")
        if args.once:
            return 0
        print(
            "\nTry it yourself in another terminal (the server keeps running here):\n"
            f"  export APIMD_DEMO_URL={server.url}\n"
            "  .venv/bin/apimd run list-orders -f examples/project.yaml\n"
            "  .venv/bin/apimd run order-flow -f examples/project.yaml --json\n"
            "\nPress Ctrl-C to stop."
        )
        await asyncio.Event().wait()
        return 0
    finally:
        await server.stop()


async def _start_server(port: int) -> RunningServer:
    try:
        return await RunningServer(create_app(), port).start()
    except OSError:
        if port == 0:
            raise
        print(f"port {port} is taken; using a free port instead", file=sys.stderr)
        return await RunningServer(create_app(), 0).start()
