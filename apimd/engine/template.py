"""Templates (SPEC §3): `%%NAME%%`, `__NAME__` and `{{ NAME }}`, substituted once, never recursively.

Tokenization is one left-to-right scan with a single regex. At each position the first of these
that matches wins, and scanning resumes after it, so overlaps resolve deterministically:

1. `%%%%` → a literal `%%` (so `%%%%A%%` is `%%A%%`, never `%%` + the value of A);
2. `%%NAME%%` (so `%%A%%%%B%%` is A's value then B's);
3. `{{ … }}`: a name (`{{NAME}}`) or an expression calling functions (SPEC §10, parsed by
   `apimd.model.expressions`); other content inside the braces stays as written;
4. `__NAME__` whose opening `__` is not preceded, and closing `__` not followed, by a letter or
   digit. The name is the shortest that satisfies that, so `__A____B__` is A then B. The boundary
   keeps identifiers such as Django's `created__date__gte` from swallowing `DATE`.

Everything else is copied as written, including a lone `%%` or a `%%` that encloses no valid name.
Names are `[A-Za-z_][A-Za-z0-9_]*` and case-insensitive.
"""

from __future__ import annotations

import functools
import os
import random
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

from apimd.engine.errors import SetupError, UnknownVariable
from apimd.engine.functions import Evaluation, Value, as_text, instant_now
from apimd.model.expressions import (
    BRACE_INNER,
    Call,
    Expression,
    Quoted,
    Var,
    parse_expression,
)

__all__ = [
    "Scope",
    "SystemVariables",
    "UrlTemplate",
    "compile_url",
    "is_literal",
    "referenced_variables",
    "render",
    "render_general",
    "render_json",
    "render_url",
    "single_reference",
    "system_variables",
    "url_path_value",
    "url_query_value",
    "uuid4_text",
]

_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_TOKEN = re.compile(
    rf"""
      (?P<escape>%%%%)
    | %%(?P<percent>{_NAME})%%
    | \{{\{{(?P<brace>{BRACE_INNER})\}}\}}
    | (?<![A-Za-z0-9])__(?P<dunder>{_NAME}?)__(?![A-Za-z0-9])
    """,
    re.VERBOSE,
)
_COMPILED_TEMPLATES = 4096  # templates kept split: a project's, and the quoted ones inside them
_CACHED_TEMPLATE_CHARS = 4096  # a longer one (a large body template) is split each time
# Before the `?` of a URL a value is inserted as is but for what a path cannot hold (SPEC §3):
# space, `?`, `#`, controls and non-ASCII are percent-encoded (`quote` encodes all but these).
_PATH_SAFE = "".join(chr(code) for code in range(0x21, 0x7F) if chr(code) not in "?#")
_URL_SAFE = "".join(chr(code) for code in range(0x21, 0x7F))
_PATH_KEPT = frozenset(_PATH_SAFE)


class Scope:
    """Variable lookup, first hit wins, in the order the layers are given (SPEC §3):
    run variables → token's saved variables → auth CLIENT_ID/CLIENT_SECRET → environment → system.
    Names are case-insensitive (layers hold upper-case keys; lookups upper-case the name)."""

    __slots__ = ("_layers", "instant")

    def __init__(self, *layers: Mapping[str, str], instant: datetime | None = None) -> None:
        # Layers are kept by reference, so values added to a layer later (extractions) are seen.
        self._layers: tuple[Mapping[str, str], ...] = layers
        # The one instant every time value of a request shares (SPEC §10).
        self.instant = instant or instant_now()

    def lookup(self, name: str) -> str | None:
        """The value of `name` in the first layer that has it, else None."""
        return self.value_of(name.upper())

    def value_of(self, key: str) -> str | None:
        """`lookup` of a name already upper-cased (a compiled template's)."""
        for layer in self._layers:
            value = layer.get(key)
            if value is not None:
                return value if isinstance(value, str) else str(value)
        return None

    def with_layer_first(self, layer: Mapping[str, str]) -> Scope:
        """A new scope that looks in `layer` before these layers."""
        return Scope(layer, *self._layers, instant=self.instant)

    def __repr__(self) -> str:
        return f"Scope({len(self._layers)} layers)"


@dataclass(frozen=True, slots=True)
class _Token:
    """One `%%X%%`, `{{ … }}`, `__X__` or `%%%%` of a template, as `_TOKEN` matched it."""

    kind: str
    value: str  # the name, or the text inside the braces
    start: int  # where it starts in the template
    whole: str  # as written
    expression: Expression | None = None  # `{{ … }}` parsed, when it is an expression
    key: str | None = None  # the name a plain `%%X%%`, `__X__` or `{{X}}` reads, upper-case


