"""Redaction of secrets in everything recorded or printed (SPEC §3).

A `Redactor` knows secret values and masks them in free text in every form they are commonly
sent in: raw; URL-encoded (`quote` with and without `/` kept, `quote_plus`, and the path and
query forms of a URL apimd sends, as sent and as a server's framework decodes them, see
`_url_forms`; hex digits in either case); for a non-ASCII secret, its UTF-8 misread as Latin-1 (a
body declared ISO-8859-1, or a server's echo that read the request so); each of these as text
that quotes it writes it (`_quoted_forms`): JSON-escaped at depths 1 to 3 (a JSON string inside a
JSON string, as an echoing API writes it; each level ASCII-only or UTF-8, with or without `\\/`;
see `_json_escaped_forms`), as Python quotes it (a message's `{value!r}`), HTML-escaped with
named or numeric references (a page or an XML document that echoes it); and base64 (standard and
URL-safe, padded or not). Every occurrence of every form is masked, even where occurrences of
different secrets overlap: the masked spans are merged, so no part of a longer secret survives
next to a shorter one.
"""

from __future__ import annotations

import base64
import functools
import html
import json
import re
from collections import OrderedDict
from collections.abc import Collection, Iterable, Mapping
from typing import Any
from urllib.parse import quote, quote_plus, unquote_plus

from yarl import URL

from apimd.engine.template import url_path_value, url_query_value
from apimd.model.common import LONE_SURROGATE, SECRET_MASK, has_lone_surrogate, storable

ALWAYS_REDACTED_HEADERS = frozenset(
    {"authorization", "cookie", "set-cookie", "proxy-authorization"}
)
ALWAYS_REDACTED_KEYS = frozenset(
    {"access_token", "refresh_token", "id_token", "client_secret", "password", "code"}
)
MIN_FREE_TEXT_SECRET = 4
# Forms longer than this (a 1 MB key or token) are masked by plain search, not compiled into the
# regex: compiling a pattern of megabytes takes minutes. Their `%XX`/`\\uXXXX` escapes match
# only in the case apimd's own encoders write them.
MAX_REGEX_FORM = 4096
JSON_ESCAPE_DEPTHS = 3  # how many JSON-string escapings of a secret are searched for

__all__ = [
    "ALWAYS_REDACTED_HEADERS",
    "ALWAYS_REDACTED_KEYS",
    "SECRET_MASK",
    "Redactor",
    "has_lone_surrogate",
    "is_secret_name",
    "names_secret",
    "storable",
]

_FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
_PERCENT_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")
_UNICODE_ESCAPE = re.compile(r"\\u[0-9A-Fa-f]{4}")
_HEX_LETTER = re.compile(r"[A-Fa-f]")
_REDACTED_KEY = re.compile("|".join(sorted(ALWAYS_REDACTED_KEYS)))  # (plain words)
# Made once (`dumps` makes an encoder per call). A parsed document cannot be circular.
_COMPACT_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), check_circular=False)


