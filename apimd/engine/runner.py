"""The engine: runs calls and workflows with tokens, conditions, webhooks and refresh (SPEC §2–§5)."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

import aiohttp

from apimd.engine import worker_pool
from apimd.engine.certificates import tls_info
from apimd.engine.classify import classify
from apimd.engine.conditions import ResponseView, evaluate
from apimd.engine.cookies import new_jar
from apimd.engine.dpop import dpop_nonce_asked
from apimd.engine.errors import SetupError
from apimd.engine.events import EventSink, discard
from apimd.engine.functions import instant_now
from apimd.engine.http import HttpExecutor, HttpFailure, HttpRequest, HttpResponse
from apimd.engine.notices import notice_for_result, notice_for_token
from apimd.engine.notify import Notifier
from apimd.engine.oauth2 import builtin_refresh, oauth_error_of
from apimd.engine.ports import StateStore
from apimd.engine.recording import (
    ResultRecorder,
    failed_result,
    full_url,
    secret_values_of_project,
)
from apimd.engine.redact import has_lone_surrogate, storable
from apimd.engine.request import DpopBinding, prepare_call
from apimd.engine.signer import generate_key_jwk, report_weak_keys
from apimd.engine.signin_vars import is_state_template, signin_variables
from apimd.engine.template import Scope, render, system_variables
from apimd.engine.tokens import (
    NEEDS_SIGN_IN_ERRORS,
    RefreshOutcome,
    TokenManager,
    TokenUnavailable,
    utcnow,
)
from apimd.model.events import Event, RunFinished, RunStarted, RunStep, SignInOpened
from apimd.model.maintenance import in_maintenance
from apimd.model.outcome import Outcome, ResultCode, worst
from apimd.model.project import Project
from apimd.model.resources import (
    NOTIFY_WEBHOOK_TYPES,
    AuthSetting,
    Call,
    TokenState,
    Webhook,
    Workflow,
)
from apimd.model.result import Result, Timings, Trigger
from apimd.model.runtime import NOT_SECRET_TOKEN_VARIABLES, TokenRuntime
from apimd.model.signin import SIGNIN_TTL, PendingSignIn

log = logging.getLogger(__name__)

MAX_WEBHOOK_DEPTH = 3
SAVE_TOKEN_EXCLUDED = frozenset({"STATE", "CODE", "CODE_VERIFIER"})


class UnknownTarget(LookupError):
    """No call or workflow has that name."""


@dataclass
class RunContext:
    """What one run (a call alone, or a workflow with its steps) shares."""

    run_id: str
    trigger: Trigger
    variables: dict[str, str] = field(default_factory=dict)
    workflow: Workflow | None = None
    flow_token: str | None = None  # the token this run refreshes or signs in
    depth: int = 0
    interactive: bool = False
    saves_to_token: bool = False
    signin_vars: dict[str, str] = field(default_factory=dict)  # STATE, CODE_VERIFIER, …
    remaining_steps: list[str] = field(default_factory=list)
    opened_signin: PendingSignIn | None = None
    browser_url: str | None = None  # a skipped browser step's URL, in clear, for the person
    cookie_jar: aiohttp.CookieJar | None = None  # one per run, unless `cookies: false`

    def cookies(self) -> aiohttp.CookieJar | None:
        """The run's jar, made on first use; None in a workflow with `cookies: false`."""
        if self.workflow is not None and not self.workflow.cookies:
            return None
        if self.cookie_jar is None:
            self.cookie_jar = new_jar()
        return self.cookie_jar

    maintenance: bool = False  # started inside a maintenance window: notifiers stay silent


