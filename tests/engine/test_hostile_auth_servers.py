"""Hostile authorization and resource servers against FAPI-grade auth (SPEC §10): endless
`use_dpop_nonce`, huge or garbled `DPoP-Nonce`, odd PAR answers, token answers that are not a
usable token, odd SigV4/HMAC secrets and wrong keys. Each ends in bounded time with a clear
result naming what was wrong, no traceback, and no secret in results, events or the log."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from apimd.demo.server import RunningServer
from apimd.engine.memory import MemoryStateStore
from apimd.engine.redact import Redactor
from apimd.engine.runner import Engine
from apimd.engine.signin import SignInError, SignInFlows
from apimd.model import Outcome, ResultCode, TokenState
from apimd.model.events import Event
from apimd.model.result import Result
from apimd.model.runtime import TokenRuntime
from tests.support.projects import build
from tests.support.tls import pem_key

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
CLIENT_SECRET = "client-secret-value-0123456789abcdef"
MIB = 1024 * 1024


class Hostile:
    """A loopback server whose token, PAR and API endpoints a test replaces; counts requests."""

    def __init__(self) -> None:
        self.hits: dict[str, int] = {}
        self.handlers: dict[str, Handler] = {}
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self.server = RunningServer(app)

    @property
    def url(self) -> str:
        return self.server.url

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        path = "/" + request.match_info["tail"]
        self.hits[path] = self.hits.get(path, 0) + 1
        await request.read()
        return await self.handlers[path](request)


@pytest.fixture
async def hostile() -> AsyncIterator[Hostile]:
    server = Hostile()
    await server.server.start()
    try:
        yield server
    finally:
        await server.server.stop()


def oauth_project(base: str, **auth: Any) -> dict[str, Any]:
    return {
        "auth": [
            {
                "name": "bank",
                "type": "oauth2",
                "grant": "client_credentials",
                "token_url": f"{base}/token",
                "client_id": "cid",
                "client_secret": CLIENT_SECRET,
                "client_auth": "body",
                **auth,
            }
        ],
        "tokens": [{"name": "t", "auth": "bank"}],
        "calls": [{"name": "api", "url": f"{base}/api", "token": "t"}],
    }


async def run_with_token(hostile: Hostile) -> tuple[Result, TokenRuntime]:
    """`oauth_project`'s call run once against `hostile`, and its token as it was left."""
    engine = Engine(build(oauth_project(hostile.url)), MemoryStateStore())
    try:
        return await engine.run("api"), await engine.services.tokens.current("t")
    finally:
        await engine.close()


async def run(doc: dict[str, Any], name: str = "api") -> tuple[Result, list[Event]]:
    events: list[Event] = []
    engine = Engine(build(doc), MemoryStateStore(), events=events.append)
    try:
        return await engine.run(name), events
    finally:
        await engine.close()


def clean(
    result: Result, events: list[Event], caplog: pytest.LogCaptureFixture, *secrets: str
) -> str:
    """Everything a person may read of the run, checked for tracebacks and secrets."""
    text = result.model_dump_json() + "".join(e.model_dump_json() for e in events) + caplog.text
    assert "Traceback" not in text
    assert "internal error" not in (result.error or "")
    for secret in (CLIENT_SECRET, *secrets):
        assert secret not in text
    return text


def token_answer(**fields: Any) -> Handler:
    async def answer(_request: web.Request) -> web.Response:
        return web.json_response({"access_token": "at-secret-1", "expires_in": 60, **fields})

    return answer


