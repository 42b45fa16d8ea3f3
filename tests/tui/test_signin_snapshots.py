"""Snapshots of the sign-in screen at 80×24 and 120×40 on fixed data at a frozen time: the SSH
browser view (URL, `ssh -L` hint, paste field) and the device view (code and QR code). What the
screen says is checked against a real daemon in `test_signin.py`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta

import pytest
from textual.geometry import Offset
from textual.pilot import Pilot
from textual.selection import Selection

from apimd.client import ApiError
from apimd.model.api import SignInInfo, SignInList, SignInResult
from apimd.tui.screens.signin import SignInScreen
from apimd.tui.widgets.url_text import UrlText
from tests.tui.fakes import FROZEN, FakeClient
from tests.tui.test_snapshots import SIZES, SnapCompare, dashboard_loaded, snapshot_app, until

AUTHORIZE_URL = (
    "https://login.example.com/oauth/authorize?response_type=code&client_id=demo-client"
    "&redirect_uri=http%3A%2F%2F127.0.0.1%3A8765%2Ftokens%2Fcallback"
    "&state=q7Vx2mN4pL9Zk3vB8sW1cR5tY6uI0oP3aS7dF2gH4jK&scope=orders.read"
    "&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256"
)
DEVICE_URI = "https://login.example.com/device"
USER_CODE = "WDJB-MJHT"


class SignInFakeClient(FakeClient):
    """The fixed daemon of `fakes.py`, plus sign-ins that start and never end."""

    async def signin(self, name: str, *, mode: str = "browser") -> SignInInfo:
        if mode == "device":
            return SignInInfo(
                id="0c6f3d1e-device",
                url=f"{DEVICE_URI}?user_code={USER_CODE}",
                token=name,
                expires_at=FROZEN + timedelta(minutes=5),
                user_code=USER_CODE,
                verification_uri=DEVICE_URI,
            )
        return SignInInfo(
            id="0c6f3d1e-browser",
            url=AUTHORIZE_URL,
            token=name,
            expires_at=FROZEN + timedelta(minutes=10),
        )

    async def signins(self) -> SignInList:
        return SignInList(signins=[])

    async def complete_signin(self, url: str) -> SignInResult:
        raise ApiError(400, "signin_refused", "this answer matches no sign-in", [])


def open_signin(mode: str) -> Callable[[Pilot[None]], Awaitable[None]]:
    async def run_before(pilot: Pilot[None]) -> None:
        await dashboard_loaded(pilot)
        app = pilot.app
        screen = SignInScreen(
            app.client,  # type: ignore[attr-defined]
            "partner-token",
            mode="device" if mode == "device" else "browser",
            environ={"SSH_CONNECTION": "10.0.0.2 50122 10.0.0.9 22"},
            opener=lambda url: pytest.fail(f"opened a browser over SSH: {url}"),
            host="bastion.example.com",
        )
        await app.push_screen(screen)
        await until(pilot, lambda: screen.info is not None)
        await pilot.pause(0.15)

    return run_before


VIEWS = {"ssh_browser": open_signin("browser"), "device": open_signin("device")}


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("view", list(VIEWS))
def test_signin(snap_compare: SnapCompare, view: str, size: tuple[int, int]) -> None:
    app = snapshot_app(SignInFakeClient())
    assert snap_compare(app, terminal_size=size, run_before=VIEWS[view])


async def test_the_folded_sign_in_address_copies_as_one_line() -> None:
    app = snapshot_app(SignInFakeClient())
    async with app.run_test(size=(80, 24)) as pilot:
        await open_signin("browser")(pilot)
        shown = app.screen.query_one("#signin-url", UrlText)
        lines = [strip.text.rstrip() for strip in shown.render_lines(shown.region.reset_offset)]
        lines = [line for line in lines if line]
        assert len(lines) >= 4 and "".join(lines) == AUTHORIZE_URL  # folded on screen
        # A drag from the first character to the end of the last line, as a mouse would.
        app.screen.selections = {
            shown: Selection.from_offsets(Offset(0, 0), Offset(len(lines[-1]), len(lines) - 1))
        }
        assert app.screen.get_selected_text() == AUTHORIZE_URL
        # From the middle of the second line to the middle of the third: that part of it.
        app.screen.selections = {shown: Selection.from_offsets(Offset(10, 1), Offset(5, 2))}
        width = len(lines[0])
        assert app.screen.get_selected_text() == AUTHORIZE_URL[width + 10 : 2 * width + 5]
        assert app.clipboard == AUTHORIZE_URL  # over SSH: already copied with OSC 52
        app.copy_to_clipboard("")
        await pilot.press("ctrl+y")
        assert app.clipboard == AUTHORIZE_URL