class Engine:
    """Runs targets against the current project; state goes through a `StateStore`."""

    def __init__(
        self,
        project: Project,
        state: StateStore,
        *,
        http: HttpExecutor | None = None,
        events: EventSink = discard,
        clock: Callable[[], datetime] = utcnow,
        callback_url: str | None = None,
        standalone: bool = False,
        on_result: Callable[[Result], None] | None = None,
    ) -> None:
        """`standalone`: a one-off run (`apimd run -f`) that will not be around to retry."""
        self._state = state
        self._on_result = on_result
        self.callback_url = callback_url
        self._http = http or HttpExecutor()
        self._owns_http = http is None
        self._events = events
        self._clock = clock
        self._mutexes: dict[str, asyncio.Lock] = {}
        self._saved_env: dict[str, tuple[str, bool]] = {}
        self.update_project(project)
        self.tokens = TokenManager(
            state,
            auth_of=self._auth_of_token,
            refresh=self._refresh_token,
            events=events,
            on_state_change=self._token_state_changed,
            clock=clock,
            retries_later=not standalone,
        )
        self.notifier = Notifier(self._http, state, self._render_env, clock=clock)

    # --- project --------------------------------------------------------------------------

    @property
    def project(self) -> Project:
        return self._project

    def update_project(self, project: Project) -> None:
        """Swap in new definitions; runs already going keep the ones they started with."""
        self._project = project
        self._base_secrets = secret_values_of_project(project)
        report_weak_keys(project.auth)

    @property
    def state(self) -> StateStore:
        return self._state

    @property
    def http(self) -> HttpExecutor:
        return self._http

    def now(self) -> datetime:
        return self._clock()

    def publish(self, event: Event) -> None:
        self._events(event)

    def environment(self) -> dict[str, str]:
        """Environment variables: the project's, then those saved by webhooks."""
        env = {name: spec.value for name, spec in self._project.variables.items()}
        env.update({name: value for name, (value, _secret) in self._saved_env.items()})
        return env

    def _render_env(self, text: str, where: str) -> str:
        return render(text, Scope(self.environment(), system_variables()), where)

    def _auth_of_token(self, token_name: str) -> AuthSetting | None:
        token = self._project.token(token_name)
        return self._project.auth_setting(token.auth) if token else None

    async def close(self) -> None:
        await self.notifier.close()
        if self._owns_http:
            await self._http.close()
        worker_pool.shutdown()

    # --- public entry points --------------------------------------------------------------

    async def run(
        self,
        name: str,
        *,
        variables: dict[str, str] | None = None,
        trigger: Trigger = "manual",
        interactive: bool = False,
        run_id: str | None = None,
    ) -> Result:
        """Run the call or workflow `name` once, record and return its result (whose id is
        `run_id` when given)."""
        ctx = RunContext(
            run_id=run_id or str(uuid.uuid4()),
            trigger=trigger,
            variables={k.upper(): v for k, v in (variables or {}).items()},
            interactive=interactive,
        )
        return await self._run_target(name, ctx)

    async def run_with(self, name: str, ctx: RunContext) -> Result:
        """Run `name` in a context prepared by the caller (sign-in flows)."""
        return await self._run_target(name, ctx)

    async def run_steps(
        self, workflow_name: str, steps: list[str], ctx: RunContext, *, stop_on_failure: bool
    ) -> Result:
        """Run and record the rest of a workflow (after a browser step) as `workflow_name`."""
        workflow = Workflow(name=workflow_name, steps=steps, stop_on_failure=stop_on_failure)
        return await self._record_target(workflow.name, None, workflow, ctx)

    async def refresh_token(self, name: str) -> TokenRuntime:
        """Refresh a token now (manual refresh); a success also clears `needs_sign_in`."""
        if self._project.token(name) is None:
            raise UnknownTarget(f"no token named {name!r}")
        return await self.tokens.refresh(name, force=True)

    # --- targets --------------------------------------------------------------------------

    async def _run_target(self, name: str, ctx: RunContext) -> Result:
        call = self._project.call(name)
        workflow = self._project.workflow(name)
        if call is None and workflow is None:
            raise UnknownTarget(f"no call or workflow named {name!r}")
        mutex = call.has_tag("mutex") if call else _workflow_mutex(workflow)
        if mutex:
            async with (
                self._mutexes.setdefault(name, asyncio.Lock()),
                self._state.cluster_lock(f"mutex:{name}"),  # and across agents
            ):
                return await self._record_target(name, call, workflow, ctx)
        return await self._record_target(name, call, workflow, ctx)

    async def _record_target(
        self, name: str, call: Call | None, workflow: Workflow | None, ctx: RunContext
    ) -> Result:
        kind: Literal["call", "workflow"] = "call" if call else "workflow"
        started = self._clock()
        ctx.maintenance = in_maintenance(self._project.maintenance, name, started)
        self.publish(RunStarted(run_id=ctx.run_id, kind=kind, name=name, trigger=ctx.trigger))
        # Every run that starts ends in a recorded result and `run.finished` (SPEC §4), whatever
        # happens inside it: an unexpected exception is logged once and recorded as FAIL.
        try:
            if (invalid := _invalid_variable(ctx.variables)) is not None:
                result = self._failed_result(kind, name, ctx, started, invalid)
            elif call is not None:
                result = await self._run_call(call, ctx)
            else:
                assert workflow is not None
                result = await self._run_workflow(workflow, ctx)
        except Exception as exc:
            log.exception("%s %s (run %s) crashed", kind, name, ctx.run_id)
            result = self._failed_result(kind, name, ctx, started, _crash(exc))
        if ctx.maintenance:
            result = result.model_copy(update={"maintenance": True})
        try:
            await self._state.add_result(result)
        except Exception as exc:
            log.exception(
                "the result of %s %s (run %s) could not be stored", kind, name, ctx.run_id
            )
            error = f"the result could not be stored: {_crash(exc)}"
            result = self._failed_result(kind, name, ctx, started, error)
            await self._state.add_result(result)
        if self._on_result is not None:
            self._on_result(result)
        self.publish(RunFinished.of(result, ctx.run_id))
        try:
            await self._after_result(call, result, ctx)
        except Exception:  # the run is recorded; its webhooks must not lose it
            log.exception("webhooks after %s %s (run %s) failed", kind, name, ctx.run_id)
        return result

    def _failed_result(
        self,
        kind: Literal["call", "workflow"],
        name: str,
        ctx: RunContext,
        started: datetime,
        error: str,
    ) -> Result:
        recorder = self._recorder(_token_secrets(ctx.variables))
        return failed_result(
            run_id=ctx.run_id,
            kind=kind,
            name=name,
            trigger=ctx.trigger,
            started_at=started,
            error=recorder.text(error),
            token=ctx.flow_token,
            finished_at=self._clock(),
        )

    async def _run_workflow(self, workflow: Workflow, ctx: RunContext) -> Result:
        started = self._clock()
        ctx.workflow = workflow
        for key, value in workflow.variables.items():
            ctx.variables.setdefault(key, value)
        steps = [self._project.call(step) for step in workflow.steps]
        ctx.saves_to_token = ctx.saves_to_token or any(
            h.type == "save_auth_token" for c in steps if c for h in c.webhooks
        )
        step_results: list[Result] = []
        for index, call in enumerate(steps):
            if call is None:  # the project changed under us; validation prevents this otherwise
                break
            ctx.remaining_steps = [c.name for c in steps[index + 1 :] if c is not None]
            step = await self._run_call(call, ctx)
            step_results.append(step)
            self.publish(
                RunStep(
                    run_id=ctx.run_id,
                    workflow=workflow.name,
                    name=call.name,
                    index=index,
                    of=len(steps),
                    outcome=step.outcome,
                    result=step.result,
                    http_status=step.http_status,
                    total_ms=step.timings_ms.total,
                )
            )
            await self._after_result(call, step, ctx)
            if step.outcome == Outcome.SKIPPED:
                break
            if step.outcome == Outcome.FAIL and workflow.stop_on_failure:
                break
        return self._workflow_result(workflow, ctx, started, step_results)

    def _workflow_result(
        self, workflow: Workflow, ctx: RunContext, started: datetime, steps: list[Result]
    ) -> Result:
        code = worst([s.result for s in steps]) if steps else ResultCode.SETUP_ERROR
        failing = next(
            (s for s in steps if s.result == code and code.outcome != Outcome.PASS), None
        )
        error = None
        if failing is not None:
            error = f"step {failing.name}: {failing.result.value}"
            if failing.error:
                error += f" — {failing.error}"
        elif not steps:
            error = "the workflow has no runnable steps"
        timings = Timings(
            total=sum(s.timings_ms.total for s in steps),
            auth_wait=sum(s.timings_ms.auth_wait for s in steps),
        )
        recorder = self._recorder([])
        if ctx.saves_to_token or ctx.flow_token:
            recorder.add_secrets(_token_secrets(ctx.variables))
        return Result(
            id=ctx.run_id,
            kind="workflow",
            name=workflow.name,
            trigger=ctx.trigger,
            started_at=started,
            finished_at=self._clock(),
            outcome=code.outcome,
            result=code,
            http_status=steps[-1].http_status if steps else None,
            timings_ms=timings,
            variables=recorder.variables(ctx.variables),
            retried_after_401=any(s.retried_after_401 for s in steps),
            error=error,
            token=ctx.flow_token,
            steps=steps,
        )

    # --- one call -------------------------------------------------------------------------

    def _call_auth(self, call: Call, ctx: RunContext) -> AuthSetting | None:
        if call.auth:
            return self._project.auth_setting(call.auth)
        if call.token:
            return self._auth_of_token(call.token)
        if ctx.flow_token:
            return self._auth_of_token(ctx.flow_token)
        return None

    def _recorder(self, extra: list[str]) -> ResultRecorder:
        return ResultRecorder([*self._base_secrets, *extra])

    async def _run_call(self, call: Call, ctx: RunContext, *, retried: bool = False) -> Result:
        started = self._clock()
        auth = self._call_auth(call, ctx)
        token_name = call.token or ctx.flow_token
        saves_to_token = (
            ctx.saves_to_token
            or ctx.flow_token is not None
            or any(h.type == "save_auth_token" for h in call.webhooks)
        )
        base = {
            "run_id": ctx.run_id,
            "started_at": started,
            "name": call.name,
            "trigger": ctx.trigger,
            "token": call.token,
            "top_level": ctx.workflow is None,
        }
        auth_wait = 0.0
        runtime: TokenRuntime | None = None
        browser = call.has_tag("browser")
        if call.token and call.token != ctx.flow_token and not browser:
            waited = time.perf_counter()
            try:
                runtime = await self.tokens.ensure_fresh(call.token)
            except TokenUnavailable as exc:
                return await self._short_result(base, exc.code, exc.message)
            finally:
                auth_wait = (time.perf_counter() - waited) * 1000
        elif token_name:
            runtime = await self.tokens.current(token_name)
        token_vars = runtime.variables if runtime else {}
        recorder = self._recorder(_token_secrets(token_vars))
        if saves_to_token:
            recorder.add_secrets(_token_secrets(ctx.variables))
        client = (
            {"CLIENT_ID": auth.client_id or "", "CLIENT_SECRET": auth.client_secret or ""}
            if auth
            else {}
        )
        instant = instant_now()
        system = system_variables(
            instant=instant,
            call_name=call.name,
            workflow_name=ctx.workflow.name if ctx.workflow else None,
            run_id=ctx.run_id,
            token_name=token_name,
            auth_name=auth.name if auth else None,
        )
        if browser and not ctx.signin_vars:
            ctx.signin_vars = signin_variables(self.callback_url)
        system.update(ctx.signin_vars)
        recorder.add_secrets(v for k, v in ctx.signin_vars.items() if k == "CODE_VERIFIER")
        scope = Scope(
            ctx.variables, token_vars, client, self.environment(), system, instant=instant
        )
        if browser and not ctx.interactive:
            return await self._browser_skipped(call, ctx, base, scope, recorder)
        if browser:
            return await self._open_browser(call, ctx, base, scope, auth, recorder)
        token = self._project.token(call.token) if call.token else None
        try:
            prepared = prepare_call(
                call, scope, token=token, auth=auth, dpop_binding=_dpop_binding(auth, runtime)
            )
        except SetupError as exc:
            return await self._short_result(
                base, ResultCode.SETUP_ERROR, str(exc), auth_wait=auth_wait
            )
        recorder.add_secrets(prepared.secrets)
        if prepared.basic_credentials:
            recorder.add_basic_credentials(*prepared.basic_credentials)
        sent_at = self._clock()
        prepared.request.cookie_jar = ctx.cookies()
        try:
            response = await self._http.send(prepared.request)
            if prepared.request.hop_steps and dpop_nonce_asked(response):
                # One retry with the server's nonce; never a refresh (RFC 9449 §8, §9).
                response = await self._http.send(prepared.request)
        except HttpFailure as exc:
            recorder.add_secrets(prepared.secrets)  # signatures computed for redirect hops
            timings = exc.timings.model_copy(update={"auth_wait": auth_wait})
            return await recorder.build(
                base,
                code=exc.code,
                error=exc.message,
                timings=timings,
                request=prepared.request,
                finished_at=self._clock(),
            )
        recorder.add_secrets(prepared.secrets)  # signatures computed for redirect hops
        timings = response.timings.model_copy(update={"auth_wait": auth_wait})
        if (
            response.status == 401
            and not retried
            and call.token
            and call.token != ctx.flow_token
            and (auth is None or auth.refresh_on_401)
        ):
            refreshed = await self.tokens.refresh(
                call.token, unless_newer_than=runtime.generation if runtime else None
            )
            if refreshed.state == TokenState.VALID:
                result = await self._run_call(call, ctx, retried=True)
                result.retried_after_401 = True
                result.timings_ms.auth_wait += auth_wait
                return result
        tls = tls_info(response.peer_certificate, sent_at)
        view = ResponseView(
            status=response.status,
            headers=response.headers,
            body=response.body,
            text=response.text(),
            response_time_ms=timings.total,
            size=response.size,
            content_type=response.headers.get("Content-Type"),
            client_cert_days=_client_cert_days(prepared.request, self._clock()),
            cookies=response.cookies,
            cert_days=tls.days_left if tls is not None else None,
        )

        def render_condition(text: str, where: str) -> str:
            return render(text, scope, f"call {call.name} {where}")

        try:
            evaluation = await evaluate(call.conditions, view, render_condition)
        except SetupError as exc:
            return await recorder.build(
                base,
                code=ResultCode.SETUP_ERROR,
                error=str(exc),
                timings=timings,
                request=prepared.request,
                response=response,
                finished_at=self._clock(),
            )
        # A value a UTF-8 request or the store cannot hold (a lone surrogate) is kept as U+FFFD.
        extracted = {key: storable(value) for key, value in evaluation.extracted.items()}
        if saves_to_token:
            recorder.add_secrets(_token_secrets(extracted))
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
            base,
            code=code,
            error=_error_for(code, response),
            timings=timings,
            request=prepared.request,
            response=response,
            evaluation=evaluation,
            finished_at=self._clock(),
            retried=retried,
        )

    async def _browser_skipped(
        self,
        call: Call,
        ctx: RunContext,
        base: dict[str, object],
        scope: Scope,
        recorder: ResultRecorder,
    ) -> Result:
        """Outside an interactive run a browser step is not run: SKIPPED/BROWSER, with the URL
        it would open in the result so a person can see where it leads."""
        message = (
            "this step opens a browser: run it interactively (apimd run on a terminal, "
            "apimd token signin, or the TUI)"
        )
        try:
            prepared = prepare_call(call, scope, token=None, auth=None, browser=True)
        except SetupError:
            return await self._short_result(base, ResultCode.BROWSER, message)
        ctx.browser_url = full_url(prepared.request)
        return await recorder.build(
            base,
            code=ResultCode.BROWSER,
            error=message,
            timings=Timings(),
            request=prepared.request,
            finished_at=self._clock(),
        )

    async def _open_browser(
        self,
        call: Call,
        ctx: RunContext,
        base: dict[str, object],
        scope: Scope,
        auth: AuthSetting | None,
        recorder: ResultRecorder,
    ) -> Result:
        """Don't send a browser step: record a pending sign-in and hand its URL to the person."""
        state_param = call.params.get("state")
        if state_param is not None and not is_state_template(state_param):
            return await self._short_result(
                base,
                ResultCode.SETUP_ERROR,
                f"call {call.name}: a browser step's `state` param must be exactly %%STATE%% "
                "(apimd checks it when the browser comes back)",
            )
        if not self.callback_url:
            return await self._short_result(
                base,
                ResultCode.SETUP_ERROR,
                "no callback server is listening, so the browser could not come back; "
                "check `apimd status` and APIMD_CALLBACK_PORT",
            )
        try:
            prepared = prepare_call(call, scope, token=None, auth=None, browser=True)
        except SetupError as exc:
            return await self._short_result(base, ResultCode.SETUP_ERROR, str(exc))
        url = full_url(prepared.request)
        pending = PendingSignIn(
            state=ctx.signin_vars["STATE"],
            url=url,
            token=ctx.flow_token,
            auth=auth.name if auth else None,
            workflow=ctx.workflow.name if ctx.workflow else None,
            remaining_steps=list(ctx.remaining_steps),
            variables=dict(ctx.variables),
            code_verifier=ctx.signin_vars["CODE_VERIFIER"],
            callback_url=ctx.signin_vars["CALLBACK_URL"] or None,
            data={"stop_on_failure": ctx.workflow.stop_on_failure if ctx.workflow else True},
            created_at=(now := self._clock()),
            expires_at=now + SIGNIN_TTL,
        )
        await self._state.create_signin(pending)
        ctx.opened_signin = pending
        self.publish(
            SignInOpened(
                id=pending.id,
                run_id=ctx.run_id,
                url=recorder.url(url),
                token=pending.token,
                expires_at=pending.expires_at,
            )
        )
        return await recorder.build(
            base,
            code=ResultCode.BROWSER,
            error="waiting for the sign-in to be completed in the browser",
            timings=Timings(),
            request=prepared.request,
            finished_at=self._clock(),
        )

    async def _short_result(
        self, base: dict[str, object], code: ResultCode, message: str, *, auth_wait: float = 0.0
    ) -> Result:
        recorder = self._recorder([])
        return await recorder.build(
            base,
            code=code,
            error=message,
            timings=Timings(auth_wait=auth_wait),
            finished_at=self._clock(),
        )

    # --- after a result: webhooks ---------------------------------------------------------

    async def _after_result(self, call: Call | None, result: Result, ctx: RunContext) -> None:
        if call is None:
            return
        label = result.outcome.value
        extracted = dict(ctx.variables)
        for hook in call.webhooks:
            if label not in hook.effective_alerts():
                continue
            try:
                if hook.type == "save_auth_token" and hook.token:
                    saved = _call_extracted(result, extracted)
                    if saved:
                        await self.tokens.save(hook.token, saved)
                elif hook.type == "save_variables":
                    saved = _call_extracted(result, extracted)
                    if hook.names is not None:
                        saved = {k: v for k, v in saved.items() if k in hook.names}
                    if saved:
                        secret = ctx.saves_to_token or ctx.flow_token is not None
                        await self._state.save_variables(saved, secret=secret)
                        self._saved_env.update({k: (v, secret) for k, v in saved.items()})
                elif hook.type in ("run_call", "run_workflow"):
                    target = hook.call if hook.type == "run_call" else hook.workflow
                    if target and ctx.depth < MAX_WEBHOOK_DEPTH:
                        child = RunContext(
                            run_id=str(uuid.uuid4()),
                            trigger="webhook",
                            variables=dict(ctx.variables),
                            depth=ctx.depth + 1,
                        )
                        await self._run_target(target, child)
                    elif target:
                        log.warning(
                            "not running %s from %s: depth %d reached", target, call.name, ctx.depth
                        )
            except Exception:
                log.exception("webhook %s of call %s failed", hook.type, call.name)
        if any(h.type in NOTIFY_WEBHOOK_TYPES for h in call.webhooks):
            muted = ctx.maintenance or in_maintenance(
                self._project.maintenance, call.name, result.started_at
            )
            await self.notifier.observe(
                f"call:{call.name}", call.webhooks, notice_for_result(result), muted=muted
            )

    # --- refresh --------------------------------------------------------------------------

    async def _refresh_token(self, name: str, runtime: TokenRuntime) -> RefreshOutcome:
        token = self._project.token(name)
        auth = self._project.auth_setting(token.auth) if token else None
        if token is None or auth is None:
            return RefreshOutcome(error=f"token {name} or its auth no longer exists")
        if auth.refresh_workflow:
            workflow = self._project.workflow(auth.refresh_workflow)
            if workflow is None:
                return RefreshOutcome(error=f"refresh workflow {auth.refresh_workflow} not found")
            ctx = RunContext(run_id=str(uuid.uuid4()), trigger="refresh", flow_token=name)
            result = await self._record_target(workflow.name, None, workflow, ctx)
            return _refresh_outcome(result, ctx)
        if auth.type == "oauth2":
            scope = Scope(
                runtime.variables,
                {"CLIENT_ID": auth.client_id or "", "CLIENT_SECRET": auth.client_secret or ""},
                self.environment(),
                system_variables(token_name=name, auth_name=auth.name),
            )
            if auth.dpop:
                runtime.dpop_key = await self.tokens.dpop_key(name, generate_key_jwk)
            return await builtin_refresh(self._http, auth, runtime, scope)
        return RefreshOutcome(
            needs_sign_in=True,
            error=f"auth {auth.name} has no refresh_workflow, so token {name} cannot refresh by itself",
        )

    async def _token_state_changed(
        self, name: str, previous: TokenState, runtime: TokenRuntime
    ) -> None:
        auth = self._auth_of_token(name)
        if auth is None or not auth.webhooks:
            return
        error = self._recorder(list(runtime.variables.values())).text(runtime.last_error or "")
        notice = notice_for_token(name, auth.name, runtime.state, error)
        if notice is not None:  # token alerts are never muted by maintenance (SPEC §11)
            await self.notifier.observe(f"auth:{auth.name}:token:{name}", auth.webhooks, notice)

    def notifications_muted(self, owner: str) -> bool:
        """Whether a call's notifiers are inside a maintenance window now (token alerts never)."""
        name = owner.removeprefix("call:")
        return name != owner and in_maintenance(self._project.maintenance, name, self._clock())

    def notifier_owners(self) -> list[tuple[str, list[Webhook]]]:
        """Every owner of notifiers in the project, keyed as `observe` keys them."""
        owners: list[tuple[str, list[Webhook]]] = [
            (f"call:{c.name}", c.webhooks) for c in self._project.calls if c.webhooks
        ]
        for token in self._project.tokens:
            auth = self._project.auth_setting(token.auth)
            if auth is not None and auth.webhooks:
                owners.append((f"auth:{auth.name}:token:{token.name}", auth.webhooks))
        return owners


