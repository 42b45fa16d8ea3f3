"""The demo authorization server as a client and a person meet it: the login form, the code flow
with PKCE, denial, fragment answers, `iss`, and the device flow (RFC 6749, 7636, 8628, 9207)."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import aiohttp
import pytest

from apimd.demo.server import RunningServer, TokenServerState
from tests.conftest import server_state
from tests.support.pages import DEMO_ACCOUNT, parse_html

CLIENT = {"client_id": "demo-client", "client_secret": "demo-secret"}
CALLBACK = "http://127.0.0.1:8765/tokens/callback"
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"


class FakeClock:
    """The server's clock, moved by the test."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def challenge_of(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


@pytest.fixture
def clock(token_server: RunningServer) -> FakeClock:
    fake = FakeClock()
    server_state(token_server).clock = fake
    return fake


class CodeFlow:
    """A client doing the authorization-code flow with PKCE, and the person at the browser."""

    def __init__(self, server: RunningServer, session: aiohttp.ClientSession) -> None:
        self.server = server
        self.session = session
        self.verifier = secrets.token_urlsafe(48)
        self.state = secrets.token_urlsafe(16)

    def query(self, **overrides: str | None) -> dict[str, str]:
        query: dict[str, str | None] = {
            "response_type": "code",
            "client_id": "demo-client",
            "redirect_uri": CALLBACK,
            "state": self.state,
            "scope": "orders:read",
            "code_challenge": challenge_of(self.verifier),
            "code_challenge_method": "S256",
            **overrides,
        }
        return {k: v for k, v in query.items() if v is not None}

    async def open(self, **overrides: str | None) -> aiohttp.ClientResponse:
        url = f"{self.server.url}/oauth/authorize?{urlencode(self.query(**overrides))}"
        async with self.session.get(url, allow_redirects=False) as response:
            await response.read()
            return response

    async def submit(self, page: str, **fields: str) -> aiohttp.ClientResponse:
        """Fill in the login form of `page` and send it as the browser would."""
        form = parse_html(page).forms[0]
        values = dict(form.form_values())
        values.update(fields)
        url = self.server.url + form.action
        async with self.session.post(url, data=values, allow_redirects=False) as response:
            await response.read()
            return response

    async def sign_in(self, **overrides: str | None) -> dict[str, list[str]]:
        """Open the form, sign in, and return the parameters the redirect carries."""
        form = await self.open(**overrides)
        assert form.status == 200
        answer = await self.submit(await form.text(), **DEMO_ACCOUNT)
        assert answer.status == 302
        location = urlsplit(answer.headers["Location"])
        return parse_qs(location.query or location.fragment)

    async def exchange(self, code: str, **overrides: str | None) -> tuple[int, dict[str, Any]]:
        form: dict[str, str | None] = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": CALLBACK,
            "code_verifier": self.verifier,
            **CLIENT,
            **overrides,
        }
        data = {k: v for k, v in form.items() if v is not None}
        async with self.session.post(f"{self.server.url}/oauth/token", data=data) as response:
            return response.status, await response.json()


@pytest.fixture
def flow(token_server: RunningServer, session: aiohttp.ClientSession) -> CodeFlow:
    return CodeFlow(token_server, session)


# --- authorization code with PKCE ------------------------------------------------------------


async def test_login_form_is_self_contained_and_carries_the_request(flow: CodeFlow) -> None:
    response = await flow.open()
    assert response.status == 200
    assert response.headers["Cache-Control"] == "no-store"
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]
    page = parse_html(await response.text())
    for element_id in ("username", "password", "sign-in"):
        assert page.get_element_by_id(element_id) is not None
    hidden = {i.name: i.value for i in page.forms[0].inputs if i.type == "hidden"}
    assert hidden["state"] == flow.state
    assert hidden["redirect_uri"] == CALLBACK
    assert hidden["code_challenge"] == challenge_of(flow.verifier)
    assert not page.xpath("//script|//link|//img"), "no scripts or external resources"


