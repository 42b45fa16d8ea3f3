"""CLI commands that talk to the daemon over its socket (SPEC §7)."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from apimd.cli import UsageError, parse_vars
from apimd.cli.files import write_text_file
from apimd.cli.output import format_apply, print_result
from apimd.cli.table import column_widths, fit_width, table
from apimd.client import ApiError, Client, DaemonUnavailable, NotOurDaemon
from apimd.model.durations import short_duration
from apimd.model.events import RunFinished
from apimd.model.outcome import ResultCode
from apimd.model.reason import short_reason
from apimd.model.result import Result
from apimd.model.yaml_text import document_yaml
from apimd.settings import Settings

START_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 25.0


def daemon_argv() -> list[str]:
    """The command that starts a background daemon. `-P` keeps the working folder off
    `sys.path`: started from the parent of a clone, its `apimd` folder would otherwise shadow
    the installed package (an editable install included, whose finder comes after the path)."""
    return [sys.executable, "-P", "-m", "apimd", "daemon"]


def client_for(settings: Settings) -> Client:
    return Client(settings.socket_path)


async def _daemon_pid(settings: Settings) -> int | None:
    try:
        async with client_for(settings) as client:
            return (await client.status()).pid
    except DaemonUnavailable:
        return None


# --- process commands -----------------------------------------------------------------------


def daemon_command(settings: Settings) -> int:
    from apimd.daemon.process import DaemonError, run_daemon
    from apimd.store import StoreError

    try:
        return run_daemon(settings)
    except (DaemonError, StoreError) as exc:
        print(f"apimd daemon: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"apimd daemon: cannot start: {exc.strerror or exc}{where}", file=sys.stderr)
        return 1


async def start_command(settings: Settings) -> int:
    pid = await _daemon_pid(settings)
    if pid is not None:
        print(f"apimd daemon already running (pid {pid}) on {settings.socket_path}")
        return 0
    log_path = settings.log_path
    # The background daemon logs to daemon.log only; its stderr (errors before logging starts,
    # such as a lock held by another daemon) goes to a small file we show if it fails to start.
    with tempfile.TemporaryFile() as early_errors:
        process = await asyncio.create_subprocess_exec(
            *daemon_argv(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=early_errors,
            start_new_session=True,
            env={**os.environ, "APIMD_LOG_STDERR": "0"},
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if process.returncode is not None:
                early_errors.seek(0)
                err = early_errors.read().decode(errors="replace").strip()
                print(f"apimd: the daemon did not start:\n{err}", file=sys.stderr)
                return 1
            pid = await _daemon_pid(settings)
            if pid is not None:
                print(
                    f"apimd daemon started (pid {pid}); socket {settings.socket_path}, log {log_path}"
                )
                return 0
            await asyncio.sleep(0.1)
    print(
        f"apimd: the daemon did not answer within {START_TIMEOUT_S:.0f} s; see {log_path}",
        file=sys.stderr,
    )
    return 1


async def stop_command(settings: Settings) -> int:
    pid = await _daemon_pid(settings)
    if pid is None:
        print("no apimd daemon is running")
        return 0
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            gone = True
        else:
            from apimd.store.lock import is_locked

            # An exited daemon has released its lock even while its pid lingers as a zombie
            # that nobody reaped (a container's PID 1 that is not an init).
            gone = not is_locked(settings.lock_path)
        if gone:
            print(f"apimd daemon stopped (pid {pid})")
            return 0
        await asyncio.sleep(0.1)
    print(
        f"apimd: the daemon (pid {pid}) is still stopping; see {settings.log_path}", file=sys.stderr
    )
    return 1


async def status_command(settings: Settings, as_json: bool) -> int:
    try:
        async with client_for(settings) as client:
            status = await client.status()
    except NotOurDaemon as exc:  # something answers there, but not this user's daemon
        print(f"apimd: {exc}", file=sys.stderr)
        return 1
    except DaemonUnavailable:
        if as_json:
            print(json.dumps({"running": False, "socket_path": str(settings.socket_path)}))
        else:
            print(f"apimd daemon: not running (no answer on {settings.socket_path})")
        return 1
    if as_json:
        print(status.model_dump_json(indent=2))
        return 0
    callback = status.callback_url + (" (listening)" if status.callback_bound else " (NOT bound)")
    scheduler = f"scheduler {status.scheduler}" if status.leader else "fired by the leader"
    lines = [
        f"apimd daemon {status.version}: running (pid {status.pid}, up {short_duration(status.uptime_s)})",
        f"  schedules   {status.schedules} enabled, {scheduler}",
        "  monitors    "
        + ", ".join(
            f"{n} {noun}{'s' if n != 1 else ''}"
            for noun, n in (
                (k, status.counts.get(f"{k}s", 0)) for k in ("call", "workflow", "token")
            )
        ),
        f"  running     {', '.join(status.running) or 'nothing'}",
        f"  callback    {callback}",
        f"  socket      {status.socket_path}",
        f"  database    {status.db_path}",
        f"  log         {status.log_path or settings.log_path}",
    ]
    if status.callback_error:
        lines.append(f"  warning     {status.callback_error}")
    if status.store_error:
        lines.append(f"  warning     the store: {status.store_error}; other agents not listed")
    role = "leader" if status.leader else "follower"
    lines.append(f"  agent       {status.agent} in {status.location} ({role})")
    for agent in status.agents if status.clustered or len(status.agents) > 1 else []:
        seen = short_duration((datetime.now(UTC) - agent.last_heartbeat).total_seconds())
        lead = ", leader" if agent.leader else ""
        work = ", ".join(agent.running) or "idle"
        lines.append(
            f"    {agent.agent:<16} {agent.location:<12} pid {agent.pid:<8}"
            f" seen {seen} ago{lead}: {work}"
        )
    for location in status.unserved_locations:
        lines.append(
            f"  warning     no live agent in {location}: its schedules' runs there are dropped"
            " until one is back"
        )
    print("\n".join(lines))
    return 0


# --- project commands ------------------------------------------------------------------------


async def apply_command(settings: Settings, args: argparse.Namespace) -> int:
    from apimd.cli.project_file import check_project_file
    from apimd.model.errors import ValidationFailed
    from apimd.model.loader import load_project_file

    check_project_file(args.file)
    try:
        # References are checked by the daemon, against what it already holds.
        project = load_project_file(args.file, cross_check=False)
    except ValidationFailed as exc:
        failed = exc
        stored = await _stored_names(settings)
        if stored is not None:
            # Shape errors and unknown references in one pass (SPEC §7), against what the
            # daemon holds as well as what the file gives.
            try:
                load_project_file(args.file, cross_check=False, known=stored)
            except ValidationFailed as again:
                failed = again
        raise UsageError(f"{args.file} has problems, nothing was applied.\n{failed}") from None
    async with client_for(settings) as client:
        try:
            summary = await client.apply(project, prune=args.prune)
        except ApiError as exc:
            raise UsageError(f"{args.file} was not applied: {_located(args.file, exc)}") from None
    print(format_apply(args.file, summary))
    return 0


async def _stored_names(settings: Settings) -> dict[str, set[str]] | None:
    """The names of what the daemon holds, per kind; None when no daemon answers."""
    try:
        async with client_for(settings) as client:
            return {
                kind: {str(getattr(r, "name", "")) for r in await client.list(kind)}
                for kind in ("auth", "tokens", "calls", "workflows", "schedules")
            }
    except (DaemonUnavailable, ApiError):
        return None


def _located(path: str, error: ApiError) -> str:
    """The daemon's refusal of a file, each problem prefixed with `file:line` (the daemon checks
    references against what it holds, so it knows fields but not the file's lines)."""
    try:
        tree = YAML(typ="rt").load(Path(path).read_text(encoding="utf-8"))
    except Exception:  # it parsed a moment ago; if it no longer does, show the fields only
        tree = None
    lines = [error.message]
    for err in error.errors:
        line = _line_of(tree, err.field) if err.field else None
        what = err.field or ""
        if err.resource:
            what = f"{what} ({err.resource})" if what else err.resource
        where = f"{path}:{line}" if line else path
        lines.append(f"  {where}: {what}: {err.message}" if what else f"  {where}: {err.message}")
    return "\n".join(lines)


