"""`apimd demo`: a loopback demo API and authorization server, a daemon in a temporary APIMD_HOME,
and the example project loaded into it: a passing monitor, a token kept fresh by a refresh
workflow, a browser sign-in for a person to complete, and a call that fails on purpose."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import signal
import socket
import sys
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from apimd.cli.output import format_result, use_colour
from apimd.cli.remote import daemon_argv
from apimd.cli.signin import wait_for_signin
from apimd.client import Client, DaemonUnavailable
from apimd.demo.fapi import public_jwk
from apimd.demo.server import STATE_KEY, RunningServer, create_app
from apimd.engine.memory import MemoryStateStore
from apimd.engine.runner import Engine
from apimd.model.events import RunFinished, SignInEnded, TokenStateChanged
from apimd.model.loader import load_project_file
from apimd.settings import DEFAULT_CALLBACK_PORT

PROJECT = Path(__file__).resolve().parent.parent / "demo" / "project.yaml"
DEMO_TARGETS = ("service-status", "list-orders", "order-flow", "catalogue-xml", "checkout-health")
SIGNIN_TOKEN = "demo-user"
BROWSER_WORKFLOW = "sign-in-flow"
FAPI_TOKEN = "demo-fapi-user"
START_TIMEOUT_S = 20.0


def signin_resources(base: str) -> dict[str, Any]:
    """A token a person signs in to with the browser (oauth2 authorization code + PKCE)."""
    auth = {
        "name": "demo-sso",
        "type": "oauth2",
        "grant": "authorization_code",
        "authorize_url": f"{base}/oauth/authorize",
        "token_url": f"{base}/oauth/token",
        "client_id": "demo-client",
        "client_secret": "demo-secret",
        "scopes": ["orders:read"],
    }
    description = "Needs a person to sign in once; refreshed unattended after that"
    return _signed_in_orders(auth, SIGNIN_TOKEN, "my-orders", description, base, "signed-in")


def _signed_in_orders(
    auth: dict[str, Any], token: str, call: str, description: str, base: str, schedule: str
) -> dict[str, Any]:
    """`auth`, its `token`, a `call` of the demo's orders with it, run every 20 s."""
    return {
        "auth": [auth],
        "tokens": [{"name": token, "auth": auth["name"]}],
        "calls": [
            {
                "name": call,
                "description": description,
                "url": f"{base}/api/orders",
                "token": token,
                "conditions": [{"source": "status", "op": "eq", "value": 200}],
            }
        ],
        "schedules": [{"name": schedule, "every": "20s", "targets": [call]}],
    }


def browser_workflow(base: str) -> dict[str, Any]:
    """A workflow with a browser step (code flow with PKCE): Run it in the TUI or with `apimd run`
    on a terminal, sign in, and the steps after it use what the browser brought back. Its first
    step, `service-status`, is the example project's."""
    # The secret as a secret variable, not written in the call: masked in `apimd export` and
    # everywhere a person reads it (this workflow runs by itself, not as a token's sign-in, so
    # the auth's CLIENT_SECRET is not its to use).
    client = {"client_id": "demo-client", "client_secret": "%%DEMO_CLIENT_SECRET%%"}
    passes = {"source": "status", "op": "eq", "value": 200}
    calls: list[dict[str, Any]] = [
        {
            "name": "sso-authorize",
            "description": "Opens the browser: sign in as demo / demo-password",
            "url": f"{base}/oauth/authorize",
            "tags": ["apimd:browser"],
            "params": {
                "response_type": "code",
                "client_id": client["client_id"],
                "redirect_uri": "%%CALLBACK_URL%%",
                "code_challenge": "%%CODE_CHALLENGE%%",
                "code_challenge_method": "S256",
            },
        },
        {
            "name": "sso-exchange",
            "method": "POST",
            "url": f"{base}/oauth/token",
            "form": {
                "grant_type": "authorization_code",
                "code": "%%CODE%%",
                "redirect_uri": "%%CALLBACK_URL%%",
                "code_verifier": "%%CODE_VERIFIER%%",
                **client,
            },
            "conditions": [
                passes,
                {"source": "json", "path": "access_token", "save_as": "ACCESS_TOKEN"},
            ],
        },
        {
            "name": "sso-orders",
            "url": f"{base}/api/orders",
            "headers": {"Authorization": "Bearer %%ACCESS_TOKEN%%"},
            "conditions": [passes],
        },
    ]
    steps = ["service-status", *(call["name"] for call in calls)]
    workflow = {
        "name": BROWSER_WORKFLOW,
        "description": "Run it: a person signs in in the browser, then the remaining steps run",
        "steps": steps,
    }
    secret = {"DEMO_CLIENT_SECRET": {"value": "demo-secret", "secret": True}}
    return {"variables": secret, "calls": calls, "workflows": [workflow]}


