"""Sign-in flows (SPEC §5): starting them for a token, and finishing them when the browser comes
back to /tokens/callback (or the person pastes the final redirect URL)."""

from __future__ import annotations

import logging
import uuid
from urllib.parse import parse_qsl, urlsplit

from apimd.engine.authorization import authorization_request
from apimd.engine.context import RunContext, UnknownTarget
from apimd.engine.errors import SetupError
from apimd.engine.oauth2 import OAuthError, token_request, token_variables
from apimd.engine.runner import Engine
from apimd.engine.signer import generate_key_jwk
from apimd.engine.signin_device import DeviceSignIn
from apimd.engine.signin_results import (
    SignInDone,
    SignInError,
    SignInStarted,
    refreshes_by_itself,
)
from apimd.engine.signin_vars import signin_variables
from apimd.engine.template import render
from apimd.model.events import SignInOpened
from apimd.model.resources import AuthSetting
from apimd.model.result import Result
from apimd.model.signin import SIGNIN_TTL, PendingSignIn

log = logging.getLogger(__name__)

MAX_PARAMS = 64
EXCLUDED_FROM_TOKEN = frozenset(
    {"STATE", "CODE", "CODE_VERIFIER", "CODE_CHALLENGE", "CALLBACK_URL"}
)


def callback_params(url: str) -> dict[str, str]:
    """The parameters of a pasted redirect URL: its query, else its fragment."""
    try:
        parts = urlsplit(url.strip())
    except ValueError as exc:  # an unclosed `[`, a bad port: say what is wrong with it
        raise SignInError(f"that is not a readable URL ({exc}); paste the whole address") from None
    pairs = parse_qsl(parts.query, keep_blank_values=True) or parse_qsl(
        parts.fragment, keep_blank_values=True
    )
    if not pairs:
        raise SignInError(
            "that URL carries no parameters; paste the whole address from the browser"
        )
    return dict(pairs)


__all__ = [
    "SignInDone",
    "SignInError",
    "SignInFlows",
    "SignInStarted",
    "callback_params",
    "refreshes_by_itself",
]


