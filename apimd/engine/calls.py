"""Running one call (SPEC §3, §4): prepare it with its token, send it, refresh and retry once
after a 401, evaluate its conditions, and record its result with every secret redacted."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from yarl import URL

from apimd.engine.browser import BrowserStep
from apimd.engine.certificates import tls_info
from apimd.engine.classify import classify
from apimd.engine.conditions import BODY_SOURCES, PROCESS_BODY_BYTES, ResponseView, evaluate
from apimd.engine.context import CallAttempt, RunContext
from apimd.engine.dpop import dpop_nonce_asked
from apimd.engine.errors import SetupError, UnknownVariable
from apimd.engine.functions import instant_now
from apimd.engine.hops import unfollowed_redirect
from apimd.engine.http import HttpFailure, HttpRequest, HttpResponse
from apimd.engine.recording import (
    CallIdentity,
    ResultRecorder,
    secret_variables,
    token_secrets,
)
from apimd.engine.redact import names_secret, storable
from apimd.engine.request import DpopBinding, prepare_call
from apimd.engine.services import Services, client_variables
from apimd.engine.signin_vars import signin_variables
from apimd.engine.template import Scope, SystemVariables, render
from apimd.engine.tokens import TokenUnavailable
from apimd.model.outcome import ResultCode
from apimd.model.project import Project
from apimd.model.resources import AuthSetting, Call, TokenState
from apimd.model.result import Result, Timings
from apimd.model.runtime import TokenRuntime


class CallRunner:
    """Runs one call of a run and returns its recorded (not yet stored) result."""

    def __init__(self, services: Services) -> None:
        self._services = services
        self._browser = BrowserStep(services)

    async def run(self, call: Call, ctx: RunContext, *, retried: bool = False) -> Result:
        """Run `call` in `ctx` (its extractions go into `ctx.variables`); `retried`: this is
        the one retry after a 401 and its refresh."""
        services = self._services
        identity = CallIdentity(
            ctx.run_id, call.name, ctx.trigger, services.now(), call.token, ctx.workflow is None
        )
        auth = self._call_auth(call, ctx)
        runtime: TokenRuntime | None = None
        auth_wait = 0.0
        if call.token or ctx.flow_token:  # else no token to wait for (and no coroutine)
            try:
                runtime, auth_wait = await self._token(call, ctx)
            except TokenUnavailable as exc:
                return await self._unsent(identity, exc.code, exc.message)
        recorder = services.definitions.recorder(
            token_secrets(runtime.variables) if runtime else []
        )
        if _saves_to_token(call, ctx):
            recorder.add_secrets(token_secrets(ctx.variables))
        elif ctx.variables:
            recorder.add_secrets(secret_variables(ctx.variables, ctx.secret_names))
        scope = self._scope(call, ctx, auth, runtime, recorder)
        attempt = CallAttempt(call, ctx, identity, scope, auth, recorder)
        if call.has_tag("browser"):
            return await self._browser.run(attempt)
        return await self._send(attempt, runtime, auth_wait=auth_wait, retried=retried)

    async def _send(
        self, attempt: CallAttempt, runtime: TokenRuntime | None, *, auth_wait: float, retried: bool
    ) -> Result:
        """Prepare and send the call, then evaluate its response; after a 401 that got its
        token refreshed, run it once more."""
        services, call, recorder = self._services, attempt.call, attempt.recorder
        token = services.definitions.project.token(call.token) if call.token else None
        try:
            prepared = prepare_call(
                call,
                attempt.scope,
                token=token,
                auth=attempt.auth,
                dpop_binding=_dpop_binding(attempt.auth, runtime),
            )
        except SetupError as exc:
            message = str(exc) + _run_as_token_hint(exc, attempt, services.definitions.project)
            return await self._unsent(
                attempt.identity, ResultCode.SETUP_ERROR, message, auth_wait=auth_wait
            )
        recorder.add_secrets(prepared.secrets)
        if prepared.basic_credentials:
            recorder.add_basic_credentials(*prepared.basic_credentials)
        sent_at = services.now()
        known = len(prepared.secrets)
        request = prepared.request
        request.cookie_jar = attempt.ctx.cookies()
        http = services.http
        try:
            response = await http.send(request)
            if request.hop_steps and dpop_nonce_asked(response):
                # One retry with the server's nonce; never a refresh (RFC 9449 §8, §9).
                response = await http.send(request)
        except HttpFailure as exc:
            recorder.add_secrets(prepared.secrets[known:])  # signatures computed for later hops
            timings = exc.timings.model_copy(update={"auth_wait": auth_wait})
            return await recorder.build(
                attempt.identity,
                code=exc.code,
                error=exc.message,
                timings=timings,
                request=prepared.request,
                response=exc.answer,
                finished_at=services.now(),
            )
        if len(prepared.secrets) > known:  # signatures computed for later hops
            recorder.add_secrets(prepared.secrets[known:])
        if not retried and await self._refreshed_after_401(attempt, runtime, response):
            result = await self.run(call, attempt.ctx, retried=True)
            result.retried_after_401 = True
            result.timings_ms.auth_wait += auth_wait
            return result
        timings = response.timings  # this send's own: no copy needed
        timings.auth_wait = auth_wait
        sent = _Sent(prepared.request, response, timings, sent_at)
        return await self._evaluate(attempt, sent, retried)

    async def _token(self, call: Call, ctx: RunContext) -> tuple[TokenRuntime | None, float]:
        """The call's token, made fresh first (raising `TokenUnavailable`) unless this run is
        the one filling it, and the milliseconds spent waiting for its refresh."""
        tokens = self._services.tokens
        if call.token and call.token != ctx.flow_token and not call.has_tag("browser"):
            return await tokens.fresh(call.token)
        token_name = call.token or ctx.flow_token
        return (await tokens.current(token_name) if token_name else None), 0.0

    async def _refreshed_after_401(
        self, attempt: CallAttempt, runtime: TokenRuntime | None, response: HttpResponse
    ) -> bool:
        """Whether a 401 got the call's token refreshed, so the call is sent once more (unless
        someone else saved a newer token meanwhile: then that one is used)."""
        call, ctx, auth = attempt.call, attempt.ctx, attempt.auth
        if not (
            response.status == 401
            and call.token
            and call.token != ctx.flow_token
            and (auth is None or auth.refresh_on_401)
            # A nonce refusal is answered by its one retry, never a refresh (SPEC §10).
            and "use_dpop_nonce" not in response.headers.get("WWW-Authenticate", "")
        ):
            return False
        refreshed = await self._services.tokens.refresh(
            call.token, unless_newer_than=runtime.generation if runtime else None
        )
        return refreshed.state == TokenState.VALID

    def _call_auth(self, call: Call, ctx: RunContext) -> AuthSetting | None:
        definitions = self._services.definitions
        if call.auth:
            return definitions.project.auth_setting(call.auth)
        if call.token:
            return definitions.auth_of_token(call.token)
        if ctx.flow_token:
            return definitions.auth_of_token(ctx.flow_token)
        return None

    def _scope(
        self,
        call: Call,
        ctx: RunContext,
        auth: AuthSetting | None,
        runtime: TokenRuntime | None,
        recorder: ResultRecorder,
    ) -> Scope:
        """The call's variables: run → token → client → environment → system (SPEC §3)."""
        definitions = self._services.definitions
        instant = instant_now()
        if call.has_tag("browser") and not ctx.signin_vars:
            ctx.signin_vars = signin_variables(definitions.callback_url)
        signin = ctx.signin_vars
        if verifier := signin.get("CODE_VERIFIER"):
            recorder.add_secrets([verifier])

        names = {
            "CALL_NAME": call.name,
            "WORKFLOW_NAME": ctx.workflow.name if ctx.workflow else "",
            "RUN_ID": ctx.run_id,
            "TOKEN_NAME": call.token or ctx.flow_token or "",
            "AUTH_NAME": auth.name if auth else "",
            **signin,
        }
        token_vars = runtime.variables if runtime else {}
        # The system layer is the last one, so only a name no other layer holds reaches it, and
        # each of its values is made when first looked up: most calls make none of them.
        return Scope(
            ctx.variables,
            token_vars,
            client_variables(auth),
            definitions.environment(),
            SystemVariables(names, instant),
            instant=instant,
        )

    async def _evaluate(self, attempt: CallAttempt, sent: _Sent, retried: bool) -> Result:
        """Check the response against the call's conditions, keep what they extracted, and
        record the result."""
        call, ctx, scope, recorder = attempt.call, attempt.ctx, attempt.scope, attempt.recorder
        response, timings = sent.response, sent.timings
        tls = tls_info(response.peer_certificate, sent.at)
        # Decoded once, here, and only when a condition reads it: a body over
        # PROCESS_BODY_BYTES is decoded by the worker that checks (and the one that records) it.
        text = None
        if len(response.body) <= PROCESS_BODY_BYTES and _reads_body(call):
            text = response.text()
        view = ResponseView(
            status=response.status,
            headers=response.headers,
            body=response.body,
            text=text or "",
            response_time_ms=timings.total,
            size=response.size,
            content_type=response.headers.get("Content-Type"),
            client_cert_days=_client_cert_days(sent.request, self._services.now),
            cookies=response.cookies,
            cert_days=tls.days_left if tls is not None else None,
        )

        def render_condition(text: str, where: str) -> str:
            return render(text, scope, f"call {call.name} {where}")

        try:
            evaluation = await evaluate(call.conditions, view, render_condition)
        except SetupError as exc:
            return await recorder.build(
                attempt.identity,
                code=ResultCode.SETUP_ERROR,
                error=str(exc),
                timings=timings,
                request=sent.request,
                response=response,
                response_text=text,
                finished_at=self._services.now(),
            )
        # A value a UTF-8 request or the store cannot hold (a lone surrogate) is kept as U+FFFD.
        extracted = {key: storable(value) for key, value in evaluation.extracted.items()}
        if _saves_to_token(call, ctx):
            recorder.add_secrets(token_secrets(extracted))
        elif extracted:
            ctx.secret_names.update(
                item.save_as
                for item in evaluation.results
                if item.save_as and names_secret(item.source, item.path)
            )
            recorder.add_secrets(secret_variables(extracted, ctx.secret_names))
        ctx.variables.update(extracted)
        code = classify(
            status=response.status,
            conditions=call.conditions,
            evaluation=evaluation,
            total_ms=timings.total,
            sla=call.sla,
            too_many_redirects=response.too_many_redirects,
        )
        return await recorder.build(
            attempt.identity,
            code=code,
            error=_error_for(code, response),
            timings=timings,
            request=sent.request,
            response=response,
            response_text=text,
            evaluation=evaluation,
            finished_at=self._services.now(),
            retried=retried,
        )

    async def _unsent(
        self, identity: CallIdentity, code: ResultCode, message: str, *, auth_wait: float = 0.0
    ) -> Result:
        recorder = self._services.definitions.recorder([])
        return await recorder.unsent(
            identity, code, message, finished_at=self._services.now(), auth_wait=auth_wait
        )


