"""Through the whole engine: `aws_sigv4` verified by a server using botocore, `multipart`
bodies and `api_key` in a cookie (SPEC §2, §10)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from unittest import mock

import botocore.auth
import pytest
from aiohttp import web
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from apimd.engine.memory import MemoryStateStore
from apimd.engine.runner import Engine
from apimd.model import Outcome
from tests.support.engine import run_once
from tests.support.projects import build
from tests.support.web import CatchAllApi

SECRET_KEY = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"


class AwsLikeApi(CatchAllApi):
    """Answers 200 only when botocore, given what arrived, computes the same signature."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []
        super().__init__()

    async def handle(self, request: web.Request) -> web.Response:
        if request.path.startswith("/form"):
            form = await request.post()
            upload = form.get("doc")
            return web.json_response(
                {
                    "note": form.get("note"),
                    "file": upload.file.read().decode()
                    if upload is not None and hasattr(upload, "file")
                    else None,
                    "filename": getattr(upload, "filename", None),
                    "type": getattr(upload, "content_type", None),
                }
            )
        body = await request.read()
        self.seen.append({"headers": dict(request.headers), "body": body})
        if request.path.startswith("/cookie"):
            return web.json_response({"cookies": dict(request.cookies)})
        if request.path.startswith("/moved/"):  # same origin: the next hop is signed afresh
            raise web.HTTPTemporaryRedirect(request.path.replace("/moved/", "/prod/", 1))
        authorization = request.headers.get("Authorization", "")
        signed = authorization.split("SignedHeaders=")[1].split(",")[0].split(";")
        aws = AWSRequest(
            method=request.method,
            url=f"http://{request.host}{request.raw_path.split('?')[0]}",
            params=list(request.query.items()),
            headers={
                k: v
                for k, v in request.headers.items()
                if k.lower() in signed and k.lower() != "host"
            },
            data=body,
        )
        token = request.headers.get("X-Amz-Security-Token")
        signer = botocore.auth.SigV4Auth(
            Credentials("AKIDEXAMPLE", SECRET_KEY, token), "execute-api", "eu-west-1"
        )
        when = datetime.strptime(request.headers["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(
            tzinfo=UTC
        )
        with mock.patch.object(botocore.auth, "get_current_datetime", return_value=when):
            signer.add_auth(aws)
        if aws.headers["Authorization"] != authorization:
            return web.json_response({"error": "signature mismatch"}, status=403)
        return web.json_response({"ok": True})


@pytest.fixture
async def api() -> AsyncIterator[AwsLikeApi]:
    async with AwsLikeApi() as server:
        yield server


async def run(doc: dict[str, Any], name: str) -> Any:
    return await run_once(Engine(build(doc), MemoryStateStore()), name)


@pytest.mark.parametrize("session_token", [None, "session/token+value=="])
async def test_aws_sigv4_calls_are_accepted_by_botocore(
    api: AwsLikeApi, session_token: str | None
) -> None:
    auth: dict[str, Any] = {
        "name": "aws",
        "type": "aws_sigv4",
        "access_key_id": "AKIDEXAMPLE",
        "secret_access_key": SECRET_KEY,
        "region": "eu-west-1",
        "service": "execute-api",
    }
    if session_token:
        auth["session_token"] = session_token
    doc = {
        "auth": [auth],
        "calls": [
            {
                "name": "put-item",
                "method": "PUT",
                "url": f"{api.server.url}/moved/items/a b/é",
                "params": {"tag": "x", "Tag": "y&z"},
                "json": {"name": "widget"},
                "auth": "aws",
                "conditions": [{"source": "status", "op": "eq", "value": 200}],
            }
        ],
    }
    result = await run(doc, "put-item")
    assert result.outcome == Outcome.PASS, result.response
    assert result.request.url.endswith("/moved/items/a%20b/%C3%A9?tag=x&Tag=y%26z")
    recorded = dict(result.request.headers)
    assert recorded["Authorization"] == "••••"
    assert "X-Amz-Date" in recorded
    dumped = result.model_dump_json()
    assert SECRET_KEY not in dumped
    if session_token:
        assert session_token not in dumped
        assert api.seen[-1]["headers"]["X-Amz-Security-Token"] == session_token


async def test_multipart_sends_text_fields_and_files(api: AwsLikeApi, tmp_path: Path) -> None:
    upload = tmp_path / "report.csv"
    upload.write_text("a,b\n1,2\n")
    doc = {
        "variables": {"NOTE": 'hello "quoted" 𝄞'},
        "calls": [
            {
                "name": "upload",
                "method": "POST",
                "url": f"{api.server.url}/form",
                "multipart": {
                    "note": "%%NOTE%%",
                    "doc": {"file": str(upload), "content_type": "text/csv"},
                },
                "conditions": [
                    {"source": "json", "path": "note", "op": "eq", "value": 'hello "quoted" 𝄞'},
                    {"source": "json", "path": "file", "op": "eq", "value": "a,b\n1,2\n"},
                    {"source": "json", "path": "filename", "op": "eq", "value": "report.csv"},
                    {"source": "json", "path": "type", "op": "eq", "value": "text/csv"},
                ],
            }
        ],
    }
    result = await run(doc, "upload")
    assert result.outcome == Outcome.PASS, list(result.conditions)


async def test_multipart_missing_file_is_a_setup_error_naming_it(
    api: AwsLikeApi, tmp_path: Path
) -> None:
    doc = {
        "calls": [
            {
                "name": "upload",
                "method": "POST",
                "url": f"{api.server.url}/form",
                "multipart": {"doc": {"file": str(tmp_path / "missing.bin")}},
            }
        ]
    }
    result = await run(doc, "upload")
    assert result.result == "SETUP_ERROR"
    assert "multipart.doc" in result.error and "missing.bin" in result.error


async def test_api_key_in_a_cookie_joins_the_call_cookies(api: AwsLikeApi) -> None:
    doc = {
        "auth": [
            {
                "name": "k",
                "type": "api_key",
                "key_name": "sid",
                "key_value": "cookie-secret-42",
                "in": "cookie",
            }
        ],
        "calls": [
            {
                "name": "c",
                "url": f"{api.server.url}/cookie",
                "headers": {"Cookie": "theme=dark"},
                "auth": "k",
                "conditions": [
                    {
                        "source": "json",
                        "path": "cookies.sid",
                        "op": "eq",
                        "value": "cookie-secret-42",
                    },
                    {"source": "json", "path": "cookies.theme", "op": "eq", "value": "dark"},
                ],
            }
        ],
    }
    result = await run(doc, "c")
    assert result.outcome == Outcome.PASS, result.conditions
    assert "cookie-secret-42" not in result.model_dump_json()
