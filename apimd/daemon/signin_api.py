"""REST routes for sign-ins (SPEC §5, §6): start one for a token, list pending ones, and finish
one from a pasted redirect URL."""

from __future__ import annotations

from aiohttp import web

from apimd.daemon.errors import BadRequest, body_as
from apimd.daemon.keys import SERVICE
from apimd.daemon.routes import Route
from apimd.engine.signin import SignInError
from apimd.model.api import (
    CompleteSignInRequest,
    SignInInfo,
    SignInList,
    SignInRequest,
    SignInResult,
)


def _dump(model: SignInInfo | SignInList | SignInResult) -> web.Response:
    return web.json_response(model.model_dump(mode="json", exclude_none=True))


async def start_signin(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    name = request.match_info["name"]
    wanted = await body_as(request, SignInRequest, optional=True)
    try:
        started = await service.start_signin(name, device=wanted.mode == "device")
    except SignInError as exc:
        raise BadRequest(exc.message, code="signin_unavailable") from None
    return _dump(SignInInfo.model_validate(started, from_attributes=True))


async def list_signins(request: web.Request) -> web.Response:
    pending = await request.app[SERVICE].pending_signins()
    return _dump(
        SignInList(
            signins=[
                SignInInfo(
                    id=p.id,
                    url=p.url,
                    token=p.token,
                    expires_at=p.expires_at,
                    user_code=p.data.get("user_code"),
                    verification_uri=p.data.get("verification_uri"),
                )
                for p in pending
            ]
        )
    )


async def complete_signin(request: web.Request) -> web.Response:
    wanted = await body_as(request, CompleteSignInRequest)
    try:
        done = await request.app[SERVICE].complete_signin_url(wanted.url)
    except SignInError as exc:
        raise BadRequest(exc.message, field="url", code="signin_refused") from None
    return _dump(
        SignInResult(
            ok=done.ok,
            message=done.message,
            token=done.token,
            expires_at=done.expires_at,
            result_id=done.result.id if done.result else None,
        )
    )


def signin_routes() -> list[Route]:
    return [
        Route(
            "POST",
            "/v1/tokens/{name}/signin",
            start_signin,
            "Start a sign-in for a token",
            request=SignInRequest,
            response=SignInInfo,
        ),
        Route("GET", "/v1/signins", list_signins, "Pending sign-ins", response=SignInList),
        Route(
            "POST",
            "/v1/signins/complete",
            complete_signin,
            "Finish a sign-in from the final redirect URL",
            request=CompleteSignInRequest,
            response=SignInResult,
        ),
    ]