@dataclass(frozen=True, slots=True)
class _Sent:
    """A request as sent, its response, its timings and when it was sent."""

    request: HttpRequest
    response: HttpResponse
    timings: Timings
    at: datetime


def _reads_body(call: Call) -> bool:
    """Whether a condition of the call looks into the response body as text."""
    return any(c.source in BODY_SOURCES for c in call.conditions)


_RUN_AS = {
    "refresh_workflow": ("refresh", "apimd token refresh", "R"),
    "signin_workflow": ("sign-in", "apimd token signin", "i"),
}
"""An auth's workflow field → what a token's run of it is, its command, its key on Tokens."""


def _run_as_token_hint(exc: SetupError, attempt: CallAttempt, project: Project) -> str:
    """For an auth's variable missing from a run of (a step of) an auth's refresh or sign-in
    workflow started by itself: how to run it as that token's refresh or sign-in, which has
    them (SPEC §2). Run by hand from the dashboard, it only said `unknown variable CLIENT_ID`."""
    if not isinstance(exc, UnknownVariable) or attempt.ctx.flow_token is not None:
        return ""
    if exc.variable not in ("CLIENT_ID", "CLIENT_SECRET"):
        return ""
    workflow = attempt.ctx.workflow
    for auth in project.auth:
        for kind, (how, command, key) in _RUN_AS.items():
            flow = project.workflow(getattr(auth, kind) or "")
            if flow is None or not (
                flow is workflow or (workflow is None and attempt.call.name in flow.steps)
            ):
                continue
            token = next((t.name for t in project.tokens if t.auth == auth.name), None)
            where = f" ({command} {token}, or {key} on Tokens)" if token else ""
            return (
                f" — {flow.name} is the {kind} of auth {auth.name}, whose variables a run gets"
                f" only as a token's {how}{where}"
            )
    return ""


