"""The secret key: created once, checked against the database, never silently replaced; and no
secret on disk in clear."""

from __future__ import annotations

import base64
import os
import stat
import urllib.parse
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet

from apimd.model.project import Project
from apimd.model.resources import TokenState
from apimd.model.runtime import TokenRuntime
from apimd.store import PendingSignIn, SecretKeyError
from tests.store.conftest import TEST_KEY, OpenStore, make_result


async def test_a_key_file_is_created_once_with_mode_0600(
    open_test_store: OpenStore, db_dir: Path
) -> None:
    key_file = db_dir / "config" / "secret.key"
    store = await open_test_store(secret_key=None, key_file=key_file)
    await store.save_variables({"API_KEY": "k"}, secret=True)
    await store.close()
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    first = key_file.read_text()
    store = await open_test_store(secret_key=None, key_file=key_file)
    variable = await store.load_variable("API_KEY")
    assert variable is not None and variable.value == "k"
    assert key_file.read_text() == first


async def test_a_missing_key_file_is_an_error_not_a_new_key(
    open_test_store: OpenStore, db_dir: Path
) -> None:
    key_file = db_dir / "secret.key"
    await (await open_test_store(secret_key=None, key_file=key_file)).close()
    key_file.unlink()
    with pytest.raises(SecretKeyError) as caught:
        await open_test_store(secret_key=None, key_file=key_file)
    message = str(caught.value)
    assert str(key_file) in message
    assert "APIMD_SECRET_KEY" in message
    assert "will not make a new key" in message
    assert not key_file.exists()


async def test_a_wrong_key_is_refused(open_test_store: OpenStore) -> None:
    await (await open_test_store()).close()
    with pytest.raises(SecretKeyError) as caught:
        await open_test_store(secret_key=Fernet.generate_key().decode())
    assert "APIMD_SECRET_KEY" in str(caught.value)
    assert "apimd.db" in str(caught.value)


async def test_a_key_file_that_does_not_match_is_refused(
    open_test_store: OpenStore, db_dir: Path
) -> None:
    key_file = db_dir / "secret.key"
    await (await open_test_store(secret_key=None, key_file=key_file)).close()
    key_file.write_text(Fernet.generate_key().decode())
    with pytest.raises(SecretKeyError, match=r"secret\.key"):
        await open_test_store(secret_key=None, key_file=key_file)


@pytest.mark.parametrize("key", ["not a key", "c2hvcnQ=", "00" * 31])
async def test_a_malformed_key_is_refused_with_help(open_test_store: OpenStore, key: str) -> None:
    with pytest.raises(SecretKeyError, match="openssl rand -base64 32"):
        await open_test_store(secret_key=key)


async def test_base64_and_hex_spellings_of_one_key_are_the_same_key(
    open_test_store: OpenStore,
) -> None:
    raw = base64.urlsafe_b64decode(TEST_KEY)
    await (await open_test_store()).close()
    for spelling in (base64.b64encode(raw).decode(), raw.hex(), f"  {TEST_KEY}\n"):
        await (await open_test_store(secret_key=spelling)).close()


async def test_the_environment_key_wins_over_a_key_file(
    open_test_store: OpenStore, db_dir: Path
) -> None:
    key_file = db_dir / "secret.key"
    key_file.write_text(Fernet.generate_key().decode())
    await (await open_test_store(secret_key=TEST_KEY, key_file=key_file)).close()
    with pytest.raises(SecretKeyError):
        await open_test_store(secret_key=None, key_file=key_file)


# --- nothing in clear on disk ------------------------------------------------------------------

CLIENT_SECRET = "cs-Zq8mW3xv-client-secret"
SECRET_VARIABLE = "sv/Secret+Variable=Value&1"
WEBHOOK_URL = "https://hooks.slack.com/services/T000/B000/XXXXwebhookXXXX"
REFRESHED_ACCESS = "at.eyJhbGciOi.refreshed-access-token"
REFRESHED_REFRESH = "rt-rotated-refresh-token-9f8e7d"
SIGNIN_STATE = "state-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z"
CODE_VERIFIER = "pkce-verifier-0123456789abcdefghijklmnopqrstuvwxyz"
CALLBACK_CODE = "callback-code-value-42"
PASSWORD = "p@ss w0rd/with:specials"

SECRETS = [
    CLIENT_SECRET,
    SECRET_VARIABLE,
    WEBHOOK_URL,
    REFRESHED_ACCESS,
    REFRESHED_REFRESH,
    SIGNIN_STATE,
    CODE_VERIFIER,
    CALLBACK_CODE,
    PASSWORD,
]