async def test_code_flow_with_pkce_issues_tokens_the_api_accepts(
    flow: CodeFlow, token_server: RunningServer, session: aiohttp.ClientSession
) -> None:
    answer = await flow.sign_in()
    assert answer["state"] == [flow.state]
    assert "iss" not in answer
    status, tokens = await flow.exchange(answer["code"][0])
    assert status == 200, tokens
    assert tokens["token_type"] == "Bearer" and tokens["expires_in"] == 60
    assert tokens["scope"] == "orders:read"
    assert server_state(token_server).pkce_checked == 1
    headers = {"Authorization": f"Bearer {tokens['access_token']}"}
    async with session.get(f"{token_server.url}/api/orders", headers=headers) as response:
        assert response.status == 200
    refresh = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"], **CLIENT}
    async with session.post(f"{token_server.url}/oauth/token", data=refresh) as response:
        assert response.status == 200
        assert (await response.json())["access_token"] != tokens["access_token"]


@pytest.mark.parametrize(
    ("overrides", "why"),
    [
        ({"code_verifier": secrets.token_urlsafe(48)}, "does not match"),
        ({"code_verifier": None}, "missing"),
        ({"code_verifier": "short"}, "malformed"),
        ({"redirect_uri": "http://127.0.0.1:8765/other"}, "redirect_uri"),
    ],
)
async def test_code_exchange_that_does_not_match_is_invalid_grant_and_burns_the_code(
    flow: CodeFlow, token_server: RunningServer, overrides: dict[str, str | None], why: str
) -> None:
    code = (await flow.sign_in())["code"][0]
    status, body = await flow.exchange(code, **overrides)
    assert (status, body["error"]) == (400, "invalid_grant")
    assert why in body["error_description"]
    status, body = await flow.exchange(code)  # the right request now comes too late
    assert (status, body["error"]) == (400, "invalid_grant")
    assert server_state(token_server).pkce_checked == 0


async def test_a_code_is_single_use(flow: CodeFlow) -> None:
    code = (await flow.sign_in())["code"][0]
    assert (await flow.exchange(code))[0] == 200
    status, body = await flow.exchange(code)
    assert (status, body["error"]) == (400, "invalid_grant")
    assert body["error_description"] == "code already used"


async def test_a_code_lives_sixty_seconds(flow: CodeFlow, clock: FakeClock) -> None:
    code = (await flow.sign_in())["code"][0]
    clock.now += 61
    status, body = await flow.exchange(code)
    assert (status, body["error_description"]) == (400, "code expired")


async def test_a_code_is_bound_to_its_client(flow: CodeFlow, token_server: RunningServer) -> None:
    state = server_state(token_server)
    code = (await flow.sign_in())["code"][0]
    state.client_id, state.client_secret = "other-client", "other-secret"
    status, body = await flow.exchange(code, client_id="other-client", client_secret="other-secret")
    assert (status, body["error"]) == (400, "invalid_grant")


async def test_wrong_password_shows_the_form_again_and_issues_nothing(
    flow: CodeFlow, token_server: RunningServer
) -> None:
    form = await flow.open()
    answer = await flow.submit(await form.text(), username="demo", password="guess")
    assert answer.status == 200
    page = parse_html(await answer.text())
    assert "Wrong username or password" in page.get_element_by_id("error").text_content()
    assert page.get_element_by_id("username").value == "demo"
    assert not server_state(token_server).codes


async def test_denying_redirects_with_access_denied(flow: CodeFlow) -> None:
    form = await flow.open()
    answer = await flow.submit(await form.text(), deny="1")
    assert answer.status == 302
    location = urlsplit(answer.headers["Location"])
    assert location._replace(query="").geturl() == CALLBACK
    params = parse_qs(location.query)
    assert params["error"] == ["access_denied"]
    assert params["error_description"]
    assert params["state"] == [flow.state]
    assert "code" not in params


async def test_fragment_mode_answers_in_the_fragment(
    flow: CodeFlow, token_server: RunningServer
) -> None:
    server_state(token_server).fragment_response = True
    form = await flow.open()
    answer = await flow.submit(await form.text(), **DEMO_ACCOUNT)
    location = urlsplit(answer.headers["Location"])
    assert location.query == ""
    params = parse_qs(location.fragment)
    assert params["state"] == [flow.state]
    assert (await flow.exchange(params["code"][0]))[0] == 200


