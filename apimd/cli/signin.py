"""`apimd token signin NAME [--device]` and interactive `apimd run` through the daemon."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from pathlib import Path

from apimd.cli import UsageError
from apimd.cli.browser import present_url, wait_with_paste
from apimd.client import ApiError, Client
from apimd.model.api import SignInInfo
from apimd.model.events import SignInEnded, SignInOpened
from apimd.settings import Settings

SIGNIN_OPEN_WAIT_S = 2.0


async def _wait_for_done(client: Client, signin_id: str | None, token: str | None) -> SignInEnded:
    async for event in client.events():
        if not isinstance(event, SignInEnded):
            continue
        if signin_id and event.id != signin_id:
            continue
        if not signin_id and token and event.token != token:
            continue
        return event
    raise UsageError("the daemon stopped before the sign-in finished")


async def wait_for_signin(
    socket_path: Path, info: SignInInfo, events_client: Client, callback_url: str | None
) -> int:
    """Show the URL (or device code), then wait for signin.done or a pasted URL (finished
    through the daemon on `socket_path`)."""
    waiter = asyncio.create_task(_wait_for_done(events_client, info.id, info.token))
    await asyncio.sleep(0.1)  # let the event stream connect before the person can finish
    if info.user_code:
        print(f"\nOn any device, open {info.verification_uri} and enter the code:\n")
        print(f"    {info.user_code}\n")
        sys.stdout.flush()
    else:
        present_url(str(info.url), callback_url)

    async def complete(url: str) -> None:
        async with Client(socket_path) as client:
            await client.complete_signin(url)

    done = await wait_with_paste(waiter, complete, ApiError)
    if done is None:
        return 1
    if done.ok:
        expiry = f" (valid until {done.expires_at.isoformat()})" if done.expires_at else ""
        print(f"Signed in: {done.message}{expiry}")
        return 0
    print(f"Sign-in failed: {done.message}", file=sys.stderr)
    return 1


async def token_signin_command(settings: Settings, name: str, device: bool) -> int:
    async with Client(settings.socket_path) as client, Client(settings.socket_path) as events:
        status = await client.status()
        try:
            info = await client.signin(name, mode="device" if device else "browser")
        except ApiError as exc:
            if exc.status == 404:
                raise UsageError(f"the daemon has no token named {name!r}") from None
            raise UsageError(str(exc)) from None
        return await wait_for_signin(
            settings.socket_path,
            info,
            events,
            status.callback_url if status.callback_bound else None,
        )


async def run_interactive(
    settings: Settings, client: Client, kind: str, name: str, variables: dict[str, str]
) -> int:
    """Run through the daemon as a person at a terminal: a browser step opens the sign-in and
    the run goes on when the browser comes back."""
    from apimd.cli.output import print_result

    status = await client.status()
    async with Client(settings.socket_path) as events:
        opened: dict[str, SignInOpened] = {}  # run id -> its signin.open event
        arrived = asyncio.Event()

        async def watch() -> None:
            async for event in events.events():
                if isinstance(event, SignInOpened) and event.run_id:
                    opened[event.run_id] = event
                    arrived.set()

        watcher = asyncio.create_task(watch())
        await asyncio.sleep(0.05)
        try:
            accepted = await client.run(
                kind, name, variables=variables, interactive=True, wait=True
            )
            assert accepted.result is not None
            print_result(accepted.result, as_json=False)
            if accepted.result.result.value == "BROWSER":
                # The run's answer may overtake its signin.open event.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(SIGNIN_OPEN_WAIT_S):
                        while accepted.run_id not in opened:
                            arrived.clear()
                            await arrived.wait()
        finally:
            watcher.cancel()
        event = opened.get(accepted.run_id)
        if event is None:
            return 0 if accepted.result.outcome.is_success else 1
        # The event's URL is redacted like the run's result; the pending sign-in has it in full.
        pending = await client.signins()
        info = next(
            (s for s in pending.signins if s.id == event.id),
            SignInInfo.model_validate(event, from_attributes=True),
        )
        callback = status.callback_url if status.callback_bound else None
        async with Client(settings.socket_path) as waiter:
            return await wait_for_signin(settings.socket_path, info, waiter, callback)
