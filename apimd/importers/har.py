"""`apimd import har`: a HAR 1.2 recording → one call per entry, in order, in one workflow with
a status condition from each recorded response (SPEC §12)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode, urlsplit

from apimd.importers.builder import ImportFailed, ProjectBuilder, is_valid_url, shown_url
from apimd.importers.requests import RequestParts, add_request


def import_har(text: str, builder: ProjectBuilder, *, keep_cookies: bool = False) -> None:
    """Translate every entry of the HAR log in `text`."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ImportFailed(f"not JSON: {exc}") from None
    log = data.get("log") if isinstance(data, dict) else None
    entries = log.get("entries") if isinstance(log, dict) else None
    if not isinstance(entries, list):
        raise ImportFailed("not a HAR file: expected {log: {entries: [...]}}")
    if not entries:
        raise ImportFailed("the HAR log has no entries")
    ordered = _dicts(entries)  # browsers write entries in the order the requests started
    steps = []
    for index, entry in enumerate(ordered, 1):
        request = entry.get("request")
        url = str(request.get("url") or "") if isinstance(request, dict) else ""
        if not url.startswith(("http://", "https://")):
            builder.skip(
                f"entry {index}", f"URL {shown_url(url)} is not http(s): entry not translated"
            )
            continue
        if not is_valid_url(url):
            builder.skip(
                f"entry {index}", f"URL {shown_url(url)} is not valid: entry not translated"
            )
            continue
        steps.append(_entry(index, entry, builder, keep_cookies))
    if not steps:
        raise ImportFailed("no entry of the HAR log has a valid http(s) URL")
    pages = log.get("pages") if isinstance(log, dict) else None
    page = pages[0] if isinstance(pages, list) and pages else None
    title = str(page.get("title") or "") if isinstance(page, dict) else ""
    host = urlsplit(str(builder.calls[0]["url"])).hostname
    # A page without a <title> is named by its URL: the host says it better.
    named = 0 < len(title) <= 60 and "://" not in title
    builder.add_workflow(title if named else host or "har", steps)


def _entry(index: int, entry: dict[str, Any], builder: ProjectBuilder, keep_cookies: bool) -> str:
    request = entry["request"]
    where = f"entry {index}"
    url = str(request.get("url", ""))
    query = _dicts(request.get("queryString"))
    if query and "?" not in url:
        url += "?" + urlencode([(str(q.get("name")), str(q.get("value", ""))) for q in query])
    parts = RequestParts(where=where, method=str(request.get("method") or "GET"), url=url)
    dropped_cookie = False
    for header in _dicts(request.get("headers")):
        name, value = str(header.get("name", "")), str(header.get("value", ""))
        if name.startswith(":"):
            continue  # HTTP/2 pseudo-headers: the URL and method already say them
        if name.lower() == "cookie" and not keep_cookies:
            dropped_cookie = True
            continue
        parts.headers.append((name, value))
    if dropped_cookie:
        builder.skip(where, "Cookie header dropped (use --keep-cookies to keep it)")
    post = request.get("postData")
    if isinstance(post, dict):
        _post_data(post, parts, builder, where)
    response = entry.get("response")
    status = response.get("status") if isinstance(response, dict) else None
    if isinstance(status, int) and status > 0:
        parts.conditions.append({"source": "status", "op": "eq", "value": status})
        if 300 <= status < 400:
            # The browser recorded the redirect itself; where it led is the next entry.
            parts.extra["follow_redirects"] = False
    else:
        builder.skip(where, "no recorded response status: no condition")
    path = urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1]
    return add_request(builder, f"{parts.method.lower()}-{path or urlsplit(url).hostname}", parts)


def _post_data(
    post: dict[str, Any], parts: RequestParts, builder: ProjectBuilder, where: str
) -> None:
    mime = str(post.get("mimeType") or "")
    params = post.get("params")
    if mime.startswith("multipart/form-data") and isinstance(params, list):
        fields: dict[str, str] = {}
        for param in _dicts(params):
            if param.get("fileName") is not None:
                builder.skip(where, f"file field {param.get('name')!r} is not translated")
            else:
                fields[str(param.get("name"))] = str(param.get("value", ""))
        parts.multipart = fields
        return
    text = post.get("text")
    if text is None and isinstance(params, list):
        parts.form = {str(p.get("name")): str(p.get("value", "")) for p in _dicts(params)}
        return
    if text:
        parts.set_body_text(str(text), mime or parts.header("content-type"))


def _dicts(value: Any) -> list[dict[str, Any]]:
    """The objects of a HAR list (anything else in it, or a non-list, is ignored)."""
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []
