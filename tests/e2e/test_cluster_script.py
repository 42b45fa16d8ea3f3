"""`scripts/cluster` (README "More than one machine"): three agents on the local PostgreSQL with the
demo project and the browser sign-in of `apimd demo`, so a person can start a sign-in through one
agent and finish it through another agent's callback, which the script prints."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import aiohttp
import pytest

from apimd.client import Client
from tests import postgres

ROOT = Path(__file__).resolve().parents[2]
READY_S = 120.0


@pytest.fixture
def cluster() -> Iterator[dict[str, str]]:
    """The running script; what it printed: the agents' homes and callbacks."""
    postgres.require_postgres()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "APIMD_CLUSTER_ADMIN_URL": postgres.ADMIN_URL}
    script = subprocess.Popen(
        ["bash", str(ROOT / "scripts" / "cluster")],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    assert script.stdout is not None
    printed: list[str] = []
    try:
        deadline = time.monotonic() + READY_S
        while time.monotonic() < deadline:
            line = script.stdout.readline()
            if not line:
                break
            printed.append(line)
            if line.startswith("Sign-in callbacks:"):
                break
        text = "".join(printed)
        home = re.search(r"export APIMD_HOME=(\S+)/a2", text)
        callbacks = dict(re.findall(r"(a1|a2|b1) (http://[^\s,]+)", text))
        assert home and set(callbacks) == {"a1", "a2", "b1"}, text
        yield {"root": home.group(1), **callbacks}
    finally:
        os.killpg(script.pid, signal.SIGINT)
        try:
            script.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(script.pid, signal.SIGKILL)
            script.wait()
        script.stdout.close()


async def test_the_cluster_demo_signs_in_through_one_agent_and_back_through_another(
    cluster: dict[str, str],
) -> None:
    root = Path(cluster["root"])
    async with (
        Client(root / "a1" / "apimd.sock") as one,
        Client(root / "a2" / "apimd.sock") as two,
    ):
        assert "my-orders" in {str(getattr(c, "name", "")) for c in await two.list("calls")}
        started = await one.signin("demo-user")
        assert started.url is not None
        form = dict(parse_qsl(urlsplit(started.url).query))
        authorize = started.url.split("?")[0]
        async with aiohttp.ClientSession() as http:
            login = {**form, "username": "demo", "password": "demo-password"}
            async with http.post(authorize, data=login, allow_redirects=False) as sent:
                assert sent.status in (302, 303), await sent.text()
                location = sent.headers["Location"]
            assert location.startswith(cluster["a1"])
            # As behind a load balancer: the browser comes back to a2, not to a1.
            async with http.get(location.replace(cluster["a1"], cluster["a2"])) as back:
                page = await back.text()
                assert back.status == 200 and "Signed in" in page, page
        token: Any = await one.get("tokens", "demo-user")
        assert token.state.value == "valid"
