"""Template functions and expressions (SPEC §10), against published test vectors."""

from __future__ import annotations

import base64
import hashlib
import json
import time
from datetime import UTC, datetime

import jwt as pyjwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from apimd.engine.errors import SetupError, UnknownVariable
from apimd.engine.functions import instant_now
from apimd.engine.template import Scope, referenced_variables, render
from tests.support.tls import pem_key

INSTANT = datetime(2026, 12, 6, 5, 4, 3, 250000, tzinfo=UTC)


def scope(**values: str) -> Scope:
    return Scope({k.upper(): v for k, v in values.items()}, instant=INSTANT)


# RFC 4231 §4: HMAC-SHA-256 and HMAC-SHA-512 test cases 1, 2, 3, 4, 6 and 7.
RFC4231 = [
    (
        "0b" * 20,
        b"Hi There".hex(),
        "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
        "87aa7cdea5ef619d4ff0b4241a1d6cb02379f4e2ce4ec2787ad0b30545e17cde"
        "daa833b7d6b8a702038b274eaea3f4e4be9d914eeb61f1702e696c203a126854",
    ),
    (
        b"Jefe".hex(),
        b"what do ya want for nothing?".hex(),
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
        "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea250554"
        "9758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737",
    ),
    (
        "aa" * 20,
        "dd" * 50,
        "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe",
        "fa73b0089d56a284efb0f0756c890be9b1b5dbdd8ee81a3655f83e33b2279d39"
        "bf3e848279a722c806b485a47e67c807b946a337bee8942674278859e13292fb",
    ),
    (
        "0102030405060708090a0b0c0d0e0f10111213141516171819",
        "cd" * 50,
        "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b",
        "b0ba465637458c6990e5a8c5f61d4af7e576d97ff94b872de76f8050361ee3db"
        "a91ca5c11aa25eb4d679275cc5788063a5f19741120c4f2de2adebeb10a298dd",
    ),
    (
        "aa" * 131,
        b"Test Using Larger Than Block-Size Key - Hash Key First".hex(),
        "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
        "80b24263c7c1a3ebb71493c1dd7be8b49b46d1f41b4aeec1121b013783f8f352"
        "6b56d037e05f2598bd0fd2215d6a1e5295e64f73f63f0aec8b915a985d786598",
    ),
    (
        "aa" * 131,
        b"This is a test using a larger than block-size key and a larger than block-size"
        b" data. The key needs to be hashed before being used by the HMAC algorithm.".hex(),
        "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2",
        "e37b6a775dc87dbaa4dfa9f96e5e3ffddebd71f8867289865df5a32d20cdc944"
        "b6022cac3c4982b10d5eeb55c3e4de15134676fb6de0446065c97440fa8c6a58",
    ),
]


@pytest.mark.parametrize(("key", "data", "sha256", "sha512"), RFC4231)
def test_hmac_matches_rfc_4231(key: str, data: str, sha256: str, sha512: str) -> None:
    s = scope(KEY=key, DATA=data)
    assert render("{{ hmac_sha256(hex_decode(KEY), hex_decode(DATA)) }}", s, "t") == sha256
    assert render("{{ hmac_sha512(hex_decode(KEY), hex_decode(DATA)) | hex }}", s, "t") == sha512


def test_hmac_with_a_text_key_uses_its_utf8_bytes() -> None:
    # RFC 4231 test case 2, with the key and message given as text.
    s = scope(KEY="Jefe")
    rendered = render('{{ hmac_sha256(KEY, "what do ya want for nothing?") }}', s, "t")
    assert rendered == RFC4231[1][2]
    assert render('{{ hmac_sha1(KEY, "what do ya want for nothing?") }}', s, "t") == (
        "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"  # RFC 2202 test case 2
    )


