"""The demo authorization server's FAPI client end to end: apimd signs in with PAR, private_key_jwt
and DPoP and keeps the token fresh; and the server refuses each mechanism done wrong (requests made
here with PyJWT, independent of apimd's signer)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlencode

import aiohttp
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from apimd.cli.demo import FAPI_TOKEN, fapi_resources
from apimd.demo.fapi import public_jwk
from apimd.demo.server import RunningServer, TokenServerState
from apimd.engine.memory import MemoryStateStore
from apimd.engine.runner import Engine
from apimd.engine.signin import SignInFlows
from apimd.model import Outcome
from tests.conftest import server_state
from tests.support.pages import DEMO_ACCOUNT, parse_html
from tests.support.projects import build

CALLBACK = "http://127.0.0.1:9/tokens/callback"


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


async def person_signs_in(session: aiohttp.ClientSession, base: str, url: str) -> str:
    """Open the login page at `url`, sign in, and return where the browser is sent back to."""
    async with session.get(url) as page:
        assert page.status == 200, await page.text()
        form = parse_html(await page.text()).forms[0]
    values = {**dict(form.form_values()), **DEMO_ACCOUNT}
    async with session.post(base + form.action, data=values, allow_redirects=False) as answer:
        assert answer.status == 302
        return answer.headers["Location"]


async def test_apimd_signs_in_with_par_private_key_jwt_and_dpop(
    token_server: RunningServer, session: aiohttp.ClientSession
) -> None:
    state = server_state(token_server)
    state.send_iss = True
    state.fapi.dpop_nonce = "demo-nonce-1"  # proofs without it are refused, apimd retries once
    store = MemoryStateStore()
    engine = Engine(build(fapi_resources(token_server)), store, callback_url=CALLBACK)
    try:
        flows = SignInFlows(engine)
        begun = await flows.start_for_token(FAPI_TOKEN)
        assert "request_uri=" in begun.url
        assert "code_challenge" not in begun.url  # the browser gets only client_id + request_uri
        done = await flows.complete_url(await person_signs_in(session, token_server.url, begun.url))
        assert done.ok, (done.message, state.fapi.refused)
        first = await engine.run("my-orders-fapi")
        assert first.outcome == Outcome.PASS, (first.error, state.fapi.refused)
        token = store.tokens[FAPI_TOKEN]
        assert token.variables["TOKEN_TYPE"] == "DPoP"
        before = token.variables["REFRESH_TOKEN"]
        refreshed = await engine.tokens.refresh(FAPI_TOKEN)
        assert refreshed.variables["REFRESH_TOKEN"] != before  # rotated, saved with the access
        again = await engine.run("my-orders-fapi")
        assert again.outcome == Outcome.PASS, (again.error, state.fapi.refused)
    finally:
        await engine.close()
    assert any("use_dpop_nonce" in r for r in state.fapi.refused)


# --- the server refuses each mechanism done wrong ------------------------------------------------


class FapiClient:
    """Requests to the demo server's FAPI client made with PyJWT."""

    def __init__(self, server: RunningServer, session: aiohttp.ClientSession) -> None:
        self.base = server.url
        self.session = session
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.dpop_key = ec.generate_private_key(ec.SECP256R1())
        state: TokenServerState = server_state(server)
        state.fapi.public_jwk = public_jwk(self.key.public_key())

    def assertion(self, key: ec.EllipticCurvePrivateKey | None = None) -> dict[str, str]:
        now = int(time.time())
        claims = {
            "iss": "demo-fapi",
            "sub": "demo-fapi",
            "aud": self.base,
            "iat": now,
            "exp": now + 60,
            "jti": secrets.token_urlsafe(8),
        }
        return {
            "client_id": "demo-fapi",
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": jwt.encode(claims, key or self.key, algorithm="ES256"),
        }

    def proof(self, method: str, url: str, access_token: str | None = None, **extra: Any) -> str:
        claims: dict[str, Any] = {
            "htm": method,
            "htu": url,
            "iat": int(time.time()),
            "jti": secrets.token_urlsafe(8),
            **extra,
        }
        if access_token:
            digest = hashlib.sha256(access_token.encode()).digest()
            claims["ath"] = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
        header = {"typ": "dpop+jwt", "jwk": public_jwk(self.dpop_key.public_key())}
        return jwt.encode(claims, self.dpop_key, algorithm="ES256", headers=header)

    async def token(
        self, form: dict[str, str], dpop: str | None = "fresh"
    ) -> tuple[int, dict[str, Any], str | None]:
        url = f"{self.base}/oauth/token"
        headers = {}
        if dpop == "fresh":
            headers["DPoP"] = self.proof("POST", url)
        elif dpop:
            headers["DPoP"] = dpop
        async with self.session.post(url, data=form, headers=headers) as response:
            return response.status, await response.json(), response.headers.get("DPoP-Nonce")


@pytest.fixture
def fapi(token_server: RunningServer, session: aiohttp.ClientSession) -> FapiClient:
    return FapiClient(token_server, session)


GRANT = {"grant_type": "client_credentials"}


