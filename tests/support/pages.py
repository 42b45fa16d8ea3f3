"""Reading the demo authorization server's HTML pages as a browser would."""

from __future__ import annotations

from typing import cast

import lxml.html

# The demo server's one account (apimd/demo): what a person types on its login form.
DEMO_ACCOUNT = {"username": "demo", "password": "demo-password"}


def parse_html(text: str) -> lxml.html.HtmlElement:
    """The page as an lxml HTML element (lxml's stubs type it as a bare `_Element`)."""
    return cast(lxml.html.HtmlElement, lxml.html.document_fromstring(text))
