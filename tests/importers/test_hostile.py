"""Hostile and careless input to `apimd import`: nothing read from disk or the network, no header
injection, no secret in clear, a clear exit 2 instead of a traceback or a hang."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from textual.app import App
from textual.widgets import Static

from apimd.importers import ImportFailed, import_text
from apimd.tui.screens.importer import ImportScreen
from tests.importers.support import imported, load, run_target
from tests.support.web import app_of


def _apimd(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "apimd", "import", *args],
        input=stdin,
        capture_output=True,
        timeout=60,
        env={**os.environ},
        check=False,
    )


@pytest.mark.parametrize(
    ("option", "value"),
    [("-T", "/etc/passwd"), ("-K", "/etc/curlrc"), ("--upload-file", "/etc/passwd")]
    + [("--config", "cfg"), ("--capath", "/etc/ssl/certs"), ("-x", "http://proxy:3128")]
    + [("--variable", "%HOME"), ("--expand-data", "{{HOME}}")],
)
def test_curl_option_values_are_not_taken_for_the_url(option: str, value: str) -> None:
    result = imported("curl", f"curl {option} {value} https://api.example.com/up")
    assert [c["url"] for c in result.document["calls"]] == ["https://api.example.com/up"]
    assert f"curl command 1: option {option} is not translated" in result.untranslated[0]
    assert not any("extra URL" in line for line in result.untranslated)


@pytest.mark.parametrize(
    "args", ["--json @/etc/shadow", "--data-urlencode secret@/etc/shadow", "--data-binary @-"]
)
def test_curl_bodies_from_files_are_listed_never_sent_as_text(args: str) -> None:
    result = imported("curl", f"curl {args} https://api.example.com/x")
    call = result.document["calls"][0]
    assert "/etc/shadow" not in json.dumps(call) and "@-" not in json.dumps(call)
    assert any("from file" in line and "not translated" in line for line in result.untranslated)


def test_header_injection_is_refused_in_every_format() -> None:
    curl = imported("curl", "curl -H $'X-A: b\\r\\nEvil: 1' -H $'X-\\0B: c' https://h.example/")
    assert "headers" not in curl.document["calls"][0]
    assert curl.untranslated == [
        "curl command 1 (call get-h.example): header 'X-A' has a line break or control "
        "character in its value: not translated",
        "curl command 1 (call get-h.example): header 'X-\\x00B' is not a valid header name: "
        "not translated",
    ]
    har = {
        "log": {
            "entries": [
                {
                    "request": {
                        "method": "GET",
                        "url": "https://h.example/a\r\nX-Injected: 1",
                        "headers": [
                            {"name": "X-Evil\r\nInjected", "value": "1"},
                            {"name": "X-Ok", "value": "fine"},
                        ],
                    },
                    "response": {"status": 200},
                }
            ]
        }
    }
    result = imported("har", json.dumps(har))
    call = result.document["calls"][0]
    assert call["headers"] == {"X-Ok": "fine"}
    assert call["url"] == "https://h.example/a%0D%0AX-Injected:%201"
    load(result)  # applies as it is


def test_passwords_in_urls_become_secret_variables() -> None:
    result = imported("curl", "curl https://bob:pa55w0rd@api.example.com/a")
    assert "pa55w0rd" not in result.yaml
    assert result.document["calls"][0]["url"] == "https://bob:{{URL_PASSWORD}}@api.example.com/a"
    assert "secret variable URL_PASSWORD" in result.secrets[0]
    collection = {
        "info": {"schema": "https://schema.getpostman.com/json/collection/v2.1.0/"},
        "variable": [{"key": "baseUrl", "value": "https://bob:pa55w0rd@api.example.com"}],
        "item": [{"name": "a", "request": "{{baseUrl}}/a"}],
    }
    postman = imported("postman", json.dumps(collection))
    assert "pa55w0rd" not in postman.yaml
    assert postman.document["variables"]["BASEURL"] == (
        "https://bob:{{BASEURL_PASSWORD}}@api.example.com"
    )
    revealed = imported("curl", "curl https://bob:pa55w0rd@api.example.com/a", secrets=True)
    assert revealed.document["variables"]["URL_PASSWORD"] == {"value": "pa55w0rd", "secret": True}
    load(postman)


@pytest.mark.parametrize(
    ("fmt", "text"),
    [
        ("openapi", '{"openapi": "3.1.0", "x": ' + "[" * 100_000 + "]" * 100_000 + "}"),
        ("openapi", "openapi: 3.1.0\nx: " + "[" * 5000 + "]" * 5000),
        ("har", '{"log": {"entries": ' + "[" * 100_000 + "]" * 100_000 + "}}"),
        ("postman", '{"item": ' + "[" * 100_000 + "]" * 100_000 + "}"),
    ],
    ids=["openapi-json", "openapi-yaml", "har", "postman"],
)
def test_deep_nesting_is_a_clear_error(fmt: str, text: str) -> None:
    with pytest.raises(ImportFailed, match="nested too deeply"):
        import_text(fmt, text)


def test_yaml_alias_bomb_is_refused_quickly() -> None:
    lines = ["openapi: 3.1.0", "info: {title: x, version: '1'}", "a0: &a0 [lol, lol, lol]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
    started = time.monotonic()
    with pytest.raises(ImportFailed, match="too large"):
        import_text("openapi", "\n".join(lines) + "\npaths: {}\n")
    assert time.monotonic() - started < 10


def test_recursive_yaml_alias_is_a_clear_error() -> None:
    with pytest.raises(ImportFailed, match="nested too deeply"):
        import_text("openapi", "openapi: 3.1.0\na: &a [*a]\n")


def test_cli_hostile_input_exits_2_without_traceback(tmp_path: Path) -> None:
    deep = tmp_path / "deep.har"
    deep.write_text('{"log": {"entries": ' + "[" * 100_000 + "]" * 100_000 + "}}")
    done = _apimd("har", str(deep))
    assert done.returncode == 2 and b"Traceback" not in done.stderr
    assert done.stderr.decode().startswith(f"apimd import: {deep}: nested too deeply")
    latin = _apimd("curl", "-", stdin=b"curl https://h.example/caf\xe9")
    assert latin.returncode == 2 and latin.stdout == b""
    assert latin.stderr == (
        b"apimd import: standard input is not UTF-8 text (invalid byte at offset 26)\n"
    )


def test_environment_values_replace_the_collections_without_leftovers() -> None:
    collection = {
        "info": {"schema": "https://schema.getpostman.com/json/collection/v2.1.0/"},
        "variable": [
            {"key": "baseUrl", "value": "https://bob:pa55w0rd@api.example.com"},
            {"key": "token", "value": "collection-token"},
        ],
        "item": [{"name": "a", "request": "{{baseUrl}}/a?token={{token}}"}],
    }
    environment = {
        "values": [
            {"key": "baseUrl", "value": "http://127.0.0.1:8080", "enabled": True},
            {"key": "token", "value": "env-token", "enabled": True},
        ]
    }
    result = imported("postman", json.dumps(collection), environment=json.dumps(environment))
    assert result.document["variables"] == {
        "BASEURL": "http://127.0.0.1:8080",
        "TOKEN": {"env": "TOKEN", "secret": True},
    }
    assert result.secrets == [
        "environment variable token → secret variable TOKEN: set TOKEN in the environment"
    ]
    load(result)


def test_bundled_short_options_are_each_read() -> None:
    result = imported("curl", "curl -sSLk -XPOST -ujane:pw https://api.example.com/a -so out")
    call = result.document["calls"][0]
    assert call["method"] == "POST" and call["verify_tls"] is False
    assert "follow_redirects" not in call and call["auth"] == "basic-jane"
    assert result.untranslated == [
        "curl command 1: -s only changes curl's output: ignored",
        "curl command 1: -S only changes curl's output: ignored",
        "curl command 1: -s only changes curl's output: ignored",
        "curl command 1: -o only changes curl's output: ignored",
    ]


def _login_app() -> web.Application:
    async def login(request: web.Request) -> web.Response:
        form = await request.post()
        ok = form.get("password") == "s3cret" and request.query.get("access_token") == "zzz9"
        raise web.HTTPFound("/home") if ok else web.HTTPForbidden()

    async def home(request: web.Request) -> web.Response:
        return web.Response(text="welcome")

    return app_of(web.post("/login", login), web.get("/home", home))


async def test_har_login_flow_with_a_recorded_redirect_runs_pass(
    aiohttp_server: Any, tmp_path: Path
) -> None:
    server = await aiohttp_server(_login_app())
    base = f"http://127.0.0.1:{server.port}"
    entries = [
        {
            "request": {
                "method": "POST",
                "url": f"{base}/login?access_token=zzz9",
                "headers": [{"name": "Content-Type", "value": "application/x-www-form-urlencoded"}],
                "postData": {
                    "mimeType": "application/x-www-form-urlencoded",
                    "text": "username=jane&password=s3cret",
                },
            },
            "response": {"status": 302},
        },
        {"request": {"method": "GET", "url": f"{base}/home"}, "response": {"status": 200}},
    ]
    har = {"log": {"pages": [{"title": f"{base}/login"}], "entries": entries}}
    result = imported("har", json.dumps(har))
    variables = result.document["variables"]
    assert "ACCESS_TOKEN" not in variables  # the engine's own name: a token's access token
    assert set(variables) == {"ACCESS_TOKEN_2", "PASSWORD"}
    project = load(result)
    assert [w.name for w in project.workflows] == ["127.0.0.1"]
    assert [c.follow_redirects for c in project.calls] == [False, True]
    project_file = tmp_path / "har.yaml"
    project_file.write_text(result.yaml)
    env = {"ACCESS_TOKEN_2": "zzz9", "PASSWORD": "s3cret"}
    code, out = await run_target(project_file, "127.0.0.1", env)
    assert code == 0, out


def test_endless_or_binary_sources_are_refused() -> None:
    started = time.monotonic()
    endless = _apimd("har", "/dev/zero")
    assert endless.returncode == 2 and time.monotonic() - started < 30
    assert endless.stderr == b"apimd import: /dev/zero is larger than 128 MiB: not imported\n"


async def test_tui_import_types_into_the_path_and_names_a_binary_file(tmp_path: Path) -> None:
    binary = tmp_path / "capture.har"
    binary.write_bytes(b'{"log": "\xbb"}')
    app: App[None] = App()
    async with app.run_test(size=(120, 50)) as pilot:
        await app.push_screen(ImportScreen(None))
        await pilot.pause()
        await pilot.press(*str(binary), "enter")
        await app.workers.wait_for_complete()
        await pilot.pause()
        shown = str(app.screen.query_one("#preview-text", Static).render())
        assert shown == (
            f"Cannot import {str(binary)!r}: the file is not UTF-8 text (invalid byte at offset 9)"
        )


def test_postman_variables_never_take_an_engine_variables_name() -> None:
    collection = {
        "info": {"schema": "https://schema.getpostman.com/json/collection/v2.1.0/"},
        "variable": [{"key": "run_id", "value": "r-7"}, {"key": "access_token", "value": "t"}],
        "item": [{"name": "a", "request": "https://h.example/{{run_id}}?t={{access_token}}"}],
    }
    result = imported("postman", json.dumps(collection))
    assert (
        result.document["calls"][0]["url"] == "https://h.example/{{RUN_ID_2}}?t={{ACCESS_TOKEN_2}}"
    )
    assert result.document["variables"] == {
        "RUN_ID_2": "r-7",
        "ACCESS_TOKEN_2": {"env": "ACCESS_TOKEN_2", "secret": True},
    }
    load(result)


def test_urls_in_messages_never_show_credentials() -> None:
    curl = imported("curl", "curl https://h.example/a 'https://bob:pw1@h.example/b?api_key=k2#x'")
    assert curl.untranslated == [
        "curl command 1: extra URL 'https://h.example/b…' ignored (one request per command)"
    ]
    entries = [
        {"request": {"url": "wss://h.example/live?token=t0k3n"}, "response": {"status": 101}},
        {"request": {"url": "data:text/plain;base64,c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0"}},
        {"request": {"url": "https://h.example/ok"}, "response": {"status": 200}},
    ]
    har = imported("har", json.dumps({"log": {"entries": entries}}))
    assert har.untranslated[:2] == [
        "entry 1: URL 'wss://h.example/live…' is not http(s): entry not translated",
        "entry 2: URL 'data:text/plain;base64,…' is not http(s): entry not translated",
    ]


def test_options_of_another_format_are_refused_not_ignored(tmp_path: Path) -> None:
    env = tmp_path / "env.json"
    env.write_text('{"values": []}')
    done = _apimd("curl", "-", "--environment", str(env), stdin=b"curl https://h.example/")
    assert (done.returncode, done.stdout) == (2, b"")
    assert done.stderr == b"apimd import: --environment is for postman only, not curl\n"
    cookies = _apimd("curl", "-", "--keep-cookies", stdin=b"curl https://h.example/")
    assert cookies.stderr == b"apimd import: --keep-cookies is for har only, not curl\n"


def test_untranslated_script_lines_never_show_a_credential() -> None:
    script = ['pm.globals.set("password", "hunter2");', "var x = 'sk_live_S3CR3T';"]
    collection = {
        "info": {"schema": "https://schema.getpostman.com/json/collection/v2.1.0/"},
        "item": [
            {
                "name": "a",
                "event": [{"listen": "test", "script": {"exec": script}}],
                "request": "https://h.example/a",
            }
        ],
    }
    result = imported("postman", json.dumps(collection))
    assert result.untranslated == [
        '/a: test line not translated: pm.globals.set("password", "…")',
        "/a: test line not translated: var x = '…'",
    ]


def test_a_method_that_is_no_http_method_is_a_clear_error() -> None:
    har = {"log": {"entries": [{"request": {"method": "G E T\r\n", "url": "https://h.example/"}}]}}
    with pytest.raises(
        ImportFailed, match=r"^entry 1: method 'G E T\\r\\n' is not an HTTP method$"
    ):
        import_text("har", json.dumps(har))
    with pytest.raises(ImportFailed, match=r"^curl command 1: method 'GET /X' is not an HTTP"):
        import_text("curl", "curl -X 'GET /x' https://h.example/")


@pytest.mark.parametrize(
    ("yaml", "message"),
    [
        (
            "openapi: 3.0.0\ninfo: {title: a}\ninfo: {title: b}\n",
            'line 3, column 1: found duplicate key "info" with value "{}" (original value: "{}")',
        ),
        (
            "openapi: 3.0.0\nx: !!python/object/apply:os.system [id]\n",
            "line 2, column 4: could not determine a constructor for the tag "
            "'tag:yaml.org,2002:python/object/apply:os.system'",
        ),
    ],
    ids=["duplicate-key", "python-tag"],
)
def test_yaml_errors_name_the_line(yaml: str, message: str) -> None:
    with pytest.raises(ImportFailed) as failed:
        import_text("openapi", yaml)
    assert str(failed.value) == f"not YAML or JSON: {message}"
