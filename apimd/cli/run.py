"""`apimd run NAME -f FILE`: one standalone run from a project file."""

from __future__ import annotations

import argparse
import sys

from apimd.cli import UsageError, parse_vars
from apimd.cli.output import print_result
from apimd.engine.memory import MemoryStateStore
from apimd.engine.runner import Engine
from apimd.model.errors import ValidationFailed
from apimd.model.loader import load_project_file
from apimd.model.project import Project


def load_or_explain(path: str, *, cross_check: bool = True) -> Project:
    """The project in `path`, or a `UsageError` listing every problem."""
    try:
        return load_project_file(path, cross_check=cross_check)
    except ValidationFailed as exc:
        raise UsageError(f"{path} has problems, nothing was run.\n{exc}") from None


async def run_command(args: argparse.Namespace) -> int:
    variables = parse_vars(args.var)
    if not args.file:
        raise UsageError(
            "running through the daemon is not available yet; give the project file: "
            f"apimd run {args.name} -f project.yaml"
        )
    if args.db:
        raise UsageError("--db is not available yet (it comes with the store)")
    project = load_or_explain(args.file)
    if project.call(args.name) is None and project.workflow(args.name) is None:
        targets = sorted([c.name for c in project.calls] + [w.name for w in project.workflows])
        known = ", ".join(targets) if targets else "none"
        raise UsageError(
            f"{args.file} has no call or workflow named {args.name!r} (it has: {known})"
        )
    engine = Engine(project, MemoryStateStore())
    try:
        result = await engine.run(args.name, variables=variables, trigger="manual")
    finally:
        await engine.close()
    print_result(result, as_json=args.json, stream=sys.stdout)
    return 0 if result.outcome.is_success else 1