def _line_of(tree: object, field: str) -> int | None:
    """The 1-based line of `field` (`calls[0].token`) in a round-trip YAML tree, or of the
    deepest part of it that the file has."""
    line: int | None = None
    node: Any = tree
    for key, index in re.findall(r"([^.\[\]]+)|\[(\d+)\]", field):
        try:
            if index:
                position = int(index)
                line = node.lc.item(position)[0] + 1
                node = node[position]
            else:
                line = node.lc.key(key)[0] + 1
                node = node[key]
        except (AttributeError, KeyError, IndexError, TypeError):
            break
    return line


async def export_command(settings: Settings, args: argparse.Namespace) -> int:
    async with client_for(settings) as client:
        document = await client.export(secrets=args.secrets)
    text = document_yaml(document)
    if not args.file or args.file == "-":
        sys.stdout.write(text)
        return 0
    path = Path(args.file)
    try:
        await asyncio.to_thread(write_text_file, path, text, private=args.secrets)
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}; nothing exported") from None
    note = " (secrets in clear: the file is 0600)" if args.secrets else ""
    print(f"exported to {path}{note}")
    return 0


# --- runs and results ------------------------------------------------------------------------


async def run_remote(settings: Settings, args: argparse.Namespace) -> int:
    variables = parse_vars(args.var)
    async with client_for(settings) as client:
        try:
            kind = "calls"
            try:
                await client.get("calls", args.name)
            except ApiError as exc:
                if exc.status != 404:
                    raise
                kind = "workflows"
                await client.get("workflows", args.name)
            interactive = sys.stdin.isatty() and sys.stdout.isatty() and not args.json
            if interactive and not args.location:  # elsewhere: no terminal there to sign in at
                from apimd.cli.signin import run_interactive

                return await run_interactive(settings, client, kind, args.name, variables)
            accepted = await client.run(
                kind, args.name, variables=variables, wait=True, location=args.location
            )
        except ApiError as exc:
            if exc.status == 404:
                raise UsageError(
                    f"the daemon has no call or workflow named {args.name!r}"
                ) from None
            raise UsageError(str(exc)) from None
    assert accepted.result is not None
    print_result(accepted.result, as_json=args.json)
    return 0 if accepted.result.outcome.is_success else 1


