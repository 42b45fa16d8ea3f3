"""Field types shared by resources: templates checked at load (SPEC §3, §10) and proxies."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator
from yarl import URL

from apimd.model.common import SECRET, SECRET_MASK, Secret, scalar_to_str
from apimd.model.expressions import check_template

__all__ = [
    "PROXY_SCHEMES",
    "ApiKeySecret",
    "HeaderName",
    "HeaderSecret",
    "HeaderTemplateStr",
    "JsonTemplate",
    "Proxy",
    "RequestTemplateStr",
    "TemplateStr",
    "TextValue",
    "UrlTemplateStr",
]


def _checked(text: str) -> str:
    check_template(text)
    return text


def _checked_with_request(text: str) -> str:
    check_template(text, request_variables=True)
    return text


def _checked_json(value: Any) -> Any:
    """Every string inside a `json` body is a template (SPEC §3)."""
    if isinstance(value, str):
        check_template(value)
    elif isinstance(value, dict):
        for item in value.values():
            _checked_json(item)
    elif isinstance(value, list):
        for item in value:
            _checked_json(item)
    return value


_CONTROL_IN_URL = re.compile("[\x00-\x1f\x7f]")
_CONTROL_IN_HEADER = re.compile("[\x00-\x08\x0a-\x1f\x7f]")  # a header value may hold a tab


def _sendable(pattern: re.Pattern[str], where: str) -> Any:
    def check(text: str) -> str:
        if found := pattern.search(text):
            code = ord(found.group())
            raise ValueError(
                f"holds a control character (\\x{code:02x} at character {found.start() + 1}),"
                f" which {where} cannot carry"
            )
        return text

    return AfterValidator(check)


UrlTemplateStr = Annotated[
    str,
    BeforeValidator(scalar_to_str),
    AfterValidator(_checked),
    _sendable(_CONTROL_IN_URL, "a URL"),
]
"""A call's URL: a template with no control character (it was refused only when sent, and a
project's escapes reached the screen of whoever opened its editor)."""
HeaderTemplateStr = Annotated[
    str,
    BeforeValidator(scalar_to_str),
    AfterValidator(_checked),
    _sendable(_CONTROL_IN_HEADER, "a header"),
]
"""A call's header value: a template with no control character but tab."""
HeaderName = Annotated[str, _sendable(_CONTROL_IN_URL, "a header's name")]
"""A header's name: no control character (a tab neither)."""
HeaderSecret = Annotated[str, SECRET, _sendable(_CONTROL_IN_HEADER, "a header")]
"""A secret an auth sends in a header (a bearer token, an AWS session token): no control
character but tab. It was accepted by `apply` and every call then ended SETUP_ERROR."""
ApiKeySecret = Annotated[
    str, SECRET, _sendable(_CONTROL_IN_HEADER, "an API key (in a header, a query or a cookie)")
]
"""An API key's value: as `HeaderSecret`, said of wherever the key goes."""

TextValue = Annotated[str, BeforeValidator(scalar_to_str)]
"""A variable's value: YAML numbers and booleans are accepted as text; never re-templated."""

TemplateStr = Annotated[str, BeforeValidator(scalar_to_str), AfterValidator(_checked)]
"""A string that may hold `%%VARIABLES%%` and `{{ functions() }}` (checked at load, SPEC §10)."""

RequestTemplateStr = Annotated[
    str,
    BeforeValidator(scalar_to_str),
    AfterValidator(_checked_with_request),
    _sendable(_CONTROL_IN_HEADER, "a header"),
]
"""A token header value: may also use the `REQUEST_*` variables (SPEC §10)."""

JsonTemplate = Annotated[Any, AfterValidator(_checked_json)]
"""A `json` body: every string inside is a template."""


def _proxy(value: Any) -> Any:
    """`none`, or an http://, https://, socks5:// or socks5h:// URL (SPEC §10)."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text.lower() == "none":
        return "none"
    if text == SECRET_MASK:  # an export's mask: apply keeps the stored proxy
        return text
    scheme, sep, rest = text.partition("://")
    if not sep or scheme.lower() not in PROXY_SCHEMES or not rest.strip("/"):
        raise ValueError(
            "a proxy is `none` or a URL such as http://host:3128 (schemes: "
            + ", ".join(PROXY_SCHEMES)
            + ")"
        )
    try:
        URL(text)
    except ValueError as exc:  # the URL itself is not echoed: it may hold a password
        raise ValueError(f"the proxy URL does not parse: {exc}") from None
    return text


PROXY_SCHEMES = ("http", "https", "socks5", "socks5h")
Proxy = Annotated[Secret, AfterValidator(_proxy)]
"""A proxy URL (its credentials are secrets) or `none` (no proxy, not even the environment's)."""
