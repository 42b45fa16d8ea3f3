"""FAPI-grade OAuth against a real authorization server on 127.0.0.1 that verifies every signature
with PyJWT (SPEC §10): client assertions, jwt_bearer, discovery, DPoP with nonces and `ath`."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from joserfc.jwk import ECKey, OKPKey, RSAKey

from apimd.engine import dpop
from apimd.engine.memory import MemoryStateStore
from apimd.engine.runner import Engine
from apimd.engine.signin import SignInFlows
from apimd.model import Outcome, ResultCode, TokenState
from apimd.model.errors import ValidationFailed
from apimd.model.loader import load_project_text
from apimd.model.runtime import TokenRuntime
from tests.engine.fapi_server import FapiServer, jwk_thumbprint, make_app
from tests.support.engine import run_once
from tests.support.projects import build
from tests.support.tls import PrivateKey, pem_key

KEYS: dict[str, Callable[[], PrivateKey]] = {
    "rsa": lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048),
    "ec": lambda: ec.generate_private_key(ec.SECP256R1()),
    "ed25519": ed25519.Ed25519PrivateKey.generate,
}


@pytest.fixture
async def fapi() -> AsyncIterator[FapiServer]:
    server = FapiServer()
    test_server = TestServer(make_app(server), host="127.0.0.1", port=0)
    await test_server.start_server()
    server.issuer = str(test_server.make_url("")).rstrip("/")
    try:
        yield server
    finally:
        await test_server.close()


def project(server: FapiServer, **auth: Any) -> dict[str, Any]:
    return {
        "auth": [
            {
                "name": "bank",
                "type": "oauth2",
                "grant": "client_credentials",
                "client_id": server.client_id,
                "issuer": server.issuer,
                **auth,
            }
        ],
        "tokens": [{"name": "t", "auth": "bank"}],
        "calls": [
            {
                "name": "accounts",
                "url": f"{server.issuer}/api?page=1",
                "token": "t",
                "conditions": [{"source": "status", "op": "eq", "value": 200}],
            }
        ],
    }


async def run(doc: dict[str, Any], store: MemoryStateStore | None = None) -> Any:
    return await run_once(Engine(build(doc), store or MemoryStateStore()), "accounts")


async def refresh(doc: dict[str, Any], store: MemoryStateStore) -> TokenRuntime:
    """The token `t` refreshed by an engine of its own, closed after."""
    engine = Engine(build(doc), store)
    try:
        return await engine.tokens.refresh("t")
    finally:
        await engine.close()


@pytest.mark.parametrize("kind", list(KEYS))
@pytest.mark.parametrize("as_jwk", [False, True])
async def test_private_key_jwt_assertion_verified_independently(
    fapi: FapiServer, kind: str, as_jwk: bool
) -> None:
    key = KEYS[kind]()
    fapi.public_key = key.public_key()
    text = pem_key(key)
    if as_jwk:
        text = _jwk_text(kind, text)
    doc = project(fapi, client_auth="private_key_jwt", client_key=text, client_key_id="k1")
    store = MemoryStateStore()
    first = await run(doc, store)
    second_token = await refresh(doc, store)
    assert first.outcome == Outcome.PASS, (first.error, fapi.errors)
    assert second_token.state == TokenState.VALID
    assert fapi.token_requests == 2
    one, two = fapi.assertions
    assert one["aud"] == fapi.issuer  # the issuer, known from discovery
    assert one["iss"] == one["sub"] == fapi.client_id
    assert one["exp"] - one["iat"] == 60
    assert one["jti"] != two["jti"]  # a fresh assertion for every request


def _jwk_text(kind: str, pem_text: str) -> str:
    key: RSAKey | ECKey | OKPKey
    if kind == "rsa":
        key = RSAKey.import_key(pem_text)
    elif kind == "ec":
        key = ECKey.import_key(pem_text)
    else:
        key = OKPKey.import_key(pem_text)
    return json.dumps(key.as_dict(private=True))


async def test_wrong_key_is_refused_with_a_clear_result(fapi: FapiServer) -> None:
    fapi.public_key = KEYS["ec"]().public_key()
    doc = project(fapi, client_auth="private_key_jwt", client_key=pem_key(KEYS["ec"]()))
    result = await run(doc)
    assert result.outcome == Outcome.FAIL
    assert result.result == ResultCode.AUTH_ERROR
    assert "invalid_client" in (result.error or "")
    assert "bad client assertion" in fapi.errors[0]


async def test_missing_assertion_is_refused(fapi: FapiServer) -> None:
    result = await run(project(fapi, client_auth="none"))
    assert result.result == ResultCode.AUTH_ERROR
    assert fapi.errors == ["invalid_client: missing client assertion"]


async def test_client_secret_jwt_and_client_assertion_aud(fapi: FapiServer) -> None:
    fapi.client_auth = "client_secret_jwt"
    fapi.expected_aud = f"{fapi.issuer}/token"
    doc = project(
        fapi,
        client_auth="client_secret_jwt",
        client_secret=fapi.client_secret,
        client_assertion_aud="%%AUD%%",
    )
    doc["variables"] = {"AUD": fapi.expected_aud}
    result = await run(doc)
    assert result.outcome == Outcome.PASS, (result.error, fapi.errors)
    assert fapi.assertions[0]["aud"] == fapi.expected_aud


async def test_jwt_bearer_grant_refreshes_by_itself(fapi: FapiServer) -> None:
    key = KEYS["rsa"]()
    fapi.public_key = key.public_key()
    doc = project(
        fapi,
        grant="jwt_bearer",
        client_auth="none",
        client_key=pem_key(key),
        scopes=["accounts"],
        assertion_claims={"sub": "service-account-7"},
    )
    result = await run(doc)
    assert result.outcome == Outcome.PASS, (result.error, fapi.errors)
    claims = fapi.assertions[0]
    assert claims["sub"] == "service-account-7"
    assert claims["iss"] == fapi.client_id
    assert claims["aud"] == f"{fapi.issuer}/token"
    assert claims["scope"] == "accounts"
    assert claims["exp"] - claims["iat"] == 300


async def test_discovery_issuer_mismatch_is_a_setup_error(fapi: FapiServer) -> None:
    fapi.client_auth = "none"
    fapi.reported_issuer = "https://evil.example"
    result = await run(project(fapi, client_auth="none"))
    assert result.result == ResultCode.AUTH_ERROR
    assert "names issuer 'https://evil.example'" in (result.error or "")
    assert fapi.token_requests == 0


async def test_dpop_token_and_calls_carry_proofs_with_nonce_retry(fapi: FapiServer) -> None:
    fapi.client_auth = "none"
    fapi.dpop = True
    fapi.dpop_nonce = "n-1"
    store = MemoryStateStore()
    doc = project(fapi, client_auth="none", dpop=True)
    result = await run(doc, store)
    assert result.outcome == Outcome.PASS, (result.error, fapi.errors)
    # token: first refused for want of a nonce, retried once; the call: the same, no refresh
    assert fapi.token_requests == 2
    assert fapi.api_calls == 1
    runtime = store.tokens["t"]
    assert runtime.variables["TOKEN_TYPE"] == "DPoP"
    key_jwk = runtime.dpop_key
    assert key_jwk
    assert fapi.access_tokens[runtime.variables["ACCESS_TOKEN"]] == jwk_thumbprint(
        json.loads(key_jwk)
    )
    call_proof = fapi.proofs[-1]
    assert call_proof["htu"] == f"{fapi.issuer}/api"  # no query
    assert call_proof["nonce"] == "n-1"
    # the key is kept across refreshes
    await refresh(doc, store)
    assert store.tokens["t"].dpop_key == key_jwk


async def test_use_dpop_nonce_401_retries_once_and_never_refreshes(fapi: FapiServer) -> None:
    fapi.client_auth = "none"
    fapi.dpop = True
    store = MemoryStateStore()
    doc = project(fapi, client_auth="none", dpop=True)
    assert (await run(doc, store)).outcome == Outcome.PASS
    fapi.dpop_nonce = "n-2"
    requests_before = fapi.token_requests
    result = await run(doc, store)
    assert result.outcome == Outcome.PASS, (result.error, fapi.errors)
    assert not result.retried_after_401
    assert fapi.token_requests == requests_before
    assert fapi.errors[-1] == "use_dpop_nonce: a nonce is needed"


def test_rfc7638_thumbprint_vector() -> None:
    """RFC 7638 §3.1's example key and thumbprint."""
    n = (
        "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_B"
        "JECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_F"
        "DW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4"
        "vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
    )
    key = RSAKey.import_key({"kty": "RSA", "n": n, "e": "AQAB"})
    assert key.thumbprint() == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