def _compiled(text: str) -> tuple[str | _Token, ...]:
    """`text` split into literal text and tokens, once per template: cached by the text itself
    (so a template changed by an apply is another key, nothing to invalidate), unless long."""
    return _split_cached(text) if len(text) <= _CACHED_TEMPLATE_CHARS else _split(text)


def _split(text: str) -> tuple[str | _Token, ...]:
    pieces: list[str | _Token] = []
    copied_up_to = 0
    for match in _TOKEN.finditer(text):
        kind = match.lastgroup
        assert kind is not None
        if match.start() > copied_up_to:
            pieces.append(text[copied_up_to : match.start()])
        value = match[kind] if kind != "escape" else ""
        expression = parse_expression(value) if kind == "brace" else None
        key = _reference_key(kind, value, expression)
        pieces.append(_Token(kind, value, match.start(), match[0], expression, key))
        copied_up_to = match.end()
    if copied_up_to < len(text):
        pieces.append(text[copied_up_to:])
    return tuple(pieces)


_split_cached = functools.lru_cache(maxsize=_COMPILED_TEMPLATES)(_split)


def _reference_key(kind: str, value: str, expression: Expression | None) -> str | None:
    """The name a token only looks up, or None for one that does more (an escape, a function)."""
    if kind in ("percent", "dunder"):
        return value.upper()
    if expression is not None and isinstance(expression.head, Var) and not expression.pipes:
        return expression.head.name  # `{{X}}`: its value as text is the value itself
    return None


def render(
    text: str, scope: Scope, where: str, *, encode: Callable[[str, int], str] | None = None
) -> str:
    """Substitute every `%%NAME%%`, `{{ NAME }}` and `__NAME__` in `text`; `%%%%` writes `%%`.
    An unknown `%%X%%`/`{{X}}` raises `UnknownVariable(X, where)`; an unknown `__X__` stays as written.
    Values are inserted as-is (or as `encode(value, position in text)` returns them) and never
    re-scanned."""
    if "%" not in text and "{" not in text and "_" not in text:  # no token can start
        return text
    pieces = _compiled(text)
    if len(pieces) == 1:
        only = pieces[0]
        return only if isinstance(only, str) else _reference(only, scope, where, encode)
    return "".join(
        [
            piece if isinstance(piece, str) else _reference(piece, scope, where, encode)
            for piece in pieces
        ]
    )


def is_literal(text: str) -> bool:
    """Whether `text` holds no token: `render` returns it unchanged, whatever the scope."""
    return all(isinstance(piece, str) for piece in _split(text))


def single_reference(text: str) -> tuple[str, bool] | None:
    """When `text` is one plain reference and nothing else (`%%X%%`, `__X__`, `{{X}}`): the
    upper-case name it reads, and whether it is a `__X__` (which stays as written when unknown)."""
    pieces = _split(text)
    if len(pieces) != 1 or isinstance(pieces[0], str) or pieces[0].key is None:
        return None
    return pieces[0].key, pieces[0].kind == "dunder"


def render_general(
    text: str, scope: Scope, where: str, *, encode: Callable[[str, int], str] | None = None
) -> str:
    """`render` with every token taken through the general substitution (functions evaluated
    for `{{X}}` too): the reference `render`'s shortcuts must agree with."""
    return "".join(
        piece if isinstance(piece, str) else _substitute(piece, scope, where, encode)
        for piece in _split(text)
    )


def _reference(
    token: _Token, scope: Scope, where: str, encode: Callable[[str, int], str] | None
) -> str:
    """A token's text: a plain reference looked up by its upper-case name, anything else
    through `_substitute`."""
    key = token.key
    if key is None:
        return _substitute(token, scope, where, encode)
    value = scope.value_of(key)
    if value is not None:
        return value if encode is None else encode(value, token.start)
    if token.kind == "dunder":
        return token.whole
    raise UnknownVariable(key, where)


def _substitute(
    token: _Token, scope: Scope, where: str, encode: Callable[[str, int], str] | None
) -> str:
    kind = token.kind
    if kind == "escape":
        return "%%"
    if kind == "brace":
        if token.expression is None:  # not an expression: as written, its %%X%% substituted
            inner = token.value
            return "{{" + render(inner, scope, where) + "}}" if "%%" in inner else token.whole
        evaluated = _evaluated(token.expression, scope, where)
        return evaluated if encode is None else encode(evaluated, token.start)
    value = scope.lookup(token.value)
    if value is not None:
        return value if encode is None else encode(value, token.start)
    if kind == "dunder":
        return token.whole
    raise UnknownVariable(token.value.upper(), where)