async def test_right_assertion_and_proof_get_a_dpop_token(fapi: FapiClient) -> None:
    status, body, _ = await fapi.token({**GRANT, **fapi.assertion()})
    assert status == 200, body
    assert body["token_type"] == "DPoP"


async def test_missing_or_wrong_assertion_is_refused(fapi: FapiClient) -> None:
    missing = await fapi.token({**GRANT, "client_id": "demo-fapi"})
    wrong = await fapi.token({**GRANT, **fapi.assertion(ec.generate_private_key(ec.SECP256R1()))})
    assert missing[:2] == (401, missing[1])
    assert missing[1]["error"] == "invalid_client"
    assert "private_key_jwt" in missing[1]["error_description"]
    assert wrong[0] == 401
    assert "does not verify" in wrong[1]["error_description"]


async def test_missing_and_replayed_dpop_proofs_are_refused(fapi: FapiClient) -> None:
    missing = await fapi.token({**GRANT, **fapi.assertion()}, dpop=None)
    assert missing[1]["error"] == "invalid_dpop_proof"
    proof = fapi.proof("POST", f"{fapi.base}/oauth/token")
    first = await fapi.token({**GRANT, **fapi.assertion()}, dpop=proof)
    replayed = await fapi.token({**GRANT, **fapi.assertion()}, dpop=proof)
    assert first[0] == 200
    assert replayed[0] == 400
    assert "replayed" in replayed[1]["error_description"]


async def test_missing_nonce_is_answered_with_one(
    fapi: FapiClient, token_server: RunningServer
) -> None:
    server_state(token_server).fapi.dpop_nonce = "n-42"
    status, body, nonce = await fapi.token({**GRANT, **fapi.assertion()})
    assert (status, body["error"], nonce) == (400, "use_dpop_nonce", "n-42")
    url = f"{fapi.base}/oauth/token"
    retried = await fapi.token(
        {**GRANT, **fapi.assertion()}, dpop=fapi.proof("POST", url, nonce="n-42")
    )
    assert retried[0] == 200


async def test_wrong_ath_or_bearer_use_of_a_dpop_token_is_refused(fapi: FapiClient) -> None:
    _, body, _ = await fapi.token({**GRANT, **fapi.assertion()})
    access = body["access_token"]
    url = f"{fapi.base}/api/orders"

    async def orders(headers: dict[str, str]) -> tuple[int, str]:
        async with fapi.session.get(url, headers=headers) as response:
            return response.status, response.headers.get("WWW-Authenticate", "")

    assert (
        await orders({"Authorization": f"DPoP {access}", "DPoP": fapi.proof("GET", url, access)})
    )[0] == 200
    wrong_ath = await orders(
        {"Authorization": f"DPoP {access}", "DPoP": fapi.proof("GET", url, "another-token")}
    )
    assert wrong_ath == (401, 'DPoP error="invalid_dpop_proof"')
    as_bearer = await orders({"Authorization": f"Bearer {access}"})
    assert as_bearer[0] == 401


async def test_authorization_without_par_is_refused(fapi: FapiClient) -> None:
    query = {
        "response_type": "code",
        "client_id": "demo-fapi",
        "redirect_uri": CALLBACK,
        "state": "s",
        "code_challenge": "x" * 43,
        "code_challenge_method": "S256",
    }
    async with fapi.session.get(f"{fapi.base}/oauth/authorize?{urlencode(query)}") as page:
        assert page.status == 400
        assert "pushed authorization request (PAR) required" in await page.text()


async def test_a_device_sign_in_gets_a_dpop_bound_token(token_server: RunningServer) -> None:
    state = server_state(token_server)
    base = token_server.url
    doc = {
        "auth": [
            {
                "name": "tv",
                "type": "oauth2",
                "grant": "device_code",
                "token_url": f"{base}/oauth/token",
                "device_authorization_url": f"{base}/oauth/device_authorization",
                "client_id": "demo-client",
                "client_secret": "demo-secret",
                "dpop": True,
            }
        ],
        "tokens": [{"name": "tv-token", "auth": "tv"}],
        "calls": [
            {
                "name": "orders",
                "url": f"{base}/api/orders",
                "token": "tv-token",
                "conditions": [{"source": "status", "op": "eq", "value": 200}],
            }
        ],
    }
    store = MemoryStateStore()
    engine = Engine(build(doc), store, callback_url=CALLBACK)
    try:
        flows = SignInFlows(engine)
        started = await flows.start_device("tv-token")
        assert started.user_code is not None
        state.approve_device(started.user_code)
        for _ in range(100):
            if store.tokens.get("tv-token") and store.tokens["tv-token"].variables:
                break
            await asyncio.sleep(0.1)
        token = store.tokens["tv-token"]
        assert token.variables["TOKEN_TYPE"] == "DPoP", state.fapi.refused
        assert state.fapi.bound_tokens[token.variables["ACCESS_TOKEN"]]
        result = await engine.run("orders")
    finally:
        await engine.close()
    assert result.outcome == Outcome.PASS, (result.error, state.fapi.refused)
