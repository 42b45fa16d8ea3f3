"""A FAPI-style authorization and resource server for tests, on 127.0.0.1. It verifies everything
apimd signs with PyJWT (independent of apimd's joserfc signer) and enforces each mechanism."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import jwt
from aiohttp import web

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
ASYMMETRIC = ["RS256", "PS256", "ES256", "EdDSA"]


@dataclass
class FapiServer:
    """What the server enforces (set by each test) and what it saw."""

    client_id: str = "fapi-client"
    client_auth: str = "private_key_jwt"
    public_key: Any = None  # the client's public key (cryptography object)
    client_secret: str = "s" * 40
    expected_aud: str | None = None  # default: the issuer
    dpop: bool = False
    dpop_nonce: str | None = None  # when set, proofs must carry it (token and resource)
    lifetime_s: int = 60
    issuer: str = ""
    reported_issuer: str | None = None  # what discovery says (defaults to `issuer`)
    token_requests: int = 0
    api_calls: int = 0
    errors: list[str] = field(default_factory=list)
    seen_jti: set[str] = field(default_factory=set)
    access_tokens: dict[str, str | None] = field(default_factory=dict)  # token -> jkt
    refresh_tokens: set[str] = field(default_factory=set)
    require_par: bool = False
    pushed: dict[str, dict[str, str]] = field(default_factory=dict)  # request_uri -> params
    codes: dict[str, tuple[dict[str, str], str | None]] = field(default_factory=dict)
    assertions: list[dict[str, Any]] = field(default_factory=list)
    proofs: list[dict[str, Any]] = field(default_factory=list)

    def refuse(self, status: int, error: str, description: str, **headers: str) -> web.Response:
        self.errors.append(f"{error}: {description}")
        return web.json_response(
            {"error": error, "error_description": description}, status=status, headers=headers
        )


KEY: web.AppKey[FapiServer] = web.AppKey("fapi", FapiServer)


def b64url_sha256(text: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()


def verify_proof(
    server: FapiServer, proof: str | None, method: str, url: str, access_token: str | None
) -> tuple[str | None, str | None]:
    """(jkt, None) for a valid DPoP proof, else (None, why)."""
    if not proof:
        return None, "missing DPoP proof"
    header = jwt.get_unverified_header(proof)
    if header.get("typ") != "dpop+jwt" or "jwk" not in header:
        return None, "not a dpop+jwt with a jwk"
    key = jwt.PyJWK(header["jwk"])
    try:
        claims = jwt.decode(proof, key.key, algorithms=[header["alg"]])
    except jwt.PyJWTError as exc:
        return None, f"bad proof signature: {exc}"
    server.proofs.append(claims)
    if claims.get("htm") != method or claims.get("htu") != url.split("?")[0]:
        return None, f"wrong htm/htu {claims.get('htm')} {claims.get('htu')}"
    if abs(time.time() - claims.get("iat", 0)) > 60:
        return None, "stale iat"
    if claims.get("jti") in server.seen_jti:
        return None, "replayed proof"
    server.seen_jti.add(claims["jti"])
    if access_token is not None and claims.get("ath") != b64url_sha256(access_token):
        return None, "wrong ath"
    if server.dpop_nonce and claims.get("nonce") != server.dpop_nonce:
        return None, "use_dpop_nonce"
    return jwk_thumbprint(header["jwk"]), None


def jwk_thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638 thumbprint, computed here rather than by apimd."""
    required = {
        "EC": ("crv", "kty", "x", "y"),
        "OKP": ("crv", "kty", "x"),
        "RSA": ("e", "kty", "n"),
    }
    members = {k: jwk[k] for k in required[jwk["kty"]]}
    return b64url_sha256(json.dumps(members, separators=(",", ":"), sort_keys=True))


def _client_ok(server: FapiServer, request: web.Request, form: dict[str, str]) -> str | None:
    """None when the client authenticated as configured, else why not."""
    if form.get("client_id") != server.client_id:
        return "wrong or missing client_id"
    if server.client_auth == "none":
        return None
    assertion = form.get("client_assertion")
    if form.get("client_assertion_type") != ASSERTION_TYPE or not assertion:
        return "missing client assertion"
    key: Any
    if server.client_auth == "client_secret_jwt":
        key, algorithms = server.client_secret, ["HS256"]
    else:
        key, algorithms = server.public_key, ASYMMETRIC
    try:
        claims = jwt.decode(
            assertion,
            key,
            algorithms=algorithms,
            audience=server.expected_aud or server.issuer,
            issuer=server.client_id,
            options={"require": ["exp", "iat", "jti", "sub", "aud", "iss"]},
        )
    except jwt.PyJWTError as exc:
        return f"bad client assertion: {exc}"
    if claims["sub"] != server.client_id or claims["exp"] - claims["iat"] > 300:
        return "wrong sub or exp"
    if claims["jti"] in server.seen_jti:
        return "replayed assertion"
    server.seen_jti.add(claims["jti"])
    server.assertions.append(claims)
    return None