def _result_row(result: Result, where: bool = False) -> list[str]:
    status = str(result.http_status) if result.http_status is not None else "-"
    name = f"{result.name} (step of {result.workflow})" if result.workflow else result.name
    place = [f"{result.location or '-'}/{result.agent or '-'}"] if where else []
    return [
        result.started_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"),
        name,
        result.outcome.value,
        result.result.value,
        status,
        f"{result.timings_ms.total:.0f}",
        f"{result.lateness_ms:.0f}" if result.lateness_ms is not None else "-",
        result.trigger,
        *place,
        # A failed condition leaves `error` empty: the condition and what it saw say why.
        result.error or short_reason(result) or "",
    ]


def _result_table(results: list[Result]) -> tuple[list[str], list[list[str]]]:
    """Headers and rows; a WHERE column (location/agent) when the results come from more than
    one place, as a cluster's do (SPEC §13): from one place it would repeat the same cell."""
    where = len({(r.location, r.agent) for r in results}) > 1
    headers = [*RESULT_HEADERS[:-1], "WHERE", RESULT_HEADERS[-1]] if where else RESULT_HEADERS
    return headers, [_result_row(r, where) for r in results]


RESULT_HEADERS = [
    "STARTED (UTC)", "NAME", "OUTCOME", "RESULT", "HTTP", "MS", "LATE", "TRIGGER", "ERROR"
]  # fmt: skip
"""`LATE`: ms after its due instant a scheduled run started (`lateness_ms`; `-` otherwise)."""
FOLLOW_FLOOR = [19, 0, 7, max(len(code) for code in ResultCode), 4, 5, 4, len("schedule")]
"""`--follow` fixes its columns before new rows come: wide enough for any outcome, result and
trigger; the name column is as wide as the longest call or workflow name."""
FOLLOW_BACKLOG = 10


async def results_command(settings: Settings, args: argparse.Namespace) -> int:
    width = fit_width()
    async with client_for(settings) as client:
        page = await client.results(name=args.name, limit=args.limit)
        if args.json and not args.follow:
            print(page.model_dump_json(indent=2))
            return 0
        if not args.follow:
            if not page.results:
                print("no results yet" + (f" for {args.name}" if args.name else ""))
                return 0
            print(table(*_result_table(page.results), width=width))
            return 0
        # Following reads like `tail -f`: the latest results oldest first, new ones below.
        headers, backlog = _result_table(list(reversed(page.results[:FOLLOW_BACKLOG])))
        where = len(headers) > len(RESULT_HEADERS)
        floor = [*FOLLOW_FLOOR]
        floor[1] = await _longest_name(client, args.name)
        widths = column_widths(headers, backlog, floor)
        if not args.json:
            print(table(headers, backlog, widths=widths, width=width))
            note = f"(the last {len(backlog)} oldest first; following new results, ctrl-c stops)"
            print(note, file=sys.stderr)
        sys.stdout.flush()
        async for event in client.events():
            if not isinstance(event, RunFinished):
                continue
            if args.name and event.name != args.name and event.kind != "workflow":
                continue
            found = await client.result(event.result_id)
            for result in _named(found, args.name):
                if args.json:
                    print(result.model_dump_json())
                else:
                    row = [_result_row(result, where)]
                    print(table(headers, row, header=False, widths=widths, width=width))
            sys.stdout.flush()
    return 0


async def _longest_name(client: Client, name: str | None) -> int:
    """The widest NAME cell a followed result can have."""
    if name is not None:
        workflows = await client.list("workflows")
        parents = [
            str(getattr(w, "name", "")) for w in workflows if name in getattr(w, "steps", [])
        ]
        return max([len(name), *(len(f"{name} (step of {p})") for p in parents)])
    names = [
        str(getattr(r, "name", "")) for k in ("calls", "workflows") for r in await client.list(k)
    ]
    return max([0, *map(len, names)])


def _named(result: Result, name: str | None) -> list[Result]:
    """`result` itself, or the steps of it named `name`, marked with their workflow."""
    if name is None or result.name == name:
        return [result]
    return [s.model_copy(update={"workflow": result.name}) for s in result.steps if s.name == name]
