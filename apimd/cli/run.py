"""`apimd run NAME -f FILE [--db PATH]`: one standalone run from a project file."""

from __future__ import annotations

import argparse
import asyncio
import os
import stat
import sys
import uuid
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from apimd.cli import UsageError, parse_vars
from apimd.cli.browser import present_url, wait_with_paste
from apimd.cli.output import print_result
from apimd.cli.project_file import check_project_file
from apimd.dburl import is_postgres_url, url_scheme
from apimd.engine.context import RunContext
from apimd.engine.memory import MemoryStateStore
from apimd.engine.ports import StateStore
from apimd.engine.runner import Engine
from apimd.engine.signin import SignInError, SignInFlows
from apimd.model.common import file_kind
from apimd.model.errors import ValidationFailed
from apimd.model.events import Event, SignInEnded
from apimd.model.loader import load_project_file
from apimd.model.outcome import ResultCode
from apimd.model.project import Project

if TYPE_CHECKING:
    from apimd.settings import Settings
    from apimd.store import Store

SQLITE_HEADER = b"SQLite format 3\x00"


def load_or_explain(path: str, *, cross_check: bool = True) -> Project:
    """The project in `path`, or a `UsageError` listing every problem."""
    check_project_file(path)
    try:
        return load_project_file(path, cross_check=cross_check)
    except ValidationFailed as exc:
        raise UsageError(f"{path} has problems, nothing was run.\n{exc}") from None


def sqlite_file_problem(path: Path) -> str | None:
    """Why the existing `path` cannot be a SQLite store (not a regular file, or one holding
    something else), or None (a SQLite file, an empty one, or none yet). Checked before the
    store is opened: that makes a lock file beside it and makes it private (mode 0600)."""
    try:
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode):
            return f"{path} is {file_kind(info.st_mode)}, not a SQLite database"
        with path.open("rb") as file:
            header = file.read(len(SQLITE_HEADER))
    except OSError:
        return None  # none yet, or unreadable: opening it says why
    if header and header != SQLITE_HEADER:
        return f"{path} is not a SQLite database"
    return None


async def open_owned_store(
    location: str | Path, what: str, settings: Settings, *, instead: str = ""
) -> Store:
    """The store at `location` (file or URL) with the configured key, held for this process;
    a `UsageError` starting with `what` when it cannot be opened, ending with `instead` (what
    else to do) when another process holds it."""
    from apimd.settings import foreign_state
    from apimd.store import StoreError, open_store
    from apimd.store.errors import StoreInUse

    problem = foreign_state(settings)
    if problem is None and not is_postgres_url(location):
        problem = sqlite_file_problem(Path(location))
    if problem is not None:
        raise UsageError(f"{what}: {problem}")
    try:
        store = await open_store(
            location,
            secret_key=settings.secret_key,
            key_file=settings.key_file,
            owner=True,
            owner_description=f"apimd {what}",
        )
        # Daemons sharing a PostgreSQL database are agents and hold no owner lock: a live one
        # (heard from in the last 15 s) owns the database for this purpose all the same.
        since = datetime.now(UTC) - timedelta(seconds=15)
        agents = await store.firings.live(since) if str(location).startswith("postgres") else []
        if agents:
            await store.close()
            first = agents[0]
            raise StoreInUse(
                store.name,
                f"the apimd daemon for agent {first.agent} in {first.location}",
                first.pid,
            )
        return store
    except StoreError as exc:
        also = f", {instead}" if instead and isinstance(exc, StoreInUse) else ""
        raise UsageError(f"{what}: {exc}{also}") from None


async def _open_db(path: str, stack: AsyncExitStack) -> StateStore:
    from apimd.settings import Settings

    scheme = url_scheme(path)
    if scheme is not None and not is_postgres_url(path):
        # Not taken for a file name: `mysql://root@h/x` made the SQLite file ./mysql:/root@h/x.
        raise UsageError(
            f"--db: {scheme}:// databases are not supported; give a SQLite file path or a "
            "postgresql:// (or postgres://) URL"
        )
    # Not a PostgreSQL URL, which may hold a password: the store's errors name its database and
    # server, and `what` also names this process's session to others (pg_stat_activity).
    what = "run --db" if is_postgres_url(path) else f"run --db {path}"
    store = await open_owned_store(path, what, Settings.load(), instead="or use another --db")
    stack.push_async_callback(store.close)
    return store