def _dpop_binding(auth: AuthSetting | None, runtime: TokenRuntime | None) -> DpopBinding | None:
    """The DPoP binding of a call's token when its auth uses DPoP and a key and token are held."""
    if auth is None or not auth.dpop or runtime is None or not runtime.dpop_key:
        return None
    access_token = runtime.variables.get("ACCESS_TOKEN")
    if not access_token:
        return None
    bound = runtime.variables.get("TOKEN_TYPE", "").lower() == "dpop"
    return DpopBinding(runtime.dpop_key, access_token, "DPoP" if bound else "Bearer")


def _client_cert_days(request: HttpRequest, now: datetime) -> float | None:
    """Days left on the client certificate the request presented (`cert_days`, path client)."""
    info = request.tls.client_certificate() if request.tls else None
    return None if info is None else round((info.expires_at - now).total_seconds() / 86400, 2)


def _token_secrets(variables: dict[str, str]) -> list[str]:
    """The values that are secret once saved into a token: all but EXPIRES_IN."""
    return [v for k, v in variables.items() if k not in NOT_SECRET_TOKEN_VARIABLES]


def _invalid_variable(variables: dict[str, str]) -> str | None:
    """Why a run variable cannot be used (a lone UTF-16 surrogate UTF-8 cannot encode), or None."""
    for key, value in variables.items():
        if has_lone_surrogate(key) or (isinstance(value, str) and has_lone_surrogate(value)):
            return (
                f"run variable {storable(key)!r} is not valid text: it holds a lone UTF-16 "
                "surrogate (such as \\ud800), which cannot be sent or stored"
            )
    return None


