"""What `prepare_call` works out once per call (`request_plan`) gives the request the templates
give when rendered afresh: same headers, params, bodies and errors."""

from __future__ import annotations

import gc
import json
from typing import Any
from urllib.parse import urlencode

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from apimd.engine import request_plan
from apimd.engine.errors import SetupError, UnknownVariable
from apimd.engine.request import prepare_call
from apimd.engine.request_plan import call_plan
from apimd.engine.template import Scope, render_general
from apimd.model.resources import AuthSetting, Call

FAST = settings(max_examples=150, deadline=None)
VALUES = {"A": "one", "B": "Two", "NAME": "X-Named", "EMPTY": ""}


def scope() -> Scope:
    return Scope(dict(VALUES))


def make_call(**fields: Any) -> Call:
    return Call.model_validate({"name": "c", "url": "https://h.test/p", **fields})


def reference_headers(headers: dict[str, str]) -> list[tuple[str, str]]:
    """The call's headers the general way: each rendered, then set replacing any header of the
    same name but for case."""
    out: list[tuple[str, str]] = []
    for key, value in headers.items():
        name = render_general(key, scope(), "n")
        rendered = render_general(value, scope(), "v")
        out = [(k, v) for k, v in out if k.lower() != name.lower()]
        out.append((name, rendered))
    return out


HEADER_NAMES = st.sampled_from(["Accept", "accept", "X-A", "x-a", "%%NAME%%", "x-named", "X-%%A%%"])
HEADER_VALUES = st.sampled_from(
    ["json", "%%A%%", "{{ B }}", "a %%B%% b", "__EMPTY__", "__NOPE__", "{{B|lower}}", "%%%%"]
)


@FAST
@given(st.dictionaries(HEADER_NAMES, HEADER_VALUES, max_size=6))
def test_headers_are_those_rendered_and_set_one_by_one(headers: dict[str, str]) -> None:
    prepared = prepare_call(make_call(headers=headers), scope(), token=None, auth=None)
    assert prepared.request.headers == reference_headers(headers)


@FAST
@given(st.dictionaries(HEADER_NAMES, HEADER_VALUES, max_size=4))
def test_params_are_rendered_in_order(params: dict[str, str]) -> None:
    prepared = prepare_call(make_call(params=params), scope(), token=None, auth=None)
    assert prepared.request.params == [
        (render_general(k, scope(), "n"), render_general(v, scope(), "v"))
        for k, v in params.items()
    ]


def test_a_header_computed_by_a_function_is_a_secret_and_a_plain_one_is_not() -> None:
    call = make_call(headers={"X-Sig": "{{ sha256('%%A%%') | hex }}", "X-Plain": "%%A%%"})
    prepared = prepare_call(call, scope(), token=None, auth=None)
    signature = dict(prepared.request.headers)["X-Sig"]
    assert prepared.secrets == [signature]


@pytest.mark.parametrize(
    ("fields", "where"),
    [
        ({"url": "https://h/%%NOPE%%"}, "call c url"),
        ({"headers": {"%%NOPE%%": "v"}}, "call c headers"),
        ({"headers": {"X-A": "%%NOPE%%"}}, "call c headers.X-A"),
        ({"params": {"p": "{{NOPE}}"}}, "call c params.p"),
        ({"body": "b %%NOPE%%"}, "call c body"),
        ({"json": {"k": ["%%NOPE%%"]}}, "call c json"),
        ({"form": {"f": "%%NOPE%%"}}, "call c form.f"),
    ],
)
def test_an_unknown_variable_names_its_place(fields: dict[str, Any], where: str) -> None:
    with pytest.raises(UnknownVariable) as raised:
        prepare_call(make_call(**fields), scope(), token=None, auth=None)
    assert str(raised.value) == f"unknown variable NOPE in {where}"


def test_a_url_that_is_not_absolute_names_the_call() -> None:
    with pytest.raises(SetupError, match=r"^call c url: '/p' is not an absolute http\(s\) URL$"):
        prepare_call(make_call(url="%%EMPTY%%/p"), scope(), token=None, auth=None)


def test_a_url_that_does_not_parse_names_the_call_not_an_internal_error() -> None:
    """`http://[::1/x` (a `[` without its `]`) was applied, and each run ended "internal error:
    ValueError", its traceback in the daemon's log (the retest)."""
    with pytest.raises(
        SetupError,
        match=r"^call c url: 'http://\[::1/x' is not a valid URL \(Invalid IPv6 URL\)$",
    ):
        prepare_call(make_call(url="http://[::1/x"), scope(), token=None, auth=None)


DOCUMENTS = st.recursive(
    st.none() | st.booleans() | st.integers() | st.sampled_from(["plain", "%%A%%", "é", "__B__"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=8,
)


@FAST
@given(DOCUMENTS.filter(lambda document: document is not None))  # None: no body
def test_a_json_body_is_the_document_rendered(document: Any) -> None:
    prepared = prepare_call(make_call(json=document), scope(), token=None, auth=None)
    expected = json.dumps(_rendered(document))
    assert prepared.request.body == expected.encode()
    assert ("Content-Type", "application/json") in prepared.request.headers


def _rendered(document: Any) -> Any:
    if isinstance(document, str):
        return render_general(document, scope(), "json")
    if isinstance(document, dict):
        return {key: _rendered(value) for key, value in document.items()}
    if isinstance(document, list):
        return [_rendered(value) for value in document]
    return document


@pytest.mark.parametrize("form", [{"a": "1", "b": "x y"}, {"a": "%%A%%", "b": "x y"}])
def test_a_form_body_is_encoded_with_its_content_type(form: dict[str, str]) -> None:
    call = make_call(form=form, headers={"content-type": "text/x-mine"})
    prepared = prepare_call(call, scope(), token=None, auth=None)
    rendered = {k: render_general(v, scope(), "f") for k, v in form.items()}
    assert prepared.request.body == urlencode(rendered).encode()
    assert prepared.request.headers == [("content-type", "text/x-mine")]


@pytest.mark.parametrize("body", ["literal body", "body of %%A%%"])
def test_a_text_body_is_sent_as_rendered(body: str) -> None:
    prepared = prepare_call(make_call(body=body), scope(), token=None, auth=None)
    assert prepared.request.body == render_general(body, scope(), "b").encode()
    assert prepared.request.headers == []


def test_a_call_made_anew_gets_its_own_plan() -> None:
    first = make_call(headers={"X-A": "1"}, tags=["apimd:noredirect"])
    second = first.model_copy(update={"headers": {"X-B": "2"}, "tags": []})
    assert call_plan(first) is call_plan(first)
    one = prepare_call(first, scope(), token=None, auth=None).request
    two = prepare_call(second, scope(), token=None, auth=None).request
    assert (one.headers, one.follow_redirects) == ([("X-A", "1")], False)
    assert (two.headers, two.follow_redirects) == ([("X-B", "2")], True)


def test_the_tls_config_follows_the_call_and_its_auth() -> None:
    call = make_call(verify_tls=False)
    plain = prepare_call(call, scope(), token=None, auth=None).request.tls
    assert plain is not None and plain.verify is False
    auth = AuthSetting.model_validate(
        {"name": "a", "type": "bearer", "token": "t", "tls": {"verify": "ca_only"}}
    )
    with_auth = prepare_call(call, scope(), token=None, auth=auth).request.tls
    assert with_auth is not None and with_auth.verify == "ca_only"


def test_a_plan_goes_with_its_call() -> None:
    call = make_call(headers={"X-A": "1"})
    call_plan(call)
    key = id(call)
    assert key in request_plan._plans
    del call
    gc.collect()
    assert key not in request_plan._plans