def render_url(text: str, scope: Scope, where: str) -> str:
    """`render` for a URL template, encoding each value for the URL component it lands in (SPEC
    §3): before the template's first `?` (scheme, host, path) only space, `?`, `#`, controls and
    non-ASCII are percent-encoded, so a value can hold `https://host:8080/base`; after it (query,
    fragment) the value is percent-encoded whole, so `&`, `=`, `+`, `#` stay inside one query
    name or value. The `?` is the template's own: a `?` inside a value is encoded, except in a
    value that starts the template, which is a whole or base URL (`%%NEXT_PAGE_URL%%` from a
    previous response keeps its own query)."""
    query_at = text.find("?")

    def encode(value: str, position: int) -> str:
        return _url_encoder(query_at, position)(value)

    return render(text, scope, where, encode=encode)


def _url_encoder(query_at: int, position: int) -> Callable[[str], str]:
    """How `render_url` encodes a value at `position` of a template whose `?` is at `query_at`."""
    if position == 0:
        return _url_start_value
    return url_path_value if query_at < 0 or position < query_at else url_query_value


@dataclass(frozen=True, slots=True)
class UrlTemplate:
    """A URL template split once, each reference with its encoder: `render_url` without its
    general machinery, for a template whose references are all plain (`compile_url`)."""

    pieces: tuple[str | tuple[str, str | None, Callable[[str], str]], ...]
    """Literal text, or a reference: its upper-case name, its text when a `__X__` (kept as
    written when unknown) else None, and its encoder."""

    def render(self, scope: Scope, where: str) -> str:
        """What `render_url(template, scope, where)` returns, raises included."""
        out = []
        for piece in self.pieces:
            if isinstance(piece, str):
                out.append(piece)
                continue
            key, dunder, encode = piece
            value = scope.value_of(key)
            if value is not None:
                out.append(encode(value))
            elif dunder is not None:
                out.append(dunder)
            else:
                raise UnknownVariable(key, where)
        return "".join(out)


def compile_url(text: str) -> UrlTemplate | None:
    """`text` as a `UrlTemplate`, or None when a token of it does more than look a name up (a
    function, a `{{ … }}` holding `%%X%%`)."""
    query_at = text.find("?")
    pieces: list[str | tuple[str, str | None, Callable[[str], str]]] = []
    for piece in _split(text):
        if isinstance(piece, str):
            pieces.append(piece)
        elif piece.kind == "escape":
            pieces.append("%%")
        elif piece.key is not None:
            dunder = piece.whole if piece.kind == "dunder" else None
            pieces.append((piece.key, dunder, _url_encoder(query_at, piece.start)))
        elif piece.kind == "brace" and piece.expression is None and "%%" not in piece.value:
            pieces.append(piece.whole)  # not an expression: as written
        else:
            return None
    return UrlTemplate(tuple(pieces))


def _url_start_value(value: str) -> str:
    """A value that starts a URL template (a whole or base URL): only what no URL holds is
    encoded."""
    if value.isascii() and value.isprintable() and " " not in value:
        return value  # what `quote` would return: every character is safe
    return quote(value, safe=_URL_SAFE, errors="surrogatepass")


def url_path_value(value: str) -> str:
    """`value` as `render_url` inserts it before the `?`."""
    if _PATH_KEPT.issuperset(value):
        return value  # nothing `quote` would encode (`quote` is pure Python, and slow)
    # surrogatepass: a lone surrogate becomes bytes on the wire instead of an exception.
    return quote(value, safe=_PATH_SAFE, errors="surrogatepass")


def url_query_value(value: str) -> str:
    """`value` as `render_url` inserts it after the `?`."""
    if value.isascii() and value.isalnum():
        return value  # letters and digits only: `quote` keeps them
    return quote(value, safe="", errors="surrogatepass")


def _evaluated(expression: Expression, scope: Scope, where: str) -> str:
    """A `{{ … }}` expression evaluated to text."""
    evaluation = Evaluation(scope.instant)
    value = _evaluate(expression.head, scope, where, evaluation)
    for pipe in expression.pipes:
        value = _apply(evaluation, pipe, [value], where)
    return as_text(value)


def _evaluate(node: Var | Quoted | Call, scope: Scope, where: str, evaluation: Evaluation) -> Value:
    if isinstance(node, Var):
        value = scope.lookup(node.name)
        if value is None:
            raise UnknownVariable(node.name, where)
        return value
    if isinstance(node, Quoted):
        # A quoted argument is a template of its own: values are substituted, never spliced.
        return render(node.template, scope, where)
    args = [_evaluate(arg, scope, where, evaluation) for arg in node.args]
    return _apply(evaluation, node.function, args, where)


def _apply(evaluation: Evaluation, name: str, args: list[Value], where: str) -> Value:
    if name not in evaluation.functions:
        raise SetupError(f"{where}: unknown function `{name}`")
    try:
        return evaluation.call(name, args)
    except TypeError:
        raise SetupError(f"{where}: wrong number of arguments for `{name}`") from None
    except SetupError as exc:
        raise SetupError(f"{where}: {exc}") from None


