"""Running a workflow (SPEC §4): its steps in order, each one's webhooks after it, and one
result for the whole that sums them up."""

from __future__ import annotations

from datetime import datetime

from apimd.engine.calls import CallRunner
from apimd.engine.context import RunContext
from apimd.engine.recording import secret_variables, token_secrets
from apimd.engine.services import Services
from apimd.engine.webhooks import WebhookDispatcher
from apimd.model.events import RunStep
from apimd.model.outcome import Outcome, ResultCode, worst
from apimd.model.reason import short_reason
from apimd.model.resources import Workflow
from apimd.model.result import Result, Timings

# The models' own validators (what their constructors run), without the constructors' Python
# frames and keyword arguments (~4 k instructions less each).
_run_step = RunStep.__pydantic_validator__.validate_python
_new_timings = Timings.__pydantic_validator__.validate_python
_new_result = Result.__pydantic_validator__.validate_python


class WorkflowRunner:
    """Runs a workflow's steps through the call runner; stops at a skipped step, and at a
    failing one when the workflow says `stop_on_failure`."""

    def __init__(self, services: Services, calls: CallRunner, webhooks: WebhookDispatcher) -> None:
        self._services = services
        self._calls = calls
        self._webhooks = webhooks

    async def run(self, workflow: Workflow, ctx: RunContext) -> Result:
        started = self._services.now()
        ctx.workflow = workflow
        for key, value in workflow.variables.items():
            ctx.variables.setdefault(key, value)
        project = self._services.definitions.project
        steps = [project.call(step) for step in workflow.steps]
        ctx.saves_to_token = ctx.saves_to_token or any(
            h.type == "save_auth_token" for c in steps if c for h in c.webhooks
        )
        step_results: list[Result] = []
        for index, call in enumerate(steps):
            if call is None:  # the project changed under us; validation prevents this otherwise
                break
            ctx.remaining_steps = [c.name for c in steps[index + 1 :] if c is not None]
            step = await self._calls.run(call, ctx)
            step_results.append(step)
            event: RunStep = _run_step(
                {
                    "run_id": ctx.run_id,
                    "workflow": workflow.name,
                    "name": call.name,
                    "index": index,
                    "of": len(steps),
                    "outcome": step.outcome,
                    "result": step.result,
                    "http_status": step.http_status,
                    "total_ms": step.timings_ms.total,
                    "reason": short_reason(step, call.sla),
                }
            )
            self._services.events(event)
            await self._webhooks.after_result(call, step, ctx)
            if step.outcome == Outcome.SKIPPED:
                break
            if step.outcome == Outcome.FAIL and workflow.stop_on_failure:
                break
        return self._result(workflow, ctx, started, step_results)

    def _result(
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
        timings: Timings = _new_timings(
            {
                "total": sum(s.timings_ms.total for s in steps),
                "auth_wait": sum(s.timings_ms.auth_wait for s in steps),
            }
        )
        recorder = self._services.definitions.recorder([])
        if ctx.saves_to_token or ctx.flow_token:
            recorder.add_secrets(token_secrets(ctx.variables))
        else:
            recorder.add_secrets(secret_variables(ctx.variables, ctx.secret_names))
        result: Result = _new_result(
            {
                "id": ctx.run_id,
                "kind": "workflow",
                "name": workflow.name,
                "trigger": ctx.trigger,
                "started_at": started,
                "finished_at": self._services.now(),
                "outcome": code.outcome,
                "result": code,
                "http_status": steps[-1].http_status if steps else None,
                "timings_ms": timings,
                "variables": recorder.variables(ctx.variables),
                "retried_after_401": any(s.retried_after_401 for s in steps),
                "error": error,
                "token": ctx.flow_token,
                "steps": steps,
            }
        )
        return result
