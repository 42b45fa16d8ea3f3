"""Response bodies: content codings undone a bounded piece at a time (so the body cap counts decoded
bytes and a compression bomb never fills memory), and bytes decoded to text with the response's
charset.

`gzip` and `deflate` (also stacked, `gzip, deflate`) are decoded; any other coding (`br`, `zstd`)
leaves the body as received."""

from __future__ import annotations

import codecs
import zlib
from collections.abc import Iterable, Iterator
from functools import lru_cache

from apimd.engine.failures import HttpFailure
from apimd.model.outcome import ResultCode

# Largest piece one decompression step may produce: what bounds memory for a compression bomb.
_DECODE_STEP = 256 * 1024
_GZIP_MAGIC = b"\x1f\x8b"
_MIB = 1024 * 1024


def decode_body(body: bytes, content_type: str | None) -> str:
    """`body` decoded with the charset of `content_type` (default UTF-8), invalid bytes replaced."""
    charset = charset_of(content_type)
    if charset == "utf-8":
        try:
            return body.decode()
        except UnicodeDecodeError:
            return body.decode(errors="replace")
    try:
        return body.decode(charset, errors="replace")
    # LookupError: a codec that exists but is not a text encoding, e.g. "rot13"; UnicodeError:
    # one that raises whatever the error handler ("idna", "undefined", "punycode").
    except (LookupError, UnicodeError):
        return body.decode("utf-8", errors="replace")


@lru_cache(maxsize=64)
def charset_of(content_type: str | None) -> str:
    """The codec named by the `charset` parameter of a Content-Type, else UTF-8."""
    for parameter in (content_type or "").split(";")[1:]:
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset":
            try:
                return codecs.lookup(value.strip().strip("\"'").strip()).name
            except LookupError:
                break
    return "utf-8"


def body_too_large(cap: int) -> HttpFailure:
    size = f"{cap // _MIB} MiB" if cap % _MIB == 0 else f"{cap} bytes"
    return HttpFailure(ResultCode.CONTENT_ERROR, f"body too large (over {size})")


class _ZlibLayer:
    """One gzip or deflate layer, inflated at most `_DECODE_STEP` bytes per step."""

    def __init__(self, coding: str) -> None:
        self._gzip = coding in ("gzip", "x-gzip")
        self._inflater: zlib._Decompress | None = None
        self._head = b""  # a stream's first byte, when it came alone: two are needed to sniff
        self._members = 0
        self._finished = False

    def feed(self, data: bytes) -> Iterator[bytes]:
        while data and not self._finished:
            if self._inflater is None:
                data, self._head = self._head + data, b""
                if len(data) < 2:
                    self._head = data
                    return
                if self._members and not data.startswith(_GZIP_MAGIC):
                    self._finished = True  # trailing bytes after the last member: ignored
                    return
                self._inflater = zlib.decompressobj(self._wbits(data))
                self._members += 1
            inflater = self._inflater
            pending = data
            while True:
                piece = inflater.decompress(pending, _DECODE_STEP)
                if piece:
                    yield piece
                pending = inflater.unconsumed_tail
                if inflater.eof or (not pending and len(piece) < _DECODE_STEP):
                    break
            if not inflater.eof:
                return
            # A gzip body may hold several members; a deflate body is one stream.
            data = inflater.unused_data
            self._inflater = None
            self._finished = not self._gzip

    def _wbits(self, first: bytes) -> int:
        if self._gzip:
            return 16 + zlib.MAX_WBITS
        # "deflate" means zlib-wrapped (RFC 9110), but some servers send a raw deflate stream.
        zlib_wrapped = first[0] & 0x0F == 8 and int.from_bytes(first[:2]) % 31 == 0
        return zlib.MAX_WBITS if zlib_wrapped else -zlib.MAX_WBITS


class BodyDecoder:
    """Undoes a response's content codings, innermost last, yielding bounded pieces."""

    def __init__(self, layers: list[_ZlibLayer], codings: str) -> None:
        self._layers = layers
        self._codings = codings

    @classmethod
    def for_content_encoding(cls, header: str | None) -> BodyDecoder:
        if not header:  # most responses: nothing to undo, nothing to parse
            return _IDENTITY
        codings = [c.strip().lower() for c in (header or "").split(",")]
        codings = [c for c in codings if c and c != "identity"]
        if not all(c in ("gzip", "x-gzip", "deflate") for c in codings):
            return cls([], "")  # a coding we cannot undo: the body stays as received
        return cls([_ZlibLayer(c) for c in reversed(codings)], ", ".join(codings))

    @property
    def decodes(self) -> bool:
        return bool(self._layers)

    def feed(self, data: bytes) -> Iterator[bytes]:
        pieces: Iterable[bytes] = (data,)
        for layer in self._layers:
            pieces = _through(layer, pieces)
        try:
            yield from pieces
        except zlib.error as exc:
            message = f"cannot decode the {self._codings} response body: {exc}"
            raise HttpFailure(ResultCode.CONTENT_ERROR, message) from exc


_IDENTITY = BodyDecoder([], "")


def _through(layer: _ZlibLayer, pieces: Iterable[bytes]) -> Iterator[bytes]:
    for piece in pieces:
        yield from layer.feed(piece)
