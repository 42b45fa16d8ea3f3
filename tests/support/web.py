"""Small aiohttp apps for loopback test servers, declared as a route table."""

from __future__ import annotations

from typing import Self

from aiohttp import web

from apimd.demo.server import RunningServer


def app_of(*routes: web.AbstractRouteDef) -> web.Application:
    """An application serving `routes` (`web.get("/path", handler)`, …)."""
    app = web.Application()
    app.add_routes(routes)
    return app


class CatchAllApi:
    """A loopback API answering every method and path with `handle`; `async with` serves it."""

    def __init__(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        self.server = RunningServer(app)

    async def handle(self, request: web.Request) -> web.Response:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        await self.server.start()
        return self

    async def __aexit__(self, *_exc_info: object) -> None:
        await self.server.stop()
