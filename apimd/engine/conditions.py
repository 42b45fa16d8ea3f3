"""The one condition evaluator (SPEC §2 "Conditions").

STUB — to be implemented.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from apimd.model.resources import Condition
from apimd.model.result import ConditionResult

LARGE_BODY_BYTES = 1024 * 1024
REGEX_TIMEOUT_S = 1.0


@dataclass
class ResponseView:
    """What conditions look at."""

    status: int
    headers: Mapping[str, str]  # case-insensitive multidict in practice (CIMultiDict)
    body: bytes
    text: str
    response_time_ms: float
    size: int
    content_type: str | None = None


@dataclass
class Evaluation:
    """Every condition's result, the variables extracted, and whether any failed or warned."""

    results: list[ConditionResult] = field(default_factory=list)
    extracted: dict[str, str] = field(default_factory=dict)
    failed: bool = False
    warned: bool = False


Render = Callable[[str, str], str]
"""`render(template, where)` → text; raises `SetupError` for an unknown variable."""


async def evaluate(
    conditions: list[Condition], response: ResponseView, render: Render
) -> Evaluation:
    """Evaluate `conditions` in order against `response`. `path` and `value` are templates rendered
    through `render` (where = e.g. "conditions[2].value"); a variable extracted by an earlier
    condition is visible to later ones only through the caller's scope, so extraction results
    are returned in `extracted` (name → string form: JSON values other than strings as JSON text)."""
    raise NotImplementedError