class Redactor:
    """Replaces known secret values with `••••`, in raw, URL-encoded (quote and quote_plus),
    JSON-escaped and base64 forms. Values shorter than 4 characters are not searched for in free
    text (but `value()` still masks an exact match)."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: set[str] = set()
        self._free_text_forms: set[str] = set()
        self._plan: _SearchPlan | None = None
        """How `text` finds the forms: made when first needed after the forms changed."""
        self.add(*secrets)

    @property
    def knows_secrets(self) -> bool:
        """Whether it knows a secret value (without one, `value` and `text` only make text
        storable)."""
        return bool(self._secrets)

    def add(self, *secrets: str) -> None:
        """Learn more secret values (e.g. a token just extracted)."""
        for secret in secrets:
            if secret is None:
                continue
            if not isinstance(secret, str):
                secret = str(secret)  # a numeric secret from YAML or JSON
            if not secret or secret in self._secrets:
                continue
            self._secrets.add(secret)
            if len(secret) >= MIN_FREE_TEXT_SECRET:
                self._free_text_forms.update(_encoded_forms(secret))
                self._plan = None

    def add_basic_credentials(self, username: str, password: str) -> None:
        """Learn the base64 of `username:password` as sent in `Authorization: Basic …`."""
        if not password:
            return  # nothing secret to protect
        self.add(password)
        credentials = f"{username}:{password}".encode(errors="surrogatepass")
        self._free_text_forms.update(_base64_forms(credentials))
        self._plan = None

    def text(self, text: str) -> str:
        """`text` with every known secret (in every form) replaced by the mask (and every lone
        surrogate by U+FFFD)."""
        text = storable(text)
        if not text or not self._free_text_forms:
            return text
        plan = self._plan
        if plan is None:
            plan = self._plan = _SearchPlan(self._free_text_forms)
        for form in plan.long:
            if form in text:
                text = text.replace(form, SECRET_MASK)
        spans = plan.spans(text)
        if not spans:
            return text
        pieces: list[str] = []
        copied_up_to = 0
        span_start, span_end = spans[0]
        for start, end in spans:
            if start < span_end:  # overlapping forms (of one secret or two): one mask
                span_end = max(span_end, end)
            else:
                pieces += (text[copied_up_to:span_start], SECRET_MASK)
                copied_up_to = span_end
                span_start, span_end = start, end
        pieces += (text[copied_up_to:span_start], SECRET_MASK, text[span_end:])
        return "".join(pieces)

    def value(self, value: Any) -> Any:
        """A condition's actual value or a variable: a string equal to or containing a secret is
        masked; lists and dicts are redacted element-wise; other values unchanged."""
        if isinstance(value, str):
            return SECRET_MASK if value in self._secrets else self.text(value)
        if isinstance(value, dict):
            return {storable(key): self.value(item) for key, item in value.items()}
        if isinstance(value, list):
            return [self.value(item) for item in value]
        if isinstance(value, tuple):
            return tuple(self.value(item) for item in value)
        if self._secrets and isinstance(value, int | float) and not isinstance(value, bool):
            # A numeric PIN or code extracted from JSON is as secret as its string form.
            return SECRET_MASK if json.dumps(value) in self._secrets else value
        return value

    def headers(self, headers: Mapping[str, str]) -> dict[str, str]:
        """Headers with Authorization/Cookie/Set-Cookie/Proxy-Authorization values masked, and
        secrets masked in every other value."""
        return self.header_pairs(headers.items())

    def header_pairs(self, pairs: Collection[tuple[str, str]]) -> dict[str, str]:
        """`headers` of name/value pairs (a repeated name keeps its first place and its last
        value, as `dict` makes them)."""
        if not pairs:
            return {}
        names, values = zip(*pairs, strict=True)
        plan = _header_plan(names)
        if plan is None:  # names that collide once stored: the general way
            return self._headers_each(dict(zip(names, values, strict=True)))
        redacted: dict[str, str] = {}
        if self._free_text_forms:
            text = self.text
            for (name, masked), value in zip(plan, values, strict=True):
                redacted[name] = SECRET_MASK if masked else text(str(value))
        else:  # `text` with no secret known is `storable`: inlined for an ASCII value
            for (name, masked), value in zip(plan, values, strict=True):
                if masked:
                    redacted[name] = SECRET_MASK
                elif value.__class__ is str and value.isascii():
                    redacted[name] = value
                else:
                    redacted[name] = storable(str(value))
        return redacted

    def _headers_each(self, headers: Mapping[str, str]) -> dict[str, str]:
        """`headers` redacted name by name (the general way `headers` takes a shortcut for)."""
        redacted: dict[str, str] = {}
        # `text` with no secret known is `storable`: called directly, a frame less per header.
        text = self.text if self._free_text_forms else storable
        for name, value in headers.items():
            if str(name).lower() in ALWAYS_REDACTED_HEADERS:
                redacted[storable(name)] = SECRET_MASK
            else:
                redacted[storable(name)] = text(str(value))
        return redacted

    def url(self, url: str) -> str:
        """The URL with the always-redacted query keys masked and secrets masked elsewhere."""
        return self.text(_mask_url(url))

    def body(
        self, body: str, content_type: str | None = None, *, parsed: tuple[Any] | None = None
    ) -> str:
        """A request/response body: for JSON, values of the always-redacted keys (at any depth)
        masked; for form/query bodies the same keys; then secrets masked in the text. `parsed`:
        `body`'s JSON document already parsed (in a 1-tuple), so it is not parsed again."""
        kind = (content_type or "").lower()
        if "json" in kind or body.lstrip()[:1] in ("{", "["):
            reserialized = _mask_json_text(
                body, require_container="json" not in kind, parsed=parsed
            )
            if reserialized is not None:
                return self.text(reserialized)
            if may_hold_redacted_key(body):
                body = _mask_broken_json(body)
        if _FORM_CONTENT_TYPE in kind:
            return self.text(_mask_query(body))
        return self.text(body)


