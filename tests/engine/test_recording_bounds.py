"""What a result keeps of a large or hostile response (SPEC §3 redaction, §4 result document)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from multidict import CIMultiDict

from apimd.engine.conditions import PROCESS_BODY_BYTES, Evaluation
from apimd.engine.http import HttpResponse
from apimd.engine.recording import (
    STORED_BODY_BYTES,
    STORED_VALUE_CHARS,
    CallIdentity,
    ResultRecorder,
)
from apimd.model.common import SECRET_MASK
from apimd.model.outcome import ResultCode
from apimd.model.result import ConditionResult, Result, Timings

SECRET = "s3cret-value"


def _response(body: bytes) -> HttpResponse:
    return HttpResponse(
        status=200,
        reason="OK",
        headers=CIMultiDict({"Content-Type": "application/json"}),
        body=body,
        size=len(body),
        final_url="http://127.0.0.1:9/x",
        sent_headers=[],
    )


async def _record(body: bytes, evaluation: Evaluation | None = None) -> Result:
    now = datetime.now(UTC)
    identity = CallIdentity(run_id="r1", name="c", trigger="manual", started_at=now)
    return await ResultRecorder([SECRET]).build(
        identity,
        code=ResultCode.COMPLETE,
        error=None,
        timings=Timings(),
        finished_at=now,
        response=_response(body),
        evaluation=evaluation,
    )


async def test_a_large_json_body_is_redacted_in_a_worker_before_it_is_cut() -> None:
    padding = ["x" * 100] * (PROCESS_BODY_BYTES // 100)
    body = json.dumps({"access_token": "tok-abc", "note": SECRET, "items": padding}).encode()
    assert len(body) > PROCESS_BODY_BYTES
    result = await _record(body)
    assert result.response is not None and result.response.body_truncated
    stored = result.response.body or ""
    assert len(stored.encode()) <= STORED_BODY_BYTES
    assert stored.startswith(f'{{"access_token":"{SECRET_MASK}","note":"{SECRET_MASK}","items"')
    assert "tok-abc" not in stored and SECRET not in stored


async def test_a_large_body_without_redacted_keys_is_kept_as_written() -> None:
    body = ("[" + ", ".join(["1"] * (PROCESS_BODY_BYTES // 3)) + f', "{SECRET}"]').encode()
    result = await _record(body)
    assert result.response is not None
    assert (result.response.body or "").startswith("[1, 1, 1")  # not parsed and rewritten
    short = body[:100].decode() + f' "{SECRET}"' + "x" * (PROCESS_BODY_BYTES + 10)
    masked = await _record(short.encode())
    assert masked.response is not None and SECRET not in (masked.response.body or "")
    assert SECRET_MASK in (masked.response.body or "")


async def test_actual_values_and_variables_are_redacted_then_cut() -> None:
    # A cut before redaction would leave the secret's first characters in clear.
    long = "a" * (STORED_VALUE_CHARS - 3) + SECRET + "b" * 10_000
    condition = ConditionResult(source="json", path="v", actual=long, save_as="V")
    listed = ConditionResult(source="json", path="w", actual=["x" * 1000] * 20)
    evaluation = Evaluation(results=[condition, listed], extracted={"V": long})
    result = await _record(b'{"v": 1}', evaluation)
    actual = result.conditions[0].actual
    assert actual.startswith("a" * (STORED_VALUE_CHARS - 3) + SECRET_MASK[:3])
    assert "s3c" not in actual and "… [cut: " in actual
    assert result.variables["V"] == actual
    cut_list = result.conditions[1].actual
    assert len(json.dumps(cut_list)) < STORED_VALUE_CHARS + 100
    assert cut_list[-1] == f"… 20 items, first {len(cut_list) - 1} shown"
