"""The socket client: the one way the CLI and the TUI talk to the daemon (model types in and out)."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import stat
import struct
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import aiohttp
from pydantic import BaseModel

from apimd.model.api import (
    AgentList,
    ApplySummary,
    CompleteSignInRequest,
    ErrorBody,
    ErrorDetail,
    Health,
    ResultPage,
    RunAccepted,
    RunRequest,
    SignInInfo,
    SignInList,
    SignInRequest,
    SignInResult,
    StatusInfo,
    Summary,
    SummaryOrder,
    parse_summary,
)
from apimd.model.common import file_kind
from apimd.model.events import Event, decode_event
from apimd.model.kinds import ResourceKind
from apimd.model.project import Project
from apimd.model.resources import Token
from apimd.model.result import Result
from apimd.model.stats import Stats

M = TypeVar("M", bound=BaseModel)
MAX_EVENT_LINE = 64 * 1024 * 1024
"""The longest line of the event stream read (a `resource.changed` of a huge apply is long)."""


class DaemonUnavailable(Exception):
    """No daemon answers on the socket."""

    def __init__(self, socket_path: Path, reason: str) -> None:
        super().__init__(
            f"no apimd daemon is answering on {socket_path} ({reason}); start one with `apimd start`"
        )
        self.socket_path = socket_path


class NotOurDaemon(DaemonUnavailable):
    """What answers on the socket is not this user's daemon; nothing was sent to it."""

    def __init__(self, socket_path: Path, reason: str, *, planted: bool = True) -> None:
        why = (
            "Another user may have put it there to read what apimd sends (secrets included); "
            "nothing was sent. Remove it, or set APIMD_SOCKET or APIMD_HOME to a folder only you "
            "can write to"
            if planted
            else "Nothing was sent. Move it away, or set APIMD_SOCKET (or APIMD_HOME) to "
            "another path"
        )
        Exception.__init__(self, f"refusing to talk to {socket_path}: {reason}. {why}")
        self.socket_path = socket_path


class _ForeignSocket(aiohttp.ClientConnectionError):
    def __init__(self, reason: str, *, planted: bool = True) -> None:
        super().__init__(reason)
        self.reason = reason
        self.planted = planted


class _OwnUserConnector(aiohttp.UnixConnector):
    """Connects only to a socket file of this user, served by a process of this user
    (SO_PEERCRED): a socket swapped by another user gets no byte of a request."""

    async def _create_connection(self, *args: Any, **kwargs: Any) -> Any:
        uid = os.getuid()
        try:
            info = os.lstat(self.path)
        except FileNotFoundError:
            info = None  # let the connection fail as usual
        if info is not None and (not stat.S_ISSOCK(info.st_mode) or info.st_uid != uid):
            theirs = info.st_uid != uid
            reasons = (
                []
                if stat.S_ISSOCK(info.st_mode)
                else [f"it is {file_kind(info.st_mode)}, not a socket"]
            )
            if theirs:
                reasons.append(f"it belongs to uid {info.st_uid}, not to you (uid {uid})")
            raise _ForeignSocket("; ".join(reasons), planted=theirs)
        protocol = await super()._create_connection(*args, **kwargs)
        sock = protocol.transport.get_extra_info("socket") if protocol.transport else None
        if sock is not None:
            creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
            peer = struct.unpack("3i", creds)[1]
            if peer != uid:
                protocol.close()
                raise _ForeignSocket(f"the process answering runs as uid {peer}, not as you")
        return protocol


class ApiError(Exception):
    """The daemon refused a request (4xx) and said why."""

    def __init__(self, status: int, code: str, message: str, errors: list[ErrorDetail]) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.errors = errors

    def __str__(self) -> str:
        lines = [self.message]
        for err in self.errors:
            where = err.field or ""
            if err.resource:
                where = f"{where} ({err.resource})" if where else err.resource
            if err.line:
                where = f"line {err.line}: {where}"
            lines.append(f"  {where}: {err.message}" if where else f"  {err.message}")
        return "\n".join(lines)