class _SearchPlan:
    """Where `Redactor.text` finds a set of forms. A form whose escapes have no hex letter
    (a token, a key: most secrets) is a plain string, found with `str.find`; only a form whose
    `%XX`/`\\uXXXX` escapes must match in either case needs the regex. Each run's recorder
    learns the token it extracted, a new secret every run: compiling a regex of every form for
    each was a tenth of a 2-step workflow's time (issue 18)."""

    __slots__ = ("long", "pattern", "plain")

    def __init__(self, forms: Collection[str]) -> None:
        # Longest first: a long form is replaced before a shorter one could cut it.
        by_length = sorted(forms, key=lambda form: (-len(form), form))
        self.long = [form for form in by_length if len(form) > MAX_REGEX_FORM]
        self.plain: list[str] = []
        escaped: list[str] = []
        for form in by_length:
            if len(form) <= MAX_REGEX_FORM:
                (escaped if _needs_regex(form) else self.plain).append(form)
        # Longest first here too: alternation takes the first alternative that matches, so at
        # any position the longest form wins (its span holds the others').
        self.pattern = re.compile("|".join(map(_form_pattern, escaped))) if escaped else None

    def spans(self, text: str) -> list[tuple[int, int]]:
        """Where any form occurs in `text` (overlapping occurrences too), by start then end."""
        spans: list[tuple[int, int]] = []
        for form in self.plain:
            at = text.find(form)
            while at >= 0:
                spans.append((at, at + len(form)))
                at = text.find(form, at + 1)
        if self.pattern is not None:
            search = self.pattern.search
            match = search(text)
            while match is not None:
                spans.append(match.span())
                # One character later (not at its end), so an overlapping form is found too.
                match = search(text, match.start() + 1)
        spans.sort()
        return spans


# A call sends, and its API answers, the same header names run after run: which names are stored
# as what, and which are always masked, is decided once per sequence of names.
HEADER_PLANS = 512
_header_plans: dict[tuple[str, ...], tuple[tuple[str, bool], ...] | None] = {}


def _header_plan(names: tuple[str, ...]) -> tuple[tuple[str, bool], ...] | None:
    """For each of `names`: its stored name and whether its value is always masked; None when two
    different names are stored as one (lone surrogates), whose last value `dict` would pick
    differently (`Redactor._headers_each` handles them)."""
    try:
        return _header_plans[names]
    except KeyError:
        pass
    stored = tuple(storable(name) for name in names)
    masked = (str(name).lower() in ALWAYS_REDACTED_HEADERS for name in names)
    plan = tuple(zip(stored, masked, strict=True)) if len(set(stored)) == len(set(names)) else None
    if len(_header_plans) >= HEADER_PLANS:
        _header_plans.clear()  # a daemon of many calls: start again rather than grow
    _header_plans[names] = plan
    return plan


def _json_string_forms(text: str) -> set[str]:
    """`text` as written inside a JSON string by common encoders: ASCII-only (`\\u00f6`) or UTF-8,
    with `/` as is or escaped `\\/` (PHP, some Java)."""
    forms: set[str] = set()
    for json_form in (json.dumps(text)[1:-1], json.dumps(text, ensure_ascii=False)[1:-1]):
        forms.add(json_form)
        forms.add(json_form.replace("/", "\\/"))
    return forms


