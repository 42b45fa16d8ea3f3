"""Small aiohttp apps for loopback test servers, declared as a route table."""

from __future__ import annotations

from aiohttp import web


def app_of(*routes: web.AbstractRouteDef) -> web.Application:
    """An application serving `routes` (`web.get("/path", handler)`, …)."""
    app = web.Application()
    app.add_routes(routes)
    return app
