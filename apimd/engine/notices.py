"""What a notification says (SPEC §11): a plain-text title and body for people, and a JSON summary
for `http` webhooks, built from values that are already redacted."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from apimd.model.outcome import Outcome
from apimd.model.resources import TokenState
from apimd.model.result import Result

MAX_CONDITION_LINES = 10


@dataclass
class Notice:
    """One observation to notify about; every field is already redacted."""

    subject: str  # "call list-orders", "token example-token"
    label: str  # the outcome or token state that was observed: FAIL, NEEDS_SIGN_IN, …
    summary: dict[str, Any]
    text: str  # one line for people
    body: str = ""  # the plain-text message: what happened and, for tokens, what to do

    def title_for(self, event: str) -> str:
        """The title of an `alert`, `repeat` or `resolved` message."""
        if event == "resolved":
            return f"apimd: resolved: {self.subject} is {self.label} again"
        prefix = "still " if event == "repeat" else ""
        return f"apimd: {prefix}{self.subject} {self.label}"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Notice:
        fields = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in fields})


def notice_for_result(result: Result) -> Notice:
    """A run's notice: target, where it ran, outcome, result code, failing conditions,
    response time."""
    status = f" (HTTP {result.http_status})" if result.http_status else ""
    text = (
        f"apimd: {result.kind} {result.name} {result.outcome.value}: {result.result.value}{status}"
    )
    if result.error:
        text += f" — {result.error}"
    lines = [
        f"Target: {result.kind} {result.name}",
        f"Outcome: {result.outcome.value} ({result.result.value}){status}",
        f"Response time: {result.timings_ms.total:.0f} ms",
        f"At: {result.started_at.isoformat()}",
    ]
    if result.location or result.agent:  # with agents in several places: which one saw it
        lines.insert(1, f"Where: {result.location or '-'} (agent {result.agent or '-'})")
    if result.error:
        lines.append(f"Error: {result.error}")
    failing = [c for step in [result, *result.steps] for c in step.conditions if not c.passed]
    if failing and result.outcome != Outcome.PASS:
        lines.append("Failing conditions:")
        for condition in failing[:MAX_CONDITION_LINES]:
            where = f" {condition.path}" if condition.path else ""
            expected = f" {condition.expected!r}" if condition.expected is not None else ""
            lines.append(
                f"- {condition.source}{where} {condition.op or ''}{expected}: "
                f"actual {condition.actual!r}"
            )
    lines.append(f"Result: {result.id}")
    return Notice(
        subject=f"{result.kind} {result.name}",
        label=result.outcome.value,
        summary={
            "kind": result.kind,
            "name": result.name,
            "outcome": result.outcome.value,
            "result": result.result.value,
            "http_status": result.http_status,
            "error": result.error,
            "result_id": result.id,
            "started_at": result.started_at.isoformat(),
            "total_ms": result.timings_ms.total,
            "location": result.location,
            "agent": result.agent,
        },
        text=text,
        body="\n".join(lines),
    )


TOKEN_LABELS = {TokenState.NEEDS_SIGN_IN: "NEEDS_SIGN_IN", TokenState.ERROR: "ERROR"}


def notice_for_token(token: str, auth: str, state: TokenState, error: str) -> Notice | None:
    """A token state change's notice, saying what a person must do; None for other states."""
    label = TOKEN_LABELS.get(state, "VALID" if state == TokenState.VALID else "")
    if not label:
        return None
    words, action = {
        "NEEDS_SIGN_IN": (
            "needs a person to sign in",
            f"Sign in: run `apimd token signin {token}` (or press the sign-in key in the TUI).",
        ),
        "ERROR": (
            "could not be refreshed",
            f"apimd retries by itself; to try now run `apimd token refresh {token}`. "
            "Check the auth's token server and credentials.",
        ),
        "VALID": ("is valid again", "Nothing to do."),
    }[label]
    lines = [f"Token: {token} (auth {auth})", f"State: {state.value}"]
    if error:
        lines.append(f"Error: {error}")
    lines.append(action)
    return Notice(
        subject=f"token {token}",
        label=label,
        summary={"token": token, "auth": auth, "state": state.value, "error": error or None},
        text=f"apimd: token {token} {words}" + (f" ({error})" if error else ""),
        body="\n".join(lines),
    )