def fapi_resources(server: RunningServer) -> dict[str, Any]:
    """A FAPI-style token (PAR + private_key_jwt + DPoP): a key pair made now, its public half
    registered with the demo authorization server, its private half given to apimd."""
    key = ec.generate_private_key(ec.SECP256R1())
    server.app[STATE_KEY].fapi.public_jwk = public_jwk(key.public_key())
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    auth = {
        "name": "demo-fapi",
        "type": "oauth2",
        "grant": "authorization_code",
        "issuer": server.url,
        "client_id": "demo-fapi",
        "client_auth": "private_key_jwt",
        "client_key": pem,
        "par": True,
        "dpop": True,
        "scopes": ["orders:read"],
    }
    description = "FAPI-style: PAR, private_key_jwt and a DPoP-bound token"
    return _signed_in_orders(
        auth, FAPI_TOKEN, "my-orders-fapi", description, server.url, "signed-in-fapi"
    )


# Sent to the demo process alone (`kill`, the SSH session closing, a supervisor), these end the
# demo as Ctrl-C does: its daemon stopped and its temporary state removed.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


async def demo_command(args: argparse.Namespace) -> int:
    loop = asyncio.get_running_loop()
    main = asyncio.current_task()
    assert main is not None
    stopped_by: list[int] = []

    def stop(signum: int) -> None:
        if not stopped_by:  # a second signal must not cut the clean-up short
            main.cancel()
        stopped_by.append(signum)

    for signum in STOP_SIGNALS:
        loop.add_signal_handler(signum, stop, signum)
    try:
        server = await _start_server(args.port)
        try:
            os.environ["APIMD_DEMO_URL"] = server.url
            if args.api_only:
                return await _serve_api_only(server)
            if args.standalone:
                return await _standalone(server)
            return await _with_daemon(server, once=args.once, tui=not args.no_tui)
        finally:
            await server.stop()
    except asyncio.CancelledError:
        if not stopped_by:
            raise
        return 128 + stopped_by[0]  # the shell's status for a process ended by that signal
    finally:
        for signum in STOP_SIGNALS:
            loop.remove_signal_handler(signum)


async def _standalone(server: RunningServer) -> int:
    """The example project run once, in process (what `apimd run -f` does)."""
    project = load_project_file(PROJECT)
    engine = Engine(project, MemoryStateStore())
    colour = use_colour(sys.stdout)
    try:
        for name in DEMO_TARGETS:
            print(format_result(await engine.run(name), colour=colour) + "\n")
    finally:
        await engine.close()
    return 0


