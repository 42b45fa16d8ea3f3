"""CRUD of every resource kind through the daemon's REST API (SPEC §6), with the secret and
validation rules of §2: secrets masked unless revealed, `••••` keeps the stored secret, referenced
resources cannot be deleted, and a bad body is refused whole with every problem located. No
process is needed for that: the app runs in-process (`app`, `app_client` of conftest)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest

from apimd.client import ApiError, Client
from tests.daemon.conftest import unique
from tests.support.app import App

# CRUD, apply, tokens across expiries and schedules: the same on a PostgreSQL daemon (SPEC §13).
pytestmark = pytest.mark.both_stores

MASK = "••••"


@pytest.fixture
def client(app_client: Client) -> Client:
    """apimd's client on the in-process REST API (this module needs no daemon process)."""
    return app_client


DEAD_URL = "http://127.0.0.1:9/nothing"


def dump(resource: Any) -> dict[str, Any]:
    return resource.model_dump(mode="json", by_alias=True, exclude_none=True)  # type: ignore[no-any-return]


async def api_error(call: Awaitable[Any]) -> ApiError:
    with pytest.raises(ApiError) as caught:
        await call
    return caught.value


@dataclass
class Case:
    """How to create, then replace, one resource of `kind` (after creating what it refers to)."""

    kind: str
    setup: Callable[[Client], Awaitable[dict[str, Any]]]
    replacement: Callable[[dict[str, Any]], dict[str, Any]]
    changed: Callable[[dict[str, Any]], Any]


async def no_deps(_client: Client) -> dict[str, Any]:
    return {}


async def an_auth(client: Client) -> dict[str, Any]:
    name = unique("auth")
    await client.put("auth", name, {"type": "bearer", "token": "fixed-bearer-value"})
    return {"auth": name}


async def a_call(client: Client) -> dict[str, Any]:
    name = unique("call")
    await client.put("calls", name, {"url": DEAD_URL})
    return {"call": name}


CASES = [
    Case(
        "variables",
        no_deps,
        lambda deps: {"value": "second value", "secret": False},
        lambda item: item["value"],
    ),
    Case(
        "auth",
        no_deps,
        lambda deps: {"type": "basic", "username": "someone-else", "password": "pw-2"},
        lambda item: item["username"],
    ),
    Case(
        "tokens",
        an_auth,
        lambda deps: {"auth": deps["auth"], "headers": {"X-Api": "%%ACCESS_TOKEN%%"}},
        lambda item: item["headers"],
    ),
    Case(
        "calls",
        no_deps,
        lambda deps: {"method": "POST", "url": DEAD_URL, "json": {"a": 1}},
        # Replaced, not merged: the first version's headers are gone.
        lambda item: (item["method"], item.get("json"), item.get("headers") or {}),
    ),
    Case(
        "workflows",
        a_call,
        lambda deps: {"steps": [deps["call"], deps["call"]], "stop_on_failure": False},
        lambda item: item["steps"],
    ),
    Case(
        "schedules",
        a_call,
        lambda deps: {"cron": "0 3 * * *", "targets": [deps["call"]], "enabled": False},
        lambda item: item.get("cron"),
    ),
]


def first_body(kind: str, deps: dict[str, Any]) -> dict[str, Any]:
    bodies: dict[str, dict[str, Any]] = {
        "variables": {"value": "first value", "secret": True},
        "auth": {"type": "basic", "username": "someone", "password": "pw-1-secret"},
        "tokens": {
            "auth": deps.get("auth", ""),
            "headers": {"Authorization": "Bearer %%ACCESS_TOKEN%%"},
            "variables": {"ACCESS_TOKEN": "tok-secret-value"},
        },
        "calls": {"url": DEAD_URL, "headers": {"Accept": "application/json"}},
        "workflows": {"steps": [deps.get("call", "")]},
        "schedules": {"every": "1h", "targets": [deps.get("call", "")]},
    }
    return bodies[kind]


