"""What preparing a call's request can work out once per `Call` rather than for every run: the
places its errors name, which templates hold no reference, whether its header names can clash, its
timeout, redirect policy and plain TLS config, and a body without references already encoded."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from apimd.engine.errors import UnknownVariable
from apimd.engine.identity_cache import IdentityCache
from apimd.engine.template import (
    Scope,
    UrlTemplate,
    compile_url,
    is_literal,
    render,
    single_reference,
)
from apimd.engine.tls import TlsConfig
from apimd.model.expressions import Call as FunctionCall
from apimd.model.expressions import template_expressions
from apimd.model.resources import Call


@dataclass(frozen=True, slots=True)
class TemplatePart:
    """One template of a call and the place an error in it names; `literal` is its text when
    it holds no reference (rendering it would return it unchanged), `key` the name it reads
    when it is one plain reference alone (`dunder`: a `__X__`, kept as written when unknown)."""

    template: str
    where: str
    literal: str | None = None
    key: str | None = None
    dunder: bool = False

    @classmethod
    def of(cls, template: str, where: str) -> TemplatePart:
        if is_literal(template):
            return cls(template, where, literal=template)
        if reference := single_reference(template):
            return cls(template, where, key=reference[0], dunder=reference[1])
        return cls(template, where)

    def render(self, scope: Scope) -> str:
        """What `render(template, scope, where)` returns, raises included."""
        if self.literal is not None:
            return self.literal
        key = self.key
        if key is None:
            return render(self.template, scope, self.where)
        value = scope.value_of(key)
        if value is not None:
            return value
        if self.dunder:
            return self.template
        raise UnknownVariable(key, self.where)


@dataclass(frozen=True, slots=True)
class HeaderPlan:
    """A header of the call: its name, its value, and whether a function computes the value
    (a signature made from a secret: the value is then a secret)."""

    name: TemplatePart
    value: TemplatePart
    computed: bool


@dataclass(frozen=True, slots=True)
class CallPlan:
    """What `prepare_call` needs of a call that does not change from one run to the next."""

    where: str
    url: UrlTemplate | None
    """The URL template split once, unless a function or the like makes it need `render_url`."""
    url_where: str
    headers: tuple[HeaderPlan, ...]
    headers_distinct: bool
    """Every header name is literal and no two are the same but for case: each is appended,
    none replaces another."""
    params: tuple[tuple[TemplatePart, TemplatePart], ...]
    body: bytes | None
    """The body, when the call's `body`, `json` or `form` holds no reference: encoded once."""
    timeout: float
    follow_redirects: bool
    plain_tls: TlsConfig | None
    """The TLS config when neither the call nor its auth configures TLS (None: the call does)."""


def computes_secret(template: str) -> bool:
    """Whether a function (or a pipe) computes part of `template`: a signature made from a
    secret is a secret."""
    return "{{" in template and any(
        isinstance(e.head, FunctionCall) or e.pipes for _, e in template_expressions(template)
    )


def _build(call: Call) -> CallPlan:
    where = f"call {call.name}"
    headers = tuple(
        HeaderPlan(
            TemplatePart.of(key, f"{where} headers"),
            TemplatePart.of(value, f"{where} headers.{key}"),
            computes_secret(value),
        )
        for key, value in call.headers.items()
    )
    names = [header.name.literal for header in headers]
    lowered = {name.lower() for name in names if name is not None}
    params = tuple(
        (TemplatePart.of(key, f"{where} params"), TemplatePart.of(value, f"{where} params.{key}"))
        for key, value in call.params.items()
    )
    return CallPlan(
        where=where,
        url=compile_url(call.url),
        url_where=f"{where} url",
        headers=headers,
        headers_distinct=None not in names and len(lowered) == len(names),
        params=params,
        body=_literal_body(call),
        timeout=call.effective_timeout(),
        follow_redirects=call.follow_redirects and not call.has_tag("noredirect"),
        plain_tls=TlsConfig(verify=call.verify_tls) if call.tls is None else None,
    )


def _literal_body(call: Call) -> bytes | None:
    """The body as `prepare_call` would send it, when no part of it is a reference."""
    try:
        if call.body is not None:
            return call.body.encode() if is_literal(call.body) else None
        if call.json_body is not None:
            return json.dumps(call.json_body).encode() if _json_literal(call.json_body) else None
        if call.form is not None and all(is_literal(v) for v in call.form.values()):
            return urlencode(call.form).encode()
    except (TypeError, ValueError):  # what fails here fails again in each run, where it is reported
        return None
    return None


def _json_literal(value: Any) -> bool:
    """Whether `render_json` would return `value` as it is (its keys are never templates)."""
    if isinstance(value, str):
        return is_literal(value)
    if isinstance(value, dict):
        return all(_json_literal(item) for item in value.values())
    if isinstance(value, list | tuple):
        return all(_json_literal(item) for item in value)
    return True


# Each call's plan while the call lives (a `Call` is never changed once made: an apply or an edit
# makes new ones, so a plan cannot go stale).
_plans: IdentityCache[Call, CallPlan] = IdentityCache()


def call_plan(call: Call) -> CallPlan:
    """The plan of `call`, made on first use."""
    plan = _plans.get(call)
    if plan is None:
        plan = _build(call)
        _plans.put(call, plan)
    return plan
