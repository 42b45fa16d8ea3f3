"""HTTP Digest authentication (RFC 7616): answering a `WWW-Authenticate: Digest` challenge with
MD5 or SHA-256 (and their `-sess` forms), `qop=auth`."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from urllib.request import parse_http_list, parse_keqv_list

from multidict import MultiMapping
from yarl import URL

from apimd.engine.hops import Hop

_HASHES = {"MD5": "md5", "SHA-256": "sha256"}
_PREFERENCE = ("SHA-256", "SHA-256-SESS", "MD5", "MD5-SESS")


@dataclass(frozen=True)
class Challenge:
    realm: str
    nonce: str
    algorithm: str  # upper-case, e.g. SHA-256 or MD5-SESS
    qop: tuple[str, ...]
    opaque: str | None


def parse_challenges(values: list[str]) -> list[Challenge]:
    """The Digest challenges among `WWW-Authenticate` values that use an algorithm we speak."""
    found: list[Challenge] = []
    for value in values:
        scheme, _, params = value.strip().partition(" ")
        if scheme.lower() != "digest":
            continue
        fields = {k.lower(): v for k, v in parse_keqv_list(parse_http_list(params)).items()}
        algorithm = fields.get("algorithm", "MD5").upper()
        if algorithm.removesuffix("-SESS") not in _HASHES or "nonce" not in fields:
            continue
        qop = tuple(q.strip().lower() for q in fields.get("qop", "").split(",") if q.strip())
        found.append(
            Challenge(
                fields.get("realm", ""), fields["nonce"], algorithm, qop, fields.get("opaque")
            )
        )
    return sorted(found, key=lambda c: _PREFERENCE.index(c.algorithm))


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def answer(
    challenge: Challenge,
    method: str,
    url: URL,
    username: str,
    password: str,
    *,
    cnonce: str | None = None,
    count: int = 1,
) -> str:
    """The `Authorization` header value answering `challenge` for this request."""
    name = _HASHES[challenge.algorithm.removesuffix("-SESS")]

    def digest(*parts: str) -> str:
        return hashlib.new(name, ":".join(parts).encode()).hexdigest()

    cnonce = cnonce or secrets.token_hex(16)
    nc = f"{count:08x}"
    uri = url.raw_path_qs
    ha1 = digest(username, challenge.realm, password)
    if challenge.algorithm.endswith("-SESS"):
        ha1 = digest(ha1, challenge.nonce, cnonce)
    ha2 = digest(method.upper(), uri)
    fields = [
        ("username", _quote(username)),
        ("realm", _quote(challenge.realm)),
        ("nonce", _quote(challenge.nonce)),
        ("uri", _quote(uri)),
        ("algorithm", challenge.algorithm),
    ]
    if "auth" in challenge.qop:
        response = digest(ha1, challenge.nonce, nc, cnonce, "auth", ha2)
        fields += [("qop", "auth"), ("nc", nc), ("cnonce", _quote(cnonce))]
    else:
        response = digest(ha1, challenge.nonce, ha2)
    fields.append(("response", _quote(response)))
    if challenge.opaque is not None:
        fields.append(("opaque", _quote(challenge.opaque)))
    return "Digest " + ", ".join(f"{k}={v}" for k, v in fields)


def retry_header(
    status: int, challenges: list[str], credentials: tuple[str, str] | None, method: str, url: URL
) -> str | None:
    """The `Authorization` answer when a 401 carries a Digest challenge we can answer."""
    if status != 401 or credentials is None:
        return None
    usable = parse_challenges(challenges)
    if not usable:
        return None
    return answer(usable[0], method, url, *credentials)


@dataclass(frozen=True)
class DigestAnswer:
    """The last step of SPEC §10's pipeline, a `HopAnswer`: a 401 with a Digest challenge is
    answered by sending the hop again, so the challenge round trip shows in the timings; the
    answer stays on later hops of the same origin."""

    username: str
    password: str

    def __call__(self, hop: Hop, status: int, headers: MultiMapping[str]) -> bool:
        challenges = headers.getall("WWW-Authenticate", [])
        credentials = (self.username, self.password)
        answer = retry_header(status, challenges, credentials, hop.method, URL(hop.url))
        if answer is None:
            return False
        hop.set_header("Authorization", answer)
        return True