async def ok_api(_request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


# --- (a) use_dpop_nonce forever ---------------------------------------------------------------


async def test_a_token_endpoint_asking_a_new_nonce_forever_is_retried_once(
    hostile: Hostile, caplog: pytest.LogCaptureFixture
) -> None:
    async def token(_request: web.Request) -> web.Response:
        nonce = f"n-{hostile.hits['/token']}"
        body = {"error": "use_dpop_nonce", "error_description": "a nonce is needed"}
        return web.json_response(body, status=400, headers={"DPoP-Nonce": nonce})

    hostile.handlers["/token"] = token
    result, events = await run(oauth_project(hostile.url, dpop=True))
    assert hostile.hits["/token"] == 2  # the first try and one retry with the nonce
    assert result.result == ResultCode.AUTH_ERROR
    assert "use_dpop_nonce" in (result.error or "")
    clean(result, events, caplog)


async def test_a_resource_server_asking_a_new_nonce_forever_is_retried_once(
    hostile: Hostile, caplog: pytest.LogCaptureFixture
) -> None:
    async def api(_request: web.Request) -> web.Response:
        nonce = f"n-{hostile.hits['/api']}"
        headers = {"WWW-Authenticate": 'DPoP error="use_dpop_nonce"', "DPoP-Nonce": nonce}
        return web.json_response({"error": "use_dpop_nonce"}, status=401, headers=headers)

    hostile.handlers["/token"] = token_answer(token_type="DPoP")
    hostile.handlers["/api"] = api
    result, events = await run(oauth_project(hostile.url, dpop=True))  # refresh_on_401 is on
    assert hostile.hits["/api"] == 2, hostile.hits  # the call and one retry: no nonce loop
    assert hostile.hits["/token"] == 1, hostile.hits  # and never a refresh_on_401
    assert result.outcome != Outcome.PASS
    assert "use_dpop_nonce" in (result.error or ""), (result.error, hostile.hits)
    clean(result, events, caplog, "at-secret-1")


# --- (b) a huge or garbled DPoP-Nonce ---------------------------------------------------------


@pytest.mark.parametrize(
    ("nonce", "says"),
    [
        ("n" * MIB, "invalid HTTP response"),  # over aiohttp's 8190-byte header line
        ("n" * 5000, "DPoP-Nonce is 5000 characters long"),
        ("bad\x01nonce", "characters a nonce may not"),
        ("bad nonce\x7f", "characters a nonce may not"),
        ("é-nonce", "characters a nonce may not"),
    ],
    ids=["1MB", "5000", "ctl", "del", "latin"],
)
async def test_a_huge_or_garbled_dpop_nonce_is_refused_by_name(
    hostile: Hostile, caplog: pytest.LogCaptureFixture, nonce: str, says: str
) -> None:
    proofs: list[str] = []

    async def raw(request: web.Request) -> web.StreamResponse:
        proofs.append(request.headers.get("DPoP", ""))
        transport = request.transport
        assert transport is not None
        body = b'{"error": "use_dpop_nonce", "error_description": "need a nonce"}'
        head = (
            b"HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\n"
            b"DPoP-Nonce: " + nonce.encode("latin-1", "replace") + b"\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n"
        )
        transport.write(head + body)
        transport.close()
        return web.Response()  # never sent: the connection is closed

    hostile.handlers["/token"] = raw
    result, events = await run(oauth_project(hostile.url, dpop=True))
    assert result.result == ResultCode.AUTH_ERROR, (result.result, result.error)
    assert len(proofs) == 1  # no retry with a nonce no server may send
    assert says in (result.error or ""), result.error
    text = clean(result, events, caplog)
    assert len(text) < 200_000


# --- (c) odd PAR answers ----------------------------------------------------------------------


def par_project(base: str) -> dict[str, Any]:
    return oauth_project(
        base,
        grant="authorization_code",
        authorize_url=f"{base}/authorize",
        par_url=f"{base}/par",
        par=True,
    )


async def start_sign_in(doc: dict[str, Any], events: list[Event]) -> Any:
    engine = Engine(
        build(doc),
        MemoryStateStore(),
        events=events.append,
        callback_url="http://127.0.0.1:9/tokens/callback",
    )
    try:
        return await SignInFlows(engine).start_for_token("t")
    finally:
        await engine.close()


@pytest.mark.parametrize("expires_in", ["1e309", "-5", "99999999999999999999", '"soon"', None])
async def test_a_par_answer_with_an_odd_expires_in_still_signs_in(
    hostile: Hostile, expires_in: str | None
) -> None:
    async def par(_request: web.Request) -> web.Response:
        field = "" if expires_in is None else f', "expires_in": {expires_in}'
        text = f'{{"request_uri": "urn:ietf:params:oauth:request_uri:abc"{field}}}'
        return web.Response(text=text, status=201, content_type="application/json")

    hostile.handlers["/par"] = par
    events: list[Event] = []
    begun = await start_sign_in(par_project(hostile.url), events)
    assert "request_uri=urn%3Aietf%3Aparams%3Aoauth%3Arequest_uri%3Aabc" in begun.url


@pytest.mark.parametrize(
    ("request_uri", "says"),
    [
        ("123", "request_uri"),
        ('{"a": 1}', "request_uri"),
        ("null", "request_uri"),
        ('"' + "u" * MIB + '"', "request_uri"),
        ('"urn:x\\r\\nSet-Cookie: a=b"', "request_uri"),
        ('""', "request_uri"),
    ],
    ids=["number", "object", "null", "1MB", "crlf", "empty"],
)
async def test_a_par_answer_with_an_unusable_request_uri_is_a_clear_error(
    hostile: Hostile, caplog: pytest.LogCaptureFixture, request_uri: str, says: str
) -> None:
    async def par(_request: web.Request) -> web.Response:
        text = f'{{"request_uri": {request_uri}, "expires_in": 60}}'
        return web.Response(text=text, status=201, content_type="application/json")

    hostile.handlers["/par"] = par
    events: list[Event] = []
    with pytest.raises(SignInError) as refused:
        await start_sign_in(par_project(hostile.url), events)
    message = str(refused.value)
    assert "pushed authorization request" in message and says in message, message
    assert len(message) < 1000
    assert not events  # no sign-in opened
    assert CLIENT_SECRET not in message + caplog.text


# --- (d) token answers that are not a usable token --------------------------------------------


@pytest.mark.parametrize(
    ("body", "content_type", "says"),
    [
        (b"<html><body>Welcome</body></html>", "text/html", "not JSON"),
        (b'[{"access_token": "at-secret-1"}]', "application/json", "not a JSON object"),
        (b'"at-secret-1"', "application/json", "not a JSON object"),
        (b"\xff\xfe\x00garbage", "application/json", "that does not parse (Expecting value"),
        (
            b'{"access_token": "at-secret-1\x01"}',
            "application/json",
            "application/json that does not parse (Invalid control character at line 1",
        ),
    ],
    ids=["html", "array", "string", "binary", "control-character"],
)
async def test_a_200_token_answer_that_is_not_a_json_object_is_named(
    hostile: Hostile, caplog: pytest.LogCaptureFixture, body: bytes, content_type: str, says: str
) -> None:
    async def token(_request: web.Request) -> web.Response:
        return web.Response(body=body, content_type=content_type)

    hostile.handlers["/token"] = token
    result, events = await run(oauth_project(hostile.url))
    assert result.result == ResultCode.AUTH_ERROR
    assert says in (result.error or ""), result.error
    clean(result, events, caplog, "at-secret-1")


@pytest.mark.parametrize(
    ("dpop", "token_type", "says"),
    [(False, "DPoP", "no DPoP proof was sent"), (True, "Bearer", "not bound")],
)
async def test_a_token_type_that_does_not_match_the_dpop_use_is_refused(
    hostile: Hostile, caplog: pytest.LogCaptureFixture, dpop: bool, token_type: str, says: str
) -> None:
    hostile.handlers["/token"] = token_answer(token_type=token_type)
    hostile.handlers["/api"] = ok_api
    result, events = await run(oauth_project(hostile.url, dpop=dpop))
    assert result.result == ResultCode.AUTH_ERROR, (result.result, result.error)
    assert "token_type" in (result.error or "") and says in (result.error or ""), result.error
    assert "/api" not in hostile.hits  # the token was never used
    clean(result, events, caplog, "at-secret-1")


# --- (e) SigV4 and HMAC with odd secrets and header values ------------------------------------


def signed_project(base: str, secret: str, header: str) -> dict[str, Any]:
    return {
        "variables": {"API_SECRET": {"value": secret, "secret": True}},
        "auth": [
            {
                "name": "aws",
                "type": "aws_sigv4",
                "access_key_id": "AKIDEXAMPLE",
                "secret_access_key": secret,
                "region": "eu-west-1",
                "service": "execute-api",
            },
            {"name": "signed", "type": "manual"},
        ],
        "calls": [
            {
                "name": "sigv4",
                "url": f"{base}/api",
                "auth": "aws",
                "headers": {"X-Odd": header},
            },
            {"name": "hmac", "url": f"{base}/api", "token": "sig", "headers": {"X-Odd": header}},
        ],
        "tokens": [
            {
                "name": "sig",
                "auth": "signed",
                "headers": {
                    "X-Sig": '{{ hmac_sha256(API_SECRET, "%%REQUEST_METHOD%%\\n%%REQUEST_BODY%%") '
                    "| base64 }}"
                },
            }
        ],
    }


@pytest.mark.parametrize("secret", ["", "sécrét-☃-key", "k" * MIB], ids=["empty", "unicode", "1MB"])
@pytest.mark.parametrize("header", ["plain", "  spaced   out  ", "é☃", "a\tb"])
@pytest.mark.parametrize("call", ["sigv4", "hmac"])
async def test_odd_secrets_and_header_values_sign_or_say_why(
    hostile: Hostile, caplog: pytest.LogCaptureFixture, secret: str, header: str, call: str
) -> None:
    hostile.handlers["/api"] = ok_api
    doc = signed_project(hostile.url, secret, header)
    try:
        result, events = await run(doc, call)
    except Exception as exc:  # a load error is fine when it names the field
        pytest.fail(f"{type(exc).__name__}: {exc}")
    text = clean(result, events, caplog, *([secret] if len(secret) > 3 else []))
    assert len(text) < 500_000
    assert result.outcome == Outcome.PASS or result.result == ResultCode.SETUP_ERROR, (
        result.result,
        result.error,
    )


# --- (f) keys that are huge or of the wrong type ----------------------------------------------


@pytest.mark.parametrize(
    ("key", "alg", "says"),
    [
        ("rsa", "ES256", "ES256"),
        ("ec", "PS256", "PS256"),
        ("ec", "HS256", "HS256"),
        ("huge", None, "client_key"),
        ("huge-jwk", None, "client_key"),
    ],
)
async def test_a_wrong_or_huge_client_key_is_a_clear_setup_error(
    hostile: Hostile, caplog: pytest.LogCaptureFixture, key: str, alg: str | None, says: str
) -> None:
    hostile.handlers["/token"] = token_answer()
    if key == "rsa":
        text = pem_key(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    elif key == "ec":
        text = pem_key(ec.generate_private_key(ec.SECP256R1()))
    elif key == "huge":
        text = "-----BEGIN PRIVATE KEY-----\n" + "A" * (8 * MIB) + "\n-----END PRIVATE KEY-----\n"
    else:
        text = json.dumps({"kty": "RSA", "n": "A" * (4 * MIB), "e": "AQAB", "d": "B" * MIB})
    auth: dict[str, Any] = {"client_auth": "private_key_jwt", "client_key": text}
    if alg:
        auth["client_assertion_alg"] = alg
    doc = oauth_project(hostile.url, **auth)
    try:
        result, events = await run(doc)
    except Exception as exc:  # a load error must name the field and keep the key out
        message = str(exc)
        assert says in message and len(message) < 2000, message[:2000]
        assert "Traceback" not in message
        return
    assert result.result in (ResultCode.SETUP_ERROR, ResultCode.AUTH_ERROR), result.result
    assert says in (result.error or ""), result.error
    assert "/token" not in hostile.hits  # nothing was sent
    body = text.split("\n")[1][:64] if key in ("rsa", "ec") else "A" * 64
    clean(result, events, caplog, body)


def test_a_megabyte_secret_is_masked_in_bounded_time() -> None:
    secret = '{"kty": "RSA", "d": "' + "a/b" * 400_000 + '"}'
    started = time.process_time()
    redactor = Redactor([secret, "short-secret"])
    text = redactor.text(f"raw {secret} escaped {json.dumps(secret)} short-secret end")
    assert time.process_time() - started < 10  # was minutes: a regex of megabytes
    assert secret not in text and json.dumps(secret)[1:-1] not in text
    assert "short-secret" not in text and text.startswith("raw ••••")


# --- a token endpoint whose error page quotes the request -------------------------------------


@pytest.mark.parametrize("client_auth", ["basic", "body"])
async def test_a_token_error_quoting_the_request_keeps_its_secrets_masked(
    hostile: Hostile, caplog: pytest.LogCaptureFixture, client_auth: str
) -> None:
    """An error page that quotes the request it got (its Authorization header, its form): the
    token's `last_error`, shown without a reveal, said the client secret and the Basic
    credentials in clear (a helper's attack)."""

    async def token(request: web.Request) -> web.Response:
        said = f"got {request.headers.get('Authorization')} and {await request.text()}"
        body = {"error": "invalid_client", "error_description": said}
        return web.json_response(body, status=400)

    hostile.handlers["/token"] = token
    engine = Engine(build(oauth_project(hostile.url, client_auth=client_auth)), MemoryStateStore())
    try:
        result = await engine.run("api")
        runtime = await engine.services.tokens.current("t")
    finally:
        await engine.close()
    basic = base64.b64encode(f"cid:{CLIENT_SECRET}".encode()).decode()
    said = f"{result.model_dump_json()} {runtime.last_error} {caplog.text}"
    assert "invalid_client" in (runtime.last_error or "") and "••••" in (runtime.last_error or "")
    assert CLIENT_SECRET not in said and basic not in said and basic[:20] not in said
    if client_auth == "basic":
        assert "got Basic ••••" in (runtime.last_error or ""), runtime.last_error


async def test_a_token_error_with_terminal_escapes_is_kept_as_one_plain_line(
    hostile: Hostile,
) -> None:
    """A description that sets the window title, clears the screen and writes over a line: the
    token's `last_error` holds them escaped (raw, they cleared the TUI's Tokens screen)."""

    async def token(_request: web.Request) -> web.Response:
        said = "x\x1b]0;PWNED\x07\x1b[2J\rFAKE\nLINE"
        body = {"error": "invalid_client", "error_description": said}
        return web.json_response(body, status=400)

    hostile.handlers["/token"] = token
    result, runtime = await run_with_token(hostile)
    expected = "x\\x1b]0;PWNED\\x07\\x1b[2J\\x0dFAKE\\x0aLINE"
    assert expected in (runtime.last_error or ""), runtime.last_error
    assert expected in (result.error or ""), result.error


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("access_token", "tok\r\nX-Injected: 1"),
        ("access_token", "tok\x00"),
        ("refresh_token", "r\nx"),
    ],
    ids=["access-crlf", "access-nul", "refresh-lf"],
)
async def test_a_token_a_header_cannot_carry_is_refused_at_the_refresh(
    hostile: Hostile, field: str, value: str
) -> None:
    """An access token holding CR/LF was saved as `valid`, and every call using it then ended
    SETUP_ERROR on the forbidden character (an attack, last session): RFC 6749 allows printable
    characters only, so such an answer is refused where it arrives, and the token says why."""

    async def token(_request: web.Request) -> web.Response:
        body = {"access_token": "ok", "token_type": "Bearer", "expires_in": 60, field: value}
        return web.json_response(body)

    hostile.handlers["/token"] = token
    hostile.handlers["/api"] = lambda _request: _ok()
    result, runtime = await run_with_token(hostile)
    why = f"the token endpoint's {field} holds a control character"
    assert why in (runtime.last_error or ""), runtime.last_error
    assert runtime.state is not TokenState.VALID
    assert "ACCESS_TOKEN" not in runtime.variables
    assert result.outcome is not Outcome.PASS
    assert hostile.hits.get("/api") is None  # nothing sent with it


async def _ok() -> web.Response:
    return web.Response(text="ok")
