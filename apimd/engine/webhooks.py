"""What happens after a call's result (SPEC §4 webhooks): saving tokens and variables, running
other targets, and the notifiers (Slack, e-mail, …) of calls and of token states."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime

from apimd.engine.context import RunContext
from apimd.engine.notices import notice_for_result, notice_for_token
from apimd.engine.notify import Notifier
from apimd.engine.services import Definitions, Services
from apimd.model.maintenance import in_maintenance
from apimd.model.resources import NOTIFY_WEBHOOK_TYPES, Call, TokenState, Webhook
from apimd.model.result import Result
from apimd.model.runtime import TokenRuntime

log = logging.getLogger(__name__)

MAX_WEBHOOK_DEPTH = 3

RunTarget = Callable[[str, RunContext], Awaitable[Result]]


class Alerts:
    """The notifier webhooks of calls (muted inside maintenance windows) and of tokens' auths
    (never muted, SPEC §11)."""

    def __init__(
        self, notifier: Notifier, definitions: Definitions, clock: Callable[[], datetime]
    ) -> None:
        self._notifier = notifier
        self._definitions = definitions
        self._clock = clock

    async def after_result(self, call: Call, result: Result, ctx: RunContext) -> None:
        if not any(h.type in NOTIFY_WEBHOOK_TYPES for h in call.webhooks):
            return
        muted = ctx.maintenance or in_maintenance(
            self._definitions.project.maintenance, call.name, result.started_at
        )
        await self._notifier.observe(
            f"call:{call.name}", call.webhooks, notice_for_result(result), muted=muted
        )

    async def token_state_changed(
        self, name: str, previous: TokenState, runtime: TokenRuntime
    ) -> None:
        auth = self._definitions.auth_of_token(name)
        if auth is None or not auth.webhooks:
            return
        recorder = self._definitions.recorder(list(runtime.variables.values()))
        error = recorder.text(runtime.last_error or "")
        notice = notice_for_token(name, auth.name, runtime.state, error)
        if notice is not None:  # token alerts are never muted by maintenance (SPEC §11)
            await self._notifier.observe(f"auth:{auth.name}:token:{name}", auth.webhooks, notice)

    def muted(self, owner: str) -> bool:
        """Whether a call's notifiers are inside a maintenance window now (token alerts never)."""
        name = owner.removeprefix("call:")
        project = self._definitions.project
        return name != owner and in_maintenance(project.maintenance, name, self._clock())

    def owners(self) -> list[tuple[str, list[Webhook]]]:
        """Every owner of notifiers in the project, keyed as `observe` keys them."""
        project = self._definitions.project
        owners: list[tuple[str, list[Webhook]]] = [
            (f"call:{c.name}", c.webhooks) for c in project.calls if c.webhooks
        ]
        for token in project.tokens:
            auth = project.auth_setting(token.auth)
            if auth is not None and auth.webhooks:
                owners.append((f"auth:{auth.name}:token:{token.name}", auth.webhooks))
        return owners


class WebhookDispatcher:
    """Runs a call's webhooks once its result is recorded; a failing one is logged, never
    lost with the result."""

    def __init__(self, services: Services, alerts: Alerts, run_target: RunTarget) -> None:
        self._services = services
        self._alerts = alerts
        self._run_target = run_target

    async def after_result(self, call: Call | None, result: Result, ctx: RunContext) -> None:
        if call is None or not call.webhooks:  # nothing to run, nothing to notify
            return
        label = result.outcome.value
        extracted = dict(ctx.variables)
        for hook in call.webhooks:
            if label not in hook.effective_alerts():
                continue
            try:
                await self._dispatch(hook, call, result, ctx, extracted)
            except Exception:
                log.exception("webhook %s of call %s failed", hook.type, call.name)
        await self._alerts.after_result(call, result, ctx)

    async def _dispatch(
        self,
        hook: Webhook,
        call: Call,
        result: Result,
        ctx: RunContext,
        extracted: dict[str, str],
    ) -> None:
        if hook.type == "save_auth_token" and hook.token:
            saved = _call_extracted(result, extracted)
            if saved:
                await self._services.tokens.save(hook.token, saved)
        elif hook.type == "save_variables":
            saved = _call_extracted(result, extracted)
            if hook.names is not None:
                saved = {k: v for k, v in saved.items() if k in hook.names}
            if saved:
                secret = ctx.saves_to_token or ctx.flow_token is not None
                await self._services.state.save_variables(saved, secret=secret)
                self._services.definitions.remember_variables(saved, secret=secret)
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


def _call_extracted(result: Result, run_variables: dict[str, str]) -> dict[str, str]:
    """The clear values of the variables this call extracted (the result holds them redacted)."""
    return {
        c.save_as: run_variables[c.save_as]
        for c in result.conditions
        if c.save_as and c.found and c.save_as in run_variables
    }
