"""Browser steps (SPEC §5): a call tagged `apimd:browser` is never sent by apimd. In an interactive
run it opens a pending sign-in whose URL the person follows; otherwise it is skipped."""

from __future__ import annotations

from apimd.engine.context import CallAttempt
from apimd.engine.errors import SetupError
from apimd.engine.http import HttpRequest
from apimd.engine.recording import full_url
from apimd.engine.request import prepare_call
from apimd.engine.services import Services
from apimd.engine.signin_vars import is_state_template
from apimd.model.events import SignInOpened
from apimd.model.outcome import ResultCode
from apimd.model.result import Result, Timings
from apimd.model.signin import SIGNIN_TTL, PendingSignIn

SKIPPED_MESSAGE = (
    "this step opens a browser: run it interactively (apimd run on a terminal, "
    "apimd token signin, or the TUI)"
)


class BrowserStep:
    """Turns a browser step into a pending sign-in (interactive runs) or a SKIPPED result."""

    def __init__(self, services: Services) -> None:
        self._services = services

    async def run(self, attempt: CallAttempt) -> Result:
        """The step's BROWSER result: outside an interactive run it is skipped, with the URL it
        would open in the result so a person can see where it leads; in one, a pending sign-in
        is recorded and its URL handed to the person."""
        call, ctx, recorder = attempt.call, attempt.ctx, attempt.recorder
        if not ctx.interactive:
            return await self._skipped(attempt)
        state_param = call.params.get("state")
        if state_param is not None and not is_state_template(state_param):
            return await self._unsent(
                attempt,
                ResultCode.SETUP_ERROR,
                f"call {call.name}: a browser step's `state` param must be exactly %%STATE%% "
                "(apimd checks it when the browser comes back)",
            )
        services = self._services
        if not services.definitions.callback_url:
            return await self._unsent(
                attempt,
                ResultCode.SETUP_ERROR,
                "no callback server is listening, so the browser could not come back; "
                "check `apimd status` and APIMD_CALLBACK_PORT",
            )
        try:
            prepared = prepare_call(call, attempt.scope, token=None, auth=None, browser=True)
        except SetupError as exc:
            return await self._unsent(attempt, ResultCode.SETUP_ERROR, str(exc))
        url = full_url(prepared.request)
        pending = PendingSignIn(
            state=ctx.signin_vars["STATE"],
            url=url,
            token=ctx.flow_token,
            auth=attempt.auth.name if attempt.auth else None,
            workflow=ctx.workflow.name if ctx.workflow else None,
            remaining_steps=list(ctx.remaining_steps),
            variables=dict(ctx.variables),
            code_verifier=ctx.signin_vars["CODE_VERIFIER"],
            callback_url=ctx.signin_vars["CALLBACK_URL"] or None,
            data={"stop_on_failure": ctx.workflow.stop_on_failure if ctx.workflow else True},
            created_at=(now := services.now()),
            expires_at=now + SIGNIN_TTL,
        )
        await services.state.create_signin(pending)
        ctx.opened_signin = pending
        services.events(
            SignInOpened(
                id=pending.id,
                run_id=ctx.run_id,
                url=recorder.url(url),
                token=pending.token,
                expires_at=pending.expires_at,
            )
        )
        message = "waiting for the sign-in to be completed in the browser"
        return await self._recorded(attempt, prepared.request, message)

    async def _skipped(self, attempt: CallAttempt) -> Result:
        call, scope = attempt.call, attempt.scope
        try:
            prepared = prepare_call(call, scope, token=None, auth=None, browser=True)
        except SetupError:
            return await self._unsent(attempt, ResultCode.BROWSER, SKIPPED_MESSAGE)
        attempt.ctx.browser_url = full_url(prepared.request)
        return await self._recorded(attempt, prepared.request, SKIPPED_MESSAGE)

    async def _recorded(self, attempt: CallAttempt, request: HttpRequest, message: str) -> Result:
        """The BROWSER result, with the request the browser is sent (redacted)."""
        return await attempt.recorder.build(
            attempt.identity,
            code=ResultCode.BROWSER,
            error=message,
            timings=Timings(),
            request=request,
            finished_at=self._services.now(),
        )

    async def _unsent(self, attempt: CallAttempt, code: ResultCode, message: str) -> Result:
        recorder = self._services.definitions.recorder([])
        return await recorder.unsent(
            attempt.identity, code, message, finished_at=self._services.now()
        )