# FIPS 180-4 examples (NIST CSRC): "abc", the empty string and the two-block message.
TWO_BLOCK = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"
FIPS180 = [
    ("sha1", "abc", "a9993e364706816aba3e25717850c26c9cd0d89d"),
    ("sha1", TWO_BLOCK, "84983e441c3bd26ebaae4aa1f95129e5e54670f1"),
    ("sha256", "abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
    ("sha256", "", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
    ("sha256", TWO_BLOCK, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"),
    (
        "sha512",
        "abc",
        "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a"
        "2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f",
    ),
    ("md5", "abc", "900150983cd24fb0d6963f7d28e17f72"),  # RFC 1321 A.5
]


@pytest.mark.parametrize(("function", "message", "digest"), FIPS180)
def test_hashes_match_fips_180_vectors(function: str, message: str, digest: str) -> None:
    assert render(f"{{{{ {function}(MSG) }}}}", scope(MSG=message), "t") == digest
    b64 = base64.b64encode(bytes.fromhex(digest)).decode()
    assert render(f"{{{{ {function}(MSG) | base64 }}}}", scope(MSG=message), "t") == b64


def test_encoders_and_text_functions() -> None:
    s = scope(V="  Hé/llo?  ", HEX="00ff10", B64="AP8Q")
    assert render("{{ trim(V) | upper }}", s, "t") == "HÉ/LLO?"
    assert render("{{ V | trim | lower | urlencode }}", s, "t") == "h%C3%A9%2Fllo%3F"
    assert render("{{ hex_to_base64(HEX) }}", s, "t") == "AP8Q"
    assert render("{{ base64_decode(B64) | hex }}", s, "t") == "00ff10"
    assert render('{{ base64url("\\u00ff?>") }}', s, "t") == base64.urlsafe_b64encode(
        b"\\u00ff?>"
    ).decode().rstrip("=")
    assert render("{{ base64url(hex_decode(HEX)) }}", s, "t") == "AP8Q"
    assert render('{{ hex("ab") }}', s, "t") == "6162"


def test_time_values_share_one_instant_and_uuid_is_fresh() -> None:
    s = scope()
    assert render('{{ now("%Y-%m-%dT%H:%M:%S") }} {{ unixtime_ms() }}', s, "t") == (
        "2026-12-06T05:04:03 " + str(int(INSTANT.timestamp() * 1000))
    )
    first, second = render("{{ uuid() }} {{ uuid() }}", s, "t").split()
    assert first != second and len(first) == 36


def test_jwt_signs_with_the_instant_and_default_expiry() -> None:
    s = scope(KEY="k" * 32)
    token = render("""{{ jwt("HS256", KEY, '{"sub": "me"}') }}""", s, "t")
    claims = pyjwt.decode(
        token, "k" * 32, algorithms=["HS256"], options={"verify_exp": False, "verify_iat": False}
    )
    now = int(INSTANT.timestamp())
    assert claims == {"sub": "me", "iat": now, "exp": now + 300}
    key = ec.generate_private_key(ec.SECP256R1())
    pem = pem_key(key)
    es = render("""{{ jwt("ES256", KEY, '{"exp": 1}') }}""", scope(KEY=pem), "t")
    decoded = pyjwt.decode(
        es,
        key.public_key(),
        algorithms=["ES256"],
        options={"verify_exp": False, "verify_iat": False},
    )
    assert decoded["exp"] == 1
    with pytest.raises(SetupError, match="jwt: the claims are not JSON"):
        render('{{ jwt("HS256", KEY, "nope") }}', s, "call c headers.X")


def test_quoted_arguments_are_templates_never_spliced() -> None:
    # A value full of expression syntax is data: it is hashed, never parsed.
    evil = '") }} {{ upper("x'
    s = scope(V=evil)
    expected = hashlib.sha256(f"a{evil}b\n".encode()).hexdigest()
    assert render('{{ sha256("a%%V%%b\\n") }}', s, "t") == expected
    assert render("{{ sha256('}} inside') }}", s, "t") == hashlib.sha256(b"}} inside").hexdigest()


def test_other_brace_content_stays_as_written() -> None:
    s = scope(A="1")
    assert render("{{#each items}} {{$guid}} {{ a b }} {{A}}", s, "t") == (
        "{{#each items}} {{$guid}} {{ a b }} 1"
    )
    assert render("{{$x %%A%%}}", s, "t") == "{{$x 1}}"


def test_unknown_variable_in_an_expression_names_it() -> None:
    with pytest.raises(UnknownVariable, match=r"unknown variable SECRET in token t headers\.X"):
        render('{{ hmac_sha256(SECRET, "m") }}', scope(), "token t headers.X")
    with pytest.raises(UnknownVariable, match="unknown variable NOPE"):
        render('{{ sha256("%%NOPE%%") }}', scope(), "t")


def test_referenced_variables_include_expression_arguments() -> None:
    assert referenced_variables('{{ hmac_sha256(KEY, "%%REQUEST_PATH%%") | base64 }}') == {
        "KEY",
        "REQUEST_PATH",
    }


def test_json_claims_render_as_text() -> None:
    assert json.loads(render("""{{ lower('{"A": 1}') }}""", scope(), "t")) == {"a": 1}


def test_the_shared_instant_is_now_in_whole_milliseconds() -> None:
    """`instant_now` reads the integer clock: UTC, whole milliseconds, and the reading rounded
    to the nearest millisecond as `round(time.time(), 3)` gave it (within a millisecond of the
    clock before and after)."""
    for _ in range(1000):
        before = time.time_ns()
        instant = instant_now()
        after = time.time_ns()
        assert instant.tzinfo is UTC and instant.microsecond % 1000 == 0
        as_ns = round(instant.timestamp() * 1000) * 1_000_000
        assert before - 500_000 <= as_ns <= after + 500_000