SECRET_OF: dict[str, tuple[str, Any]] = {
    "variables": ("value", "first value"),
    "auth": ("password", "pw-1-secret"),
    "tokens": ("variables", {"ACCESS_TOKEN": "tok-secret-value"}),
}


@pytest.mark.parametrize("case", CASES, ids=[c.kind for c in CASES])
async def test_crud_of_every_kind(client: Client, case: Case) -> None:
    kind = case.kind
    deps = await case.setup(client)
    name = unique("R") if kind != "variables" else unique("VAR").replace("-", "_").upper()

    created = await client.put(kind, name, first_body(kind, deps))
    assert created.name == name  # type: ignore[attr-defined]

    got = dump(await client.get(kind, name))
    assert got["name"] == name
    if kind in SECRET_OF:
        field, clear = SECRET_OF[kind]
        masked = dict.fromkeys(clear, MASK) if isinstance(clear, dict) else MASK
        assert got[field] == masked, "secrets read •••• unless revealed"
        revealed = dump(await client.get(kind, name, reveal=True))
        assert revealed[field] == clear
        secret_text = next(iter(clear.values())) if isinstance(clear, dict) else clear
        assert secret_text not in str(dump(created)), "the PUT answer masks secrets too"
        assert secret_text not in str([dump(i) for i in await client.list(kind)])

    listed = [dump(item)["name"] for item in await client.list(kind)]
    assert name in listed

    await client.put(kind, name, case.replacement(deps))
    replaced = dump(await client.get(kind, name))
    assert case.changed(replaced) == case.changed(case.replacement(deps))

    await client.delete(kind, name)
    missing = await api_error(client.get(kind, name))
    assert missing.status == 404 and name in missing.message
    assert name not in [dump(item)["name"] for item in await client.list(kind)]


@pytest.mark.parametrize("kind", [c.kind for c in CASES])
async def test_unknown_names_are_404(client: Client, kind: str) -> None:
    name = "NO_SUCH_THING" if kind == "variables" else unique("missing")
    for attempt in (client.get(kind, name), client.delete(kind, name)):
        error = await api_error(attempt)
        assert error.status == 404
        assert error.code == "not_found"
        assert name in error.message


async def test_deleting_a_referenced_resource_is_409_naming_the_referrers(client: Client) -> None:
    auth, token, call = unique("auth"), unique("tok"), unique("call")
    workflow, schedule = unique("wf"), unique("sched")
    await client.put("auth", auth, {"type": "bearer", "token": "abcdef"})
    await client.put("tokens", token, {"auth": auth})
    await client.put("calls", call, {"url": DEAD_URL, "auth": auth})
    await client.put("workflows", workflow, {"steps": [call]})
    await client.put("schedules", schedule, {"every": "1h", "targets": [call]})

    error = await api_error(client.delete("auth", auth))
    assert error.status == 409
    assert token in error.message and call in error.message

    error = await api_error(client.delete("calls", call))
    assert error.status == 409
    assert workflow in error.message and schedule in error.message
    assert dump(await client.get("calls", call))["name"] == call, "nothing was deleted"

    for kind, name in [
        ("schedules", schedule),
        ("workflows", workflow),
        ("calls", call),
        ("tokens", token),
        ("auth", auth),
    ]:
        await client.delete(kind, name)


async def test_a_bad_body_is_422_with_every_error_located_and_nothing_stored(
    client: Client,
) -> None:
    name = unique("bad")
    body = {"url": DEAD_URL, "timeout": "soon", "method": "GET NOW", "colour": "red"}
    error = await api_error(client.put("calls", name, body))
    assert error.status == 422
    fields = {e.field for e in error.errors}
    assert {"timeout", "method", "colour"} <= {f.rsplit(".", 1)[-1] for f in fields if f}, fields
    assert all(e.field for e in error.errors), error.errors
    assert (await api_error(client.get("calls", name))).status == 404


