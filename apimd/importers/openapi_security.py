"""OpenAPI `securitySchemes` → auth settings (and tokens for OAuth2): OAuth2 flows with their URLs
and scopes, OpenID Connect as an issuer, http basic/bearer/digest, API keys."""

from __future__ import annotations

import os
import traceback
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any
from urllib.parse import urljoin

from jsonschema_path import SchemaPath
from referencing.exceptions import Unresolvable

from apimd.importers.builder import ProjectBuilder, auth_has_field, supports_auth

_FLOWS = (
    ("clientCredentials", "client_credentials"),
    ("authorizationCode", "authorization_code"),
    ("password", "password"),
)
_WELL_KNOWN = "/.well-known/openid-configuration"


def is_mapping(path: SchemaPath) -> bool:
    """Whether `path` is there and holds a mapping (its `.keys()` and `.items()` need one)."""
    if not path.exists():
        return False
    with path.open() as value:
        return isinstance(value, Mapping)


@contextmanager
def unresolved(builder: ProjectBuilder, where: str) -> Iterator[None]:
    """A `$ref` that points nowhere (or only to itself) skips what holds it, listed."""
    try:
        yield
    except Unresolvable as exc:
        # Only the reference: the exception's text can hold the whole document.
        builder.skip(where, f"$ref cannot be resolved ({exc.ref!r}): not translated")
    except RecursionError:
        builder.skip(where, "$ref refers to itself: not translated")
    except (LookupError, TypeError, ValueError) as exc:
        # The resolver walks a pointer through a string or a number with these (`int("name")`
        # into a list, a key into a string); anywhere else they are a fault to report.
        if not _raised_by_resolver(exc):
            raise
        builder.skip(
            where, "$ref points inside a value that is not an object or list: not translated"
        )


def _raised_by_resolver(exc: Exception) -> bool:
    frames = traceback.extract_tb(exc.__traceback__)
    return bool(frames) and f"{os.sep}referencing{os.sep}" in frames[-1].filename