def _json_escaped_forms(secret: str) -> set[str]:
    """`secret` JSON-escaped once, twice and three times, each time in every form of
    `_json_string_forms`. Depth 1: a JSON body apimd sends, or a JSON API answers; depth 2: an API
    that echoes a JSON document inside a JSON string (httpbin's `data`, an error quoting the
    request) — what a stored response body holds after it is re-serialized; depth 3: such an echo
    quoted once more (a webhook or log line carrying a whole echoed response). Deeper nesting
    needs an API to wrap its own echo twice more and is not searched for. For a secret without
    `"`, `\\`, `/`, controls or non-ASCII every depth is the secret itself."""
    forms: set[str] = set()
    depth = {secret}
    for _ in range(JSON_ESCAPE_DEPTHS):
        depth = {form for text in depth for form in _json_string_forms(text)} - {secret}
        forms |= depth
    return forms


@functools.lru_cache(maxsize=4096)
def _encoded_forms(secret: str) -> frozenset[str]:
    """Every form of `secret` searched for in free text (cached: each run's recorder learns the
    project's secrets again): the secret and its URL forms, each also as text that quotes it
    writes it (`_quoted_forms`), and its base64."""
    carried = {secret, *_url_forms(secret)}
    if not secret.isascii() and not has_lone_surrogate(secret):
        # Its UTF-8 read as Latin-1: a body whose charset says ISO-8859-1 decodes to this, and
        # so does the echo of a server that read the request that way.
        carried.add(secret.encode().decode("latin-1"))
    forms = set(carried)
    for form in carried:
        forms.update(_quoted_forms(form))
    forms.update(_base64_forms(secret.encode(errors="surrogatepass")))
    return frozenset(form for form in forms if len(form) >= MIN_FREE_TEXT_SECRET)


def _quoted_forms(text: str) -> set[str]:
    """`text` as something that quotes it writes it: a JSON string (`_json_escaped_forms`: a JSON
    body echoing a URL's query as the server decoded it, too); Python (`{value!r}` in a message:
    `\\` doubled, `'` escaped when `"` is in it too: an invalid URL quoted whole); an HTML or XML
    page, in text and in an attribute, with named or numeric references (`&quot;`, `&#34;`,
    `&#39;`: Python's `html.escape`, Go's templates)."""
    forms = {*_json_escaped_forms(text), repr(text)[1:-1]}
    escaped = html.escape(text, quote=False)
    forms.update((escaped, html.escape(text)))
    forms.add(escaped.replace('"', "&#34;").replace("'", "&#39;"))
    return forms


_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
"""URI characters (RFC 3986) no encoder of `_url_forms` changes, nor JSON escaping."""
_DOT_SEGMENTS = ("", ".", "..")  # a URL's path drops these


def _url_forms(secret: str) -> set[str]:
    """`_encoded_url_forms`, at once for a secret of unreserved characters only (a token, a
    key: each run's recorder learns a new token, and building three URLs for it was a sixth of
    learning it)."""
    if _UNRESERVED.issuperset(secret) and secret not in _DOT_SEGMENTS:
        return {secret}
    return _encoded_url_forms(secret)


def _encoded_url_forms(secret: str) -> set[str]:
    """`secret` percent-encoded as URLs commonly carry it, and as a URL apimd sends carries it:
    a template value (`render_url`) or a param, after aiohttp's URL (yarl) normalises the path
    and query — it decodes `!$'()*,/:@` (and more in a path) back, so the URL recorded as sent
    holds those forms."""
    encoded = secret.encode(errors="surrogatepass")
    forms = {quote(encoded, safe=""), quote(encoded, safe="/"), quote_plus(encoded, safe="")}
    path = url_path_value(secret)
    query = url_query_value(secret)
    try:
        forms.add(URL(f"http://h/{path}").raw_path[1:])
        forms.add(URL(f"http://h/?{query}").raw_query_string)
        # As a server's framework gives the query back (yarl: decoded but `+` and `&`…).
        forms.add(URL(f"http://h/?{query}").query_string)
        forms.add(URL("http://h/").extend_query(x=secret).raw_query_string[2:])
    except (ValueError, UnicodeError):
        pass  # the URL cannot be built, so nothing sends the secret in this form
    return forms | {path, query}


def _base64_forms(data: bytes) -> set[str]:
    forms: set[str] = set()
    for encoded in (base64.b64encode(data), base64.urlsafe_b64encode(data)):
        text = encoded.decode("ascii")
        forms.add(text)
        forms.add(text.rstrip("="))
    return forms


