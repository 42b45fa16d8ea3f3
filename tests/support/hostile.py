"""Hostile response bodies (issue 10 point 4) and the loopback app that serves them, shared by
tests/reliability/test_hostile.py and bench/hostile_bench.py."""

from __future__ import annotations

from aiohttp import web

from tests.support.web import app_of

MIB = 1024 * 1024


def hostile_bodies() -> dict[str, bytes]:
    """Bodies under the 10 MiB cap that cost far more to parse and search than to send."""
    return {
        # 5 M numbers: `$[*]` built 5 M match objects (30 s, 2.1 GB).
        "array": b"[" + b",".join([b"1"] * 5_000_000) + b"]",
        # 1.2 M small objects: `$..*` visits every one and every value in it.
        "objects": b"[" + b",".join([b'{"k":1,"v":"ab"}'] * 550_000) + b"]",
        # 2 M levels of nesting: no parser may recurse down it.
        "deep": b"[" * 2_000_000 + b"]" * 2_000_000,
        # One 9 MB string, saved as a variable.
        "string": b'{"v": "' + b"x" * (9 * MIB) + b'"}',
        # A lone UTF-16 surrogate in a value a condition saves (issue 10 point 3).
        "surrogate": b'{"v": "\\ud800", "pad": "' + b"x" * (2 * MIB) + b'"}',
    }


def hostile_app(bodies: dict[str, bytes]) -> web.Application:
    """`GET /body/<name>` answers that body as JSON; `GET /ok` answers `{"ok": true}`."""

    async def body(request: web.Request) -> web.Response:
        return web.Response(
            body=bodies[request.match_info["name"]], content_type="application/json"
        )

    async def ok(_request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    return app_of(web.get("/body/{name}", body), web.get("/ok", ok))