async def test_iss_names_the_server_when_enabled(
    flow: CodeFlow, token_server: RunningServer
) -> None:
    server_state(token_server).send_iss = True
    assert (await flow.sign_in())["iss"] == [token_server.url]
    server_state(token_server).issuer = "https://issuer.example"
    assert (await flow.sign_in())["iss"] == ["https://issuer.example"]


async def test_redirect_keeps_the_redirect_uris_own_query(flow: CodeFlow) -> None:
    answer = await flow.sign_in(redirect_uri="http://localhost:9/cb?tenant=a")
    assert answer["tenant"] == ["a"] and answer["code"]


@pytest.mark.parametrize(
    "overrides",
    [
        {"client_id": "someone-else"},
        {"redirect_uri": "https://evil.example/cb"},
        {"redirect_uri": "http://evil.example:8765/cb"},
        {"redirect_uri": "http://user@127.0.0.1:8765/cb"},
        {"redirect_uri": None},
    ],
)
async def test_unknown_client_or_foreign_redirect_gets_a_page_never_a_redirect(
    flow: CodeFlow, overrides: dict[str, str | None]
) -> None:
    response = await flow.open(**overrides)
    assert response.status == 400
    assert "Location" not in response.headers


@pytest.mark.parametrize(
    "overrides",
    [
        {"code_challenge": None, "code_challenge_method": None},
        {"code_challenge_method": "plain"},
        {"response_type": "token"},
    ],
)
async def test_unacceptable_requests_are_sent_back_to_the_client(
    flow: CodeFlow, overrides: dict[str, str | None]
) -> None:
    response = await flow.open(**overrides)
    assert response.status == 302
    params = parse_qs(urlsplit(response.headers["Location"]).query)
    assert params["error"][0] in ("invalid_request", "unsupported_response_type")
    assert params["state"] == [flow.state]


async def test_without_required_pkce_a_verifier_is_refused(
    flow: CodeFlow, token_server: RunningServer
) -> None:
    server_state(token_server).require_pkce = False
    code = (await flow.sign_in(code_challenge=None, code_challenge_method=None))["code"][0]
    status, body = await flow.exchange(code)  # sends a verifier: a downgrade attempt
    assert (status, body["error"]) == (400, "invalid_grant")
    code = (await flow.sign_in(code_challenge=None, code_challenge_method=None))["code"][0]
    assert (await flow.exchange(code, code_verifier=None))[0] == 200


# --- device flow -------------------------------------------------------------------------------


class DeviceClient:
    """A device asking for a code and polling, and the person approving it at /device."""

    def __init__(self, server: RunningServer, session: aiohttp.ClientSession) -> None:
        self.server = server
        self.session = session

    async def start(self, **overrides: str) -> tuple[int, dict[str, Any]]:
        data = {**CLIENT, "scope": "orders:read", **overrides}
        url = f"{self.server.url}/oauth/device_authorization"
        async with self.session.post(url, data=data) as response:
            return response.status, await response.json()

    async def poll(self, device_code: str) -> tuple[int, dict[str, Any]]:
        data = {"grant_type": DEVICE_GRANT, "device_code": device_code, **CLIENT}
        async with self.session.post(f"{self.server.url}/oauth/token", data=data) as response:
            return response.status, await response.json()

    async def refused(self, device_code: str) -> tuple[int, str]:
        """Poll once; the status and the OAuth error code of the refusal."""
        status, body = await self.poll(device_code)
        return status, body.get("error", "")

    async def person(self, url: str, **fields: str) -> str:
        """Open `url` (the verification page), fill in `fields`, press a button; the page text."""
        async with self.session.get(url) as response:
            assert response.status == 200
            form = parse_html(await response.text()).forms[0]
        values = dict(form.form_values())
        values.update(fields)
        async with self.session.post(self.server.url + form.action, data=values) as response:
            assert response.status == 200
            return str(parse_html(await response.text()).text_content())


@pytest.fixture
def device(token_server: RunningServer, session: aiohttp.ClientSession) -> DeviceClient:
    return DeviceClient(token_server, session)


