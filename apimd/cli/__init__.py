"""The `apimd` command line (SPEC §7)."""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from apimd import __version__
from apimd.cli.flags import flag
from apimd.cli.importing import add_import_parser
from apimd.model.common import LOCATION_PATTERN, MAX_LOCATION, MAX_NAME

if TYPE_CHECKING:
    from apimd.settings import Settings


class UsageError(Exception):
    """Bad command-line input: exit 2 with the message."""


SETTINGS_HELP = """\
settings (environment variables; the same keys work in settings.toml):
  APIMD_HOME            one folder for all state: apimd.db, secret.key, settings.toml,
                        apimd.sock, daemon.log (default: the user's data, config and
                        state folders)
  APIMD_SOCKET          the daemon's Unix socket (default: apimd.sock in the state folder)
  APIMD_CALLBACK_PORT   loopback port of the sign-in callback (default 8765; 0 = any)
  APIMD_SECRET_KEY      key that encrypts stored secrets (default: secret.key, made once)
  APIMD_RETENTION_DAYS  days raw results are kept (default 30; hourly rollups stay)
  APIMD_DATABASE_URL    postgresql://… keeps everything in PostgreSQL (default: SQLite,
                        apimd.db; see `apimd migrate`)
  APIMD_METRICS_ADDR    also serve GET /metrics on HOST:PORT (e.g. 127.0.0.1:9464)
  APIMD_LOG_LEVEL       DEBUG, INFO (default), WARNING or ERROR
  APIMD_LOCATION        where this agent checks from, with PostgreSQL (default: host name)
  APIMD_AGENT           this agent's name, with PostgreSQL (default: host name + pid)
  NO_COLOR              no colours in output
`apimd status` prints where the socket, database and log of a running daemon are."""


