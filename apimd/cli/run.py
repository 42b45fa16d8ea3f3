"""`apimd run NAME -f FILE [--db PATH]`: one standalone run from a project file."""

from __future__ import annotations

import argparse
import sys
from contextlib import AsyncExitStack

from apimd.cli import UsageError, parse_vars
from apimd.cli.output import print_result
from apimd.engine.memory import MemoryStateStore
from apimd.engine.ports import StateStore
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


async def _open_db(path: str, stack: AsyncExitStack) -> StateStore:
    from apimd.settings import Settings
    from apimd.store import StoreError, open_store

    settings = Settings.load()
    try:
        store = await open_store(
            path,
            secret_key=settings.secret_key,
            key_file=settings.key_file,
            owner=True,
            owner_description="apimd run --db",
        )
    except StoreError as exc:
        raise UsageError(f"--db {path}: {exc}") from None
    stack.push_async_callback(store.close)
    return store


async def run_command(args: argparse.Namespace) -> int:
    variables = parse_vars(args.var)
    project = load_or_explain(args.file)
    if project.call(args.name) is None and project.workflow(args.name) is None:
        targets = sorted([c.name for c in project.calls] + [w.name for w in project.workflows])
        known = ", ".join(targets) if targets else "none"
        raise UsageError(
            f"{args.file} has no call or workflow named {args.name!r} (it has: {known})"
        )
    async with AsyncExitStack() as stack:
        state: StateStore = await _open_db(args.db, stack) if args.db else MemoryStateStore()
        engine = Engine(project, state)
        stack.push_async_callback(engine.close)
        result = await engine.run(args.name, variables=variables, trigger="manual")
    print_result(result, as_json=args.json, stream=sys.stdout)
    return 0 if result.outcome.is_success else 1
