"""Pydantic errors in a project author's words, for any model (REST bodies of single resources)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from apimd.model import AuthSetting, Call, Issue, Schedule
from apimd.model.validation import validation_issues


def issues_for(model: type[BaseModel], data: dict[str, Any], **options: Any) -> list[Issue]:
    with pytest.raises(ValidationError) as failed:
        model.model_validate(data)
    return validation_issues(failed.value, model, **options)


def test_single_resource_errors_with_a_prefix() -> None:
    found = issues_for(
        Call, {"name": "c", "url": "u", "timout": 1, "method": 7}, prefix=("calls", 0)
    )
    assert [(i.field, i.message) for i in found] == [
        ("calls[0].method", "must be a string (got a number; quote it)"),
        ("calls[0].timout", "unknown field `timout`; did you mean `timeout`?"),
    ]


def test_nested_unknown_field_suggests_from_the_nested_model() -> None:
    data = {"name": "c", "url": "u", "conditions": [{"source": "status", "opp": "eq"}]}
    found = issues_for(Call, data)
    assert "unknown field `opp`; did you mean `op`?" in [i.message for i in found]


def test_hidden_and_long_inputs_are_not_quoted() -> None:
    (issue,) = issues_for(AuthSetting, {"name": "a", "refresh_skew": "hunter2"})
    assert issue.message == "must be a number (got 'hunter2')"
    (issue,) = issues_for(
        AuthSetting, {"name": "a", "refresh_skew": "hunter2"}, hide_input=lambda loc: True
    )
    assert issue.message == "must be a number (got a string)"
    (issue,) = issues_for(Schedule, {"name": "s", "every": "1m", "targets": ["not a name " * 5]})
    assert issue.message.endswith("(got a string)")  # too long to quote


def test_mapping_key_errors_are_located_at_the_key() -> None:
    found = issues_for(Call, {"name": "c", "url": "u", "headers": {"X": ["a"]}})
    assert [(i.field, i.message) for i in found] == [("headers.X", "must be a string (got a list)")]
