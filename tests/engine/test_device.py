"""Device sign-in (RFC 8628) against the real demo authorization server: the engine waits the
interval between polls, keeps polling while pending, slows down by 5 s when told, backs off when
the server is unreachable, and stops on expired_token and access_denied."""

from __future__ import annotations

import socket
from collections.abc import Callable

import pytest

from apimd.demo.server import RunningServer, TokenServerState
from apimd.engine.device import (
    DeviceAuthorization,
    poll_device_token,
    start_device_authorization,
)
from apimd.engine.http import HttpExecutor
from apimd.engine.oauth2 import OAuthError, token_variables
from apimd.engine.template import Scope
from apimd.model.resources import AuthSetting
from tests.conftest import server_state


class FakeTime:
    """One clock for the server and the poller; `sleep` records the wait, moves the clock and,
    just before a chosen poll, does what the person would do."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.waits: list[float] = []
        self.before_poll: dict[int, Callable[[], None]] = {}

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds
        action = self.before_poll.get(len(self.waits))
        if action:
            action()


@pytest.fixture
def fake_time(token_server: RunningServer) -> FakeTime:
    fake = FakeTime()
    server_state(token_server).clock = fake.clock
    return fake


@pytest.fixture
def http(executor: HttpExecutor) -> HttpExecutor:
    return executor


def device_auth(base: str, *, token_url: str | None = None, **extra: object) -> AuthSetting:
    return AuthSetting.model_validate(
        {
            "name": "demo-device",
            "type": "oauth2",
            "grant": "device_code",
            "device_authorization_url": f"{base}/oauth/device_authorization",
            "token_url": token_url or f"{base}/oauth/token",
            "client_id": "demo-client",
            "client_secret": "%%SECRET%%",
            "scopes": ["orders:read"],
            **extra,
        }
    )


SCOPE = Scope({"SECRET": "demo-secret"})


async def start_and_poll(
    http: HttpExecutor, auth: AuthSetting, fake_time: FakeTime
) -> tuple[DeviceAuthorization, dict[str, object]]:
    device = await start_device_authorization(http, auth, SCOPE)
    payload = await poll_device_token(
        http, auth, device, SCOPE, sleep=fake_time.sleep, clock=fake_time.clock
    )
    return device, payload


def approve(state: TokenServerState) -> Callable[[], None]:
    return lambda: state.approve_device(next(iter(state.devices.values())).user_code)


async def test_start_gives_what_the_person_needs(
    http: HttpExecutor, token_server: RunningServer
) -> None:
    device = await start_device_authorization(http, device_auth(token_server.url), SCOPE)
    assert device.verification_uri == f"{token_server.url}/device"
    assert device.verification_uri_complete == (
        f"{token_server.url}/device?user_code={device.user_code}"
    )
    assert len(device.user_code) == 9 and device.user_code[4] == "-"
    assert (device.expires_in, device.interval) == (300, 1)
    grant = server_state(token_server).devices[device.device_code]
    assert grant.scope == "orders:read", "the auth's scopes are asked for"


async def test_pending_until_approved_then_tokens(
    http: HttpExecutor, token_server: RunningServer, fake_time: FakeTime
) -> None:
    state = server_state(token_server)
    fake_time.before_poll[3] = approve(state)  # the person approves after two polls
    _, payload = await start_and_poll(http, device_auth(token_server.url), fake_time)
    assert fake_time.waits == [1, 1, 1]
    assert state.grants.count("urn:ietf:params:oauth:grant-type:device_code") == 3
    variables = token_variables(payload)
    assert variables["ACCESS_TOKEN"].startswith("at-")
    assert variables["REFRESH_TOKEN"].startswith("rt-")
    assert state.valid(variables["ACCESS_TOKEN"])


async def test_client_auth_in_the_body_works_too(
    http: HttpExecutor, token_server: RunningServer, fake_time: FakeTime
) -> None:
    state = server_state(token_server)
    fake_time.before_poll[1] = approve(state)
    auth = device_auth(token_server.url, client_auth="body")
    _, payload = await start_and_poll(http, auth, fake_time)
    assert payload["access_token"]


async def test_slow_down_adds_five_seconds_for_good(
    http: HttpExecutor, token_server: RunningServer, fake_time: FakeTime
) -> None:
    state = server_state(token_server)
    state.force_slow_down = 1
    fake_time.before_poll[4] = approve(state)
    await start_and_poll(http, device_auth(token_server.url), fake_time)
    # The server also enforces the longer interval: a poll after 1 s would be slow_down again.
    assert fake_time.waits == [1, 6, 6, 6]


async def test_access_denied_raises(
    http: HttpExecutor, token_server: RunningServer, fake_time: FakeTime
) -> None:
    state = server_state(token_server)
    fake_time.before_poll[2] = lambda: state.deny_device(
        next(iter(state.devices.values())).user_code
    )
    with pytest.raises(OAuthError) as raised:
        await start_and_poll(http, device_auth(token_server.url), fake_time)
    assert raised.value.error == "access_denied"
    assert not raised.value.needs_sign_in
    assert fake_time.waits == [1, 1]


async def test_expired_token_from_the_server_raises(
    http: HttpExecutor, token_server: RunningServer, fake_time: FakeTime
) -> None:
    state = server_state(token_server)

    def expire() -> None:  # the server forgets sooner than it said
        for grant in state.devices.values():
            grant.expires_at = fake_time.now

    fake_time.before_poll[2] = expire
    with pytest.raises(OAuthError) as raised:
        await start_and_poll(http, device_auth(token_server.url), fake_time)
    assert (raised.value.error, raised.value.status) == ("expired_token", 400)


async def test_gives_up_after_expires_in(
    http: HttpExecutor, token_server: RunningServer, fake_time: FakeTime
) -> None:
    state = server_state(token_server)
    state.device_expires_in = 3
    with pytest.raises(OAuthError) as raised:
        await start_and_poll(http, device_auth(token_server.url), fake_time)
    assert raised.value.error == "expired_token"
    assert "3 s" in str(raised.value)
    assert fake_time.waits == [1, 1, 1]
    assert len(state.grants) == 2, "no poll after the deadline"


async def test_unreachable_token_endpoint_backs_off_until_expiry(
    http: HttpExecutor, token_server: RunningServer, fake_time: FakeTime
) -> None:
    server_state(token_server).device_expires_in = 10
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    auth = device_auth(token_server.url, token_url=f"http://127.0.0.1:{closed}/oauth/token")
    with pytest.raises(OAuthError) as raised:
        await start_and_poll(http, auth, fake_time)
    assert raised.value.error == "expired_token"
    assert fake_time.waits == [1, 2, 4, 8]


async def test_refused_client_raises_at_start(
    http: HttpExecutor, token_server: RunningServer
) -> None:
    auth = device_auth(token_server.url, client_secret="wrong")
    with pytest.raises(OAuthError) as raised:
        await start_device_authorization(http, auth, SCOPE)
    assert (raised.value.error, raised.value.status) == ("invalid_client", 401)


async def test_other_errors_stop_polling(
    http: HttpExecutor, token_server: RunningServer, fake_time: FakeTime
) -> None:
    state = server_state(token_server)
    fake_time.before_poll[2] = lambda: setattr(state, "fail_next", 1)
    with pytest.raises(OAuthError) as raised:
        await start_and_poll(http, device_auth(token_server.url), fake_time)
    assert (raised.value.error, raised.value.status) == ("temporarily_unavailable", 503)
    assert fake_time.waits == [1, 1]