def _crash(exc: BaseException) -> str:
    detail = storable(str(exc))
    return f"internal error: {type(exc).__name__}" + (f": {detail}" if detail else "")


def _workflow_mutex(workflow: Workflow | None) -> bool:
    tags = {t.lower() for t in (workflow.tags if workflow else [])}
    return bool(tags & {"apimd:mutex", "apimetrics:mutex", "apimetrics:workflow_mutex"})


def _call_extracted(result: Result, run_variables: dict[str, str]) -> dict[str, str]:
    """The clear values of the variables this call extracted (the result holds them redacted)."""
    return {
        c.save_as: run_variables[c.save_as]
        for c in result.conditions
        if c.save_as and c.found and c.save_as in run_variables
    }


def _refresh_outcome(result: Result, ctx: RunContext) -> RefreshOutcome:
    extracted = [c for s in result.steps for c in s.conditions if c.save_as and c.found]
    if result.outcome.is_success and extracted:
        return RefreshOutcome(
            variables={k: v for k, v in ctx.variables.items() if k not in SAVE_TOKEN_EXCLUDED}
        )
    reason = result.error or f"refresh workflow ended {result.result.value}"
    if any(s.result == ResultCode.BROWSER for s in result.steps):
        return RefreshOutcome(
            needs_sign_in=True, error="the refresh workflow reached a browser step"
        )
    for step in result.steps:
        error = oauth_error_of(step.response.body if step.response else None)
        if error in NEEDS_SIGN_IN_ERRORS:
            return RefreshOutcome(needs_sign_in=True, error=f"step {step.name}: {error}")
    if result.outcome.is_success:
        reason = "the refresh workflow passed but extracted no variables"
    return RefreshOutcome(error=reason)


def _error_for(code: ResultCode, response: HttpResponse) -> str | None:
    if code in (ResultCode.COMPLETE, ResultCode.SLOW_COMPLETE):
        return None
    if code in (ResultCode.HTTP_CLIENT_ERROR, ResultCode.HTTP_SERVER_ERROR):
        return f"HTTP {response.status} {response.reason}".strip()
    if code == ResultCode.HTTP_REDIRECT_ERROR:
        return (
            "too many redirects"
            if response.too_many_redirects
            else f"HTTP {response.status} redirect"
        )
    return None