def test_rfc9449_vectors() -> None:
    """RFC 9449's example `ath` (§7.1) and `jkt` of the example proof key."""
    assert (
        dpop.access_token_hash("Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU")
        == "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo"
    )
    jwk: dict[str, str | list[str]] = {
        "kty": "EC",
        "x": "l8tFrhx-34tV3hRICRDY9zCkDlpBhF42UQUfWVAWBFs",
        "y": "9VE4jf_Ok_o64zbTTlcuNJajHmt6v9TDVrU0CdvGRDA",
        "crv": "P-256",
    }
    assert ECKey.import_key(jwk).thumbprint() == "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"
    assert jwk_thumbprint(jwk) == "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"
    assert dpop.htu("https://server.example.com/token?a=1#f") == "https://server.example.com/token"


@pytest.mark.parametrize(
    ("client_key", "message"),
    [
        ("hello", "not a PEM private key or a private JWK"),
        ("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", "not a PEM private key"),
        ('{"kty": "EC", "crv": "P-256", "x": "a", "y": "b"}', "a public JWK"),
        ('{"kty": "EC", "crv": "P-384", "x": "a", "y": "b", "d": "c"}', "must be on P-256"),
    ],
)
def test_a_wrong_client_key_is_a_load_error_naming_the_field(client_key: str, message: str) -> None:
    doc = {
        "auth": [
            {
                "name": "bank",
                "type": "oauth2",
                "grant": "client_credentials",
                "client_id": "c",
                "token_url": "https://as.example/token",
                "client_auth": "private_key_jwt",
                "client_key": client_key,
            }
        ]
    }
    with pytest.raises(ValidationFailed) as failed:
        load_project_text(json.dumps(doc), filename="bank.json")
    text = str(failed.value)
    assert "client_key" in text
    assert message in text
    assert client_key not in text  # a secret is never echoed


