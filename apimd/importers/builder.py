"""What every importer fills: a project document under construction, with valid unique names,
secrets moved out of the text, and the list of what could not be translated (SPEC §12)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, get_args
from urllib.parse import unquote, urlsplit

from apimd.model.resources import AuthSetting, AuthType, Call
from apimd.model.yaml_text import document_yaml

_NAME_BAD = re.compile(r"[^A-Za-z0-9_.:-]+")
_VARIABLE_BAD = re.compile(r"[^A-Za-z0-9_]+")
_TEMPLATE_REF = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
SYSTEM_VARIABLES = frozenset(
    [
        "DATETIME",
        "DATE",
        "TIME",
        "UNIXTIME",
        "UUID",
        "GUID",
        "RANDINT",
        "CALL_NAME",
        "WORKFLOW_NAME",
        "RUN_ID",
        "TOKEN_NAME",
        "AUTH_NAME",
        "CALLBACK_URL",
        "STATE",
        "CODE_VERIFIER",
        "CODE_CHALLENGE",
        "ACCESS_TOKEN",
        "REFRESH_TOKEN",
        "CLIENT_ID",
        "CLIENT_SECRET",
        "EXPIRES_IN",
    ]
)
"""Names the engine provides itself; a template using one needs no project variable."""

SECRET_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "cookie", "x-api-key", "api-key", "apikey"}
)
_SECRET_WORDS = ("token", "secret", "password", "passwd", "apikey", "api_key", "api-key")
_SECRET_PARAMS = frozenset({"key", "code", "sig", "signature", "auth"})
_USERINFO = re.compile(r"^(\s*[A-Za-z][A-Za-z0-9+.-]*://[^/?#@:]*:)([^/?#@]+)@")


class ImportFailed(Exception):
    """The source cannot be read at all (not the format, not parseable): nothing is written."""


def is_secret_name(name: str) -> bool:
    """Whether a header, parameter or variable of this name carries a credential."""
    lowered = name.lower()
    if lowered in SECRET_HEADERS or lowered in _SECRET_PARAMS:
        return True
    return any(word in lowered for word in _SECRET_WORDS)


def supports_auth(auth_type: str) -> bool:
    """Whether this apimd's model knows the auth type (digest, aws_sigv4 came later)."""
    return auth_type in get_args(AuthType)


def auth_has_field(name: str) -> bool:
    return name in AuthSetting.model_fields


def call_has_field(name: str) -> bool:
    return name in Call.model_fields


@dataclass
class ProjectBuilder:
    """A project document being assembled by one importer."""

    reveal_secrets: bool = False
    variables: dict[str, Any] = field(default_factory=dict)
    auth: list[dict[str, Any]] = field(default_factory=list)
    tokens: list[dict[str, Any]] = field(default_factory=list)
    calls: list[dict[str, Any]] = field(default_factory=list)
    workflows: list[dict[str, Any]] = field(default_factory=list)
    untranslated: list[str] = field(default_factory=list)
    secrets: list[str] = field(default_factory=list)
    _targets: UniqueNames = field(default_factory=lambda: UniqueNames())
    _auth_names: UniqueNames = field(default_factory=lambda: UniqueNames())
    _auth_by_body: dict[str, str] = field(default_factory=dict)
    _secret_by_value: dict[str, str] = field(default_factory=dict)
    _env_by_value: dict[str, str] = field(default_factory=dict)
    _env_names: set[str] = field(default_factory=set)

    # --- names -------------------------------------------------------------------------------

    def target_name(self, hint: str) -> str:
        """A call or workflow name (they share one namespace), valid and unused."""
        return self._targets.claim(resource_name(hint))

    def variable_name(self, hint: str) -> str:
        """A variable name made from `hint` (not reserved: the same hint gives the same name)."""
        name = _VARIABLE_BAD.sub("_", hint).strip("_").upper() or "VALUE"
        return f"_{name}" if name[0].isdigit() else name

    def fresh_variable(self, hint: str) -> str:
        name = self.variable_name(hint)
        candidate, n = name, 2
        while candidate in self.variables or candidate in SYSTEM_VARIABLES:
            candidate, n = f"{name}_{n}", n + 1
        return candidate

    # --- notes -------------------------------------------------------------------------------

    def skip(self, where: str, what: str) -> None:
        """Record something the source has that the project cannot say."""
        self.untranslated.append(f"{where}: {what}")

    # --- secrets -----------------------------------------------------------------------------

    def secret_variable(self, hint: str, value: str, where: str) -> str:
        """Move a secret found in text into a secret variable; returns `{{NAME}}` to use instead.
        The same secret value always becomes the same variable."""
        name = self._secret_by_value.get(value)
        if name is None:
            name = self._fresh_env(hint, variable=True)
            self._secret_by_value[value] = name
            if self.reveal_secrets:
                self.variables[name] = {"value": value, "secret": True}
            else:
                self.variables[name] = {"env": name, "secret": True}
            self.secrets.append(f"{where} → secret variable {name}{self._env_hint(name)}")
        return "{{" + name + "}}"

    def hide_userinfo(self, url: str, hint: str, where: str) -> str:
        """`url` with the password of its `user:password@` part moved into a secret variable."""
        match = _USERINFO.match(url)
        if match is None or _TEMPLATE_REF.fullmatch(match.group(2)):
            return url
        ref = self.secret_variable(hint, unquote(match.group(2)), f"{where} URL password")
        return match.group(1) + ref + url[match.end(2) :]

    def secret_field(self, hint: str, value: str | None, where: str) -> Any:
        """A secret auth field: the value itself only with `--secrets`, else `{env: NAME}` (one
        name per distinct value). A template value (`{{X}}`) is kept: it names a variable."""
        if value is not None and (
            self.reveal_secrets or _TEMPLATE_REF.fullmatch(value.strip()) is not None
        ):
            return value
        key = value if value is not None else f"\0{hint}"
        name = self._env_by_value.get(key)
        if name is None:
            name = self._fresh_env(hint)
            self._env_by_value[key] = name
            given = "" if value is None else " (value found in the source)"
            self.secrets.append(f"{where} → {{env: {name}}}{given}{self._env_hint(name)}")
        return {"env": name}

    def _fresh_env(self, hint: str, *, variable: bool = False) -> str:
        """A name for a new environment variable, used by nothing else in the document (nor,
        for a project `variable`, by the engine's own variables)."""
        name = self.variable_name(hint)
        candidate, n = name, 2
        taken = self._env_names | self.variables.keys() | (SYSTEM_VARIABLES if variable else set())
        while candidate in taken:
            candidate, n = f"{name}_{n}", n + 1
        self._env_names.add(candidate)
        return candidate

    def _env_hint(self, name: str) -> str:
        return "" if self.reveal_secrets else f": set {name} in the environment"

    # --- resources ---------------------------------------------------------------------------

    def add_auth(self, hint: str, body: dict[str, Any]) -> str:
        """An auth setting; an identical one already added is reused."""
        key = json.dumps(body, sort_keys=True)
        if key in self._auth_by_body:
            return self._auth_by_body[key]
        name = self._auth_names.claim(resource_name(hint))
        self.auth.append({"name": name, **body})
        self._auth_by_body[key] = name
        return name

    def add_token(self, auth_name: str, extra: dict[str, Any] | None = None) -> str:
        """The token of an oauth2 auth (one per auth); returns its name."""
        name = f"{auth_name}-token"
        if not any(t["name"] == name for t in self.tokens):
            self.tokens.append({"name": name, "auth": auth_name, **(extra or {})})
        return name

    def add_call(self, call: dict[str, Any]) -> str:
        self.calls.append(call)
        return str(call["name"])

    def add_workflow(self, hint: str, steps: list[str], **extra: Any) -> str | None:
        if not steps:
            return None
        name = self.target_name(hint)
        self.workflows.append({"name": name, "steps": steps, **extra})
        return name

    # --- output ------------------------------------------------------------------------------

    def document(self) -> dict[str, Any]:
        """The project document; variables a template uses but nothing defines are added empty
        (and listed) so the file applies and says what to fill in."""
        self._define_missing()
        doc: dict[str, Any] = {"version": 1}
        for key in ("variables", "auth", "tokens", "calls", "workflows"):
            value = getattr(self, key)
            if value:
                doc[key] = value
        return doc

    def _define_missing(self) -> None:
        text = json.dumps([self.auth, self.tokens, self.calls, self.workflows])
        saved = {
            str(c.get("save_as", "")).upper()
            for call in self.calls
            for c in call.get("conditions", [])
        }
        for flow in self.workflows:
            saved |= {k.upper() for k in flow.get("variables", {})}
        for match in _TEMPLATE_REF.finditer(text):
            name = match.group(1).upper()
            if name in self.variables or name in SYSTEM_VARIABLES or name in saved:
                continue
            self.variables[name] = ""
            self.skip(f"variable {name}", "used but given no value in the source: fill it in")


