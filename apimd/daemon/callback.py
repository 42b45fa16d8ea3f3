"""The loopback callback server on 127.0.0.1:APIMD_CALLBACK_PORT (SPEC §5). A taken port never
stops the daemon: the service records why it is not bound, and `apimd status` says so."""

from __future__ import annotations

import logging

from aiohttp import web

from apimd.daemon.service import MonitorService
from apimd.settings import Settings

log = logging.getLogger(__name__)

PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
    "X-Content-Type-Options": "nosniff",
}


async def _no_signin(_request: web.Request) -> web.Response:
    body = (
        "<!doctype html><meta charset=utf-8><title>apimd</title>"
        "<h1>Sign-in failed</h1><p>No sign-in is waiting for this answer. "
        "Start the sign-in again from apimd.</p>"
    )
    return web.Response(text=body, status=400, content_type="text/html", headers=PAGE_HEADERS)


async def start_callback_server(
    settings: Settings, service: MonitorService
) -> web.AppRunner | None:
    """Bind the callback server; on failure record the reason and carry on without it."""
    app = web.Application()
    app.router.add_get("/tokens/callback", _no_signin)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", settings.callback_port, shutdown_timeout=1.0)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        service.callback_error = (
            f"port {settings.callback_port} is taken ({exc.strerror}); sign-ins will fail until "
            "it is free — or set APIMD_CALLBACK_PORT to another port"
        )
        log.warning("callback server not started: %s", service.callback_error)
        return None
    service.callback_port = int(runner.addresses[0][1])
    return runner