def _form_pattern(form: str) -> str:
    """A regex for `form` in which hex digits of `%XX` and `\\uXXXX` escapes match either case."""
    pieces: list[str] = []
    position = 0
    for escape in _escapes(form):
        pieces.append(re.escape(form[position : escape.start()]))
        pieces.append(_HEX_LETTER.sub(_either_case, re.escape(escape[0])))
        position = escape.end()
    pieces.append(re.escape(form[position:]))
    return "".join(pieces)


@functools.lru_cache(maxsize=4096)
def _needs_regex(form: str) -> bool:
    """Whether `form` holds an escape with a hex letter (which matches in either case)."""
    if "%" not in form and "\\u" not in form:  # no escape at all: a token's forms
        return False
    return any(_HEX_LETTER.search(escape[0]) for escape in _escapes(form))


def _escapes(form: str) -> list[re.Match[str]]:
    # `%XX` and `\uXXXX` escapes never share characters, so matches of the two never overlap.
    matches = [*_PERCENT_ESCAPE.finditer(form), *_UNICODE_ESCAPE.finditer(form)]
    return sorted(matches, key=lambda match: match.start())


def _either_case(letter: re.Match[str]) -> str:
    return f"[{letter[0].lower()}{letter[0].upper()}]"


def _is_redacted_key(key: str) -> bool:
    return key.strip().lower() in ALWAYS_REDACTED_KEYS


_SECRET_NAMES = ALWAYS_REDACTED_KEYS | {"code_verifier", "token", "secret", "api_key", "apikey"}
_SECRET_NAME_ENDS = ("_token", "_secret", "_password", "_api_key", "_apikey")
"""Not `_code`: STATUS_CODE, COUNTRY_CODE are no secrets (and masking "200" would mask it in
every condition of the run)."""
_KEY_IN_PATH = re.compile(r"[A-Za-z0-9_-]+")


def is_secret_name(name: str) -> bool:
    """Whether a run variable's name says it holds a secret: an always-redacted key
    (`ACCESS_TOKEN`, `CODE`), `CODE_VERIFIER` (PKCE), `TOKEN`, `API_KEY`, or one ending in
    `_TOKEN`, `_SECRET`, `_PASSWORD`, `_API_KEY` (`SESSION_TOKEN`, `USER_PASSWORD`)."""
    lowered = name.lower()
    return lowered in _SECRET_NAMES or lowered.endswith(_SECRET_NAME_ENDS)


def names_secret(source: str, path: str | None) -> bool:
    """Whether a value a condition read is a secret by where it was: a header always redacted,
    or a body field whose key (the path's last) is (`$.access_token`, `$['data']['password']`)."""
    if not path:
        return False
    if source == "header":
        return path.strip().lower() in ALWAYS_REDACTED_HEADERS
    keys = _KEY_IN_PATH.findall(path)
    return bool(keys) and _is_redacted_key(keys[-1])


def _mask_query(query: str) -> str:
    """`a=1&password=x` → `a=1&password=••••`, leaving every other byte as written."""
    if "%" not in query and not _REDACTED_KEY.search(query.lower()):
        # No escape to decode (a `+` decodes to a space, which no key holds but at its ends, where
        # it is stripped), and no always-redacted key in the lower-cased text (`lower` maps
        # character by character): no key to mask.
        return query
    return _mask_query_parts(query)


def _mask_query_parts(query: str) -> str:
    """`_mask_query` key by key (the general way it takes a shortcut for)."""
    parts = query.split("&")
    for index, part in enumerate(parts):
        key, equals, _ = part.partition("=")
        if equals and _is_redacted_key(unquote_plus(key)):
            parts[index] = f"{key}={SECRET_MASK}"
    return "&".join(parts)