def test_private_key_jwt_without_a_key_is_a_load_error() -> None:
    doc = {"auth": [{"name": "b", "type": "oauth2", "grant": "client_credentials"}]}
    doc["auth"][0] |= {"client_id": "c", "issuer": "https://as.example"}
    doc["auth"][0]["client_auth"] = "private_key_jwt"
    with pytest.raises(ValidationFailed, match="needs `client_key`"):
        load_project_text(json.dumps(doc), filename="b.json")


async def first_hop(url: str) -> tuple[str | None, str]:
    """What a browser gets from the authorization URL: the redirect's Location, or the page."""
    session = aiohttp.ClientSession()
    try:
        async with session.get(url, allow_redirects=False) as response:
            return response.headers.get("Location"), await response.text()
    finally:
        await session.close()


async def sign_in_through(fapi: FapiServer, doc: dict[str, Any], store: MemoryStateStore) -> Any:
    """Start the built-in sign-in, follow the browser's first hop, and complete with its answer."""
    engine = Engine(build(doc), store, callback_url="http://127.0.0.1:9/tokens/callback")
    try:
        flows = SignInFlows(engine)
        begun = await flows.start_for_token("t")
        location, text = await first_hop(begun.url)
        if location is None:
            return begun, None, text
        done = await flows.complete_url(location)
        return begun, done, location
    finally:
        await engine.close()


def signin_project(fapi: FapiServer, **auth: Any) -> dict[str, Any]:
    return project(fapi, grant="authorization_code", **auth)


