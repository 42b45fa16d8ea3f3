"""`apimd token signin NAME` on a terminal over SSH: it prints the URL and reads the address the
browser ended on; a refused address gets its one true error, and the person can paste again."""

from __future__ import annotations

import asyncio
import sys
from urllib.parse import parse_qs, urlsplit

from tests.e2e.conftest import Daemon
from tests.e2e.signin_workflow import WORKFLOW, browser_workflow_project
from tests.e2e.terminal import PtyCommand
from tests.e2e.test_browser_signin import code_flow_project
from tests.tui.test_signin import finish_in_browser

SSH = {"SSH_CONNECTION": "10.0.0.2 50122 10.0.0.9 22"}


async def test_a_pasted_address_with_a_wrong_state_gets_one_clear_error(
    daemon: Daemon, demo: str
) -> None:
    async with daemon.client() as client:
        await client.apply(code_flow_project(demo))
        callback = (await client.status()).callback_url
    env = {k: v for k, v in daemon.env.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    command = PtyCommand([sys.executable, "-m", "apimd", "token", "signin", "user"], {**env, **SSH})
    try:
        await command.read_until(rb"paste the address the browser ended on")
        command.type_line(f"{callback}?state=forged&code=abc")
        await command.read_until(rb"matches no sign-in")
        await asyncio.sleep(1.0)  # anything more it would say
        assert "does not look like the address" not in command.text, command.text
        command.type_line("not an address")
        await command.read_until(rb"That does not look like the address the browser ended on")
        assert command.process.poll() is None, "it keeps waiting for the right address"
    finally:
        command.close()


async def test_run_through_the_daemon_on_a_terminal_prints_the_url_in_full(
    daemon: Daemon, demo: str
) -> None:
    """`apimd run WORKFLOW --var …` on a terminal: the browser step's URL is printed as the
    browser must get it, also when its run variables are saved into a token (and so masked in
    the recorded result and events)."""
    flow = browser_workflow_project(demo)
    for call in flow["calls"]:
        if call["name"] == "sso-authorize":
            call["params"]["client_id"] = "%%CLIENT%%"
        if call["name"] == "sso-exchange":
            call["webhooks"] = [{"type": "save_auth_token", "token": "user"}]
    flow["auth"] = [{"name": "manual-sso", "type": "manual"}]
    flow["tokens"] = [{"name": "user", "auth": "manual-sso"}]
    async with daemon.client() as client:
        await client.apply(flow)
    env = {k: v for k, v in daemon.env.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    args = ["run", WORKFLOW, "--var", "CLIENT=demo-client"]
    command = PtyCommand([sys.executable, "-m", "apimd", *args], {**env, **SSH})
    try:
        found = await command.read_until(rb"Sign in here:\s+(http://\S+)")
        url = found.group(1).decode()
        assert parse_qs(urlsplit(url).query)["client_id"] == ["demo-client"], url
        command.type_line(await finish_in_browser(url))
        await command.read_until(rb"Signed in")
    finally:
        command.close()