async def token(request: web.Request) -> web.Response:
    server = request.app[KEY]
    server.token_requests += 1
    form = {k: str(v) for k, v in (await request.post()).items()}
    jkt = None
    if server.dpop:
        jkt, why = verify_proof(server, request.headers.get("DPoP"), "POST", str(request.url), None)
        if why == "use_dpop_nonce":
            return server.refuse(
                400,
                "use_dpop_nonce",
                "a nonce is needed",
                **{"DPoP-Nonce": server.dpop_nonce or ""},
            )
        if why:
            return server.refuse(400, "invalid_dpop_proof", why)
    grant = form.get("grant_type")
    if grant == JWT_BEARER:
        try:
            claims = jwt.decode(
                form.get("assertion", ""),
                server.public_key,
                algorithms=ASYMMETRIC,
                audience=str(request.url),
                issuer=server.client_id,
            )
        except jwt.PyJWTError as exc:
            return server.refuse(400, "invalid_grant", f"bad assertion: {exc}")
        server.assertions.append(claims)
    else:
        if why := _client_ok(server, request, form):
            return server.refuse(401, "invalid_client", why)
        if grant == "refresh_token":
            if form.get("refresh_token") not in server.refresh_tokens:
                return server.refuse(400, "invalid_grant", "unknown or used refresh token")
            server.refresh_tokens.discard(form["refresh_token"])  # rotation: single use
        elif grant == "authorization_code":
            params, code_jkt = server.codes.pop(form.get("code", ""), ({}, None))
            if not params:
                return server.refuse(400, "invalid_grant", "unknown or used code")
            challenge = params.get("code_challenge")
            verifier = form.get("code_verifier", "")
            if challenge and b64url_sha256(verifier) != challenge:
                return server.refuse(400, "invalid_grant", "PKCE verifier does not match")
            if code_jkt is not None and code_jkt != jkt:
                return server.refuse(400, "invalid_grant", "code bound to another DPoP key")
        elif grant != "client_credentials":
            return server.refuse(400, "unsupported_grant_type", str(grant))
    access = "at-" + secrets.token_urlsafe(12)
    refresh = "rt-" + secrets.token_urlsafe(12)
    server.access_tokens[access] = jkt
    server.refresh_tokens.add(refresh)
    return web.json_response(
        {
            "access_token": access,
            "refresh_token": refresh,
            "expires_in": server.lifetime_s,
            "token_type": "DPoP" if jkt else "Bearer",
        }
    )


async def api(request: web.Request) -> web.Response:
    server = request.app[KEY]
    server.api_calls += 1
    scheme, _, access = request.headers.get("Authorization", "").partition(" ")
    if access not in server.access_tokens:
        return server.refuse(401, "invalid_token", "unknown access token")
    jkt = server.access_tokens[access]
    if jkt is not None:
        if scheme != "DPoP":
            return server.refuse(401, "invalid_token", "a DPoP-bound token sent as " + scheme)
        got, why = verify_proof(
            server, request.headers.get("DPoP"), "GET", str(request.url), access
        )
        if why == "use_dpop_nonce":
            return server.refuse(
                401,
                "use_dpop_nonce",
                "a nonce is needed",
                **{
                    "WWW-Authenticate": 'DPoP error="use_dpop_nonce"',
                    "DPoP-Nonce": server.dpop_nonce or "",
                },
            )
        if why or got != jkt:
            return server.refuse(401, "invalid_dpop_proof", why or "proof key is not the token's")
    return web.json_response({"ok": True})


async def moved(request: web.Request) -> web.Response:
    """A same-origin redirect: the next hop needs a proof of its own (htu, jti)."""
    request.app[KEY].proofs.append({"old-api": request.headers.get("DPoP")})
    raise web.HTTPFound("/api")


async def metadata(request: web.Request) -> web.Response:
    server = request.app[KEY]
    return web.json_response(
        {
            "issuer": server.reported_issuer or server.issuer,
            "token_endpoint": f"{server.issuer}/token",
            "authorization_endpoint": f"{server.issuer}/authorize",
            "pushed_authorization_request_endpoint": f"{server.issuer}/par",
        }
    )


async def par(request: web.Request) -> web.Response:
    server = request.app[KEY]
    form = {k: str(v) for k, v in (await request.post()).items()}
    jkt = None
    if server.dpop:
        jkt, why = verify_proof(server, request.headers.get("DPoP"), "POST", str(request.url), None)
        if why:
            return server.refuse(400, "invalid_dpop_proof", why)
    if why := _client_ok(server, request, form):
        return server.refuse(401, "invalid_client", why)
    for key in ("client_assertion", "client_assertion_type", "client_secret"):
        form.pop(key, None)
    uri = "urn:ietf:params:oauth:request_uri:" + secrets.token_urlsafe(8)
    server.pushed[uri] = {**form, "jkt": jkt or ""}
    return web.json_response({"request_uri": uri, "expires_in": 60}, status=201)


async def authorize(request: web.Request) -> web.Response:
    """Signs the user in at once: redirects to redirect_uri with a code, state and iss."""
    server = request.app[KEY]
    query = dict(request.query)
    if "request_uri" in query:
        params = server.pushed.pop(query["request_uri"], None)
        if params is None or query.get("client_id") != params.get("client_id"):
            return web.Response(status=400, text="unknown request_uri")
        if set(query) != {"client_id", "request_uri"}:
            return web.Response(status=400, text="PAR: only client_id and request_uri")
    elif server.require_par:
        return web.Response(status=400, text="pushed authorization request required")
    else:
        params = query
    code = "code-" + secrets.token_urlsafe(8)
    server.codes[code] = (params, params.get("jkt") or None)
    target = (
        params["redirect_uri"]
        + "?"
        + urlencode(
            {"code": code, "state": params["state"], "iss": server.reported_issuer or server.issuer}
        )
    )
    raise web.HTTPFound(target)


def make_app(server: FapiServer) -> web.Application:
    app = web.Application()
    app[KEY] = server
    app.add_routes(
        [
            web.post("/token", token),
            web.get("/api", api),
            web.get("/old-api", moved),
            web.post("/par", par),
            web.get("/authorize", authorize),
            web.get("/.well-known/openid-configuration", metadata),
        ]
    )
    return app
