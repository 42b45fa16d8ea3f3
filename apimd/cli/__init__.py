"""The `apimd` command line (SPEC §7)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from apimd import __version__


class UsageError(Exception):
    """Bad command-line input: exit 2 with the message."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="apimd",
        description="apimd: an always-on API monitor for people who work in terminals.",
    )
    parser.add_argument("--version", action="version", version=f"apimd {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = commands.add_parser(
        "run",
        help="run a call or workflow once and print its result",
        description="Run a call or workflow once and print its result. Exit 0 on PASS/SLOW, "
        "1 on any other outcome, 2 on usage or project-file errors.",
    )
    run.add_argument("name", help="the call or workflow to run")
    run.add_argument("-f", "--file", help="project file (YAML or JSON) to run from, standalone")
    run.add_argument(
        "--var",
        action="append",
        default=[],
        metavar="K=V",
        help="a run variable (repeatable)",
    )
    run.add_argument("--json", action="store_true", help="print the result document as JSON")
    run.add_argument("--db", help="keep tokens and results in this SQLite file")

    demo = commands.add_parser(
        "demo",
        help="start a loopback demo API and token server and run the example project",
    )
    demo.add_argument("--port", type=int, default=8780, help="port of the demo server (0 = any)")
    demo.add_argument(
        "--once", action="store_true", help="run the example once and exit instead of serving"
    )
    return parser


def parse_vars(pairs: Sequence[str]) -> dict[str, str]:
    """`K=V` pairs into run variables; a malformed pair is a usage error."""
    out: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise UsageError(f"--var {pair!r}: expected NAME=VALUE")
        out[name.strip().upper()] = value
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "run":
            from apimd.cli.run import run_command

            return asyncio.run(run_command(args))
        if args.command == "demo":
            from apimd.cli.demo import demo_command

            return asyncio.run(demo_command(args))
    except UsageError as exc:
        print(f"apimd: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    parser.print_help()
    return 2
