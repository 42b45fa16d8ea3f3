"""One HTTP request from any source made into a call: headers, query, body and credentials, with
every secret moved into a variable or `{env: NAME}`."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote_plus

from apimd.importers.builder import (
    ImportFailed,
    ProjectBuilder,
    call_has_field,
    is_secret_name,
    is_valid_url,
    shown_url,
)

_TEMPLATE_ONLY = re.compile(r"^\s*(\{\{[^{}]+\}\}\s*)+$")
_DERIVED_HEADERS = frozenset({"content-length", "host"})
_TRANSPORT_HEADERS = frozenset(
    {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "upgrade"}
    | {"accept-encoding"}
)
"""About one connection, or what the client can decode: apimd's HTTP client sets its own."""
MAX_BODY_DEPTH = 64
"""Deeper JSON is kept as it is: no real request body nests further."""
_AUTH_SCHEMES = ("bearer ", "basic ", "token ", "digest ", "apikey ")
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
"""What may not be in a header value (a line break would start another header)."""
_URL_UNSAFE = re.compile(r"[\x00-\x20\x7f]")


@dataclass
class RequestParts:
    """A request as a source states it, before it becomes a call."""

    where: str
    method: str
    url: str
    headers: list[tuple[str, str]] = field(default_factory=list)
    body_text: str | None = None
    json_body: Any = None
    form: dict[str, str] | None = None
    multipart: dict[str, str] | None = None
    basic: tuple[str, str] | None = None
    auth: str | None = None
    token: str | None = None
    conditions: list[dict[str, Any]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name), None)

    def has_header(self, name: str) -> bool:
        return self.header(name) is not None

    def set_body_text(self, text: str, content_type: str | None) -> None:
        """A body as text, kept as JSON or a form when it is one (so values stay templates)."""
        kind = (content_type or "").split(";")[0].strip().lower()
        if kind.endswith("json"):
            try:
                self.json_body = json.loads(text)
            except ValueError:
                self.body_text = text
            return
        if kind == "application/x-www-form-urlencoded":
            pairs = parse_qsl(text, keep_blank_values=True)
            if pairs and len({k for k, _ in pairs}) == len(pairs) and "=" in text:
                self.form = dict(pairs)
                return
        self.body_text = text


def add_request(builder: ProjectBuilder, hint: str, parts: RequestParts) -> str:
    """Add the call `parts` describe; returns its name."""
    if not _HEADER_NAME.fullmatch(parts.method):  # a method is a token, as a header name is
        raise ImportFailed(f"{parts.where}: method {parts.method!r} is not an HTTP method")
    if not is_valid_url(parts.url):
        raise ImportFailed(f"{parts.where}: URL {shown_url(parts.url)} is not valid")
    name = builder.target_name(hint)
    where = f"{parts.where} (call {name})"
    call: dict[str, Any] = {"name": name}
    if parts.method.upper() != "GET":
        call["method"] = parts.method.upper()
    call["url"] = _url(builder, parts.url, where)
    headers: dict[str, str] = {}
    transport = [k for k, _ in parts.headers if k.lower() in _TRANSPORT_HEADERS]
    if transport:
        builder.skip(where, f"headers {', '.join(transport)} left to apimd's HTTP client")
    for key, value in parts.headers:
        if key.lower() in _DERIVED_HEADERS | _TRANSPORT_HEADERS or key.startswith(":"):
            continue
        if parts.multipart is not None and key.lower() == "content-type":
            continue  # its boundary belongs to the original body, not to the one sent
        if not _HEADER_NAME.fullmatch(key):
            builder.skip(where, f"header {key!r} is not a valid header name: not translated")
            continue
        if _CONTROL.search(value):
            builder.skip(
                where,
                f"header {key!r} has a line break or control character in its value: "
                "not translated",
            )
            continue
        value = _secret_header(builder, key, value, where)
        joiner = "; " if key.lower() == "cookie" else ", "
        existing = next((k for k in headers if k.lower() == key.lower()), None)
        if existing:
            headers[existing] = f"{headers[existing]}{joiner}{value}"
        else:
            headers[key] = value
    if headers:
        call["headers"] = headers
    _body(builder, parts, call, where)
    if parts.basic is not None:
        call["auth"] = basic_auth(builder, parts.basic[0], parts.basic[1], where)
    if parts.auth:
        call["auth"] = parts.auth
    if parts.token:
        call["token"] = parts.token
    call.update(parts.extra)
    if parts.conditions:
        call["conditions"] = parts.conditions
    return builder.add_call(call)