def encodings(secret: str) -> dict[str, bytes]:
    raw = secret.encode()
    forms = {
        "raw": raw,
        "url-encoded": urllib.parse.quote(secret, safe="").encode(),
        "form-encoded": urllib.parse.quote_plus(secret).encode(),
        "base64": base64.b64encode(raw).rstrip(b"="),
        "base64url": base64.urlsafe_b64encode(raw).rstrip(b"="),
        "utf-16": secret.encode("utf-16-le"),
    }
    # Base64 of a secret inside a longer value depends on its offset: check all three alignments.
    for shift in (1, 2):
        forms[f"base64+{shift}"] = base64.b64encode(b"\0" * shift + raw)[4:-4]
    return forms


def leaks(db_dir: Path, secrets: list[str] = SECRETS) -> list[str]:
    found = []
    for name in ("apimd.db", "apimd.db-wal", "apimd.db-shm"):
        path = db_dir / name
        if not path.exists():
            continue
        data = path.read_bytes()
        for secret in secrets:
            for form, needle in encodings(secret).items():
                if needle in data:
                    found.append(f"{secret!r} ({form}) in {name}")
    return found


async def write_every_kind_of_secret(store: Any) -> None:
    """Secrets in every place a store keeps one: resources, token state, variables, sign-ins,
    webhook counter keys, results."""
    project = Project.model_validate(
        {
            "variables": {"API_KEY": {"value": SECRET_VARIABLE, "secret": True}, "REGION": "eu"},
            "auth": [
                {
                    "name": "example",
                    "type": "manual",
                    "client_id": "my-client",
                    "client_secret": CLIENT_SECRET,
                    "webhooks": [{"type": "slack", "url": WEBHOOK_URL}],
                },
                {"name": "basic", "type": "basic", "username": "me", "password": PASSWORD},
            ],
            "tokens": [{"name": "example-token", "auth": "example"}],
            "calls": [
                {
                    "name": "list-orders",
                    "url": "https://api.example.com/orders",
                    "token": "example-token",
                    "webhooks": [
                        {"type": "http", "url": WEBHOOK_URL, "alerts": ["FAIL"]},
                        {"type": "slack", "url": WEBHOOK_URL},
                    ],
                }
            ],
        }
    )
    await store.apply(project)
    # A refresh saves the token, several times (older versions of the row stay in the WAL).
    for round_ in range(3):
        await store.save_token(
            TokenRuntime(
                name="example-token",
                variables={
                    "ACCESS_TOKEN": f"{REFRESHED_ACCESS}{round_}",
                    "REFRESH_TOKEN": REFRESHED_REFRESH,
                    "EXPIRES_IN": "3600",
                },
                state=TokenState.VALID,
                saved_at=datetime.now(UTC),
            )
        )
    await store.save_variables({"SAVED_SECRET": SECRET_VARIABLE}, secret=True)
    signin = PendingSignIn.model_validate(
        {
            "state": SIGNIN_STATE,
            "url": f"https://login.example.com/authorize?state={SIGNIN_STATE}",
            "token": "example-token",
            "code_verifier": CODE_VERIFIER,
            "variables": {"CODE": CALLBACK_CODE, "CLIENT_SECRET": CLIENT_SECRET},
            "remaining_steps": ["get-token"],
        }
    )
    await store.signins.create(signin)
    await store.save_counter(f"list-orders:{WEBHOOK_URL}", 2)
    await store.add_result(make_result("r-1", variables={"ACCESS_TOKEN": "••••"}))


async def read_every_kind_of_secret_back(store: Any) -> None:
    consumed = await store.signins.consume(SIGNIN_STATE)
    assert consumed is not None
    assert consumed.code_verifier == CODE_VERIFIER
    assert await store.load_counter(f"list-orders:{WEBHOOK_URL}") == 2
    assert (await store.load_token("example-token")).variables["REFRESH_TOKEN"] == REFRESHED_REFRESH
    exported = await store.export(secrets=True)
    assert exported.auth_setting("example").webhooks[0].url == WEBHOOK_URL


async def test_no_secret_is_stored_in_clear(open_test_store: OpenStore, db_dir: Path) -> None:
    store = await open_test_store()
    await write_every_kind_of_secret(store)
    # While open: the WAL holds everything written so far.
    assert (db_dir / "apimd.db-wal").stat().st_size > 0
    assert leaks(db_dir) == []
    await read_every_kind_of_secret_back(store)
    await store.close()
    # After close: everything is checkpointed into the main file.
    assert leaks(db_dir) == []
    assert os.path.getsize(db_dir / "apimd.db") > 0


def test_the_leak_check_finds_what_it_looks_for(db_dir: Path) -> None:
    """The scan itself works (a scan that finds nothing proves nothing otherwise)."""
    payload = b"xx" + base64.b64encode(b"ab" + WEBHOOK_URL.encode()) + b"yy"
    payload += urllib.parse.quote(PASSWORD, safe="").encode()
    (db_dir / "apimd.db").write_bytes(payload)
    found = leaks(db_dir)
    assert any(WEBHOOK_URL in f and "base64" in f for f in found)
    assert any(PASSWORD in f and "url-encoded" in f for f in found)