async def test_a_reference_to_nothing_is_refused(client: Client) -> None:
    name = unique("orphan")
    error = await api_error(client.put("tokens", name, {"auth": unique("no-auth")}))
    assert error.status == 422
    assert any(e.field for e in error.errors) or "auth" in error.message
    assert (await api_error(client.get("tokens", name))).status == 404


async def test_put_with_masked_secrets_keeps_the_stored_ones(client: Client) -> None:
    auth, token = unique("auth"), unique("tok")
    variable = unique("SECRET").replace("-", "_").upper()
    await client.put("variables", variable, {"value": "s3cret-value", "secret": True})
    await client.put(
        "auth",
        auth,
        {"type": "manual", "client_id": "cid", "client_secret": "client-secret-1"},
    )
    await client.put(
        "tokens", token, {"auth": auth, "variables": {"ACCESS_TOKEN": "at-original-1"}}
    )

    # What a client does after GET: edit one field and PUT the masked document back.
    shown_auth = dump(await client.get("auth", auth))
    assert shown_auth["client_secret"] == MASK
    await client.put("auth", auth, {**shown_auth, "description": "edited"})
    shown_var = dump(await client.get("variables", variable))
    await client.put("variables", variable, shown_var)
    shown_token = dump(await client.get("tokens", token))
    assert shown_token["variables"] == {"ACCESS_TOKEN": MASK}
    await client.put("tokens", token, {**shown_token, "headers": {"X-Token": "%%ACCESS_TOKEN%%"}})

    revealed_auth = dump(await client.get("auth", auth, reveal=True))
    assert revealed_auth["client_secret"] == "client-secret-1"
    assert revealed_auth["description"] == "edited"
    assert dump(await client.get("variables", variable, reveal=True))["value"] == "s3cret-value"
    revealed_token = dump(await client.get("tokens", token, reveal=True))
    assert revealed_token["variables"] == {"ACCESS_TOKEN": "at-original-1"}
    assert revealed_token["headers"] == {"X-Token": "%%ACCESS_TOKEN%%"}

    # Omitting the secret keeps it as well.
    await client.put("auth", auth, {"type": "manual", "client_id": "cid-2"})
    revealed_auth = dump(await client.get("auth", auth, reveal=True))
    assert (revealed_auth["client_id"], revealed_auth["client_secret"]) == (
        "cid-2",
        "client-secret-1",
    )


async def test_input_beyond_what_dates_and_json_hold_is_refused_not_a_500(
    app: App, client: Client
) -> None:
    call = unique("call")
    await client.put("calls", call, {"url": DEAD_URL})
    schedule = unique("forever")
    for every in ("99999999999999999999h", "3000000d"):
        error = await api_error(
            client.put("schedules", schedule, {"every": every, "targets": [call]})
        )
        assert error.status == 422
        assert [e.field for e in error.errors] == ["schedules[0].every"]
    assert (await api_error(client.get("schedules", schedule))).status == 404

    with pytest.raises(ApiError) as caught:
        await client.apply(
            {"schedules": [{"name": schedule, "every": "99999999999999999999h", "targets": [call]}]}
        )
    assert caught.value.status == 422

    error = await api_error(client.stats(call, window="9999999999d"))
    assert (error.status, error.errors[0].field) == (422, "window")

    for raw in (b'{"url": "http://127.0.0.1:9/", "json": NaN}', b'{"url": "x", "timeout": 1e999}'):
        status, body = await raw_put(app, f"/v1/calls/{call}", raw)
        assert status == 400 and "not valid JSON" in body["error"]["message"]
    assert (await client.status()).scheduler == "running"


async def raw_put(app: App, path: str, raw: bytes) -> tuple[int, dict[str, Any]]:
    headers = {"Content-Type": "application/json"}
    async with app.put(path, data=raw, headers=headers) as response:
        return response.status, await response.json()