def _mask_url(url: str) -> str:
    """Mask the always-redacted keys in the query and fragment, and a password in the userinfo."""
    before_fragment, hash_mark, fragment = url.partition("#")
    before_query, question_mark, query = before_fragment.partition("?")
    if "@" in before_query:  # (no userinfo without one)
        before_query = _mask_userinfo(before_query)
    if question_mark:
        query = _mask_query(query)
    if hash_mark:
        # A fragment is either `key=value&…` (implicit flow) or `/route?key=value&…` (SPA).
        route, route_question_mark, fragment_query = fragment.partition("?")
        if route_question_mark:
            fragment = f"{route}?{_mask_query(fragment_query)}"
        else:
            fragment = _mask_query(fragment)
    return f"{before_query}{question_mark}{query}{hash_mark}{fragment}"


def _mask_userinfo(url: str) -> str:
    scheme, separator, rest = url.partition("://")
    if not separator:
        return url
    authority, slash, path = rest.partition("/")
    userinfo, at, host = authority.rpartition("@")
    user, colon, password = userinfo.partition(":")
    if not at or not colon or not password:
        return url
    return f"{scheme}://{user}:{SECRET_MASK}@{host}{slash}{path}"


# A monitored API often answers the same body run after run: the compact text of the last few
# small bodies is kept (keyed by the body's text, so a hit is the text computed for an equal body).
REMEMBERED_JSON_BODIES = 64
REMEMBERED_JSON_BODY_CHARS = 16 * 1024
_remembered_json: OrderedDict[tuple[str, bool], str | None] = OrderedDict()


def _mask_json_text(
    body: str, *, require_container: bool, parsed: tuple[Any] | None = None
) -> str | None:
    """The JSON `body` with always-redacted keys masked, compact and in key order; None when
    `body` is not JSON (or, with `require_container`, not an object or array). `parsed`: its
    document, already parsed (the document is not changed)."""
    if len(body) > REMEMBERED_JSON_BODY_CHARS:
        return _compact_json_text(body, require_container, parsed)
    key = (body, require_container)
    # "" stands for "not remembered": no JSON document's text is empty.
    text = _remembered_json.get(key, "")
    if text != "":
        _remembered_json.move_to_end(key)  # the most recently used
        return text
    text = _remembered_json[key] = _compact_json_text(body, require_container, parsed)
    if len(_remembered_json) > REMEMBERED_JSON_BODIES:
        _remembered_json.popitem(last=False)  # the least recently used
    return text


def _compact_json_text(body: str, require_container: bool, parsed: tuple[Any] | None) -> str | None:
    try:
        document = json.loads(body) if parsed is None else parsed[0]
        if require_container and not isinstance(document, dict | list):
            return None
        if may_hold_redacted_key(body):
            document = _mask_json_keys(document)
        text = _COMPACT_JSON.encode(document)
    except (ValueError, RecursionError, TypeError):
        return None
    if text.isascii():  # (a flag of the string: no scan) no lone surrogate in it
        return text
    # A lone surrogate can only sit inside a JSON string: write it back as the escape it was.
    return LONE_SURROGATE.sub(lambda match: f"\\u{ord(match[0]):04x}", text)


_BROKEN_JSON_SECRET = re.compile(
    r'("(?:' + _REDACTED_KEY.pattern + r')"\s*:\s*")((?:[^"\\]|\\.)*)',
    re.IGNORECASE,
)


def _mask_broken_json(text: str) -> str:
    """JSON that does not parse (a raw control character, cut short): the string value after an
    always-redacted key, as far as it goes, masked — a token endpoint's broken answer stored its
    token in clear (nothing had learned it: it was never extracted)."""
    return _BROKEN_JSON_SECRET.sub(lambda found: found[1] + SECRET_MASK, text)


def may_hold_redacted_key(text: str) -> bool:
    """Whether an always-redacted key can be in the JSON `text`: one of them in the lower-cased
    text (`lower` maps character by character, so a key that lower-cases to one is found), or any
    `\\u` escape (a key can be written escaped). False means there is no key to mask."""
    if "\\u" in text:
        return True
    lowered = text.lower()
    return any(key in lowered for key in ALWAYS_REDACTED_KEYS)


def _mask_json_keys(document: Any) -> Any:
    if isinstance(document, dict):
        return {
            key: SECRET_MASK if _is_redacted_key(key) else _mask_json_keys(item)
            for key, item in document.items()
        }
    if isinstance(document, list):
        return [_mask_json_keys(item) for item in document]
    return document