async def test_device_authorization_answer(
    device: DeviceClient, token_server: RunningServer
) -> None:
    status, body = await device.start()
    assert status == 200
    assert re.fullmatch(r"[B-Z]{4}-[B-Z]{4}", body["user_code"])
    assert not set(body["user_code"]) & set("AEIOU")
    assert body["verification_uri"] == f"{token_server.url}/device"
    assert body["verification_uri_complete"] == (
        f"{token_server.url}/device?user_code={body['user_code']}"
    )
    assert (body["expires_in"], body["interval"]) == (300, 1)
    assert body["device_code"] != body["user_code"]


async def test_device_authorization_needs_the_client(device: DeviceClient) -> None:
    status, body = await device.start(client_secret="wrong")
    assert (status, body["error"]) == (401, "invalid_client")


async def test_device_flow_pending_then_approved_at_the_device_page(
    device: DeviceClient, clock: FakeClock
) -> None:
    _, started = await device.start()
    clock.now += 1
    assert await device.refused(started["device_code"]) == (400, "authorization_pending")
    text = await device.person(
        started["verification_uri_complete"], action="approve", **DEMO_ACCOUNT
    )
    assert "Device connected" in text
    clock.now += 1
    status, tokens = await device.poll(started["device_code"])
    assert status == 200, tokens
    assert tokens["access_token"].startswith("at-") and tokens["scope"] == "orders:read"
    clock.now += 1
    assert await device.refused(started["device_code"]) == (400, "invalid_grant"), (
        "a device code is single use"
    )


async def test_device_page_accepts_a_typed_code_and_checks_the_password(
    device: DeviceClient, token_server: RunningServer
) -> None:
    _, started = await device.start()
    typed = started["user_code"].lower().replace("-", " ")
    text = await device.person(
        started["verification_uri"], user_code=typed, action="approve", username="demo"
    )
    assert "Wrong username or password" in text
    text = await device.person(started["verification_uri"], user_code="BBBB-BBBB", action="deny")
    assert "unknown, used or expired" in text
    state = server_state(token_server)
    assert state.devices[started["device_code"]].status == "pending"
    text = await device.person(
        started["verification_uri"], user_code=typed, action="approve", **DEMO_ACCOUNT
    )
    assert "Device connected" in text
    assert state.devices[started["device_code"]].status == "approved"


async def test_polling_faster_than_the_interval_is_slow_down_and_adds_five_seconds(
    device: DeviceClient, clock: FakeClock
) -> None:
    _, started = await device.start()
    clock.now += 0.5
    assert await device.refused(started["device_code"]) == (400, "slow_down")
    clock.now += 1  # the old interval is not enough any more
    assert await device.refused(started["device_code"]) == (400, "slow_down")
    clock.now += 11  # 1 + 5 + 5
    assert await device.refused(started["device_code"]) == (400, "authorization_pending")


async def test_forced_slow_down(
    device: DeviceClient, token_server: RunningServer, clock: FakeClock
) -> None:
    server_state(token_server).force_slow_down = 1
    _, started = await device.start()
    clock.now += 1
    assert await device.refused(started["device_code"]) == (400, "slow_down")
    clock.now += 6
    assert await device.refused(started["device_code"]) == (400, "authorization_pending")


async def test_denied_device_gets_access_denied(
    device: DeviceClient, token_server: RunningServer, clock: FakeClock
) -> None:
    _, started = await device.start()
    text = await device.person(started["verification_uri_complete"], action="deny")
    assert "denied" in text
    clock.now += 1
    assert await device.refused(started["device_code"]) == (400, "access_denied")


async def test_device_code_expires(
    device: DeviceClient, token_server: RunningServer, clock: FakeClock
) -> None:
    server_state(token_server).device_expires_in = 30
    _, started = await device.start()
    assert started["expires_in"] == 30
    clock.now += 30
    assert await device.refused(started["device_code"]) == (400, "expired_token")
    with pytest.raises(KeyError):
        server_state(token_server).approve_device(started["user_code"])


async def test_approve_device_helper(
    device: DeviceClient, token_server: RunningServer, clock: FakeClock
) -> None:
    _, started = await device.start()
    server_state(token_server).approve_device(started["user_code"])
    clock.now += 1
    assert (await device.poll(started["device_code"]))[0] == 200


def test_state_defaults_suit_tests() -> None:
    state = TokenServerState()
    assert (state.device_interval, state.code_lifetime_s, state.pkce_checked) == (1, 60.0, 0)
    assert not (state.fragment_response or state.send_iss)