async def test_par_private_key_jwt_dpop_sign_in(fapi: FapiServer) -> None:
    key = KEYS["ec"]()
    fapi.public_key = key.public_key()
    fapi.dpop = True
    fapi.require_par = True
    store = MemoryStateStore()
    doc = signin_project(
        fapi, client_auth="private_key_jwt", client_key=pem_key(key), dpop=True, par=True
    )
    begun, done, _ = await sign_in_through(fapi, doc, store)
    query = parse_qs(urlsplit(begun.url).query)
    assert set(query) == {"client_id", "request_uri"}  # the browser gets nothing else
    assert done.ok, (done.message, fapi.errors)
    runtime = store.tokens["t"]
    assert runtime.variables["TOKEN_TYPE"] == "DPoP"
    # PAR, code exchange and later calls are bound to the one key made before the sign-in
    assert len(fapi.assertions) == 2  # PAR and token endpoint each authenticated afresh
    assert fapi.assertions[0]["jti"] != fapi.assertions[1]["jti"]
    result = await run(doc, store)
    assert result.outcome == Outcome.PASS, (result.error, fapi.errors)


async def test_par_is_used_when_the_metadata_requires_it_and_refused_without(
    fapi: FapiServer,
) -> None:
    fapi.client_auth = "none"
    fapi.require_par = True
    store = MemoryStateStore()
    _, done, body = await sign_in_through(
        fapi, signin_project(fapi, client_auth="none", par=False), store
    )
    assert done is None
    assert "pushed authorization request required" in body


async def test_a_wrong_iss_in_the_answer_stops_before_the_code_exchange(fapi: FapiServer) -> None:
    fapi.client_auth = "none"
    store = MemoryStateStore()
    doc = signin_project(fapi, client_auth="none")
    engine = Engine(build(doc), store, callback_url="http://127.0.0.1:9/tokens/callback")
    try:
        flows = SignInFlows(engine)
        begun = await flows.start_for_token("t")
        location, _ = await first_hop(begun.url)
        assert location is not None
        parts = urlsplit(location)
        answer = {k: v[0] for k, v in parse_qs(parts.query).items()}
        assert answer["iss"] == fapi.issuer
        forged = parts._replace(query=urlencode({**answer, "iss": "https://evil"})).geturl()
        done = await flows.complete_url(forged)
    finally:
        await engine.close()
    assert not done.ok
    assert "not " + fapi.issuer in done.message
    assert fapi.token_requests == 0


async def test_each_redirect_hop_gets_its_own_dpop_proof(fapi: FapiServer) -> None:
    fapi.client_auth = "none"
    fapi.dpop = True
    doc = project(fapi, client_auth="none", dpop=True)
    doc["calls"][0]["url"] = f"{fapi.issuer}/old-api"
    result = await run(doc)
    assert result.outcome == Outcome.PASS, (result.error, fapi.errors)
    first_hop = next(p["old-api"] for p in fapi.proofs if "old-api" in p)
    assert first_hop is not None  # the first hop carried a proof too
    last = fapi.proofs[-1]
    assert last["htu"] == f"{fapi.issuer}/api"  # made for the hop it was sent on
    assert result.request is not None
    assert "DPoP" in result.request.headers


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")  # the test server's
async def test_a_weak_key_is_reported_once_when_the_project_loads(
    fapi: FapiServer, caplog: pytest.LogCaptureFixture
) -> None:
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    fapi.public_key = weak.public_key()
    doc = project(fapi, client_auth="private_key_jwt", client_key=pem_key(weak))
    with caplog.at_level("WARNING", logger="apimd.engine.signer"):
        Engine(build(doc), MemoryStateStore())
        assert [r.getMessage() for r in caplog.records] == [
            "auth bank client_key: a 1024-bit RSA key is weak; use 2048 bits or more"
        ]
        result = await run(doc)  # it still signs (the server decides), and says so only once
    assert result.outcome == Outcome.PASS, (result.error, fapi.errors)
    assert len(caplog.records) == 1
