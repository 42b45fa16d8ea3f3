"""A certificate about to expire, end to end (SPEC §11): a daemon that trusts a test CA (through
SSL_CERT_FILE, as a system trust store would) records the certificate of a local TLS server, the
summary and /metrics carry its expiry, and the dashboard flags the target."""

from __future__ import annotations

import re
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from apimd.client import Client
from apimd.tui.app import build_app
from apimd.tui.keys import TuiSettings
from apimd.tui.screens.dashboard import DashboardScreen
from tests.daemon.conftest import start_daemon, stop_daemon
from tests.support.tls import LEAF_NAME, ca_and_server_context, tls_site
from tests.tui.conftest import wait_for


@pytest.fixture
async def expiring_server() -> AsyncIterator[tuple[str, Path]]:
    folder = Path(tempfile.mkdtemp(prefix="apimd-ca-", dir="/tmp"))
    ca_file, context = ca_and_server_context(folder, days_left=5)
    async with tls_site(context) as url:
        yield f"{url}/ok", ca_file


async def test_a_certificate_expiring_in_five_days_is_flagged(
    expiring_server: tuple[str, Path],
) -> None:
    url, ca_file = expiring_server
    daemon = start_daemon(SSL_CERT_FILE=str(ca_file))
    try:
        async with Client(daemon.socket_path) as client:
            await client.apply(
                {
                    "calls": [
                        {"name": "far", "url": "http://127.0.0.1:9/"},
                        {
                            "name": "expiring",
                            "url": url,
                            "conditions": [
                                {
                                    "source": "cert_days",
                                    "op": "ge",
                                    "value": 14,
                                    "on_fail": "warning",
                                }
                            ],
                        },
                    ]
                }
            )
            accepted = await client.run("calls", "expiring", wait=True)
            result = accepted.result
            assert result is not None and result.tls is not None  # verified against the CA
            assert result.tls.subject == f"CN={LEAF_NAME}"
            assert result.result.value == "CONTENT_WARNING"
            summary = {t.name: t for t in (await client.summary()).targets}
            assert summary["expiring"].cert_expires_at == result.tls.not_after
        connector = aiohttp.UnixConnector(path=str(daemon.socket_path))
        async with (
            aiohttp.ClientSession(connector=connector) as session,
            session.get("http://apimd/metrics") as response,
        ):
            metrics = await response.text()
        expiries = {
            sample.labels["target"]: sample.value
            for family in text_string_to_metric_families(metrics)
            if family.name == "apimd_probe_ssl_earliest_cert_expiry"
            for sample in family.samples
        }
        assert expiries == {"expiring": result.tls.not_after.timestamp()}

        app = build_app(daemon.socket_path, settings=TuiSettings())
        async with app.run_test(size=(100, 24)) as pilot:
            screen = app.screen
            assert isinstance(screen, DashboardScreen)
            await wait_for(pilot, lambda: screen.table.row_count == 2, what="both monitors")
            name_cell = str(screen.table.get_cell("expiring", "name"))
            assert re.fullmatch(r"expiring ⚠ cert 4d2\dh", name_cell), name_cell
            assert str(screen.table.get_cell("far", "name")) == "far"
    finally:
        stop_daemon(daemon)
