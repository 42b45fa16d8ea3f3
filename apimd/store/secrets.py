"""Encryption of secrets at rest (Fernet) and the key that does it.

The key comes from `APIMD_SECRET_KEY` (passed in by the caller) or from a 0600 key file created once.
The database holds an encrypted check value, so opening it with a missing or different key is a clear
error — never a silently new key that would make every stored secret unreadable.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken

from apimd.store.errors import CorruptRecord, SecretKeyError

_CHECK_PLAINTEXT = b"apimd secret-key check v1"
_LOOKUP_CONTEXT = b"apimd lookup key v1"
KEY_HELP = "a key is 32 random bytes as base64 or hex, e.g. the output of `openssl rand -base64 32`"


class SecretBox:
    """Encrypts and decrypts stored values with one key; derives keyed look-up hashes from it."""

    def __init__(self, raw_key: bytes, source: str) -> None:
        if len(raw_key) != 32:
            raise SecretKeyError(f"the secret key from {source} is not 32 bytes; {KEY_HELP}")
        self.source = source
        self._fernet = Fernet(base64.urlsafe_b64encode(raw_key))
        self._lookup_key = hmac.new(raw_key, _LOOKUP_CONTEXT, hashlib.sha256).digest()

    def encrypt(self, data: bytes) -> bytes:
        return self._fernet.encrypt(data)

    def decrypt(self, token: bytes, *, what: str) -> bytes:
        try:
            return self._fernet.decrypt(token)
        except InvalidToken:
            raise CorruptRecord(f"{what} could not be decrypted with the secret key") from None

    def encrypt_json(self, value: Any) -> bytes:
        return self.encrypt(json.dumps(value, separators=(",", ":")).encode())

    def decrypt_json(self, token: bytes, *, what: str) -> Any:
        return json.loads(self.decrypt(token, what=what))

    def encrypt_text(self, text: str) -> bytes:
        return self.encrypt(text.encode())

    def decrypt_text(self, token: bytes, *, what: str) -> str:
        return self.decrypt(token, what=what).decode()

    def lookup_key(self, text: str) -> bytes:
        """A keyed hash of `text`: an index for secret look-up values (sign-in states, webhook
        counter keys) that reveals nothing about them and compares in constant time."""
        return hmac.new(self._lookup_key, text.encode(), hashlib.sha256).digest()

    def check_value(self) -> bytes:
        """The encrypted check value stored in a new database."""
        return self.encrypt(_CHECK_PLAINTEXT)

    def matches(self, check_value: bytes) -> bool:
        """Whether `check_value` was written with this key."""
        try:
            return hmac.compare_digest(self._fernet.decrypt(check_value), _CHECK_PLAINTEXT)
        except InvalidToken:
            return False


def parse_key(text: str, source: str) -> bytes:
    """The 32 raw bytes of a key given as url-safe or standard base64, or hex."""
    text = text.strip()
    candidates: list[bytes] = []
    for altchars in (b"-_", b"+/"):
        with contextlib.suppress(binascii.Error, ValueError):
            candidates.append(base64.b64decode(text, altchars=altchars, validate=True))
    with contextlib.suppress(ValueError):
        candidates.append(bytes.fromhex(text))
    for raw in candidates:
        if len(raw) == 32:
            return raw
    raise SecretKeyError(f"the secret key from {source} is not a valid key; {KEY_HELP}")


@dataclass(frozen=True)
class KeySource:
    """Where the key comes from: `APIMD_SECRET_KEY`, else `key_file`."""

    secret_key: str | None
    key_file: Path | None

    def describe(self) -> str:
        if self.secret_key is not None:
            return "APIMD_SECRET_KEY"
        return f"the key file {self.key_file}"

    def load(self, *, may_create: bool, db_name: str) -> SecretBox:
        """The key; a missing key file is created (0600) only when `may_create`."""
        if self.secret_key is not None:
            return SecretBox(parse_key(self.secret_key, "APIMD_SECRET_KEY"), self.describe())
        if self.key_file is None:
            raise SecretKeyError(
                f"no secret key for {db_name}: set APIMD_SECRET_KEY or give a key file"
            )
        try:
            text = self.key_file.read_text()
        except FileNotFoundError:
            if not may_create:
                raise SecretKeyError(
                    f"{db_name} holds secrets encrypted with a key that is not available: "
                    f"{self.key_file} does not exist and APIMD_SECRET_KEY is not set. Restore the "
                    "key file or set APIMD_SECRET_KEY to the key the database was created with "
                    "(apimd will not make a new key for an existing database)"
                ) from None
            text = _create_key_file(self.key_file)
        except OSError as exc:
            raise SecretKeyError(f"cannot read the key file {self.key_file}: {exc}") from None
        return SecretBox(parse_key(text, self.describe()), self.describe())


def _create_key_file(path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = Fernet.generate_key().decode()
    # Written aside and linked into place, so no process ever reads a half-written key file.
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(key + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(temporary, path)
        except FileExistsError:
            return path.read_text()  # another process created it first: use theirs
    finally:
        temporary.unlink(missing_ok=True)
    return key
