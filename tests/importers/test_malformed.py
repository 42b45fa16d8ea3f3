"""Wrongly typed or broken documents: each importer says what is wrong and where (the item, the
entry, the command), or leaves the item out with a note; never a Python exception."""

from __future__ import annotations

import json

import pytest

from apimd.importers import ImportFailed
from tests.importers.support import imported


def test_har_entry_with_an_unclosed_ipv6_url_is_left_out_and_named() -> None:
    har = {"log": {"entries": [{"request": {"method": "GET", "url": "http://[::1/x"}}]}}
    with pytest.raises(ImportFailed, match="no entry of the HAR log has a valid http"):
        imported("har", json.dumps(har))
    good = {"request": {"method": "GET", "url": "http://h/ok"}, "response": {"status": 200}}
    har["log"]["entries"].append(good)
    result = imported("har", json.dumps(har))
    assert [c["name"] for c in result.document["calls"]] == ["get-ok"]
    assert "entry 1: URL 'http://[::1/x' is not valid: entry not translated" in result.untranslated


def test_curl_with_an_unclosed_ipv6_url_names_the_command() -> None:
    with pytest.raises(ImportFailed, match=r"^curl command 1: URL 'http://\[::1/x' is not valid$"):
        imported("curl", "curl 'http://[::1/x' -H 'Authorization: Bearer zz'")
