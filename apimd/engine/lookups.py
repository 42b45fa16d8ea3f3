"""Looking a condition's value up in a response: status, headers, body regex, RFC 9535
JSONPath, XPath 1.0 (SPEC §2 "Conditions").

A JSONPath or XPath collects at most `MAX_MATCHES` matches and says how many there were (or that
there were more). User regexes run with a timeout, XML is parsed with no entities, DTDs or network.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import regex
from jsonpath import JSONPath, JSONPathEnvironment, JSONPathError
from jsonpath.function_extensions import Match, Search
from lxml import etree

from apimd.engine.bounds import MAX_MATCHES

REGEX_TIMEOUT_S = 1.0

REGEX_TIMED_OUT = "regex timed out"


class Body(Protocol):
    """What lookups read of a response."""

    status: int
    headers: Mapping[str, str]
    body: bytes
    text: str
    response_time_ms: float
    size: int
    client_cert_days: float | None
    cookies: Mapping[str, str]  # name -> value of the cookies this response set
    cert_days: float | None  # days the server certificate has left (https only)


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


MISSING: Any = _Missing()


@dataclass(slots=True)
class Lookup:
    """A looked-up value; `broken` means the condition itself could not run (bad path, timeout)."""

    value: Any = MISSING
    message: str | None = None
    broken: bool = False
    # For a list of matches: how many there were ("over N" when the lookup stopped at
    # MAX_MATCHES, then `more` is set and `value` holds the first MAX_MATCHES).
    total: int | str | None = None
    more: bool = False

    @property
    def found(self) -> bool:
        return self.value is not MISSING


class ParsedBody:
    """The response plus its JSON and XML parses, each made at most once, on first use."""

    def __init__(self, response: Body) -> None:
        self.response = response
        self._json: tuple[Any, str | None] | None = None
        self._xml: tuple[etree._ElementTree | None, str | None] | None = None

    def json(self) -> tuple[Any, str | None]:
        """(document, None), or (MISSING, why the body is not JSON)."""
        if self._json is None:
            self._json = _parse_json(self.response.text)
        return self._json

    def parsed_json(self) -> tuple[Any] | None:
        """The body's JSON document when a condition parsed it as JSON, in a 1-tuple (a document
        can be None itself); None when it was not parsed or is not JSON."""
        if self._json is None or self._json[1] is not None:
            return None
        return (self._json[0],)

    def xml(self) -> tuple[etree._ElementTree | None, str | None]:
        """(tree, None), or (None, why the body is not XML)."""
        if self._xml is None:
            self._xml = _parse_xml(self.response.body)
        return self._xml


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


# Made once: `loads` with an option makes a decoder per call.
_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def _parse_json(text: str) -> tuple[Any, str | None]:
    try:
        if text.startswith("\ufeff"):  # `loads` says why a BOM is refused; the decoder would not
            return json.loads(text, parse_constant=_reject_constant), None
        return _DECODER.decode(text), None
    except (ValueError, RecursionError) as exc:
        return MISSING, f"body is not valid JSON: {json_error(exc)}"


def json_error(exc: BaseException) -> str:
    """Why JSON did not parse and where (`Invalid control character at line 1 column 28`),
    never what it holds (it may be a token)."""
    if isinstance(exc, json.JSONDecodeError):
        # (json's messages that end "at" expect the place after them.)
        return f"{exc.msg.removesuffix(' at')} at line {exc.lineno} column {exc.colno}"
    return str(exc)


def _parse_xml(body: bytes) -> tuple[etree._ElementTree | None, str | None]:
    # No entities, DTDs or network: a hostile body can neither expand nor fetch anything.
    parser = etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False
    )
    try:
        root = etree.fromstring(body, parser)
    except (etree.XMLSyntaxError, ValueError) as exc:
        return None, f"body is not valid XML: {exc}"
    return root.getroottree(), None


def look_up(
    source: str, path: str | None, namespaces: Mapping[str, str], body: ParsedBody
) -> Lookup:
    response = body.response
    if source == "status":
        return Lookup(response.status)
    if source == "response_time":
        return Lookup(response.response_time_ms)
    if source == "size":
        return Lookup(response.size)
    if source == "cert_days":
        if path == "client":
            if response.client_cert_days is None:
                return Lookup(message="the call presented no client certificate (tls client_cert)")
            return Lookup(response.client_cert_days)
        if response.cert_days is None:
            return Lookup(message="no server certificate: not an https response")
        return Lookup(response.cert_days)
    if source == "header":
        return _header(path, response.headers)
    if source == "cookie":
        if path and path.strip() in response.cookies:
            return Lookup(response.cookies[path.strip()])
        return Lookup(message=f"cookie {path} not set by this response")
    if source == "body":
        return _body_regex(path, response.text)
    if source == "json":
        return _json_path(path, body)
    if source == "xml":
        return _xpath(path, namespaces, body)
    return Lookup(message=f"unknown source {source!r}", broken=True)


LookUp = Callable[[ParsedBody], Lookup]
"""A lookup made ready for one source and path: `prepare(...)(body) == look_up(..., body)`."""


def prepare(source: str, path: str | None, namespaces: Mapping[str, str]) -> LookUp | None:
    """`look_up` of this source and (rendered) path with its per-path work done once (the
    JSONPath rooted and compiled, the header name folded), for a condition checked on every call;
    None where preparing saves nothing: then use `look_up`."""
    if source == "status":
        return _status
    if source == "response_time":
        return _response_time
    if source == "size":
        return _size
    if source == "header" and path:
        return functools.partial(_prepared_header, path, path.strip().casefold())
    if source == "json" and path:
        rooted = _rooted(path)
        try:
            compiled, steps = _compiled_json_path(rooted)
        except (JSONPathError, RecursionError) as exc:
            message = _invalid_json_path(rooted, exc).message
            return functools.partial(_broken, message)
        if steps is not None:
            return functools.partial(_plain_json_path, rooted, steps)
        return functools.partial(_json_matches, rooted, compiled, None)
    return None


def _status(body: ParsedBody) -> Lookup:
    return Lookup(body.response.status)


def _response_time(body: ParsedBody) -> Lookup:
    return Lookup(body.response.response_time_ms)


def _size(body: ParsedBody) -> Lookup:
    return Lookup(body.response.size)


def _prepared_header(name: str, wanted: str, body: ParsedBody) -> Lookup:
    return _header_named(name, wanted, body.response.headers)


def _broken(message: str | None, body: ParsedBody) -> Lookup:
    return Lookup(message=message, broken=True)


def _plain_json_path(path: str, steps: tuple[str | int, ...], body: ParsedBody) -> Lookup:
    """`_json_matches` of a plain path (`$`, `.name` and `[index]` steps): one value or none."""
    document, error = body.json()
    if error is not None:
        return Lookup(message=error)
    for step in steps:
        if isinstance(step, str):
            if not isinstance(document, dict) or step not in document:
                return Lookup(message=f"nothing matches {path}")
        elif not isinstance(document, list) or step >= len(document):
            return Lookup(message=f"nothing matches {path}")
        document = document[step]
    return Lookup(document)


def _header(name: str | None, headers: Mapping[str, str]) -> Lookup:
    if not name:
        return Lookup(message="a header condition needs `path` (the header name)", broken=True)
    return _header_named(name, name.strip().casefold(), headers)


def _header_named(name: str, wanted: str, headers: Mapping[str, str]) -> Lookup:
    values = [value for key, value in headers.items() if key.casefold() == wanted]
    if not values:
        return Lookup(message=f"header {name} not found")
    return Lookup(values[0] if len(values) == 1 else values)


def _body_regex(pattern: str | None, text: str) -> Lookup:
    if not pattern:
        return Lookup(text)
    try:
        compiled = regex.compile(pattern)
    except (regex.error, ValueError, OverflowError) as exc:
        return Lookup(message=f"invalid regex in path: {exc}", broken=True)
    try:
        match = compiled.search(text, timeout=REGEX_TIMEOUT_S, concurrent=True)
    except TimeoutError:
        return Lookup(message=REGEX_TIMED_OUT, broken=True)
    if match is None:
        return Lookup(message="no match for the path regex in the body")
    value = match.group(1) if compiled.groups else match.group(0)
    if value is None:
        return Lookup(message="the path regex matched, but its first group did not")
    return Lookup(value)


class _TimedMatch(Match):
    """RFC 9535 `match()` whose regex cannot hang on a hostile body."""

    def __call__(self, value: object, pattern: object) -> bool:
        if not isinstance(value, str) or not isinstance(pattern, str):
            return False
        compiled = self.check_cache(pattern)
        return compiled is not None and bool(
            compiled.fullmatch(value, timeout=REGEX_TIMEOUT_S, concurrent=True)
        )


class _TimedSearch(Search):
    """RFC 9535 `search()` whose regex cannot hang on a hostile body."""

    def __call__(self, value: object, pattern: object) -> bool:
        if not isinstance(value, str) or not isinstance(pattern, str):
            return False
        compiled = self.check_cache(pattern)
        return compiled is not None and bool(
            compiled.search(value, timeout=REGEX_TIMEOUT_S, concurrent=True)
        )


class _JSONPathEnvironment(JSONPathEnvironment):
    """Strict RFC 9535 JSONPath with regex timeouts and caches safe across worker threads."""

    def setup_function_extensions(self) -> None:
        super().setup_function_extensions()
        self.function_extensions["match"] = _TimedMatch(thread_safe=True)
        self.function_extensions["search"] = _TimedSearch(thread_safe=True)


_JSONPATH = _JSONPathEnvironment(strict=True)
# Compiled paths by their (rendered) text: a path is compiled once, not per call. Keyed by the text
# itself, so a path changed by an apply is simply another key (nothing to invalidate).
_COMPILED_PATHS = 1024


# A path of only `.name` and `[index]` steps (`$.items[0].id`, most paths) selects at most one
# value, found by indexing: the library's general evaluation costs more than the rest of a lookup.
_PLAIN_STEP = re.compile(r"\.([A-Za-z_][A-Za-z0-9_]*)|\[(0|[1-9][0-9]{0,8})\]")
_PLAIN_PATH = re.compile(rf"\$(?:{_PLAIN_STEP.pattern})*")


@functools.lru_cache(maxsize=_COMPILED_PATHS)
def _compiled_json_path(path: str) -> tuple[Any, tuple[str | int, ...] | None]:
    """The compiled path, and its steps when it is a plain one (names and indexes only)."""
    compiled = _JSONPATH.compile(path)
    if _PLAIN_PATH.fullmatch(path) is None:
        return compiled, None
    steps = tuple(name if name else int(index) for name, index in _PLAIN_STEP.findall(path, 1))
    return compiled, steps


def _plain_match(steps: tuple[str | int, ...], document: Any) -> list[Any]:
    """What a plain path selects: a member of an object, an element of an array, else nothing."""
    for step in steps:
        if isinstance(step, str):
            if not isinstance(document, dict) or step not in document:
                return []
        elif not isinstance(document, list) or step >= len(document):
            return []
        document = document[step]
    return [document]


def _json_path(path: str | None, body: ParsedBody) -> Lookup:
    if not path:
        return Lookup(message="a json condition needs `path` (a JSONPath)", broken=True)
    path = _rooted(path)
    try:
        compiled, steps = _compiled_json_path(path)
    except (JSONPathError, RecursionError) as exc:
        return _invalid_json_path(path, exc)
    return _json_matches(path, compiled, steps, body)


def _rooted(path: str) -> str:
    """`path` with the root `$` it may leave out (`items[0]`, `[0]`)."""
    if not path.startswith("$"):
        path = ("$" if path.startswith("[") else "$.") + path
    return path


def _invalid_json_path(path: str, exc: BaseException) -> Lookup:
    return Lookup(message=f"invalid JSONPath {path!r}: {_first_line(exc)}", broken=True)


def _json_matches(
    path: str, compiled: Any, steps: tuple[str | int, ...] | None, body: ParsedBody
) -> Lookup:
    """What the (rooted, compiled) `path` selects in the body's JSON document."""
    document, error = body.json()
    if error is not None:
        return Lookup(message=error)
    try:
        if isinstance(document, str):
            # The library would re-parse a string document as JSON text. Under RFC 9535 every
            # selector on a scalar selects nothing, so only `$` itself matches.
            values: list[Any] = [document] if _is_root(compiled) else []
            more = False
        elif steps is not None:
            values, more = _plain_match(steps, document), False
        else:
            values, more = _first_matches(compiled, document)
    except TimeoutError:
        return Lookup(message=REGEX_TIMED_OUT, broken=True)
    except (JSONPathError, RecursionError) as exc:
        return Lookup(message=f"JSONPath {path!r} failed: {_first_line(exc)}", broken=True)
    if not values:
        return Lookup(message=f"nothing matches {path}")
    return _matches_found(values, f"over {MAX_MATCHES}" if more else len(values), more)


