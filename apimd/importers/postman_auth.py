"""Postman auth (`bearer`, `basic`, `apikey`, `digest`, `awsv4`, `oauth2`) → apimd auth settings
and, for OAuth2, the token calls use."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from apimd.importers.builder import auth_has_field, supports_auth

if TYPE_CHECKING:
    from apimd.importers.postman import _Collection

_GRANTS = {
    "client_credentials": "client_credentials",
    "password_credentials": "password",
    "authorization_code": "authorization_code",
    "authorization_code_with_pkce": "authorization_code",
}


def translate_auth(collection: _Collection, auth: Any, where: str) -> tuple[str | None, str | None]:
    """(auth name, token name) for a request's (or its folder's, or the collection's) auth."""
    if not isinstance(auth, dict) or auth.get("type") in (None, "noauth", "inherit"):
        return None, None
    kind = str(auth["type"])
    entries = auth.get(kind)
    if entries is not None and not isinstance(entries, list):
        collection.builder.skip(where, f"{kind} auth: `{kind}` is not a list: its settings ignored")
    params = {
        str(p.get("key")): p.get("value")
        for p in (entries if isinstance(entries, list) else [])
        if isinstance(p, dict) and p.get("key")
    }

    def text(key: str, default: str = "") -> str:
        return collection.template(params.get(key, default), where)

    builder = collection.builder

    def secret(key: str, hint: str) -> Any:
        return builder.secret_field(hint, text(key) or None, f"{where} {kind} {key}")

    if kind == "bearer":
        body = {"type": "bearer", "token": secret("token", "bearer_token")}
        return builder.add_auth("bearer", body), None
    if kind == "basic" or (kind == "digest" and supports_auth("digest")):
        user = text("username")
        password = secret("password", f"{user}_password")
        body = {"type": kind, "username": user, "password": password}
        return builder.add_auth(f"{kind}-{user}", body), None
    if kind == "apikey":
        place = text("in", "header")
        if place not in ("header", "query"):
            builder.skip(where, f"API key in {place} is not translated")
            return None, None
        key_name = text("key", "X-API-Key")
        body = {
            "type": "api_key",
            "key_name": key_name,
            "key_value": secret("value", key_name),
            "in": place,
        }
        return builder.add_auth(f"apikey-{key_name}", body), None
    if kind == "awsv4" and supports_auth("aws_sigv4"):
        body = {
            "type": "aws_sigv4",
            "access_key_id": secret("accessKey", "aws_access_key_id"),
            "secret_access_key": secret("secretKey", "aws_secret_access_key"),
            "region": text("region", "us-east-1"),
            "service": text("service", "execute-api"),
        }
        return builder.add_auth("aws", body), None
    if kind == "oauth2":
        return _oauth2(collection, params, text, secret, where)
    builder.skip(where, f"{kind} auth is not translated (this apimd has no such auth type)")
    return None, None


def _oauth2(
    collection: _Collection, params: dict[str, Any], text: Any, secret: Any, where: str
) -> tuple[str | None, str | None]:
    builder = collection.builder
    grant_type = str(params.get("grant_type") or "authorization_code")
    grant = _GRANTS.get(grant_type)
    if grant is None:
        builder.skip(where, f"OAuth2 grant {grant_type!r} is not translated")
        return None, None
    token_url = text("accessTokenUrl")
    if not token_url:
        return _fixed_token(collection, params, secret, where)
    body: dict[str, Any] = {"type": "oauth2", "grant": grant, "token_url": token_url}
    body["client_id"] = text("clientId") or builder.secret_field("client_id", None, where)
    if params.get("clientSecret"):
        body["client_secret"] = secret("clientSecret", "client_secret")
    if grant == "authorization_code":
        body["authorize_url"] = text("authUrl")
        if not body["authorize_url"]:
            builder.skip(where, "OAuth2 authorization code without an auth URL: not translated")
            return None, None
        if grant_type == "authorization_code" and params.get("usePkce") is not True:
            body["pkce"] = False
    if grant == "password":
        body["username"] = text("username")
        body["password"] = secret("password", "oauth_password")
    scope = text("scope")
    if scope:
        body["scopes"] = scope.split()
    if params.get("client_authentication") == "body":
        body["client_auth"] = "body"
    audience = text("audience")
    if audience and auth_has_field("audience"):
        body["audience"] = audience
    for ignored in ("refreshTokenUrl", "tokenName", "state", "redirect_uri"):
        if params.get(ignored):
            builder.skip(where, f"OAuth2 {ignored} is not translated (apimd uses its own)")
    name = builder.add_auth("oauth2", body)
    extra: dict[str, Any] = {}
    if params.get("addTokenTo") == "queryParams":
        extra["params"] = {"access_token": "%%ACCESS_TOKEN%%"}
    elif params.get("headerPrefix") not in (None, "", "Bearer"):
        extra["headers"] = {"Authorization": f"{params['headerPrefix']} %%ACCESS_TOKEN%%"}
    return None, builder.add_token(name, extra)


def _fixed_token(
    collection: _Collection, params: dict[str, Any], secret: Any, where: str
) -> tuple[str | None, str | None]:
    """OAuth2 with only a current access token (no token URL): the token is sent as Postman sends
    it, but nothing can renew it."""
    builder = collection.builder
    if not params.get("accessToken"):
        builder.skip(where, "OAuth2 auth without an access token URL or token is not translated")
        return None, None
    builder.skip(where, "OAuth2 has no access token URL: its current token is sent, never renewed")
    token = secret("accessToken", "oauth2_access_token")
    if params.get("addTokenTo") == "queryParams":
        body = {"type": "api_key", "key_name": "access_token", "key_value": token, "in": "query"}
        return builder.add_auth("oauth2-query-token", body), None
    return builder.add_auth("oauth2-bearer-token", {"type": "bearer", "token": token}), None
