"""The pages `/tokens/callback` shows: self-contained (no external resources), strict CSP, plain
words about what happened and what to do next."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime
from html import escape

_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem;"
    "color:#1b1f24;line-height:1.5}h1{font-size:1.6rem}.ok{color:#1a7f37}.bad{color:#cf222e}"
    "code{background:#f3f4f6;padding:.1rem .3rem;border-radius:4px}"
)
# Reads the fragment (implicit-flow answers arrive there), clears it from the address bar and
# history, and posts it back to this server as JSON; the answer page replaces this one.
_SCRIPT = (
    "(function(){var h=location.hash.replace(/^#/,'');"
    "history.replaceState(null,'',location.pathname);"
    "var m=document.getElementById('msg');"
    "if(!h){m.textContent='This page expected an answer from the sign-in, but none arrived. "
    "Start the sign-in again from apimd.';return;}"
    "var p={};new URLSearchParams(h).forEach(function(v,k){p[k]=v;});"
    "fetch(location.pathname,{method:'POST',headers:{'Content-Type':'application/json'},"
    "body:JSON.stringify(p),credentials:'omit'})"
    ".then(function(r){return r.text();})"
    ".then(function(t){document.open();document.write(t);document.close();})"
    ".catch(function(){m.textContent='Could not reach apimd to finish the sign-in.';});})();"
)


def _sha256(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": (
        f"default-src 'none'; script-src {_sha256(_SCRIPT)}; style-src {_sha256(_STYLE)}; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
}


def _page(title: str, body: str, *, script: bool = False) -> str:
    tail = f"<script>{_SCRIPT}</script>" if script else ""
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width,initial-scale=1">'
        f"<title>{escape(title)} · apimd</title><style>{_STYLE}</style></head>"
        f"<body>{body}{tail}</body></html>"
    )


CAPTURE_PAGE = _page(
    "Finishing sign-in",
    "<h1>Finishing sign-in…</h1><p id=msg>Passing the answer to apimd.</p>",
    script=True,
)


def signed_in_page(
    token: str | None, expires_at: datetime | None, message: str, *, refreshes: bool = False
) -> str:
    """`refreshes`: apimd can renew the token without a person; only then is that promised."""
    if token:
        what = f"Token <code>{escape(token)}</code> is saved"
        if expires_at is not None:
            moment = expires_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
            what += f" and valid until {moment}"
        what += ". " + _what_next(token, expires_at, refreshes=refreshes)
    else:
        what = escape(message) + "."
    return _page(
        "Signed in",
        f"<h1 class=ok>Signed in</h1><p>{what}</p><p>You can close this tab.</p>",
    )


def _what_next(token: str, expires_at: datetime | None, *, refreshes: bool) -> str:
    if refreshes:
        return "apimd refreshes it by itself before it expires."
    if expires_at is None:
        return "It has no expiry, so nothing more is needed."
    return (
        "apimd cannot renew it by itself (its auth has no refresh workflow and no refresh token "
        "was issued): when it expires, calls using it are skipped until someone signs in again "
        f"(<code>apimd token signin {escape(token)}</code> or the TUI)."
    )


def failed_page(reason: str, *, refused: bool) -> str:
    advice = (
        "Nothing was run. Start the sign-in again from apimd (<code>apimd token signin NAME</code> "
        "or the TUI); each sign-in link works once, for 10 minutes."
        if refused
        else "Check the message, fix what it names, and start the sign-in again from apimd."
    )
    return _page(
        "Sign-in failed",
        f"<h1 class=bad>Sign-in failed</h1><p>{escape(reason)}</p><p>{advice}</p>",
    )