class SecuritySchemes:
    """Each scheme translated once, when an operation first needs it."""

    def __init__(self, root: SchemaPath, builder: ProjectBuilder, base_url: str) -> None:
        self.builder = builder
        self.base_url = base_url
        self.schemes = root / "components" / "securitySchemes"
        self.done: dict[str, tuple[str | None, str | None]] = {}
        names: list[str] = []
        with unresolved(builder, "components.securitySchemes"):
            if self.schemes.exists() and not is_mapping(self.schemes):
                builder.skip("components.securitySchemes", "not a mapping: no scheme translated")
            elif self.schemes.exists():
                names = [str(name) for name in self.schemes.keys()]  # noqa: SIM118 (a SchemaPath)
        for name in names:
            with unresolved(builder, f"security scheme {name}"):
                self._scheme(name)

    def for_requirements(self, security: Any, where: str) -> tuple[str | None, str | None]:
        """(auth, token) for an operation's security requirements: the first alternative with a
        scheme this project can send. Schemes required together combine one auth (basic, bearer,
        API key) with one OAuth2 token; any other is listed as not sent."""
        if not security:
            return None, None
        if not isinstance(security, list):
            self.builder.skip(where, "`security` is not a list: no auth sent")
            return None, None
        for index, requirement in enumerate(security, 1):
            if not isinstance(requirement, Mapping):
                self.builder.skip(where, f"security requirement {index} is not a mapping: ignored")
                continue
            if not requirement:
                return None, None  # `{}`: anonymous access is allowed
            names = [str(n) for n in requirement]
            found = {n: self.done.get(n, (None, None)) for n in names}
            auths = [n for n in names if found[n][0] and not found[n][1]]
            tokens = [n for n in names if found[n][1]]
            if not auths and not tokens:
                continue
            kept = auths[:1] + tokens[:1]
            if dropped := [n for n in names if n not in kept]:
                together = " and ".join(names)
                self.builder.skip(
                    where, f"needs {together} together: {', '.join(dropped)} not sent"
                )
            auth = found[auths[0]][0] if auths else None
            token = found[tokens[0]][1] if tokens else None
            return auth, token
        self.builder.skip(where, "no security requirement could be translated")
        return None, None

    def _scheme(self, name: str) -> None:
        scheme = self.schemes / name
        where = f"security scheme {name}"
        b = self.builder
        with scheme.open() as raw:
            if not isinstance(raw, Mapping):
                b.skip(where, "not a mapping: not translated")
                return
            data = dict(raw)
        kind = data.get("type")
        result: tuple[str | None, str | None] = (None, None)
        if kind == "http":
            result = self._http(name, str(data.get("scheme", "")).lower(), where)
        elif kind == "apiKey":
            place = data.get("in")
            if place in ("header", "query") or (place == "cookie" and _api_key_in_cookie()):
                body = {
                    "type": "api_key",
                    "key_name": data.get("name"),
                    "key_value": b.secret_field(f"{name}_key", None, where),
                    "in": place,
                }
                result = (b.add_auth(name, body), None)
            else:
                b.skip(where, f"API key in {place} is not translated")
        elif kind == "oauth2":
            result = self._oauth2(name, scheme, where)
        elif kind == "openIdConnect":
            result = self._openid(name, str(data.get("openIdConnectUrl", "")), where)
        else:
            b.skip(where, f"{kind} security is not translated")
        self.done[name] = result

    def _http(self, name: str, scheme: str, where: str) -> tuple[str | None, str | None]:
        b = self.builder
        if scheme in ("basic", "digest") and supports_auth(scheme):
            body = {
                "type": scheme,
                "username": b.secret_field(f"{name}_username", None, where),
                "password": b.secret_field(f"{name}_password", None, where),
            }
            return b.add_auth(name, body), None
        if scheme == "bearer":
            body = {"type": "bearer", "token": b.secret_field(f"{name}_token", None, where)}
            return b.add_auth(name, body), None
        b.skip(where, f"http {scheme} authentication is not translated")
        return None, None

    def _oauth2(self, name: str, scheme: SchemaPath, where: str) -> tuple[str | None, str | None]:
        b = self.builder
        flows = scheme / "flows"
        present = [str(f) for f in flows.keys()] if is_mapping(flows) else []  # noqa: SIM118 (a SchemaPath, not a dict)
        chosen = next(((f, g) for f, g in _FLOWS if f in present), None)
        if chosen is None:
            b.skip(where, f"OAuth2 flows {', '.join(present) or 'none'} are not translated")
            return None, None
        flow_name, grant = chosen
        with (flows / flow_name).open() as raw:
            if not isinstance(raw, Mapping):
                b.skip(where, f"OAuth2 {flow_name} flow is not a mapping: not translated")
                return None, None
            flow = dict(raw)
        body: dict[str, Any] = {
            "type": "oauth2",
            "grant": grant,
            "token_url": self._absolute(str(flow.get("tokenUrl", ""))),
            "client_id": b.secret_field(f"{name}_client_id", None, where),
            "client_secret": b.secret_field(f"{name}_client_secret", None, where),
        }
        if grant == "authorization_code":
            body["authorize_url"] = self._absolute(str(flow.get("authorizationUrl", "")))
        if grant == "password":
            body["username"] = b.secret_field(f"{name}_username", None, where)
            body["password"] = b.secret_field(f"{name}_password", None, where)
        if isinstance(flow.get("scopes"), Mapping) and flow["scopes"]:
            body["scopes"] = [str(s) for s in flow["scopes"]]
        elif flow.get("scopes"):
            b.skip(where, f"OAuth2 {flow_name} scopes are not a mapping: no scope asked for")
        for other in present:
            if other != flow_name:
                b.skip(where, f"OAuth2 {other} flow not translated ({flow_name} used)")
        auth = b.add_auth(name, body)
        return auth, b.add_token(auth)

    def _openid(self, name: str, url: str, where: str) -> tuple[str | None, str | None]:
        b = self.builder
        if not auth_has_field("issuer"):
            b.skip(where, f"OpenID Connect ({url}) is not translated: this apimd has no `issuer`")
            return None, None
        issuer = url[: -len(_WELL_KNOWN)] if url.endswith(_WELL_KNOWN) else url
        body = {
            "type": "oauth2",
            "grant": "authorization_code",
            "issuer": issuer,
            "client_id": b.secret_field(f"{name}_client_id", None, where),
            "client_secret": b.secret_field(f"{name}_client_secret", None, where),
            "scopes": ["openid"],
        }
        auth = b.add_auth(name, body)
        return auth, b.add_token(auth)

    def _absolute(self, url: str) -> str:
        if "://" in url or not url:
            return url
        base = self.base_url if self.base_url.endswith("/") else self.base_url + "/"
        return urljoin(base, url)


def _api_key_in_cookie() -> bool:
    from typing import get_args

    from apimd.model.resources import AuthSetting

    annotation = AuthSetting.model_fields["in_"].annotation
    return "cookie" in get_args(annotation)