class _HelpFormatter(argparse.HelpFormatter):
    """Wraps descriptions as usual but keeps the settings table as written."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if text == SETTINGS_HELP:
            return text
        return super()._fill_text(text, width, indent)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="apimd",
        description="apimd: an always-on API monitor for people who work in terminals. "
        "Run without a command to open the TUI (starting the daemon if none runs).",
        epilog=SETTINGS_HELP,
        formatter_class=_HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"apimd {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    def command(name: str, help: str, description: str) -> argparse.ArgumentParser:
        return commands.add_parser(
            name,
            help=help,
            description=description,
            epilog=SETTINGS_HELP,
            formatter_class=_HelpFormatter,
        )

    command(
        "daemon",
        "run the daemon in the foreground (systemd, containers)",
        "Run the daemon in the foreground: it serves the REST API on its Unix socket, runs the "
        "schedules, keeps tokens fresh and listens for sign-in callbacks. It logs to stderr and "
        "daemon.log; SIGTERM stops it (in-flight runs get 10 s).",
    )
    command(
        "start",
        "start the daemon in the background",
        "Start the daemon in the background unless one already answers on the socket; print "
        "its pid, socket and log. Exit 1 when it does not start (its first errors are shown).",
    )
    command(
        "stop",
        "stop the daemon (in-flight runs get 10 s)",
        "Stop the running daemon with SIGTERM: in-flight runs get 10 s to finish, then are "
        "cancelled. Exit 0 once it has exited (or when none runs).",
    )
    commands.add_parser(
        "help", help="show help: `apimd help settings` lists the environment settings"
    ).add_argument("topic", nargs="?", help="`settings`, or a command")
    status = commands.add_parser(
        "status", help="is the daemon running? (exit 0 yes, 1 no); its socket, database and log"
    )
    flag(status, "--json", help="print the status document")

    apply = commands.add_parser("apply", help="validate a project file and load it into the daemon")
    apply.add_argument("file", help="project file (YAML or JSON)")
    flag(apply, "--prune", help="also delete what the file omits")

    export = commands.add_parser("export", help="write the daemon's project as YAML")
    export.add_argument("file", nargs="?", help="write here instead of standard output")
    flag(export, "--secrets", help="write secrets in clear")

    run = commands.add_parser(
        "run",
        help="run a call or workflow once and print its result",
        description="Run a call or workflow once and print its result: through the daemon, or "
        "standalone from a project file with -f. Exit 0 on PASS/SLOW, 1 on any other outcome, "
        "2 on usage or project-file errors.",
    )
    run.add_argument(
        "name", nargs="*", metavar="NAME", help="the call(s) or workflow(s) to run, in order"
    )
    run.add_argument(
        "--tag", action="append", default=[], metavar="T", help="also every target tagged T"
    )
    run.add_argument("--junit", metavar="FILE", help="also write JUnit XML for CI to FILE")
    run.add_argument("-f", "--file", help="project file (YAML or JSON) to run from, standalone")
    run.add_argument(
        "--var", action="append", default=[], metavar="K=V", help="a run variable (repeatable)"
    )
    flag(run, "--json", help="print the result document as JSON")
    run.add_argument(
        "--location",
        metavar="L",
        help="run it on an agent in location L (agents sharing PostgreSQL; default: this one)",
    )
    run.add_argument(
        "--db",
        help="with -f: keep tokens and results in this SQLite file or postgresql:// database",
    )

    results = commands.add_parser("results", help="recent results, newest first")
    results.add_argument("name", nargs="?", help="only this call or workflow")
    flag(results, "--follow", help="keep printing new results")
    flag(results, "--json", help="JSON (with --follow: one per line)")
    results.add_argument("--limit", type=int, default=100, help="how many (default 100)")

    tokens = commands.add_parser("tokens", help="list tokens: state, expiry, last refresh")
    flag(tokens, "--json", help="print JSON")

    token = commands.add_parser("token", help="act on one token")
    token_commands = token.add_subparsers(dest="token_command", metavar="ACTION", required=True)
    refresh = token_commands.add_parser(
        "refresh",
        help="refresh a token now",
        description="Refresh a token now with its auth setting's refresh workflow (or refresh "
        "token) and print its new state. Exit 0 when it is valid afterwards, 1 otherwise.",
    )
    refresh.add_argument("name")
    show = token_commands.add_parser(
        "show",
        help="one token's whole state: expiry, last refresh, last error in full",
        description="Print one token's state, expiry, last refresh and whole last error "
        "(secret values are never shown).",
    )
    show.add_argument("name")
    flag(show, "--json", help="print the token as JSON")
    signin = token_commands.add_parser(
        "signin", help="sign a token in: opens the browser, or prints the URL over SSH"
    )
    signin.add_argument("name")
    flag(signin, "--device", help="use the device-code flow")

    migrate = commands.add_parser(
        "migrate",
        help="copy the SQLite store into an empty PostgreSQL database (stop the daemon first)",
    )
    migrate.add_argument(
        "--to", required=True, metavar="URL", help="postgresql://user@host:port/database"
    )
    migrate.add_argument(
        "--from", dest="source", metavar="PATH", help="the SQLite file (default: the daemon's)"
    )

    service = commands.add_parser("service", help="run the daemon always, as a systemd user unit")
    service_commands = service.add_subparsers(
        dest="service_command", metavar="ACTION", required=True
    )
    service_install = service_commands.add_parser(
        "install", help="write the unit and its 0600 settings file"
    )
    flag(service_install, "--now", help="also enable and start it (systemctl --user)")
    service_commands.add_parser("uninstall", help="stop, disable and remove the unit")

    mute = commands.add_parser(
        "mute", help="silence a target's notifiers for a while (a one-off maintenance window)"
    )
    mute.add_argument("target", help="the call or workflow")
    mute.add_argument("duration", help="how long, e.g. 30m, 2h, 1d")

    demo = commands.add_parser(
        "demo", help="start a loopback demo API and token server and run the example project"
    )
    demo.add_argument("--port", type=int, default=8780, help="port of the demo server (0 = any)")
    flag(demo, "--once", help="run the monitors once and exit instead of serving")
    flag(demo, "--standalone", help="run the example in process, without a daemon")
    flag(demo, "--no-tui", help="print results as they come instead of the TUI")
    flag(
        demo,
        "--api-only",
        help="serve only the demo API (for `apimd run … -f examples/project.yaml`)",
    )
    add_import_parser(commands)
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


# Arguments that name things the daemon holds (paths are left alone: any bytes may name a file).
_NAME_ARGS = {"name": "NAME", "target": "NAME", "tag": "--tag", "location": "--location"}


def _check_names(args: argparse.Namespace) -> None:
    """A name that is not valid UTF-8 (an undecodable byte on the command line) or longer than
    any name, or an empty or over-long `--location`, is a usage error here, not a traceback
    from the client (or a plain-text 400 from the daemon's HTTP parser)."""
    for dest, label in _NAME_ARGS.items():
        value = getattr(args, dest, None)
        for text in value if isinstance(value, list) else [value]:
            if not isinstance(text, str):
                continue
            try:
                text.encode()
            except UnicodeEncodeError:
                raise UsageError(f"{label} {text!r}: not valid UTF-8") from None
            if label == "NAME" and len(text) > MAX_NAME:  # (not echoed: it fills the screen)
                raise UsageError(f"NAME: {len(text)} characters; a name is at most {MAX_NAME}")
    location = getattr(args, "location", None)
    if location is not None and not location.strip():
        raise UsageError("--location: empty; give a location name (see `apimd status`)")
    if location is not None and len(location) > MAX_LOCATION:
        raise UsageError(f"--location: {len(location)} characters, at most {MAX_LOCATION}")
    if location is not None and not re.fullmatch(LOCATION_PATTERN, location):
        raise UsageError(f"--location {location!r}: only letters, digits, '.', '_' or '-'")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command not in (None, "demo"):  # (those two open the TUI)
        from apimd.cli.output import guard_terminal

        guard_terminal()
    try:
        return _dispatch(parser, args)
    except UsageError as exc:
        print(f"apimd: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`apimd results --json | head`): stop quietly, like other tools.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except Exception as exc:
        from apimd.client import ApiError, DaemonUnavailable
        from apimd.settings import SettingsError

        if isinstance(exc, DaemonUnavailable | SettingsError | ApiError):
            print(f"apimd: {exc}", file=sys.stderr)
            return 1
        raise


async def _signin(settings: object, name: str, device: bool) -> int:
    from apimd.cli.signin import token_signin_command
    from apimd.settings import Settings

    assert isinstance(settings, Settings)
    return await token_signin_command(settings, name, device)


def _open_tui(settings: Settings) -> int:
    """`apimd` alone: start the daemon in the background unless one answers, then the TUI."""
    from apimd.cli import remote
    from apimd.tui.app import build_app

    if asyncio.run(remote.start_command(settings)) != 0:
        return 1
    build_app(settings.socket_path).run()
    return 0


def _help(parser: argparse.ArgumentParser, topic: str | None) -> int:
    """`apimd help [settings|COMMAND]`."""
    if topic == "settings":
        print(SETTINGS_HELP)
        return 0
    if topic is None:
        parser.print_help()
        return 0
    try:
        parser.parse_args([topic, "--help"])
    except SystemExit as exit_:
        return int(exit_.code or 0)
    return 0


def _dispatch(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    from apimd.settings import Settings

    command = args.command
    _check_names(args)
    if command == "run":
        if not args.name and not args.tag:
            raise UsageError("run what? give a call or workflow NAME, or --tag T")
        if args.location and (args.file or len(args.name) != 1 or args.tag or args.junit):
            raise UsageError(
                "--location goes with one NAME run through the daemon, not -f or --tag"
            )
        if len(args.name) != 1 or args.tag or args.junit:
            from apimd.cli import multirun

            if args.db and not args.file:
                raise UsageError("--db goes with -f FILE (a standalone run)")
            run_many = multirun.run_many_standalone if args.file else multirun.run_many_remote
            return asyncio.run(run_many(args))
        args.name = args.name[0]
    if command == "run" and args.file:
        from apimd.cli.run import run_command

        return asyncio.run(run_command(args))
    if command == "help":
        return _help(parser, args.topic)
    if command == "import":
        from apimd.cli.importing import import_command

        return import_command(args)
    if command == "demo":
        from apimd.cli.demo import demo_command

        return asyncio.run(demo_command(args))
    settings = Settings.load()
    if command is None:
        return _open_tui(settings)
    from apimd.cli import remote, tokens

    if command == "daemon":
        return remote.daemon_command(settings)
    if command == "service":
        from apimd.cli import service

        if args.service_command == "install":
            return service.install(settings, now=args.now)
        return service.uninstall(settings=settings)
    if command == "mute":
        from apimd.cli.mute import mute_command

        return asyncio.run(mute_command(settings, args.target, args.duration))
    if command == "run":
        if args.db:
            raise UsageError(
                "--db goes with -f FILE (a standalone run); the daemon keeps its own DB"
            )
        return asyncio.run(remote.run_remote(settings, args))
    if command == "migrate":
        from apimd.cli.migrate import migrate_command

        return asyncio.run(migrate_command(settings, args))
    runners = {
        "start": lambda: remote.start_command(settings),
        "stop": lambda: remote.stop_command(settings),
        "status": lambda: remote.status_command(settings, args.json),
        "apply": lambda: remote.apply_command(settings, args),
        "export": lambda: remote.export_command(settings, args),
        "results": lambda: remote.results_command(settings, args),
        "tokens": lambda: tokens.tokens_command(settings, args.json),
        "token": lambda: (
            tokens.token_refresh_command(settings, args.name)
            if args.token_command == "refresh"
            else tokens.token_show_command(settings, args.name, args.json)
            if args.token_command == "show"
            else _signin(settings, args.name, args.device)
        ),
    }
    return int(asyncio.run(runners[command]()))
