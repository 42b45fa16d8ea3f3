"""The engine: runs calls and workflows with tokens, conditions, webhooks and refresh (SPEC §2–§5).

`Engine` is the entry point; the work is done by small parts that share one `Services` bundle:
the call runner (`calls.py`), the workflow runner (`workflow.py`), the webhook dispatcher and
alerts (`webhooks.py`), the token manager (`tokens.py`)."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Literal

from apimd.engine import worker_pool
from apimd.engine.calls import CallRunner
from apimd.engine.context import RunContext, RunOrder, UnknownTarget
from apimd.engine.events import EventSink, discard
from apimd.engine.http import HttpExecutor
from apimd.engine.notify import Notifier
from apimd.engine.oauth2 import builtin_refresh, oauth_error_of
from apimd.engine.ports import StateStore
from apimd.engine.recording import failed_result, token_secrets
from apimd.engine.redact import has_lone_surrogate, storable
from apimd.engine.services import Definitions, Services
from apimd.engine.signer import generate_key_jwk
from apimd.engine.template import uuid4_text
from apimd.engine.tokens import (
    NEEDS_SIGN_IN_ERRORS,
    NothingToRefresh,
    RefreshOutcome,
    TokenManager,
    utcnow,
)
from apimd.engine.webhooks import Alerts, WebhookDispatcher
from apimd.engine.workflow import WorkflowRunner
from apimd.model.events import RunFinished, RunStarted
from apimd.model.maintenance import in_maintenance
from apimd.model.outcome import ResultCode
from apimd.model.project import Project
from apimd.model.resources import Call, Webhook, Workflow
from apimd.model.result import Result
from apimd.model.runtime import TokenRuntime, is_static

log = logging.getLogger(__name__)

SAVE_TOKEN_EXCLUDED = frozenset({"STATE", "CODE", "CODE_VERIFIER"})

# The event's own validator (what its constructor runs), without the constructor's Python frame
# and keyword arguments (~4 k instructions less a run).
_run_started = RunStarted.__pydantic_validator__.validate_python


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
        self._owns_http = http is None
        http = http or HttpExecutor()
        self._on_result = on_result
        self._mutexes: dict[str, asyncio.Lock] = {}
        self._definitions = Definitions(project, callback_url)
        self.notifier = Notifier(http, state, self._definitions.render_env, clock=clock)
        self._alerts = Alerts(self.notifier, self._definitions, clock)
        tokens = TokenManager(
            state,
            auth_of=self._definitions.auth_of_token,
            refresh=self._refresh_token,
            events=events,
            on_state_change=self._alerts.token_state_changed,
            clock=clock,
            retries_later=not standalone,
        )
        self.services = Services(state, http, clock, events, tokens, self._definitions)
        self._calls = CallRunner(self.services)
        self._webhooks = WebhookDispatcher(self.services, self._alerts, self._run_target)
        self._workflows = WorkflowRunner(self.services, self._calls, self._webhooks)

    # --- what the daemon and the CLI reach ------------------------------------------------

    @property
    def project(self) -> Project:
        return self._definitions.project

    def update_project(self, project: Project) -> None:
        """Swap in new definitions; runs already going keep the ones they started with."""
        self._definitions.update(project)

    @property
    def callback_url(self) -> str | None:
        """Where the browser comes back to after a sign-in (None: no callback server)."""
        return self._definitions.callback_url

    @callback_url.setter
    def callback_url(self, url: str | None) -> None:
        self._definitions.callback_url = url

    @property
    def tokens(self) -> TokenManager:
        return self.services.tokens

    def notifications_muted(self, owner: str) -> bool:
        """Whether a call's notifiers are inside a maintenance window now (token alerts never)."""
        return self._alerts.muted(owner)

    def notifier_owners(self) -> list[tuple[str, list[Webhook]]]:
        """Every owner of notifiers in the project, keyed as `observe` keys them."""
        return self._alerts.owners()

    async def close(self) -> None:
        await self.notifier.close()
        if self._owns_http:
            await self.services.http.close()
        worker_pool.shutdown()

    # --- public entry points --------------------------------------------------------------

    async def run(self, name: str, order: RunOrder | None = None) -> Result:
        """Run the call or workflow `name` once as `order` says (default: by hand, a new id),
        record and return its result."""
        # Without an order, the context `RunOrder().context()` gives, made directly (~10 k
        # instructions less: no frozen dataclass, no copy of its empty variables).
        ctx = order.context() if order is not None else RunContext(uuid4_text(), "manual")
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
        """Refresh a token now (manual refresh); a success also clears `needs_sign_in`.
        `NothingToRefresh` for a token nothing refreshes (its state is left alone)."""
        token = self.project.token(name)
        if token is None:
            raise UnknownTarget(f"no token named {name!r}")
        auth = self.project.auth_setting(token.auth)
        if auth is not None and is_static(auth):
            raise NothingToRefresh(
                f"token {name} has nothing to refresh it: its auth {token.auth} is {auth.type},"
                " with no refresh_workflow or signin_workflow (its values are its template's and"
                " what is saved into it)"
            )
        return await self.services.tokens.refresh(name, force=True)

    # --- targets --------------------------------------------------------------------------

    async def _run_target(self, name: str, ctx: RunContext) -> Result:
        call = self.project.call(name)
        workflow = self.project.workflow(name) if call is None else None  # a call is run first
        if call is None and workflow is None:
            raise UnknownTarget(f"no call or workflow named {name!r}")
        mutex = call.has_tag("mutex") if call else _workflow_mutex(workflow)
        if mutex:
            async with (
                self._mutexes.setdefault(name, asyncio.Lock()),
                self.services.state.cluster_lock(f"mutex:{name}"),  # and across agents
            ):
                return await self._record_target(name, call, workflow, ctx)
        return await self._record_target(name, call, workflow, ctx)

    async def _record_target(
        self, name: str, call: Call | None, workflow: Workflow | None, ctx: RunContext
    ) -> Result:
        kind: Literal["call", "workflow"] = "call" if call else "workflow"
        services = self.services
        started = services.now()
        ctx.maintenance = in_maintenance(self.project.maintenance, name, started)
        started_event: RunStarted = _run_started(
            {"run_id": ctx.run_id, "kind": kind, "name": name, "trigger": ctx.trigger}
        )
        services.events(started_event)
        # Every run that starts ends in a recorded result and `run.finished` (SPEC §4), whatever
        # happens inside it: an unexpected exception is logged once and recorded as FAIL.
        try:
            if (invalid := _invalid_variable(ctx.variables)) is not None:
                result = self._failed_result(kind, name, ctx, started, invalid)
            elif call is not None:
                result = await self._calls.run(call, ctx)
            else:
                assert workflow is not None
                result = await self._workflows.run(workflow, ctx)
        except Exception as exc:
            log.exception("%s %s (run %s) crashed", kind, name, ctx.run_id)
            result = self._failed_result(kind, name, ctx, started, _crash(exc))
        if ctx.maintenance:
            result = result.model_copy(update={"maintenance": True})
        try:
            recorded = await services.state.add_result(result)
        except Exception as exc:
            log.exception(
                "the result of %s %s (run %s) could not be stored", kind, name, ctx.run_id
            )
            error = f"the result could not be stored: {_crash(exc)}"
            result = self._failed_result(kind, name, ctx, started, error)
            recorded = await services.state.add_result(result)
        if recorded is None:
            # Its firing was recorded lost while it ran (SPEC §13): the record has no second
            # result for it, so no event, metric or notification may say there is one.
            return result
        result = recorded
        if self._on_result is not None:
            self._on_result(result)
        services.events(RunFinished.of(result, ctx.run_id, call.sla if call else None))
        try:
            await self._webhooks.after_result(call, result, ctx)
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
        recorder = self._definitions.recorder(token_secrets(ctx.variables))
        return failed_result(
            run_id=ctx.run_id,
            kind=kind,
            name=name,
            trigger=ctx.trigger,
            started_at=started,
            error=recorder.text(error),
            token=ctx.flow_token,
            finished_at=self.services.now(),
        )

    # --- refresh --------------------------------------------------------------------------

    async def _refresh_token(self, name: str, runtime: TokenRuntime) -> RefreshOutcome:
        token = self.project.token(name)
        auth = self.project.auth_setting(token.auth) if token else None
        if token is None or auth is None:
            return RefreshOutcome(error=f"token {name} or its auth no longer exists")
        if auth.refresh_workflow:
            workflow = self.project.workflow(auth.refresh_workflow)
            if workflow is None:
                return RefreshOutcome(error=f"refresh workflow {auth.refresh_workflow} not found")
            ctx = RunContext(run_id=str(uuid.uuid4()), trigger="refresh", flow_token=name)
            result = await self._record_target(workflow.name, None, workflow, ctx)
            return _refresh_outcome(result, ctx)
        if auth.type == "oauth2":
            scope = self._definitions.auth_scope(auth, name, token_variables=runtime.variables)
            if auth.dpop:
                runtime.dpop_key = await self.services.tokens.dpop_key(name, generate_key_jwk)
            return await builtin_refresh(self.services.http, auth, runtime, scope)
        return RefreshOutcome(
            needs_sign_in=True,
            error=f"auth {auth.name} has no refresh_workflow, so token {name} cannot refresh by itself",
        )


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