class SignInFlows:
    """Starts and completes sign-ins: the engine runs their workflows; state, HTTP, tokens and
    events come from its `Services`."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._services = engine.services
        self._definitions = engine.services.definitions
        self._device = DeviceSignIn(engine.services)

    def _auth_of(self, token_name: str) -> AuthSetting:
        project = self._definitions.project
        token = project.token(token_name)
        if token is None:
            raise SignInError(f"no token named {token_name!r}")
        auth = project.auth_setting(token.auth)
        if auth is None:
            raise SignInError(f"token {token_name} names auth {token.auth!r}, which does not exist")
        return auth

    # --- starting -----------------------------------------------------------------------

    async def start_workflow(
        self, name: str, *, token: str | None = None, variables: dict[str, str] | None = None
    ) -> tuple[Result, PendingSignIn | None]:
        """Run a workflow interactively; it stops at its browser step, if any."""
        ctx = RunContext(
            run_id=str(uuid.uuid4()),
            trigger="signin" if token else "manual",
            variables={k.upper(): v for k, v in (variables or {}).items()},
            interactive=True,
            flow_token=token,
        )
        result = await self._engine.run_with(name, ctx)
        return result, ctx.opened_signin

    async def start_for_token(self, token_name: str) -> SignInStarted:
        """Browser sign-in for a token: its auth's `signin_workflow`, or the built-in
        authorization-code flow for an oauth2 auth; an oauth2 `device_code` auth's is a device
        sign-in whichever was asked (it said the auth had no way to sign in)."""
        auth = self._auth_of(token_name)
        if auth.type == "oauth2" and auth.grant == "device_code" and not auth.signin_workflow:
            return await self.start_device(token_name)
        if not self._definitions.callback_url:
            raise SignInError(
                "the callback server is not listening, so the browser cannot come back; "
                "see `apimd status` (is APIMD_CALLBACK_PORT taken?)"
            )
        if auth.signin_workflow:
            result, pending = await self.start_workflow(auth.signin_workflow, token=token_name)
            if pending is None:
                detail = f": {result.error}" if result.error else ""
                raise SignInError(
                    f"sign-in workflow {auth.signin_workflow} ended {result.result.value} "
                    f"without reaching a browser step{detail}"
                )
            return SignInStarted(pending.id, pending.url, token_name, pending.expires_at, result)
        if auth.type == "oauth2" and auth.grant == "authorization_code":
            pending = await self._authorization_request(auth, token_name)
            return SignInStarted(pending.id, pending.url, token_name, pending.expires_at)
        raise SignInError(
            f"auth {auth.name} has no way to sign in: give it a signin_workflow with an "
            "apimd:browser step, or use oauth2 with grant authorization_code or device_code"
        )

    async def start_device(self, token_name: str) -> SignInStarted:
        """Device sign-in (RFC 8628) for a token of an oauth2 `device_code` auth: returns the
        code to show; polling goes on in the background and ends with `signin.done`."""
        return await self._device.start(token_name, self._auth_of(token_name))

    async def close(self) -> None:
        """Stop device polls still waiting for a person."""
        await self._device.close()

    async def _authorization_request(self, auth: AuthSetting, token_name: str) -> PendingSignIn:
        flow = signin_variables(self._definitions.callback_url)
        scope = self._definitions.auth_scope(auth, token_name, flow=flow)
        where = f"auth {auth.name}"
        query = {
            "response_type": "code",
            "client_id": render(auth.client_id or "", scope, f"{where} client_id"),
            "redirect_uri": flow["CALLBACK_URL"],
            "state": flow["STATE"],
        }
        if auth.scopes:
            query["scope"] = " ".join(auth.scopes)
        if auth.audience:
            query["audience"] = render(auth.audience, scope, f"{where} audience")
        if auth.uses_pkce:
            query["code_challenge"] = flow["CODE_CHALLENGE"]
            query["code_challenge_method"] = "S256"
        dpop_key = None
        if auth.dpop:
            dpop_key = await self._services.tokens.dpop_key(token_name, generate_key_jwk)
        try:
            request = await authorization_request(self._services.http, auth, scope, query, dpop_key)
        except (OAuthError, SetupError) as exc:
            raise SignInError(f"the authorization request failed: {exc}") from None
        url = request.url
        now = self._services.now()
        pending = PendingSignIn(
            state=flow["STATE"],
            url=url,
            token=token_name,
            auth=auth.name,
            code_verifier=flow["CODE_VERIFIER"] if auth.uses_pkce else None,
            dpop_key=dpop_key,
            callback_url=flow["CALLBACK_URL"],
            data={"builtin": "authorization_code", "issuer": request.issuer},
            created_at=now,
            expires_at=now + SIGNIN_TTL,
        )
        await self._services.state.create_signin(pending)
        self._services.events(
            SignInOpened(
                id=pending.id,
                url=url.replace(flow["STATE"], "••••"),
                token=token_name,
                expires_at=pending.expires_at,
            )
        )
        return pending

    # --- finishing ----------------------------------------------------------------------

    async def complete(self, params: dict[str, str]) -> SignInDone:
        """Finish the sign-in whose `state` matches (SPEC §5 continuation order). Raises
        `SignInError(refused=True)` when the state matches no pending sign-in: nothing runs."""
        if len(params) > MAX_PARAMS:
            raise SignInError("too many parameters", refused=True)
        state = params.get("state")
        if not state:
            raise SignInError("the answer has no `state`, so it matches no sign-in", refused=True)
        pending = await self._services.state.consume_signin(state)
        if pending is None:
            raise SignInError(
                "this answer matches no sign-in waiting for one (it expired after 10 minutes, "
                "was already used, or was not started here)",
                refused=True,
            )
        done = await self._continue(pending, params)
        self._services.events(done.event(pending.id, pending.token))
        return done

    async def complete_url(self, url: str) -> SignInDone:
        """`complete` for a final redirect URL pasted from the browser's address bar."""
        return await self.complete(callback_params(url))

    async def _continue(self, pending: PendingSignIn, params: dict[str, str]) -> SignInDone:
        if params.get("error"):
            detail = params.get("error_description") or params["error"]
            return SignInDone(False, f"the sign-in was not completed: {detail}", pending.token)
        auth = self._definitions.project.auth_setting(pending.auth) if pending.auth else None
        issuer = params.get("iss")
        expected = pending.data.get("issuer")
        if issuer and expected and issuer != expected:  # RFC 9207, before any code exchange
            return SignInDone(
                False, f"the answer came from issuer {issuer}, not {expected}", pending.token
            )
        if issuer and auth and auth.authorize_url and not _same_origin(issuer, auth.authorize_url):
            return SignInDone(
                False,
                f"the answer came from issuer {issuer}, not from {auth.authorize_url}'s server",
                pending.token,
            )
        variables = {**pending.variables, **{k.upper(): v for k, v in params.items()}}
        flow = signin_variables(
            pending.callback_url or self._definitions.callback_url,
            state=pending.state,
            verifier=pending.code_verifier,
        )
        variables["CODE_VERIFIER"] = flow["CODE_VERIFIER"]
        ctx = RunContext(
            run_id=str(uuid.uuid4()),
            trigger="callback",
            variables=variables,
            flow_token=pending.token,
            interactive=True,
            signin_vars=flow,
        )
        result: Result | None = None
        try:
            if pending.remaining_steps:
                result = await self._engine.run_steps(
                    pending.workflow or "sign-in",
                    pending.remaining_steps,
                    ctx,
                    stop_on_failure=bool(pending.data.get("stop_on_failure", True)),
                )
            elif auth and auth.callback:
                target = auth.callback.call or auth.callback.workflow or ""
                result = await self._engine.run_with(target, ctx)
            elif auth and auth.type == "oauth2" and auth.grant == "authorization_code":
                return await self._exchange_code(auth, pending, params)
            else:
                return SignInDone(
                    False,
                    "nothing to run: the sign-in had no steps left and its auth has no `callback`",
                    pending.token,
                )
        except UnknownTarget as exc:
            return SignInDone(False, str(exc), pending.token)
        if not result.outcome.is_success:
            why = f": {result.error}" if result.error else ""
            return SignInDone(
                False,
                f"{result.name} ended {result.result.value}{why}",
                pending.token,
                result=result,
            )
        if pending.token is None:
            return SignInDone(True, f"{result.name} passed", result=result)
        saved = {k: v for k, v in ctx.variables.items() if k not in EXCLUDED_FROM_TOKEN}
        runtime = await self._services.tokens.save(pending.token, saved)
        return SignInDone(
            True,
            f"token {pending.token} saved",
            pending.token,
            runtime.expires_at,
            result,
            refreshes=refreshes_by_itself(
                auth or self._definitions.auth_of_token(pending.token), runtime
            ),
        )

    async def _exchange_code(
        self, auth: AuthSetting, pending: PendingSignIn, params: dict[str, str]
    ) -> SignInDone:
        code = params.get("code")
        if not code:
            return SignInDone(False, "the answer has no `code` to exchange", pending.token)
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": pending.callback_url or self._definitions.callback_url or "",
        }
        if pending.code_verifier:
            form["code_verifier"] = pending.code_verifier
        scope = self._definitions.auth_scope(auth, pending.token)
        try:
            payload = await token_request(
                self._services.http, auth, form, scope, dpop_key=pending.dpop_key
            )
        except (OAuthError, SetupError) as exc:
            return SignInDone(False, f"the code exchange failed: {exc}", pending.token)
        if pending.token is None:
            return SignInDone(True, "signed in")
        runtime = await self._services.tokens.save(pending.token, token_variables(payload))
        return SignInDone(
            True,
            f"token {pending.token} saved",
            pending.token,
            runtime.expires_at,
            refreshes=refreshes_by_itself(auth, runtime),
        )


def _same_origin(a: str, b: str) -> bool:
    pa, pb = urlsplit(a), urlsplit(b)
    return (pa.scheme, pa.hostname, pa.port) == (pb.scheme, pb.hostname, pb.port)
