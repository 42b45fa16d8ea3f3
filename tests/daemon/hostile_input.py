"""Hypothesis strategies for the bad input of issue 10 point 7, shared by the REST fuzzes
(tests/daemon/test_fuzz_api.py, tests/reliability/test_fuzz.py): JSON nested far past any
recursion limit, text with lone UTF-16 surrogates, and URLs that do not parse."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

# Every one of these fails to parse or to connect before any byte leaves the machine.
MALFORMED_URLS = (
    "http://[::1/tokens/callback?state=a&code=b",
    "http://[",
    "http://[::1]x/",
    "http://127.0.0.1:99999999/",
    "http://127.0.0.1:-1/",
    "http://%zz/",
    "http://a b/",
    "://nothing",
    "http:///",
)
malformed_urls = st.sampled_from(MALFORMED_URLS)

lone_surrogates = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)
surrogate_texts = st.builds(
    lambda before, odd, after: before + odd + after,
    st.text(max_size=4),
    lone_surrogates,
    st.text(max_size=4),
)


def _nest(depth: int, opener: str, leaf: str) -> str:
    closer = {"[": "]", '{"a":': "}"}[opener]
    return opener * depth + leaf + closer * depth


def _deep(depth: int, opener: str, leaf: str, wrap: str | None) -> bytes:
    nested = _nest(depth, opener, leaf)
    return (nested if wrap is None else f'{{"{wrap}": {nested}}}').encode()


# JSON nested 65 to 3,000 levels deep, bare or as the value of a field a body may hold.
deep_json = st.builds(
    _deep,
    st.integers(65, 3000),
    st.sampled_from(["[", '{"a":']),
    st.sampled_from(["1", '"x"', "[]"]),
    st.none() | st.sampled_from(["value", "json", "variables", "url", "calls"]),
)


def with_surrogate(document: Any, text: str) -> bytes:
    """`document` (a JSON object, else wrapped in one) with `text` in a field and as a key:
    valid JSON (`\\ud800` escapes) that no UTF-8 store can hold."""
    base = document if isinstance(document, dict) else {"value": document}
    return json.dumps({**base, "value": text, text: "x"}).encode()
