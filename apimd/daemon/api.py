"""The REST API on the Unix socket (SPEC §6): thin handlers over `MonitorService`."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

from aiohttp import web
from pydantic import BaseModel

from apimd import __version__
from apimd.daemon.errors import BadRequest, body_as, json_body
from apimd.daemon.events import sse_chunks
from apimd.daemon.keys import SERVICE
from apimd.daemon.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from apimd.daemon.routes import Route
from apimd.daemon.scheduler import schedule_problem
from apimd.daemon.signin_api import signin_routes
from apimd.model.api import (
    AgentList,
    ApplySummary,
    Deleted,
    Health,
    Listing,
    ResultPage,
    RunAccepted,
    RunRequest,
    StatusInfo,
    Summary,
    SummaryOrder,
)
from apimd.model.errors import Issue, ValidationFailed
from apimd.model.kinds import ResourceKind
from apimd.model.loader import validate_project_data
from apimd.model.outcome import Outcome
from apimd.model.project import Project
from apimd.model.resources import Token, Variable
from apimd.model.result import Result
from apimd.model.stats import Stats

MAX_RESULTS_LIMIT = 1000
KEEPALIVE_S = 15.0


def _flag(request: web.Request, name: str) -> bool:
    value = request.query.get(name, "false").lower()
    if value not in ("true", "false", "1", "0", "yes", "no"):
        raise BadRequest(f"`{name}` must be true or false, not {value!r}", field=name)
    return value in ("true", "1", "yes")


def _dump(model: BaseModel) -> dict[str, Any]:
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)


def _json(model: BaseModel, status: int = 200) -> web.Response:
    return web.json_response(_dump(model), status=status)


# --- daemon ------------------------------------------------------------------------------------


async def health(_request: web.Request) -> web.Response:
    return _json(Health(version=__version__))


async def status(request: web.Request) -> web.Response:
    return _json(await request.app[SERVICE].status())


async def agents(request: web.Request) -> web.Response:
    return _json(AgentList(agents=await request.app[SERVICE].live_agents()))


async def metrics(request: web.Request) -> web.Response:
    body = await request.app[SERVICE].metrics_text()
    return web.Response(body=body, headers={"Content-Type": METRICS_CONTENT_TYPE})


# --- resources ---------------------------------------------------------------------------------


def _kind(request: web.Request) -> ResourceKind:
    return ResourceKind(request.path.split("/")[2])


async def list_resources(request: web.Request) -> web.Response:
    kind = _kind(request)
    items = await request.app[SERVICE].list_resources(kind, reveal=_flag(request, "reveal"))
    return _json(Listing(items=[_dump(i) for i in items]))


async def get_resource(request: web.Request) -> web.Response:
    kind = _kind(request)
    name = request.match_info["name"]
    item = await request.app[SERVICE].get_resource(kind, name, reveal=_flag(request, "reveal"))
    return _json(item)


async def put_resource(request: web.Request) -> web.Response:
    kind = _kind(request)
    name = request.match_info["name"]
    body = await json_body(request)
    if not isinstance(body, dict):
        raise BadRequest(f"send the {kind.singular} as a JSON object")
    given = body.get("name")
    if (
        given is not None
        and given != name
        and not (kind == "variables" and str(given).upper() == name.upper())
    ):
        raise BadRequest(f"the body names {given!r} but the URL names {name!r}", field="name")
    body = {**body, "name": name}
    if kind == "tokens":
        for field in Token.READ_ONLY_FIELDS:
            body.pop(field, None)
    document: dict[str, Any]
    if kind == "variables":
        document = {"variables": {name: {k: v for k, v in body.items() if k != "name"}}}
    else:
        document = {kind: [body]}
    project = _validate_document(document)
    resource: BaseModel
    if kind == "variables":
        spec = next(iter(project.variables.values()))
        resource = Variable(name=name, value=spec.value, secret=spec.secret)
    else:
        resource = getattr(project, kind)[0]
    item = await request.app[SERVICE].put_resource(kind, name, resource)
    return _json(item)


async def delete_resource(request: web.Request) -> web.Response:
    kind = _kind(request)
    name = request.match_info["name"]
    await request.app[SERVICE].delete_resource(kind, name)
    return _json(Deleted(deleted=f"{kind}/{name}"))


def _validate_document(document: Any) -> Project:
    """A (possibly partial) project document, validated resource by resource; references are
    checked by the store against everything stored."""
    project = validate_project_data(document, cross_check=False)
    issues = [
        Issue(problem, loc=("schedules", index, "every" if s.every is not None else "cron"))
        for index, s in enumerate(project.schedules)
        if (problem := schedule_problem(s)) is not None
    ]
    if issues:
        raise ValidationFailed(issues)
    return project


async def apply(request: web.Request) -> web.Response:
    body = await json_body(request)
    project = _validate_document(body)
    summary: ApplySummary = await request.app[SERVICE].apply(project, prune=_flag(request, "prune"))
    return _json(summary)


async def export(request: web.Request) -> web.Response:
    project = await request.app[SERVICE].export(secrets=_flag(request, "secrets"))
    return web.json_response(export_document(project))


def export_document(project: Project) -> dict[str, Any]:
    """The project-file form: defaults and read-only token fields left out, plain variables as
    plain values, so the export reads like a hand-written file and applies back unchanged."""
    data = project.model_dump(mode="json", by_alias=True, exclude_none=True, exclude_defaults=True)
    data = {"version": 1, **data}
    for token in data.get("tokens", []):
        for field in Token.READ_ONLY_FIELDS:
            token.pop(field, None)
    variables = data.get("variables", {})
    for name, spec in project.variables.items():
        if not spec.secret:
            variables[name] = spec.value
    return data


# --- runs and results ---------------------------------------------------------------------------


async def run_target(request: web.Request) -> web.Response:
    kind = _kind(request)
    name = request.match_info["name"]
    service = request.app[SERVICE]
    body = await body_as(request, RunRequest, optional=True)
    if service.agents.remote.elsewhere(body.location):
        assert body.location is not None
        service.check_target(kind.singular, name)
        run_id = await service.agents.remote.run_elsewhere(body.location, name, body)
        if not body.wait:
            return _json(RunAccepted(run_id=run_id), status=202)
        result = await service.agents.remote.result_of(run_id)
        return _json(RunAccepted(run_id=run_id, result=result))
    run_id, task = service.start_run(kind.singular, name, body)
    if not body.wait:
        return _json(RunAccepted(run_id=run_id), status=202)
    result = await asyncio.shield(task)
    return _json(RunAccepted(run_id=run_id, result=result))


def _since(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest(
            f"`since` must be an ISO 8601 time, not {value!r}", field="since"
        ) from None
    if moment.tzinfo is None:
        raise BadRequest("`since` needs a time zone (e.g. 2026-01-01T00:00:00Z)", field="since")
    return moment


async def list_results(request: web.Request) -> web.Response:
    query = request.query
    outcome = query.get("outcome")
    if outcome is not None and outcome.upper() not in Outcome.__members__:
        allowed = ", ".join(Outcome.__members__)
        raise BadRequest(f"`outcome` must be one of {allowed}", field="outcome")
    try:
        limit = int(query.get("limit", "100"))
    except ValueError:
        raise BadRequest("`limit` must be a whole number", field="limit") from None
    if not 1 <= limit <= MAX_RESULTS_LIMIT:
        raise BadRequest(f"`limit` must be between 1 and {MAX_RESULTS_LIMIT}", field="limit")
    page = await request.app[SERVICE].results(
        name=query.get("name") or None,
        outcome=Outcome(outcome.upper()) if outcome else None,
        since=_since(query.get("since")),
        limit=limit,
        cursor=query.get("cursor") or None,
    )
    return _json(page)


async def get_result(request: web.Request) -> web.Response:
    return _json(await request.app[SERVICE].result(request.match_info["id"]))


async def summary(request: web.Request) -> web.Response:
    query = request.query
    order = SUMMARY_ORDERS.get(query.get("order", "project"))
    if order is None:
        given = query["order"]
        raise BadRequest(f"`order` must be project or dashboard, not {given!r}", field="order")
    limit = None
    if "limit" in query:
        try:
            limit = int(query["limit"])
        except ValueError:
            raise BadRequest("`limit` must be a whole number", field="limit") from None
        if limit < 1:
            raise BadRequest("`limit` must be at least 1", field="limit")
    window = query.get("window", "24h")
    return _json(await request.app[SERVICE].summary(window, order=order, limit=limit))


async def stats(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    return _json(await request.app[SERVICE].stats(name, request.query.get("window", "24h")))


# --- tokens -----------------------------------------------------------------------------------


async def refresh_token(request: web.Request) -> web.Response:
    return _json(await request.app[SERVICE].refresh_token(request.match_info["name"]))


# --- events -----------------------------------------------------------------------------------


async def events(request: web.Request) -> web.StreamResponse:
    service = request.app[SERVICE]
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store"}
    )
    await response.prepare(request)
    async with service.subscribe() as subscription:
        async for chunk in sse_chunks(subscription, keepalive=KEEPALIVE_S):
            try:
                await response.write(chunk)
            except ConnectionResetError:  # the client went away: the stream ends, no error
                break
    return response


# --- the route table ------------------------------------------------------------------------------


Query = list[tuple[str, str, str]]
REVEAL: Query = [("reveal", "boolean", "show secrets in clear")]
PRUNE: Query = [("prune", "boolean", "delete what the document omits")]
SECRETS: Query = [("secrets", "boolean", "write secrets in clear")]
RESULTS_QUERY: Query = [
    (
        "name",
        "string",
        "target name; a call's runs as a workflow step come too, with `workflow` set",
    ),
    ("outcome", "string", "PASS, SLOW, WARNING, SKIPPED or FAIL"),
    ("since", "string", "ISO 8601 time"),
    ("limit", "integer", "1–1000, default 100"),
    ("cursor", "string", "next_cursor of the previous page"),
]


def _window(example: str) -> Query:
    return [("window", "string", example)]


SUMMARY_ORDERS: dict[str, SummaryOrder] = {"project": "project", "dashboard": "dashboard"}
SUMMARY_QUERY: Query = [
    *_window("e.g. 24h (default)"),
    (
        "order",
        "string",
        "project (default: calls, then workflows, as listed) or dashboard (FAIL first, then"
        " SKIPPED or a token needing sign-in, then WARNING, then the rest; by name within each)",
    ),
    (
        "limit",
        "integer",
        "at least 1: only the first `limit` targets in `order`; `total` says how many there are",
    ),
]


def routes() -> list[Route]:
    """Every route of the API; the router and `/v1/openapi.json` are both built from this."""
    table = [
        Route("GET", "/v1/health", health, "Liveness", response=Health),
        Route("GET", "/v1/status", status, "Daemon status", response=StatusInfo),
        Route("GET", "/metrics", metrics, "Prometheus metrics", text=METRICS_CONTENT_TYPE),
        Route("GET", "/v1/agents", agents, "Live agents (SPEC §13)", response=AgentList),
    ]
    for kind in ResourceKind:
        one, model = f"/v1/{kind}/{{name}}", kind.model
        table += [
            Route(
                "GET", f"/v1/{kind}", list_resources, f"List {kind}", response=Listing, query=REVEAL
            ),
            Route("GET", one, get_resource, f"Get one of {kind}", response=model, query=REVEAL),
            Route(
                "PUT",
                one,
                put_resource,
                f"Create or replace one of {kind}",
                request=model,
                response=model,
            ),
            Route("DELETE", one, delete_resource, f"Delete one of {kind}", response=Deleted),
        ]
    table += [
        Route(
            "POST",
            "/v1/apply",
            apply,
            "Apply a project document",
            request=Project,
            response=ApplySummary,
            query=PRUNE,
        ),
        Route("GET", "/v1/export", export, "Export the project", response=Project, query=SECRETS),
    ]
    for target in (ResourceKind.CALLS, ResourceKind.WORKFLOWS):
        path, what = f"/v1/{target}/{{name}}/run", f"Run a {target.singular}"
        table.append(
            Route("POST", path, run_target, what, request=RunRequest, response=RunAccepted)
        )
    return [
        *table,
        Route(
            "GET",
            "/v1/results",
            list_results,
            "Results, newest first",
            response=ResultPage,
            query=RESULTS_QUERY,
        ),
        Route("GET", "/v1/results/{id}", get_result, "One result", response=Result),
        Route(
            "GET",
            "/v1/summary",
            summary,
            "Every target at a glance",
            response=Summary,
            query=SUMMARY_QUERY,
        ),
        Route(
            "GET",
            "/v1/stats/{name}",
            stats,
            "Statistics of a target",
            response=Stats,
            query=_window("e.g. 24h, 7d"),
        ),
        Route(
            "POST",
            "/v1/tokens/{name}/refresh",
            refresh_token,
            "Refresh a token now",
            response=Token,
        ),
        Route("GET", "/v1/events", events, "Server-sent events", response=None, stream=True),
        *signin_routes(),
    ]
