"""The importers' naming: a name asked for again gets the first free `-N` suffix, exactly as a
scan from `-2` would give it, without rescanning every earlier suffix (a HAR of 60,000 requests
to one path took over five minutes to name)."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from apimd.importers import import_text
from apimd.importers.builder import UniqueNames
from apimd.model.parsing import parse_text


def scanned(name: str, taken: set[str]) -> str:
    """The first free name, every suffix from -2 tried: the definition `claim` must keep."""
    candidate, n = name, 2
    while candidate in taken:
        suffix = f"-{n}"
        candidate, n = name[: 100 - len(suffix)] + suffix, n + 1
    taken.add(candidate)
    return candidate


_BASES = st.sampled_from(["a", "a-2", "a-3", "get-items", "x" * 100, "x" * 98 + "-2", "b"])


@given(st.lists(_BASES, max_size=60))
def test_claimed_names_are_those_of_a_full_scan(requests: list[str]) -> None:
    names, taken = UniqueNames(), set[str]()
    got = [names.claim(name) for name in requests]
    assert got == [scanned(name, taken) for name in requests]
    assert len(set(got)) == len(got)
    assert all(len(name) <= 100 for name in got)


def test_many_requests_to_one_path_are_named_in_order() -> None:
    entries = [
        {"request": {"method": "GET", "url": f"https://api.example.com/items?id={i}"}}
        for i in range(3000)
    ]
    project = import_text("har", json.dumps({"log": {"entries": entries}}))
    names = [call["name"] for call in project.document["calls"]]
    assert names[:3] == ["get-items", "get-items-2", "get-items-3"]
    assert names[-1] == "get-items-3000"
    assert len(set(names)) == 3000


def test_a_body_with_a_next_line_character_is_imported_unchanged() -> None:
    body = "caf\x85e"
    har = {"request": {"method": "POST", "url": "https://a.example/x", "postData": {"text": body}}}
    project = import_text("har", json.dumps({"log": {"entries": [har]}}))
    parsed, data, _tree, issues = parse_text(project.yaml, "imported.yaml")
    assert parsed, issues
    assert data["calls"][0]["body"] == body
