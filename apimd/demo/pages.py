"""The demo authorization server's HTML: self-contained pages, everything escaped."""

from __future__ import annotations

from html import escape

from aiohttp import web

# No form-action: browsers apply it to the redirect that follows a form post, and that redirect
# goes to the client's loopback port, another origin.
_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'"
    ),
}
_STYLE = """
body { font: 16px/1.5 system-ui, sans-serif; background: #f4f5f7; color: #1d2330; margin: 0; }
main { max-width: 24rem; margin: 4rem auto; background: #fff; padding: 2rem;
       border-radius: 8px; box-shadow: 0 1px 4px rgba(0, 0, 0, .15); }
h1 { font-size: 1.4rem; margin-top: 0; }
label { display: block; margin-top: 1rem; font-weight: 600; }
input[type=text], input[type=password] { width: 100%; box-sizing: border-box; padding: .5rem;
       font-size: 1rem; }
.buttons { margin-top: 1.5rem; display: flex; gap: .5rem; }
button { padding: .5rem 1rem; font-size: 1rem; cursor: pointer; }
.error { color: #a4161a; background: #fde8e8; padding: .5rem; border-radius: 4px; }
.hint { color: #5b6270; font-size: .9rem; }
"""


def page(title: str, body: str, status: int = 200) -> web.Response:
    """A complete page around `body` (already escaped HTML)."""
    document = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body><main><h1>{escape(title)}</h1>{body}</main></body></html>"
    )
    return web.Response(
        text=document, status=status, content_type="text/html", headers=dict(_HEADERS)
    )


def message_page(title: str, text: str, status: int = 200) -> web.Response:
    """A page that only tells the person something."""
    return page(title, f"<p>{escape(text)}</p>", status)


def _error(error: str | None) -> str:
    return f'<p class="error" id="error">{escape(error)}</p>' if error else ""


def _hidden(fields: dict[str, str]) -> str:
    return "".join(
        f'<input type="hidden" name="{escape(name)}" value="{escape(value)}">'
        for name, value in fields.items()
    )


def _account(account: tuple[str, str]) -> str:
    user, password = (escape(part) for part in account)
    return f'<p class="hint">The demo account is <code>{user}</code> / <code>{password}</code>.</p>'


def login_page(
    client_id: str,
    hidden: dict[str, str],
    account: tuple[str, str],
    *,
    error: str | None = None,
    username: str = "",
) -> web.Response:
    """The sign-in form of the authorization endpoint; `hidden` carries the request along."""
    body = (
        f'<p class="hint">{escape(client_id)} asks to use your demo account.</p>'
        f"{_error(error)}"
        '<form method="post" action="/oauth/authorize">'
        f"{_hidden(hidden)}"
        '<label for="username">Username</label>'
        f'<input type="text" id="username" name="username" value="{escape(username)}" '
        'autocomplete="username" autofocus>'
        '<label for="password">Password</label>'
        '<input type="password" id="password" name="password" autocomplete="current-password">'
        '<div class="buttons">'
        '<button type="submit" id="sign-in">Sign in</button>'
        '<button type="submit" id="deny" name="deny" value="1">Deny</button>'
        "</div></form>"
        f"{_account(account)}"
    )
    return page("Sign in to the apimd demo", body)


def device_page(
    account: tuple[str, str], user_code: str = "", *, error: str | None = None
) -> web.Response:
    """Where a person enters the code their device shows, signs in and approves or denies."""
    body = (
        '<p class="hint">Enter the code shown on your device.</p>'
        f"{_error(error)}"
        '<form method="post" action="/device">'
        '<label for="user_code">Code</label>'
        f'<input type="text" id="user_code" name="user_code" value="{escape(user_code)}" '
        'autocomplete="off" placeholder="ABCD-EFGH">'
        '<label for="username">Username</label>'
        '<input type="text" id="username" name="username" autocomplete="username">'
        '<label for="password">Password</label>'
        '<input type="password" id="password" name="password" autocomplete="current-password">'
        '<div class="buttons">'
        '<button type="submit" id="approve" name="action" value="approve">Approve</button>'
        '<button type="submit" id="deny" name="action" value="deny">Deny</button>'
        "</div></form>"
        f"{_account(account)}"
    )
    return page("Connect a device", body)