def shown_url(url: str) -> str:
    """`url` as a message may show it: no user, password, query, fragment (they may hold
    credentials) or data: content, at most 80 characters."""
    scheme, sep, rest = url.partition(":")
    if not sep or not re.fullmatch(r"[A-Za-z][A-Za-z0-9+.-]*", scheme):
        return repr(url[:40] + ("…" if len(url) > 40 else ""))
    rest = re.split(r"[?#]", rest, maxsplit=1)[0]
    rest = re.sub(r"^//[^/@]*@", "//", rest)
    if scheme.lower() == "data":  # the content, not an address
        rest = rest.split(",", 1)[0] + ","
    hidden = "…" if len(url) > len(scheme) + 1 + len(rest) else ""
    return repr(f"{scheme}:{rest}"[:80] + hidden)


def is_valid_url(url: str) -> bool:
    """Whether `url` can be taken apart at all (`http://[::1/x`, an unclosed IPv6 address, and
    hosts that change under Unicode normalisation cannot)."""
    try:
        urlsplit(url).hostname  # noqa: B018 (it is the check: the host is parsed on access)
    except ValueError:
        return False
    return True


def resource_name(hint: str) -> str:
    """`hint` made a valid resource name: 1–100 of [A-Za-z0-9_.:-], starting alphanumeric."""
    name = _NAME_BAD.sub("-", hint.strip()).strip("-_.:")
    name = re.sub(r"-{2,}", "-", name)
    if not name or not name[0].isalnum():
        name = f"r-{name}".rstrip("-") if name else "request"
    return name[:100].rstrip("-_.:") or "request"


@dataclass
class UniqueNames:
    """The names handed out in one namespace: a name asked for again gets `-2`, `-3`, … (cut to
    stay within 100 characters), the first one free."""

    taken: set[str] = field(default_factory=set)
    # The suffix to try first for a name: every lower one was taken when last asked, and names
    # are never given back, so 10,000 requests to the same path cost 10,000 steps, not 50 million.
    _next_suffix: dict[str, int] = field(default_factory=dict)

    def claim(self, name: str) -> str:
        candidate, n = name, self._next_suffix.get(name, 2)
        while candidate in self.taken:
            suffix = f"-{n}"
            candidate, n = name[: 100 - len(suffix)] + suffix, n + 1
        if candidate != name:
            self._next_suffix[name] = n
        self.taken.add(candidate)
        return candidate


def to_yaml(document: dict[str, Any]) -> str:
    """The project document as YAML 1.2 text, in the order importers built it."""
    return document_yaml(document)
