"""`multipart/form-data` bodies (RFC 7578): text fields and files, built as bytes so that
request variables and signatures see exactly what is sent."""

from __future__ import annotations

import mimetypes
import uuid
from pathlib import Path

from apimd.engine.errors import SetupError


def _quoted(text: str) -> str:
    # The HTML form encoding: names and filenames cannot break out of their quotes.
    return text.replace("\r", "%0D").replace("\n", "%0A").replace('"', "%22")


class MultipartBody:
    """Collects parts; `build()` gives the body bytes and the Content-Type header value."""

    def __init__(self) -> None:
        self.boundary = "apimd-" + uuid.uuid4().hex
        self._parts: list[bytes] = []

    def add_field(self, name: str, value: str) -> None:
        head = f'Content-Disposition: form-data; name="{_quoted(name)}"\r\n'
        self._parts.append(head.encode() + b"\r\n" + value.encode())

    def add_file(
        self, name: str, path: str, *, content_type: str | None, filename: str | None, where: str
    ) -> None:
        try:
            data = Path(path).expanduser().read_bytes()
        except OSError as exc:
            raise SetupError(f"{where}: cannot read file {path!r} ({exc.strerror})") from None
        shown = filename or Path(path).name
        kind = content_type or mimetypes.guess_type(shown)[0] or "application/octet-stream"
        head = (
            f'Content-Disposition: form-data; name="{_quoted(name)}"; filename="{_quoted(shown)}"'
            f"\r\nContent-Type: {kind}\r\n"
        )
        self._parts.append(head.encode() + b"\r\n" + data)

    def build(self) -> tuple[bytes, str]:
        delimiter = f"--{self.boundary}".encode()
        body = b"".join(delimiter + b"\r\n" + part + b"\r\n" for part in self._parts)
        return body + delimiter + b"--\r\n", f"multipart/form-data; boundary={self.boundary}"