def render_json(value: Any, scope: Scope, where: str) -> Any:
    """Substitute inside every string value of a JSON document (dict keys are left alone), so a
    value containing quotes can never break the JSON. Non-strings are returned unchanged."""
    if isinstance(value, str):
        return render(value, scope, where)
    if isinstance(value, dict):
        return {key: render_json(item, scope, where) for key, item in value.items()}
    if isinstance(value, list):
        return [render_json(item, scope, where) for item in value]
    if isinstance(value, tuple):
        return tuple(render_json(item, scope, where) for item in value)
    return value


def system_variables(
    *,
    call_name: str | None = None,
    workflow_name: str | None = None,
    run_id: str | None = None,
    token_name: str | None = None,
    auth_name: str | None = None,
    instant: datetime | None = None,
) -> dict[str, str]:
    """DATETIME (ISO 8601 UTC, seconds, `Z`), DATE (YYYY-MM-DD), TIME (HH:MM:SS), UNIXTIME, UUID and
    GUID (the same v4), RANDINT (1–10000), CALL_NAME, WORKFLOW_NAME, RUN_ID, TOKEN_NAME, AUTH_NAME
    (empty string when not given). Computed once; the caller reuses the dict for one call."""
    names = {
        "CALL_NAME": call_name or "",
        "WORKFLOW_NAME": workflow_name or "",
        "RUN_ID": run_id or "",
        "TOKEN_NAME": token_name or "",
        "AUTH_NAME": auth_name or "",
    }
    return dict(SystemVariables(names, instant or instant_now()))


class SystemVariables(Mapping[str, str]):
    """`system_variables` as a scope layer whose values are made when first looked up, each
    group once (DATETIME, DATE, TIME and UNIXTIME share one instant; UUID and GUID one v4): a
    call that uses `%%UUID%%` does not format dates. `names` holds the other values (the
    call's names), and wins over the computed ones."""

    __slots__ = ("_instant", "_names", "_values")

    _CLOCK = ("DATETIME", "DATE", "TIME", "UNIXTIME")
    _ALL = (*_CLOCK, "UUID", "GUID", "RANDINT")

    def __init__(self, names: Mapping[str, str], instant: datetime) -> None:
        self._names = names
        self._instant = instant
        self._values: dict[str, str] = {}

    def __getitem__(self, key: str) -> str:
        value: str | None = self.get(key)
        if value is None:
            raise KeyError(key)
        return value

    def get(self, key: str, default: Any = None) -> Any:
        # What `Scope.lookup` calls: without `Mapping.get`'s extra frame and try.
        names = self._names
        if key in names:
            return names[key]
        if key not in self._ALL:
            return default
        values = self._values
        if key not in values:
            if key in self._CLOCK:
                now = self._instant.replace(microsecond=0)
                stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")  # DATE and TIME are its two halves
                date, _, time = stamp[:-1].partition("T")
                values.update(
                    DATETIME=stamp, DATE=date, TIME=time, UNIXTIME=str(int(now.timestamp()))
                )
            elif key == "RANDINT":
                values["RANDINT"] = str(random.randint(1, 10000))
            else:  # UUID, GUID
                values["UUID"] = values["GUID"] = uuid4_text()
        return values[key]

    def __iter__(self) -> Iterator[str]:
        return iter({**dict.fromkeys(self._ALL), **self._names})

    def __len__(self) -> int:
        return len(self._ALL) + len(self._names.keys() - set(self._ALL))


def uuid4_text(data: bytes | None = None) -> str:
    """`str(uuid.uuid4())`, made of `data` (16 random bytes, from `os.urandom` unless given)
    without `uuid.UUID`'s checks and integer arithmetic."""
    text = (os.urandom(16) if data is None else data).hex()
    # The version (4) is the 13th digit; the variant (RFC 4122) the 17th digit's two high bits.
    variant = "89ab"[int(text[16], 16) & 3]
    return f"{text[:8]}-{text[8:12]}-4{text[13:16]}-{variant}{text[17:20]}-{text[20:]}"


def referenced_variables(text: str) -> set[str]:
    """Upper-cased names referenced by `%%X%%`, `{{X}}` and `__X__` in `text`."""
    names: set[str] = set()
    for match in _TOKEN.finditer(text):
        kind = match.lastgroup
        if kind == "brace":
            expression = parse_expression(match[kind])
            if expression is not None:
                names.update(expression.names())
                for quoted in expression.quoted():
                    names |= referenced_variables(quoted)
        elif kind is not None and kind != "escape":
            names.add(match[kind].upper())
    return names