async def open_state(db: str | None, stack: AsyncExitStack) -> StateStore:
    """State for a standalone run: the SQLite file `db` (closed with `stack`), else in memory."""
    return await _open_db(db, stack) if db else MemoryStateStore()


async def run_command(args: argparse.Namespace) -> int:
    variables = parse_vars(args.var)
    project = load_or_explain(args.file)
    if project.call(args.name) is None and project.workflow(args.name) is None:
        targets = sorted([c.name for c in project.calls] + [w.name for w in project.workflows])
        known = ", ".join(targets) if targets else "none"
        raise UsageError(
            f"{args.file} has no call or workflow named {args.name!r} (it has: {known})"
        )
    needs_browser = _needs_browser(project, args.name)
    interactive = needs_browser and sys.stdin.isatty() and sys.stdout.isatty()
    async with AsyncExitStack() as stack:
        state = await open_state(args.db, stack)
        done = asyncio.Event()
        outcome: list[SignInEnded] = []

        def on_event(event: Event) -> None:
            if isinstance(event, SignInEnded):
                outcome.append(event)
                done.set()

        engine = Engine(project, state, events=on_event, standalone=True)
        stack.push_async_callback(engine.close)
        flows = SignInFlows(engine)
        if interactive:
            from apimd.daemon.callback import serve_callback
            from apimd.settings import Settings

            settings = Settings.load()
            try:
                listener = await serve_callback(flows.complete, settings.callback_port)
            except OSError as exc:
                raise UsageError(
                    f"this run opens a browser, but callback port {settings.callback_port} is "
                    f"taken ({exc.strerror}); set APIMD_CALLBACK_PORT to a free port"
                ) from None
            stack.push_async_callback(listener.close)
            engine.callback_url = settings.callback_url(listener.port)
        elif needs_browser:
            from apimd.settings import Settings

            engine.callback_url = Settings.load().callback_url()  # the browser's way back
        ctx = RunContext(
            run_id=str(uuid.uuid4()),
            trigger="manual",
            variables={k.upper(): v for k, v in variables.items()},
            interactive=interactive,
        )
        result = await engine.run_with(args.name, ctx)
        print_result(result, as_json=args.json, stream=sys.stdout)
        if ctx.browser_url and not interactive:
            _hand_over(ctx.browser_url, args, stream=sys.stderr if args.json else sys.stdout)
        if not (interactive and result.result == ResultCode.BROWSER):
            return 0 if result.outcome.is_success else 1
        pending = await state.pending_signins()
        if not pending:
            return 1
        present_url(pending[-1].url, engine.callback_url)

        if await wait_with_paste(done.wait(), flows.complete_url, SignInError) is None:
            return 1
        finished = outcome[0]
        print(("Signed in: " if finished.ok else "Sign-in failed: ") + finished.message)
        result_id = finished.result_id
        continuation = await state.get_result(result_id) if result_id else None
        if continuation is not None:
            print_result(continuation, as_json=args.json, stream=sys.stdout)
        return 0 if finished.ok else 1


def _hand_over(url: str, args: argparse.Namespace, *, stream: TextIO) -> None:
    """Off a terminal nothing waits for the browser's return: say where the sign-in starts and
    how to run it so that it can finish."""
    print(
        f"\nThis run reached a browser step. Its sign-in starts at:\n  {url}\n"
        "Nothing here waits for the browser to come back (not a terminal): to sign in and "
        f"finish the run, run `apimd run {args.name} -f {args.file}` on a terminal, or Run it "
        "in the TUI.",
        file=stream,
    )


def _needs_browser(project: Project, name: str) -> bool:
    call = project.call(name)
    if call is not None:
        return call.has_tag("browser")
    workflow = project.workflow(name)
    steps = [project.call(step) for step in workflow.steps] if workflow else []
    return any(step is not None and step.has_tag("browser") for step in steps)
