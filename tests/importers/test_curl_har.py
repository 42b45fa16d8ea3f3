"""curl and HAR import: browser-copied forms, a real Chromium request rendered as Chromium's
"Copy as cURL (bash)", and a HAR recorded by Chromium, each run PASS against the page's server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from aiohttp import web
from playwright.async_api import Browser

from tests.e2e.conftest import browser as browser  # Debian's Chromium through Playwright
from tests.importers.support import env_names, imported, load, run_target
from tests.support.web import app_of

PAGE = """<!doctype html><title>orders</title><script>
async function send() {
  const r = await fetch('/api/orders?tag=it%27s', {method: 'POST',
    headers: {'Content-Type': 'application/json', 'X-Api-Key': 'k3y-from-page',
              'X-Note': "it's fine"},
    body: JSON.stringify({item: 'book', qty: 2})});
  document.title = 'done ' + r.status;
}
</script><body onload="send()">"""


def _app() -> web.Application:
    async def page(request: web.Request) -> web.Response:
        response = web.Response(text=PAGE, content_type="text/html")
        response.set_cookie("session", "s3ss-abc")
        return response

    async def orders(request: web.Request) -> web.Response:
        body = await request.json()
        ok = (
            request.headers.get("X-Api-Key") == "k3y-from-page"
            and request.headers.get("X-Note") == "it's fine"
            and request.cookies.get("session") == "s3ss-abc"
            and request.query.get("tag") == "it's"
            and body == {"item": "book", "qty": 2}
        )
        return web.json_response({"created": ok}, status=201 if ok else 400)

    return app_of(web.get("/", page), web.post("/api/orders", orders))


def _bash_quote(text: str) -> str:
    """Chromium's escapeStringPosix: `$'…'` when the text has `'`, `!` or control characters."""
    if any(c == "'" or c == "!" or ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in text):
        escaped = (
            text.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n").replace("\r", "\\r")
        )
        escaped = "".join(
            f"\\u{ord(c):04x}" if ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F or c == "!" else c
            for c in escaped
        )
        return f"$'{escaped}'"
    return f"'{text}'"


def _copy_as_curl(method: str, url: str, headers: dict[str, str], post: str | None) -> str:
    """A request as Chromium's devtools "Copy as cURL (bash)" writes it."""
    lines = [f"curl {_bash_quote(url)}"]
    if method not in ("GET", "POST") or (method == "POST" and post is None):
        lines.append(f"-X {_bash_quote(method)}")
    for name, value in headers.items():
        if name.startswith(":") or name.lower() in ("host", "content-length", "accept-encoding"):
            continue
        if name.lower() == "cookie":
            lines.append(f"-b {_bash_quote(value)}")
        else:
            lines.append(f"-H {_bash_quote(f'{name}: {value}')}")
    if post is not None:
        lines.append(f"--data-raw {_bash_quote(post)}")
    return " \\\n  ".join(lines)


async def test_chromium_copy_as_curl_imports_and_runs_pass(
    aiohttp_server: object, browser: Browser, tmp_path: Path
) -> None:
    server = await aiohttp_server(_app())  # type: ignore[operator]
    page = await browser.new_page()
    async with page.expect_request("**/api/orders*") as captured:
        await page.goto(f"http://127.0.0.1:{server.port}/")
    request = await captured.value
    command = _copy_as_curl(
        request.method, request.url, await request.all_headers(), request.post_data
    )
    await page.wait_for_function("document.title.startsWith('done')")
    assert await page.title() == "done 201"
    assert "$'x-note: it\\'s fine'" in command

    result = imported("curl", command)
    project = load(result)
    call = project.calls[0]
    assert call.method == "POST" and call.json_body == {"item": "book", "qty": 2}
    assert "k3y-from-page" not in result.yaml and "s3ss-abc" not in result.yaml
    env = {"X_API_KEY": "k3y-from-page", "COOKIE": "session=s3ss-abc"}
    assert env_names(result.document) == set(env)
    project_file = tmp_path / "curl.yaml"
    project_file.write_text(result.yaml)
    code, out = await run_target(project_file, call.name, env)
    assert code == 0, out
    assert "PASS" in out


async def test_har_recorded_by_chromium_imports_and_runs_pass(
    aiohttp_server: object, browser: Browser, tmp_path: Path
) -> None:
    server = await aiohttp_server(_app())  # type: ignore[operator]
    har_path = tmp_path / "page.har"
    context = await browser.new_context(record_har_path=str(har_path))
    page = await context.new_page()
    await page.goto(f"http://127.0.0.1:{server.port}/")
    await page.wait_for_function("document.title.startsWith('done')")
    await context.close()

    result = imported("har", har_path.read_text(), keep_cookies=True)
    project = load(result)
    assert [len(w.steps) for w in project.workflows] == [2]
    assert "k3y-from-page" not in result.yaml
    order = project.calls[1]
    assert [(c.source, c.value) for c in order.conditions] == [("status", 201)]
    project_file = tmp_path / "har.yaml"
    project_file.write_text(result.yaml)
    env = {name: "k3y-from-page" for name in env_names(result.document) if "KEY" in name}
    env |= {name: "session=s3ss-abc" for name in env_names(result.document) if "COOKIE" in name}
    code, out = await run_target(project_file, project.workflows[0].name, env)
    assert code == 0, out


def test_insomnia_har_fixture_lists_what_it_drops() -> None:
    result = imported("har", "insomnia-deep-input.har")
    project = load(result)
    call = project.calls[0]
    assert (call.method, call.url, call.body) == (
        "POST",
        "https://insomnia.rest/foo/bar?foo=bar",
        "hello world!",
    )
    assert "Host" not in call.headers and "cookie" not in {h.lower() for h in call.headers}
    assert result.untranslated == [
        "entry 1: URL '' is not http(s): entry not translated",
        "entry 2: Cookie header dropped (use --keep-cookies to keep it)",
    ]


@pytest.mark.parametrize(
    "command",
    [
        "curl 'https://api.test/x' \\\n  -H $'X-A: a\\'b\\u0021' \\\n  --data-raw $'{\"k\":\"v\\\\n\"}'",
        'curl ^"https://api.test/x^" ^\n  -H ^"X-A: a\'b!^" ^\n  --data-raw ^"^{^\\^"k^\\^":^\\^"v\\n^\\^"^}^"',
    ],
    ids=["bash", "cmd"],
)
def test_browser_quoting_forms(command: str) -> None:
    call = load(imported("curl", command)).calls[0]
    assert call.url == "https://api.test/x"
    assert call.headers["X-A"] == "a'b!"
    assert call.method == "POST"


def test_several_commands_make_a_workflow_and_options_are_listed() -> None:
    text = (
        "curl -u bob:pa55word https://api.test/login -L\n"
        "curl -G https://api.test/search -d q=book --max-time 5 -s --proxy http://p:1\n"
    )
    result = imported("curl", text)
    project = load(result)
    assert project.workflows[0].steps == [c.name for c in project.calls]
    login, search = project.calls
    assert login.auth == "basic-bob" and "pa55word" not in result.yaml
    assert search.url == "https://api.test/search?q=book" and search.timeout == 5
    assert result.untranslated == [
        "curl command 2: -s only changes curl's output: ignored",
        "curl command 2: option --proxy is not translated",
    ]
    assert json.dumps(result.document).count("BOB_PASSWORD") == 1


def test_chrome_copies_from_mac_and_windows() -> None:
    mac = imported("curl", "chrome-copy-as-curl.sh")
    call = load(mac).calls[0]
    assert (call.method, call.form) == ("POST", {"private": "false"})
    assert call.headers["Cookie"] == "{{COOKIE}}" and "eyJyZWNlbnQi" not in mac.yaml
    windows = load(imported("curl", "chrome-windows-copy-as-curl.sh")).calls[0]
    assert windows.url == "http://example.com/?a[0]=1&a[1]=1"
    assert windows.verify_tls is False
    assert windows.headers["If-None-Match"] == '"3147526947+ident"'


def test_firebug_and_firefox_hars() -> None:
    firebug = imported("har", "harviewer-post-data-no-page.har")
    call = load(firebug).calls[0]
    assert (call.method, call.form) == ("POST", {"date": "Tue, 28 Sep 2010 10:40:05 GMT"})
    assert "Content-Length" not in call.headers and "Connection" not in call.headers
    assert firebug.untranslated == [
        "entry 1 (call post-issue601.php): headers Accept-Encoding, Keep-Alive, Connection "
        "left to apimd's HTTP client"
    ]
    firefox = imported("har", "harviewer-firefox47-post-empty.har")
    project = load(firefox)
    assert project.workflows[0].name == "Tags-and-Attributes-React"
    assert project.calls[0].body is None and "Cookie" not in project.calls[0].headers
    assert "entry 1: Cookie header dropped (use --keep-cookies to keep it)" in firefox.untranslated
    kept = imported("har", "harviewer-firefox47-post-empty.har", keep_cookies=True)
    assert load(kept).calls[0].headers["Cookie"] == "{{COOKIE}}"
    assert "GA1.3.1225554301" not in kept.yaml


def test_powershell_backtick_continuations() -> None:
    command = "curl.exe `\n  -X DELETE `\n  -H 'X-Trace: 1' `\n  'https://api.test/items/9'"
    call = load(imported("curl", command)).calls[0]
    assert (call.method, call.url, call.headers) == (
        "DELETE",
        "https://api.test/items/9",
        {"X-Trace": "1"},
    )


