"""Template expressions are checked when a project loads (SPEC §10)."""

from __future__ import annotations

from typing import Any

import pytest

from apimd.model.errors import ValidationFailed
from apimd.model.loader import validate_project_data


def load(doc: dict[str, Any]) -> Any:
    return validate_project_data(doc, environ={})


def messages(doc: dict[str, Any]) -> str:
    with pytest.raises(ValidationFailed) as caught:
        load(doc)
    return str(caught.value)


def test_unknown_function_is_a_load_error_naming_the_place() -> None:
    text = messages(
        {
            "calls": [
                {"name": "c", "url": "http://x/", "headers": {"X-Sig": "{{ hmac_md9(K, 'm') }}"}}
            ]
        }
    )
    assert "unknown function `hmac_md9`" in text
    assert "calls" in text and "X-Sig" in text


def test_wrong_argument_count_is_a_load_error() -> None:
    text = messages({"calls": [{"name": "c", "url": "http://x/{{ sha256(A, B) }}"}]})
    assert "function `sha256` takes 1 argument, not 2" in text
    text = messages(
        {"calls": [{"name": "c", "url": "http://x/", "json": {"a": ["{{ A | uuid }}"]}}]}
    )
    assert "`| uuid` needs a one-argument function" in text
    assert "json" in text


def test_functions_inside_quoted_arguments_are_checked() -> None:
    text = messages(
        {"calls": [{"name": "c", "url": "http://x/", "body": "{{ sha1('{{ nope() }}') }}"}]}
    )
    assert "unknown function `nope`" in text


def test_request_variables_only_in_token_headers() -> None:
    text = messages(
        {"calls": [{"name": "c", "url": "http://x/", "headers": {"X": "%%REQUEST_PATH%%"}}]}
    )
    assert "`REQUEST_PATH`" in text and "token's headers only" in text
    text = messages(
        {
            "auth": [{"name": "m", "type": "manual"}],
            "tokens": [{"name": "t", "auth": "m", "params": {"sig": "{{ sha256(REQUEST_BODY) }}"}}],
        }
    )
    assert "`REQUEST_BODY`" in text
    project = load(
        {
            "auth": [{"name": "m", "type": "manual"}],
            "tokens": [
                {
                    "name": "t",
                    "auth": "m",
                    "headers": {
                        "X-Sig": '{{ hmac_sha256(K, "%%REQUEST_METHOD%%\\n__REQUEST_PATH__") }}'
                    },
                }
            ],
        }
    )
    assert project.tokens[0].headers["X-Sig"].startswith("{{ hmac_sha256")


def test_handlebars_and_variable_values_are_not_expressions() -> None:
    project = load(
        {
            "variables": {"V": "{{ notafunction(x) }}"},
            "calls": [{"name": "c", "url": "http://x/", "body": "{{#each a}}{{$guid}}{{ a b }}"}],
        }
    )
    assert project.calls[0].body == "{{#each a}}{{$guid}}{{ a b }}"