def _saves_to_token(call: Call, ctx: RunContext) -> bool:
    """Whether what this call extracts ends up in a token (so it is secret from the start)."""
    return (
        ctx.saves_to_token
        or ctx.flow_token is not None
        or any(h.type == "save_auth_token" for h in call.webhooks)
    )


def _dpop_binding(auth: AuthSetting | None, runtime: TokenRuntime | None) -> DpopBinding | None:
    """The DPoP binding of a call's token when its auth uses DPoP and a key and token are held."""
    if auth is None or not auth.dpop or runtime is None or not runtime.dpop_key:
        return None
    access_token = runtime.variables.get("ACCESS_TOKEN")
    if not access_token:
        return None
    bound = runtime.variables.get("TOKEN_TYPE", "").lower() == "dpop"
    return DpopBinding(runtime.dpop_key, access_token, "DPoP" if bound else "Bearer")


def _client_cert_days(request: HttpRequest, now: Callable[[], datetime]) -> float | None:
    """Days left on the client certificate the request presented (`cert_days`, path client);
    the clock is read only when there is one."""
    info = request.tls.client_certificate() if request.tls else None
    return None if info is None else round((info.expires_at - now()).total_seconds() / 86400, 2)


def _error_for(code: ResultCode, response: HttpResponse) -> str | None:
    if code in (ResultCode.COMPLETE, ResultCode.SLOW_COMPLETE):
        return None
    if code in (ResultCode.HTTP_CLIENT_ERROR, ResultCode.HTTP_SERVER_ERROR):
        error = f"HTTP {response.status} {response.reason}".strip()
        if "use_dpop_nonce" in response.headers.get("WWW-Authenticate", ""):
            # Retried once with the nonce it gave; a server that asks again is not followed.
            error += ": the server still asks for a DPoP nonce (use_dpop_nonce) after one retry"
        return error
    if code == ResultCode.HTTP_REDIRECT_ERROR:
        if response.too_many_redirects:
            return "too many redirects"
        location = response.headers.get("Location")
        return unfollowed_redirect(response.status, location, URL(response.final_url))
    return None
