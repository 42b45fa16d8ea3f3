"""`apimd import curl`: curl command lines as browsers copy them (SPEC §12); several → a workflow."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import quote, urlsplit

from apimd.importers.builder import ImportFailed, ProjectBuilder, is_valid_url, shown_url
from apimd.importers.requests import RequestParts, add_request
from apimd.importers.shell import split_commands

_WITH_VALUE = {
    "-X": "method",
    "--request": "method",
    "-H": "header",
    "--header": "header",
    "-d": "data",
    "--data": "data",
    "--data-ascii": "data",
    "--data-binary": "data",
    "--data-raw": "raw",
    "--data-urlencode": "urlencode",
    "--json": "json",
    "-F": "form",
    "--form": "form",
    "--form-string": "form_string",
    "-u": "user",
    "--user": "user",
    "-b": "cookie",
    "--cookie": "cookie",
    "--url": "url",
    "-A": "agent",
    "--user-agent": "agent",
    "-e": "referer",
    "--referer": "referer",
    "-m": "max_time",
    "--max-time": "max_time",
    "--oauth2-bearer": "bearer",
    "-E": "cert",
    "--cert": "cert",
    "--key": "key",
    "--cacert": "cacert",
}
_FLAGS = {
    "-k": "insecure",
    "--insecure": "insecure",
    "-L": "location",
    "--location": "location",
    "-G": "get",
    "--get": "get",
    "-I": "head",
    "--head": "head",
    "--compressed": "ignored",
    "-g": "globoff",
    "--globoff": "globoff",
}
_OUTPUT_FLAGS = {"-s", "--silent", "-S", "--show-error", "-v", "--verbose", "-i", "--include"}
_OUTPUT_WITH_VALUE = {"-o", "--output", "-w", "--write-out"}
_OTHER_LONG_WITH_VALUE = """
abstract-unix-socket alt-svc aws-sigv4 capath cert-type ciphers config connect-timeout
connect-to continue-at cookie-jar crlfile delegation dns-servers dump-header engine
expect100-timeout ftp-port happy-eyeballs-timeout-ms hsts interface keepalive-time key-type krb
limit-rate local-port login-options mail-from mail-rcpt max-filesize max-redirs netrc-file noproxy
pass pinnedpubkey preproxy proto proto-default proto-redir proxy proxy-cacert proxy-cert
proxy-header proxy-key proxy-pass proxy-user quote random-file range request-target resolve retry
retry-delay retry-max-time sasl-authzid service-name socks4 socks4a socks5 socks5-hostname stderr
telnet-option time-cond tls-max trace trace-ascii unix-socket upload-file url-query variable
"""
_OTHER_WITH_VALUE = {f"-{letter}" for letter in "cCDKPQrtTUxyYz"} | {
    f"--{name}" for name in _OTHER_LONG_WITH_VALUE.split()
}
"""curl's other options that take a value (files to read or write among them): the value is
skipped with the option, never taken for the URL."""


@dataclass
class _Curl:
    url: str | None = None
    method: str | None = None
    headers: list[tuple[str, str]] = field(default_factory=list)
    data: list[str] = field(default_factory=list)
    json_data: list[str] = field(default_factory=list)
    form: list[tuple[str, str]] = field(default_factory=list)
    user: str | None = None
    cookies: list[str] = field(default_factory=list)
    flags: set[str] = field(default_factory=set)
    timeout: float | None = None
    tls: dict[str, dict[str, str]] = field(default_factory=dict)
    """Mutual TLS (`--cert`, `--key`) and the CA (`--cacert`) as `tls` PEM files (SPEC §10)."""


def import_curl(text: str, builder: ProjectBuilder) -> None:
    """Translate every curl command in `text` into a call; two or more also make a workflow."""
    commands = [words[1:] if words[0] == "$" else words for words in split_commands(text)]
    commands = [words for words in commands if words]
    curls = [words for words in commands if words[0].rsplit("/", 1)[-1] in ("curl", "curl.exe")]
    if not curls:
        raise ImportFailed("no curl command found (expected text starting with `curl`)")
    for words in commands:
        if words not in curls:
            builder.skip(f"command `{words[0]}`", "not a curl command")
    steps = [_add(index, words[1:], builder) for index, words in enumerate(curls, 1)]
    if len(steps) > 1:
        builder.add_workflow("curl-workflow", steps)


def _add(index: int, args: list[str], builder: ProjectBuilder) -> str:
    where = f"curl command {index}"
    curl = _parse(args, builder, where)
    if curl.url is None:
        raise ImportFailed(f"{where}: no URL")
    url = curl.url if "://" in curl.url else f"http://{curl.url}"
    if "globoff" not in curl.flags:
        # curl's URL globbing: browsers escape [ ] { } so that curl sends them as they are.
        url = re.sub(r"\\([][{}])", r"\1", url)
    if not is_valid_url(url):
        raise ImportFailed(f"{where}: URL {shown_url(url)} is not valid")
    method = curl.method or ("HEAD" if "head" in curl.flags else None)
    parts = RequestParts(where=where, method=method or "GET", url=url, headers=list(curl.headers))
    if curl.cookies:
        parts.headers.append(("Cookie", "; ".join(curl.cookies)))
    if curl.user is not None:
        user, _, password = curl.user.partition(":")
        parts.basic = (user, password)
    _body(curl, parts, method)
    if "insecure" in curl.flags:
        parts.extra["verify_tls"] = False
    if "client_cert" in curl.tls and "client_key" not in curl.tls:
        curl.tls["client_key"] = dict(curl.tls["client_cert"])  # curl reads the key from it too
    if curl.tls:
        parts.extra["tls"] = curl.tls
    if "location" not in curl.flags:
        # curl does not follow redirects unless -L; keep what the command did.
        parts.extra["follow_redirects"] = False
    if curl.timeout is not None:
        parts.extra["timeout"] = min(300.0, max(0.001, curl.timeout))
    hint = urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1] or urlsplit(url).hostname or "call"
    return add_request(builder, f"{parts.method.lower()}-{hint}", parts)


def _body(curl: _Curl, parts: RequestParts, method: str | None) -> None:
    if "get" in curl.flags and curl.data:
        joined = "&".join(curl.data)
        sep = "&" if "?" in parts.url else "?"
        parts.url = f"{parts.url}{sep}{joined}"
        return
    if curl.json_data:
        parts.method = method or "POST"
        # --json is -d with these two headers (unless the command gives its own).
        for name in ("Content-Type", "Accept"):
            if not parts.has_header(name.lower()):
                parts.headers.append((name, "application/json"))
        parts.set_body_text("".join(curl.json_data), "application/json")
        return
    if curl.form:
        parts.method = method or "POST"
        parts.multipart = dict(curl.form)
        return
    if curl.data:
        parts.method = method or "POST"
        body = "&".join(curl.data)
        content_type = parts.header("content-type") or "application/x-www-form-urlencoded"
        if "content-type" not in {h.lower() for h, _ in parts.headers}:
            parts.headers.append(("Content-Type", content_type))
        parts.set_body_text(body, content_type)


def _parse(args: list[str], builder: ProjectBuilder, where: str) -> _Curl:
    curl = _Curl()
    index = 0
    while index < len(args):
        arg = args[index]
        index += 1
        option, value = arg, None
        if arg.startswith("--") and "=" in arg:
            option, value = arg.split("=", 1)
        elif len(arg) > 2 and arg[0] == "-" and arg[1] != "-":
            if arg[:2] in _WITH_VALUE.keys() | _OTHER_WITH_VALUE | _OUTPUT_WITH_VALUE:
                option, value = arg[:2], arg[2:]
            else:  # bundled short options (`-sSL`, `-kX POST`): one at a time
                args[index:index] = [f"-{arg[2:]}"]
                option = arg[:2]
        if option in _WITH_VALUE:
            if value is None:
                if index >= len(args):
                    raise ImportFailed(f"{where}: {option} needs a value")
                value = args[index]
                index += 1
            _apply(curl, _WITH_VALUE[option], value, builder, where)
        elif option in _FLAGS:
            curl.flags.add(_FLAGS[option])
        elif option in _OUTPUT_FLAGS:
            builder.skip(where, f"{option} only changes curl's output: ignored")
        elif option in _OUTPUT_WITH_VALUE:
            index += 1 if value is None else 0
            builder.skip(where, f"{option} only changes curl's output: ignored")
        elif option in _OTHER_WITH_VALUE or option.startswith("--expand-"):
            index += 1 if value is None else 0
            builder.skip(where, f"option {option} is not translated")
        elif option.startswith("-") and option != "-":
            builder.skip(where, f"option {option} is not translated")
        elif curl.url is None:
            curl.url = arg
        else:
            builder.skip(where, f"extra URL {shown_url(arg)} ignored (one request per command)")
    return curl


def _apply(curl: _Curl, what: str, value: str, builder: ProjectBuilder, where: str) -> None:
    if what == "method":
        curl.method = value.upper()
    elif what == "header":
        name, sep, header_value = value.partition(":")
        if sep:
            curl.headers.append((name.strip(), header_value.strip()))
        else:
            builder.skip(where, f"header {value!r} without a value is not translated")
    elif what in ("data", "raw"):
        if what == "data" and value.startswith("@"):
            builder.skip(where, f"body from file {value[1:]!r} is not translated")
        else:
            curl.data.append(value)
    elif what == "urlencode":
        name, at, path = value.partition("@")
        if at and "=" not in name:
            builder.skip(where, f"body from file {path!r} is not translated")
        else:
            curl.data.append(_urlencode(value))
    elif what == "json":
        if value.startswith("@"):
            builder.skip(where, f"body from file {value[1:]!r} is not translated")
        else:
            curl.json_data.append(value)
    elif what in ("form", "form_string"):
        name, _, field_value = value.partition("=")
        if what == "form" and field_value.startswith(("@", "<")):
            builder.skip(where, f"form field {name!r} from a file is not translated")
        else:
            curl.form.append((name, field_value))
    elif what == "user":
        curl.user = value
    elif what == "cookie":
        if "=" in value:
            curl.cookies.append(value)
        else:
            builder.skip(where, f"cookie file {value!r} is not translated")
    elif what == "url":
        curl.url = value
    elif what == "bearer":
        curl.headers.append(("Authorization", f"Bearer {value}"))
    elif what == "agent":
        curl.headers.append(("User-Agent", value))
    elif what == "referer":
        curl.headers.append(("Referer", value))
    elif what == "cert":
        path, colon, password = value.partition(":")
        if colon and password:  # curl's `--cert FILE:PASSWORD`
            builder.skip(
                where, "the key password of --cert is not translated: set tls.client_key_password"
            )
        curl.tls["client_cert"] = {"file": path if colon else value}
    elif what in ("key", "cacert"):
        curl.tls["client_key" if what == "key" else "ca_bundle"] = {"file": value}
    elif what == "max_time":
        try:
            curl.timeout = float(value)
        except ValueError:
            builder.skip(where, f"--max-time {value!r} is not a number")


def _urlencode(value: str) -> str:
    name, sep, content = value.partition("=")
    if not sep:
        return quote(value, safe="")
    return f"{name}={quote(content, safe='')}" if name else quote(content, safe="")
