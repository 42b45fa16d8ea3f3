"""`apimd run NAME… [--tag T]… [--junit FILE]`: several targets (or every target with a tag) one
after another, through the daemon or standalone from `-f FILE`; the exit code is the worst of the
runs (SPEC §7, §11)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path

from apimd.cli import UsageError, parse_vars
from apimd.cli.junit import TargetRun, junit_xml
from apimd.cli.output import print_result
from apimd.model.project import Project
from apimd.model.resources import Call, Workflow
from apimd.model.result import Result

RunTarget = Callable[[str, str, dict[str, str]], Awaitable[Result]]


@dataclass(frozen=True)
class Target:
    name: str
    kind: str  # "calls" | "workflows"
    tags: tuple[str, ...]
    steps: tuple[str, ...] = ()


def choose(targets: list[Target], names: list[str], tags: list[str], where: str) -> list[Target]:
    """The targets named, then every target carrying one of `tags`, each once, in that order."""
    by_name = {t.name: t for t in targets}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        known = ", ".join(sorted(by_name)) or "none"
        raise UsageError(f"{where} has no call or workflow named {unknown[0]!r} (it has: {known})")
    chosen = [by_name[n] for n in dict.fromkeys(names)]
    wanted = set(tags)
    chosen += [t for t in targets if wanted & set(t.tags) and t not in chosen]
    if not chosen:
        raise UsageError(f"{where} has no call or workflow tagged {', '.join(tags)}")
    return chosen


def project_targets(project: Project) -> list[Target]:
    return [_target(c, "calls") for c in project.calls] + [
        _target(w, "workflows") for w in project.workflows
    ]


def _target(item: Call | Workflow, kind: str) -> Target:
    steps = tuple(item.steps) if isinstance(item, Workflow) else ()
    return Target(item.name, kind, tuple(item.tags), steps)


async def run_targets(chosen: list[Target], run: RunTarget, args: argparse.Namespace) -> int:
    """Run each target, print its result, write the JUnit file; 0 only when every run passed."""
    variables = parse_vars(args.var)
    runs: list[TargetRun] = []
    for target in chosen:
        result = await run(target.kind, target.name, variables)
        print_result(result, as_json=args.json, stream=sys.stdout)
        runs.append(TargetRun(result, list(target.steps)))
    if args.junit:
        write_junit(args.junit, runs)
    return 0 if all(r.result.outcome.is_success for r in runs) else 1


def write_junit(path: str, runs: list[TargetRun]) -> None:
    """Write the JUnit file once every run is done (a CLI's last step: blocking is fine)."""
    try:
        Path(path).write_bytes(junit_xml(runs))
    except OSError as exc:
        raise UsageError(f"--junit {path}: {exc.strerror or exc}") from None


async def run_many_standalone(args: argparse.Namespace) -> int:
    from apimd.cli.run import load_or_explain, open_state
    from apimd.engine.context import RunOrder
    from apimd.engine.runner import Engine

    project = load_or_explain(args.file)
    chosen = choose(project_targets(project), args.name, args.tag, args.file)
    async with AsyncExitStack() as stack:
        engine = Engine(project, await open_state(args.db, stack))
        stack.push_async_callback(engine.close)

        async def run(_kind: str, name: str, variables: dict[str, str]) -> Result:
            return await engine.run(name, RunOrder(variables=variables))

        return await run_targets(chosen, run, args)


async def run_many_remote(args: argparse.Namespace) -> int:
    from apimd.client import Client
    from apimd.settings import Settings

    settings = Settings.load()
    async with Client(settings.socket_path) as client:
        targets: list[Target] = []
        for kind in ("calls", "workflows"):
            for item in await client.list(kind):
                assert isinstance(item, Call | Workflow)
                targets.append(_target(item, kind))
        chosen = choose(targets, args.name, args.tag, "the daemon")

        async def run(kind: str, name: str, variables: dict[str, str]) -> Result:
            accepted = await client.run(kind, name, variables=variables, wait=True)
            assert accepted.result is not None
            return accepted.result

        return await run_targets(chosen, run, args)
