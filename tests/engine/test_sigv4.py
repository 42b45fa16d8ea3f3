"""`aws_sigv4` signatures equal botocore's SigV4 signer (the oracle, a test-only dependency) over
a generated set of requests (SPEC §10)."""

from __future__ import annotations

from datetime import UTC, datetime
from unittest import mock

import botocore.auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apimd.engine.request_vars import url_as_sent
from apimd.engine.sigv4 import AwsCredentials, sign

INSTANT = datetime(2026, 12, 6, 5, 4, 3, tzinfo=UTC)

segment = st.text(
    alphabet=st.sampled_from(list("abcXYZ019-_.~ %+=:@!$&'()*,;é☃/")), min_size=0, max_size=8
)
query_text = st.text(alphabet=st.sampled_from(list("ab Z9-_.~%+=&?/:é☃")), min_size=0, max_size=6)
requests = st.fixed_dictionaries(
    {
        "method": st.sampled_from(["GET", "POST", "PUT"]),
        "path": st.lists(segment, min_size=0, max_size=4).map(lambda s: "/" + "/".join(s)),
        # Repeated keys come from the small alphabet; unicode keys from é and ☃.
        "query": st.lists(st.tuples(query_text, query_text), max_size=5),
        "body": st.one_of(
            st.just(b""), st.binary(max_size=64), st.text(max_size=20).map(str.encode)
        ),
        "token": st.one_of(st.none(), st.just("FwoGZXIvYXdzEJr//////////session+token=")),
        "service": st.sampled_from(["execute-api", "s3", "sts", "iam"]),
        "content_type": st.sampled_from([None, "application/json", "application/octet-stream"]),
    }
)


def botocore_authorization(
    method: str,
    url: str,
    params: list[tuple[str, str]],
    headers: dict[str, str],
    body: bytes,
    creds: AwsCredentials,
) -> dict[str, str]:
    signer_class = botocore.auth.S3SigV4Auth if creds.service == "s3" else botocore.auth.SigV4Auth
    signer = signer_class(
        Credentials(creds.access_key_id, creds.secret_access_key, creds.session_token),
        creds.service,
        creds.region,
    )
    request = AWSRequest(method=method, url=url, headers=headers, data=body, params=params)
    with mock.patch.object(botocore.auth, "get_current_datetime", return_value=INSTANT):
        signer.add_auth(request)
    return {k.lower(): v for k, v in request.headers.items()}


@settings(
    max_examples=300, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
@given(requests)
def test_signatures_equal_botocore(req: dict[str, object]) -> None:
    service = str(req["service"])
    # S3 over plain http: botocore then always signs the payload (over https it may not).
    scheme = "http" if service == "s3" else "https"
    base = f"{scheme}://bucket.{service}.eu-west-1.amazonaws.com"
    params = list(req["query"])  # type: ignore[call-overload]
    sent = url_as_sent(base + str(req["path"]), params)
    creds = AwsCredentials(
        "AKIDEXAMPLE",
        "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        "eu-west-1",
        service,
        req["token"],  # type: ignore[arg-type]
    )
    body = req["body"]
    assert isinstance(body, bytes)
    headers = [("Content-Type", str(req["content_type"]))] if req["content_type"] else []
    ours = {k.lower(): v for k, v in sign(str(req["method"]), sent, headers, body, creds, INSTANT)}
    oracle = botocore_authorization(
        str(req["method"]),
        f"{scheme}://{sent.raw_authority}{sent.raw_path}",
        list(sent.query.items()),
        dict(headers),
        body,
        creds,
    )
    assert ours["authorization"] == oracle["authorization"]
    assert ours["x-amz-date"] == oracle["x-amz-date"] == "20261206T050403Z"
    assert ours.get("x-amz-security-token") == oracle.get("x-amz-security-token")
    assert ours.get("x-amz-content-sha256") == oracle.get("x-amz-content-sha256")


def test_a_known_request_signs_as_botocore() -> None:
    """One readable case: a PUT with a space, unicode and a dot segment in the path."""
    sent = url_as_sent("https://api.example.com/a b/./é/../x", [("k", "v2"), ("k", "v1")])
    creds = AwsCredentials("AKID", "secret", "us-east-1", "execute-api", "tok")
    ours = dict(sign("PUT", sent, [], b"\x00\xff", creds, INSTANT))
    oracle = botocore_authorization(
        "PUT",
        f"https://{sent.raw_authority}{sent.raw_path}",
        list(sent.query.items()),
        {},
        b"\x00\xff",
        creds,
    )
    assert ours["Authorization"] == oracle["authorization"]
    assert "SignedHeaders=host;x-amz-date;x-amz-security-token" in ours["Authorization"]
    assert ours["X-Amz-Security-Token"] == "tok"
