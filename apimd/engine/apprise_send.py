"""One Apprise notification, and why it did not go out: Apprise's own log names the cause (a refused
connection, an HTTP status, a timeout) but holds the URL, a secret, so it stays out of daemon.log;
the cause is read from what Apprise logged during this one call, and told with the URL's secret
parts masked."""

from __future__ import annotations

import contextvars
import logging
import re
from urllib.parse import urlsplit

from apimd.model.common import SECRET_MASK


class AppriseFailed(Exception):
    """Apprise did not deliver; the message says why, with the URL's secret parts masked."""


class AppriseRefusedUrl(AppriseFailed):
    """Apprise does not understand the URL: no attempt can succeed."""


_CAPTURE: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar(
    "apimd_apprise_capture", default=None
)


class _Capture(logging.Handler):
    """Keeps what Apprise logs for the call that set `_CAPTURE` (Apprise's worker threads run in a
    copy of the caller's context), and nothing else: Apprise's log is never printed."""

    def emit(self, record: logging.LogRecord) -> None:
        sink = _CAPTURE.get()
        if sink is not None:
            sink.append(record.getMessage())


_HANDLER = _Capture()


_MUTED = logging.NullHandler()


def _apprise_logger() -> logging.Logger:
    # Apprise sends through requests and urllib3, whose DEBUG line names the request's path (a
    # Slack or Discord webhook's token): never printed, nor read for the cause.
    urllib3 = logging.getLogger("urllib3")
    urllib3.propagate = False
    if _MUTED not in urllib3.handlers:
        urllib3.addHandler(_MUTED)
    logger = logging.getLogger("apprise")
    logger.propagate = False  # its messages hold URLs in clear
    if _HANDLER not in logger.handlers:
        logger.addHandler(_HANDLER)
        logger.setLevel(logging.DEBUG)  # the cause (e.g. "Connection refused") is at DEBUG
    return logger


# (pattern in what Apprise logged, what we say), the first that matches wins.
_CAUSES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"connection refused", re.I), "connection refused"),
    (re.compile(r"timed out|timeout", re.I), "timed out"),
    (
        re.compile(r"name or service not known|name resolution|nodename nor servname", re.I),
        "host not found",
    ),
    (re.compile(r"certificate verify failed|SSLError|SSL:", re.I), "TLS error"),
)
_HTTP_STATUS = re.compile(r"\berror=(\d{3})\b")
_FAILURE = re.compile(r"fail|error|exception|unable|could not|timed out", re.I)
_URL_LINE = re.compile(
    r"^(Loaded |[\w ]+ URL: )"
)  # Apprise's own echo of the URL, options included


def send(url: str, title: str, body: str) -> None:
    """Send one notification (blocking); raise AppriseFailed saying why when it did not go out."""
    import apprise  # imported here: it is large, and a run without an apprise notifier needs none

    _apprise_logger()
    sender = apprise.Apprise()
    if not sender.add(url):
        raise AppriseRefusedUrl("Apprise does not understand this URL (see apprise's URL list)")
    logged: list[str] = []
    token = _CAPTURE.set(logged)
    try:
        delivered = sender.notify(body=body, title=title, body_format=apprise.NotifyFormat.TEXT)
    finally:
        _CAPTURE.reset(token)
    if not delivered:
        raise AppriseFailed(
            f"Apprise could not deliver it to {masked_url(url)}: {cause(logged, url)}"
        )


def cause(logged: list[str], url: str) -> str:
    """Why the delivery failed, from what Apprise logged: a known cause in our words, else
    Apprise's last failure message with every part of `url` but its scheme and host masked."""
    failures = [line for line in logged if _FAILURE.search(line) and not _URL_LINE.match(line)]
    text = "\n".join(failures)
    for pattern, said in _CAUSES:
        if pattern.search(text):
            return said
    if status := _HTTP_STATUS.search(text):
        return f"HTTP {status.group(1)}"
    if not failures:
        return "Apprise gave no reason"
    return mask_url_parts(failures[-1].splitlines()[0], url)


def masked_url(url: str) -> str:
    """`url` with all but its scheme, host name and port masked: Apprise URLs carry tokens in
    the user, password, path and query, and in the host's place too (`tgram://TOKEN/CHAT`)."""
    parts = urlsplit(url)
    host = _hostname(url)
    port = _port(url)
    shown = f"{parts.scheme}://"
    if "@" in parts.netloc:
        shown += f"{SECRET_MASK}@"
    if host is None:
        shown += SECRET_MASK
    else:
        shown += f"[{host}]" if ":" in host else host
        shown += f":{port}" if port else ""
    if parts.path.strip("/"):
        shown += f"/{SECRET_MASK}"
    if parts.query or parts.fragment:
        shown += f"?{SECRET_MASK}"
    return shown


def mask_url_parts(text: str, url: str) -> str:
    """`text` with each part of `url` but its host name and port (user, password, path segments,
    query keys and values, a token in the host's place) masked, longest first."""
    pieces = set(re.split(r"[/:@?&=#,+]+", url.partition("://")[2]))
    pieces -= {_hostname(url) or "", str(_port(url) or "")}
    for piece in sorted((p for p in pieces if len(p) >= 3), key=len, reverse=True):
        text = text.replace(piece, SECRET_MASK)
    return text


def _hostname(url: str) -> str | None:
    """The host of `url` when it is a host name or an address (not a token in that place)."""
    try:
        host = urlsplit(url).hostname
    except ValueError:
        return None
    if host and (host == "localhost" or "." in host or ":" in host):
        return host
    return None


def _port(url: str) -> int | None:
    try:
        return urlsplit(url).port
    except ValueError:
        return None