def basic_auth(builder: ProjectBuilder, user: str, password: str, where: str) -> str:
    """A `basic` auth setting for these credentials (the password kept out of the text)."""
    body = {
        "type": "basic",
        "username": user,
        "password": builder.secret_field(f"{user}_password", password, f"{where} password"),
    }
    return builder.add_auth(f"basic-{user}", body)


def _secret_header(builder: ProjectBuilder, key: str, value: str, where: str) -> str:
    if not is_secret_name(key) or not value or _TEMPLATE_ONLY.match(value):
        return value
    lowered = value.lower()
    scheme = next((s for s in _AUTH_SCHEMES if lowered.startswith(s)), "")
    secret = value[len(scheme) :]
    if not secret or _TEMPLATE_ONLY.match(secret):
        return value
    hint = key if not scheme else f"{key}_{scheme.strip()}"
    return value[: len(scheme)] + builder.secret_variable(hint, secret, f"{where} header {key}")


def _url(builder: ProjectBuilder, url: str, where: str) -> str:
    # Spaces and control characters (a line break could split the request) are sent escaped.
    url = _URL_UNSAFE.sub(lambda m: f"%{ord(m.group()):02X}", url.strip())
    url = builder.hide_userinfo(url, "url_password", where)
    base, sep, query = url.partition("?")
    if not sep:
        return url
    pieces = []
    for piece in query.split("&"):
        key, eq, raw = piece.partition("=")
        name = unquote_plus(key)
        if eq and raw and is_secret_name(name) and not _TEMPLATE_ONLY.match(unquote_plus(raw)):
            ref = builder.secret_variable(name, unquote_plus(raw), f"{where} query {name}")
            piece = f"{key}={ref}"
        pieces.append(piece)
    return f"{base}?{'&'.join(pieces)}"


def _secret_values(builder: ProjectBuilder, values: Any, where: str, depth: int = 0) -> Any:
    """`values` (a JSON body or form) with each string under a secret-sounding key moved into a
    secret variable, nested objects and lists included."""
    if depth > MAX_BODY_DEPTH:
        return values
    if isinstance(values, list):
        return [_secret_values(builder, v, where, depth + 1) for v in values]
    if not isinstance(values, dict):
        return values
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, str) and value and is_secret_name(str(key)):
            if not _TEMPLATE_ONLY.match(value):
                value = builder.secret_variable(str(key), value, f"{where} body field {key}")
        else:
            value = _secret_values(builder, value, where, depth + 1)
        out[key] = value
    return out


def _body(builder: ProjectBuilder, parts: RequestParts, call: dict[str, Any], where: str) -> None:
    if parts.json_body is not None:
        call["json"] = _secret_values(builder, parts.json_body, where)
    elif parts.form is not None:
        call["form"] = _secret_values(builder, parts.form, where)
    elif parts.multipart is not None:
        fields = _secret_values(builder, parts.multipart, where)
        if call_has_field("multipart"):
            call["multipart"] = fields
        else:
            call["form"] = fields
            builder.skip(where, "multipart form sent as a urlencoded form (no multipart here)")
    elif parts.body_text is not None:
        call["body"] = _secret_text_body(builder, parts.body_text, where)


def _secret_text_body(builder: ProjectBuilder, text: str, where: str) -> str:
    """A text body that holds a JSON object: its secret-named fields become variables (the text
    otherwise kept as it was sent, compact or not)."""
    try:
        data = json.loads(text)
    except ValueError:
        return text
    if not isinstance(data, dict | list):
        return text
    replaced = _secret_values(builder, data, where)
    if replaced == data:
        return text
    compact = ", " not in text and ": " not in text
    return json.dumps(replaced, separators=(",", ":") if compact else None, ensure_ascii=False)