class Client:
    """An aiohttp session over the daemon's Unix socket. Use as an async context manager."""

    def __init__(self, socket_path: Path, *, timeout: float = 60.0) -> None:
        self.socket_path = socket_path
        self._timeout = timeout
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=_OwnUserConnector(path=str(self.socket_path)),
                base_url="http://apimd",
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=5),
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        body: Any = None,
        timeout: float | None = None,  # noqa: ASYNC109 - a per-request HTTP timeout
        raw: bool = False,
    ) -> Any:
        """The response's JSON, decoded; with `raw`, a successful response's text as it came
        (for a large body the caller decodes off the event loop)."""
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if data is not None else {}
        try:
            async with self._http().request(
                method,
                path,
                params=params,
                data=data,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=timeout or self._timeout),
            ) as response:
                if raw and response.status < 400:
                    return await response.text()
                payload = _json(response.status, await response.text(errors="replace"))
                if response.status >= 400:
                    raise _api_error(response.status, payload)
                return payload
        except _ForeignSocket as exc:
            raise NotOurDaemon(self.socket_path, exc.reason, planted=exc.planted) from None
        except (aiohttp.ClientConnectionError, FileNotFoundError, ConnectionRefusedError) as exc:
            raise DaemonUnavailable(self.socket_path, str(exc) or type(exc).__name__) from None

    # --- daemon ---------------------------------------------------------------------------

    async def health(self) -> Health:
        return Health.model_validate(await self._request("GET", "/v1/health", timeout=5))

    async def status(self) -> StatusInfo:
        return StatusInfo.model_validate(await self._request("GET", "/v1/status", timeout=10))

    async def agents(self) -> AgentList:
        """The live agents sharing this daemon's store (SPEC §13)."""
        return AgentList.model_validate(await self._request("GET", "/v1/agents", timeout=10))

    # --- resources ------------------------------------------------------------------------

    async def list(self, kind: str) -> list[BaseModel]:
        model = ResourceKind(kind).model
        payload = await self._request("GET", f"/v1/{kind}")
        return [model.model_validate(item) for item in payload["items"]]

    async def get(self, kind: str, name: str, *, reveal: bool = False) -> BaseModel:
        params = {"reveal": "true"} if reveal else None
        payload = await self._request("GET", f"/v1/{kind}/{_seg(name)}", params=params)
        return ResourceKind(kind).model.model_validate(payload)

    async def put(self, kind: str, name: str, resource: BaseModel | dict[str, Any]) -> BaseModel:
        body = _dump(resource)
        payload = await self._request("PUT", f"/v1/{kind}/{_seg(name)}", body=body)
        return ResourceKind(kind).model.model_validate(payload)

    async def delete(self, kind: str, name: str) -> None:
        await self._request("DELETE", f"/v1/{kind}/{_seg(name)}")

    async def apply(
        self, project: Project | dict[str, Any], *, prune: bool = False
    ) -> ApplySummary:
        params = {"prune": "true"} if prune else None
        payload = await self._request("POST", "/v1/apply", params=params, body=_dump(project))
        return ApplySummary.model_validate(payload)

    async def export(self, *, secrets: bool = False) -> dict[str, Any]:
        params = {"secrets": "true"} if secrets else None
        payload: dict[str, Any] = await self._request("GET", "/v1/export", params=params)
        return payload

    # --- runs and results -----------------------------------------------------------------

    async def run(
        self,
        kind: str,
        name: str,
        *,
        variables: dict[str, str] | None = None,
        interactive: bool = False,
        wait: bool = False,
        location: str | None = None,
    ) -> RunAccepted:
        body = RunRequest(
            variables=variables or {}, interactive=interactive, wait=wait, location=location
        )
        payload = await self._request(
            "POST",
            f"/v1/{kind}/{_seg(name)}/run",
            body=body.model_dump(),
            timeout=3600 if wait else None,
        )
        return RunAccepted.model_validate(payload)

    async def results(
        self,
        *,
        name: str | None = None,
        outcome: str | None = None,
        since: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> ResultPage:
        query = {"name": name, "outcome": outcome, "since": since, "cursor": cursor}
        params = {k: v for k, v in query.items() if v is not None}
        if limit is not None:
            params["limit"] = str(limit)
        return ResultPage.model_validate(await self._request("GET", "/v1/results", params=params))

    async def result(self, result_id: str) -> Result:
        return Result.model_validate(await self._request("GET", f"/v1/results/{_seg(result_id)}"))

    async def summary(
        self, *, window: str = "24h", order: SummaryOrder = "project", limit: int | None = None
    ) -> Summary:
        """Every call and workflow at a glance: latest outcome, recent latencies, uptime. With
        `limit`, only the first `limit` in `order` (`Summary.complete` says whether that was
        all)."""
        params = {"window": window, "order": order}
        if limit is not None:
            params["limit"] = str(limit)
        text = await self._request("GET", "/v1/summary", params=params, raw=True)
        return await asyncio.to_thread(parse_summary, text)  # 10,000 targets: ~0.07 s of CPU

    async def stats(self, name: str, *, window: str = "24h") -> Stats:
        payload = await self._request("GET", f"/v1/stats/{_seg(name)}", params={"window": window})
        return Stats.model_validate(payload)

    # --- tokens and sign-in ---------------------------------------------------------------

    async def refresh_token(self, name: str) -> Token:
        payload = await self._request("POST", f"/v1/tokens/{_seg(name)}/refresh", timeout=120)
        return Token.model_validate(payload)

    async def signin(self, name: str, *, mode: str = "browser") -> SignInInfo:
        """Start a sign-in for token `name`: the URL to open (or the device code to enter)."""
        body = SignInRequest.model_validate({"mode": mode}).model_dump()
        payload = await self._request("POST", f"/v1/tokens/{_seg(name)}/signin", body=body)
        return SignInInfo.model_validate(payload)

    async def signins(self) -> SignInList:
        return SignInList.model_validate(await self._request("GET", "/v1/signins"))

    async def complete_signin(self, url: str) -> SignInResult:
        """Finish a sign-in from the final redirect URL pasted from the browser."""
        body = CompleteSignInRequest(url=url).model_dump()
        payload = await self._request("POST", "/v1/signins/complete", body=body)
        return SignInResult.model_validate(payload)

    # --- events ---------------------------------------------------------------------------

    async def events(self) -> AsyncIterator[Event]:
        """The daemon's events, typed, until it closes the stream. A frame whose data is no JSON
        object is skipped; one this client cannot read (a newer type) is an `UnknownEvent`."""
        try:
            async with self._http().get(
                "/v1/events", timeout=aiohttp.ClientTimeout(total=None, sock_read=None)
            ) as response:
                if response.status >= 400:
                    text = await response.text(errors="replace")
                    raise _api_error(response.status, _json(response.status, text))
                data_lines: list[str] = []
                async for line in _lines(response.content):
                    if not line:
                        if data_lines and (event := decode_event("\n".join(data_lines))):
                            yield event
                        data_lines = []
                    elif line.startswith("data:"):
                        data_lines.append(line[5:].lstrip())
        except _ForeignSocket as exc:
            raise NotOurDaemon(self.socket_path, exc.reason, planted=exc.planted) from None
        except (aiohttp.ClientError, FileNotFoundError, ConnectionRefusedError) as exc:
            # A daemon that dies mid-stream ends it with a payload error: the same to callers.
            raise DaemonUnavailable(self.socket_path, str(exc) or type(exc).__name__) from None


async def _lines(content: aiohttp.StreamReader) -> AsyncIterator[str]:
    """The complete lines of an event stream, without their line ends. Unlike aiohttp's line
    reader (which fails on a line over 128 KiB) a long line is read whole, up to `MAX_EVENT_LINE`;
    a longer one is dropped (its frame then does not parse and is skipped)."""
    buffer = bytearray()
    dropping = False
    async for chunk in content.iter_any():
        scanned = len(buffer)  # the partial line kept from the last chunk has no line end
        buffer += chunk
        start = 0
        while (end := buffer.find(b"\n", max(start, scanned))) != -1:
            if not dropping and end - start <= MAX_EVENT_LINE:
                yield buffer[start:end].decode(errors="replace").rstrip("\r")
            dropping = False
            start = end + 1
        del buffer[:start]  # once a chunk: a burst of small frames is not copied per line
        if len(buffer) > MAX_EVENT_LINE:
            buffer.clear()
            dropping = True


def _seg(name: str) -> str:
    """A name as one URL path segment."""
    return quote(name, safe="")


def _dump(value: BaseModel | dict[str, Any]) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", by_alias=True, exclude_none=True)
    return value


def _json(status: int, text: str) -> Any:
    """The JSON of an answer (None when empty); an `ApiError` with its status and first line
    when it is not JSON, as aiohttp's own plain-text 400 for a request line over 8190 bytes."""
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        first = (text.strip().splitlines() or [""])[0]
        if len(first) > 200:
            first = first[:200] + "…"
        raise ApiError(
            status, "http_error", f"the daemon answered HTTP {status}, not JSON: {first}", []
        ) from None


def _api_error(status: int, payload: Any) -> ApiError:
    try:
        info = ErrorBody.model_validate(payload).error
    except ValueError:
        return ApiError(status, "http_error", f"the daemon answered HTTP {status}", [])
    return ApiError(status, info.code, info.message, info.errors)