async def _with_daemon(server: RunningServer, *, once: bool, tui: bool) -> int:
    home = Path(tempfile.mkdtemp(prefix="apimd-demo-", dir="/tmp"))
    env = {**os.environ, "APIMD_HOME": str(home), "APIMD_LOG_STDERR": "0"}
    env.setdefault("APIMD_CALLBACK_PORT", "0" if once else str(_free_callback_port()))
    daemon = await asyncio.create_subprocess_exec(
        *daemon_argv(),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    client, events = Client(home / "apimd.sock"), Client(home / "apimd.sock")
    try:
        await _wait_until_up(client, daemon)
        project = load_project_file(PROJECT).model_dump(
            mode="json", by_alias=True, exclude_none=True
        )
        await client.apply(project)
        await client.apply(signin_resources(server.url))
        await client.apply(browser_workflow(server.url))
        await client.apply(fapi_resources(server))
        status = await client.status()
        print(f"apimd demo: API and authorization server on {server.url}; daemon in {home}")
        print(_callback_line(status.callback_url, status.callback_bound, env) + "\n")
        for name in DEMO_TARGETS:
            kind = "workflows" if name == "order-flow" else "calls"
            accepted = await client.run(kind, name, wait=True)
            assert accepted.result is not None
            print(format_result(accepted.result, colour=use_colour(sys.stdout)) + "\n")
        print("checkout-health fails on purpose: that is what a failing monitor looks like.\n")
        if once:
            return 0
        if tui and sys.stdin.isatty() and sys.stdout.isatty():
            from apimd.tui.app import build_app

            print("Opening the TUI (q quits and stops the demo).")
            sys.stdout.flush()
            await asyncio.sleep(1)
            await build_app(home / "apimd.sock", greeting=TUI_GREETING).run_async()
            return 0
        print(
            "The daemon now runs the schedules (every 20 s and 30 s). In another terminal:\n"
            f"  export APIMD_HOME={home}\n"
            "  .venv/bin/apimd results --follow      # results as they come\n"
            "  .venv/bin/apimd tokens                # demo-token refreshes itself every minute\n"
            "\nPress Ctrl-C to stop the demo (its temporary state is removed).\n"
        )
        signin: asyncio.Task[int] | None = None
        if status.callback_bound:
            info = await client.signin(SIGNIN_TOKEN)
            print(f"The token {SIGNIN_TOKEN} needs a person: sign in as demo / demo-password.")
            signin = asyncio.create_task(
                wait_for_signin(home / "apimd.sock", info, events, status.callback_url)
            )
        sys.stdout.flush()
        try:
            await _follow(client)
        finally:
            if signin is not None:
                signin.cancel()
                with contextlib.suppress(BaseException):
                    await signin
        return 0
    finally:
        await client.close()
        await events.close()
        if daemon.returncode is None:
            daemon.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(daemon.wait(), 20)
            except TimeoutError:
                daemon.kill()
        shutil.rmtree(home, ignore_errors=True)


TUI_GREETING = (
    "Tokens demo-user and demo-fapi-user (PAR, private_key_jwt, DPoP) need a person: press t,"
    " select one, press i, sign in as demo / demo-password. The workflow"
    f" {BROWSER_WORKFLOW} signs in in the browser: select it, press r."
    " checkout-health fails on purpose."
)
"""What the demo's TUI says first (printed before it opened, the TUI covered it at once)."""


async def _serve_api_only(server: RunningServer) -> int:
    """Only the demo API, for `apimd run … -f examples/project.yaml` in another terminal."""
    print(
        f"apimd demo API on {server.url} (Ctrl-C stops it). In another terminal:\n"
        f"  export APIMD_DEMO_URL={server.url}\n"
        "  apimd run list-orders -f examples/project.yaml"
    )
    sys.stdout.flush()
    await asyncio.Event().wait()
    return 0


def _free_callback_port(wanted: int = DEFAULT_CALLBACK_PORT) -> int:
    """`wanted` when nothing holds it, else 0: the daemon then binds a free port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", wanted))
        except OSError:
            return 0
    return wanted


def _callback_line(url: str | None, bound: bool, env: dict[str, str]) -> str:
    """Where the browser comes back to after signing in, and why when it is not the default."""
    if not bound or url is None:
        return (
            f"The callback port {env.get('APIMD_CALLBACK_PORT')} could not be bound, so browser "
            "sign-ins cannot come back; set APIMD_CALLBACK_PORT to a free port (0: any)."
        )
    port = urlsplit(url).port
    line = f"Browser sign-ins come back to {url} (callback port {port})"
    if port != DEFAULT_CALLBACK_PORT and "APIMD_CALLBACK_PORT" not in os.environ:
        line += f"; port {DEFAULT_CALLBACK_PORT} is taken, so a free one is used"
    return line + "."


async def _wait_until_up(client: Client, daemon: asyncio.subprocess.Process) -> None:
    deadline = asyncio.get_running_loop().time() + START_TIMEOUT_S
    while asyncio.get_running_loop().time() < deadline:
        if daemon.returncode is not None:
            err = (await daemon.stderr.read()).decode() if daemon.stderr else ""
            raise RuntimeError(f"the demo daemon did not start: {err.strip()}")
        with contextlib.suppress(DaemonUnavailable):
            await client.health()
            return
        await asyncio.sleep(0.1)
    raise RuntimeError("the demo daemon did not answer in time")


async def _follow(client: Client) -> None:
    """One line per finished run and per token change, until Ctrl-C."""
    async for event in client.events():
        at = f"{event.at:%H:%M:%S}"
        if isinstance(event, RunFinished):
            status = f" HTTP {event.http_status}" if event.http_status else ""
            print(f"{at}  {event.outcome.value:<7} {event.name}{status}")
        elif isinstance(event, SignInEnded):
            print(f"{at}  {event.type}: {event.token} {event.message}")
        elif isinstance(event, TokenStateChanged):
            print(f"{at}  {event.type}: {event.token} {event.state.value}")
        sys.stdout.flush()


async def _start_server(port: int) -> RunningServer:
    try:
        return await RunningServer(create_app(), port).start()
    except OSError:
        if port == 0:
            raise
        print(f"port {port} is taken; using a free port instead", file=sys.stderr)
        return await RunningServer(create_app(), 0).start()
