"""`create_app(settings)`: the daemon's aiohttp application; the store, engine, scheduler and
event hub live in its cleanup context (no I/O at import or construction)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import datetime
from functools import partial

from aiohttp import web

from apimd.daemon.api import routes
from apimd.daemon.errors import error_middleware
from apimd.daemon.events import EventHub
from apimd.daemon.keys import SERVICE, SETTINGS
from apimd.daemon.logs import ActivityLog, hide_unparsed_requests
from apimd.daemon.peers import same_user_only
from apimd.daemon.routes import add_routes, openapi_document
from apimd.daemon.service import MonitorService
from apimd.engine.tokens import utcnow
from apimd.settings import Settings
from apimd.store import open_store

MAX_BODY_BYTES = 16 * 1024 * 1024
# Per client: a burst of 10,000 schedules firing together is 20,000 events before a write.
EVENT_QUEUE_SIZE = 50_000


async def _service_ctx(
    app: web.Application, clock: Callable[[], datetime] = utcnow
) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    store = await open_store(
        settings.store_location,
        secret_key=settings.secret_key,
        key_file=settings.key_file,
        # Agents share a PostgreSQL store (SPEC §13); a SQLite file has one daemon.
        owner=settings.database_url is None,
        owner_description=f"the apimd daemon for {settings.state_dir}",
        clock=clock,
    )
    hub = EventHub(queue_size=EVENT_QUEUE_SIZE, observer=ActivityLog())
    try:
        service = await MonitorService.open(settings, store, hub, clock=clock)
    except BaseException:
        await store.close()
        raise
    app[SERVICE] = service
    try:
        await service.start()
        yield
    finally:
        try:
            await service.stop()
        finally:
            await store.close()


def create_app(settings: Settings, *, clock: Callable[[], datetime] = utcnow) -> web.Application:
    """The REST API of SPEC §6 for one state directory; `clock` is the time every layer reads."""
    hide_unparsed_requests()
    app = web.Application(
        middlewares=[same_user_only, error_middleware], client_max_size=MAX_BODY_BYTES
    )
    app[SETTINGS] = settings
    table = routes()
    add_routes(app, table)
    document = openapi_document(table)

    async def openapi(_request: web.Request) -> web.Response:
        return web.json_response(document)

    app.router.add_get("/v1/openapi.json", openapi)
    document["paths"]["/v1/openapi.json"] = {
        "get": {
            "summary": "This document",
            "operationId": "get_openapi",
            "responses": {
                "200": {
                    "description": "OpenAPI 3.1",
                    "content": {"application/json": {"schema": {"type": "object"}}},
                }
            },
        }
    }
    app.cleanup_ctx.append(partial(_service_ctx, clock=clock))
    return app