def test_json_option_sends_json_with_its_headers_even_when_it_does_not_parse() -> None:
    good, bad = load(
        imported(
            "curl",
            "curl --json '{\"a\": [1]}' https://api.test/a\ncurl --json '{oops' https://api.test/b",
        )
    ).calls
    assert (good.method, good.json_body, good.headers["Content-Type"]) == (
        "POST",
        {"a": [1]},
        "application/json",
    )
    assert (bad.body, bad.headers["Content-Type"], bad.headers["Accept"]) == (
        "{oops",
        "application/json",
        "application/json",
    )


def test_copy_all_as_curl_joins_commands_with_semicolons() -> None:
    text = (
        "curl 'https://api.test/a' --oauth2-bearer t0ken-abc ;\n"
        "curl 'https://api.test/b' -H 'accept: */*' --data-raw 'x=1&password=hunter22' ;\n"
        "curl 'https://api.test/c' -X 'DELETE'"
    )
    result = imported("curl", text)
    project = load(result)
    a, b, c = project.calls
    assert project.workflows[0].steps == [a.name, b.name, c.name]
    assert a.headers["Authorization"] == "Bearer {{AUTHORIZATION_BEARER}}"
    assert b.form == {"x": "1", "password": "{{PASSWORD}}"}
    assert c.method == "DELETE"
    assert "t0ken-abc" not in result.yaml and "hunter22" not in result.yaml