def _first_matches(compiled: Any, document: Any) -> tuple[list[Any], bool]:
    """The first `MAX_MATCHES` values `compiled` selects, and whether it selects more."""
    values: list[Any] = []
    for match in compiled.finditer(document):
        if len(values) == MAX_MATCHES:
            return values, True
        values.append(match.obj)
    return values, False


def _matches_found(values: list[Any], total: int | str, more: bool) -> Lookup:
    if len(values) == 1 and not more:
        return Lookup(values[0])
    return Lookup(values, total=total, more=more)


def _is_root(compiled: object) -> bool:
    return isinstance(compiled, JSONPath) and not compiled.segments


def _xpath(path: str | None, namespaces: Mapping[str, str], body: ParsedBody) -> Lookup:
    if not path:
        return Lookup(message="an xml condition needs `path` (an XPath)", broken=True)
    try:
        # EXSLT regular expressions would run Python's `re`, which has no timeout.
        compiled = etree.XPath(
            path, namespaces=dict(namespaces) or None, regexp=False, smart_strings=False
        )
    except (etree.XPathError, ValueError, TypeError) as exc:
        return Lookup(message=f"invalid XPath {path!r}: {exc}", broken=True)
    tree, error = body.xml()
    if tree is None:
        return Lookup(message=error)
    try:
        raw = compiled(tree)
    except (etree.XPathError, ValueError, TypeError) as exc:
        return Lookup(message=f"XPath {path!r} failed: {exc}", broken=True)
    if isinstance(raw, list):
        if not raw:
            return Lookup(message=f"nothing matches {path}")
        texts = [_node_text(node) for node in raw[:MAX_MATCHES]]
        return _matches_found(texts, len(raw), len(raw) > MAX_MATCHES)
    if isinstance(raw, bool):
        return Lookup(raw)
    if isinstance(raw, float):
        # XPath numbers are doubles; count() = 3 should extract as "3", not "3.0".
        return Lookup(int(raw) if raw.is_integer() else raw)
    return Lookup(str(raw))


def _node_text(node: object) -> str:
    if isinstance(node, etree._Comment | etree._ProcessingInstruction | etree._Entity):
        return node.text or ""
    if isinstance(node, etree._Element):
        # itertext() keeps entity references as written (`&e;`) instead of expanding them.
        return "".join(str(part) for part in node.itertext())
    if isinstance(node, tuple):  # a namespace node: (prefix, uri)
        return str(node[-1])
    return str(node)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
