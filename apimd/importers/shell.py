"""Splitting shell command lines as browsers copy them: bash (with `$'…'` ANSI-C quoting and `\\`
line continuations), cmd (`^` escapes) and PowerShell (backtick continuations)."""

from __future__ import annotations

import re

from apimd.importers.builder import ImportFailed

_ANSI_ESCAPES = {
    "a": "\a",
    "b": "\b",
    "e": "\x1b",
    "E": "\x1b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
    "\\": "\\",
    "'": "'",
    '"': '"',
    "?": "?",
}
_HEX = {"x": 2, "u": 4, "U": 8}
_SEPARATORS = (";", "&&", "||", "\n", "&")


def split_commands(text: str) -> list[list[str]]:
    """The words of each command in `text`; commands end at newlines, `;`, `&&`, `||`."""
    if '^"' in text or re.search(r"\^\r?\n", text):
        text = _from_cmd(text)
    text = re.sub(r"`\r?\n", " ", text)  # PowerShell line continuation
    commands: list[list[str]] = []
    words: list[str] = []
    reader = _Reader(text)
    while not reader.done():
        char = reader.peek()
        if char in " \t\r":
            reader.advance()
            continue
        if char == "\\" and reader.peek(1) in ("\n", "\r"):
            reader.advance(2)
            if reader.peek() == "\n":
                reader.advance()
            continue
        separator = next((s for s in _SEPARATORS if reader.startswith(s)), None)
        if separator:
            reader.advance(len(separator))
            if words:
                commands.append(words)
                words = []
            continue
        if char == "#" and not words:
            while not reader.done() and reader.peek() != "\n":
                reader.advance()
            continue
        words.append(_word(reader))
    if words:
        commands.append(words)
    return commands


class _Reader:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def done(self) -> bool:
        return self.pos >= len(self.text)

    def peek(self, offset: int = 0) -> str:
        index = self.pos + offset
        return self.text[index] if index < len(self.text) else ""

    def startswith(self, prefix: str) -> bool:
        return self.text.startswith(prefix, self.pos)

    def advance(self, count: int = 1) -> None:
        self.pos += count

    def take(self) -> str:
        char = self.peek()
        self.pos += 1
        return char


def _word(reader: _Reader) -> str:
    out: list[str] = []
    while not reader.done():
        char = reader.peek()
        if char in " \t\r\n;&|":
            break
        if char == "$" and reader.peek(1) == "'":
            reader.advance(2)
            out.append(_ansi_c(reader))
        elif char == "'":
            reader.advance()
            out.append(_until(reader, "'"))
        elif char == '"':
            reader.advance()
            out.append(_double_quoted(reader))
        elif char == "\\":
            reader.advance()
            nxt = reader.take()
            if nxt != "\n":
                out.append(nxt)
        else:
            out.append(reader.take())
    return "".join(out)


def _until(reader: _Reader, end: str) -> str:
    start = reader.pos
    index = reader.text.find(end, start)
    if index < 0:
        raise ImportFailed(f"unterminated {end} quote starting at offset {start - 1}")
    reader.pos = index + 1
    return reader.text[start:index]


def _double_quoted(reader: _Reader) -> str:
    out: list[str] = []
    while True:
        if reader.done():
            raise ImportFailed('unterminated " quote')
        char = reader.take()
        if char == '"':
            return "".join(out)
        if char == "\\" and reader.peek() in ('"', "\\", "$", "`", "\n"):
            nxt = reader.take()
            if nxt != "\n":
                out.append(nxt)
        else:
            out.append(char)


def _ansi_c(reader: _Reader) -> str:
    out: list[str] = []
    while True:
        if reader.done():
            raise ImportFailed("unterminated $' quote")
        char = reader.take()
        if char == "'":
            return "".join(out)
        if char != "\\":
            out.append(char)
            continue
        code = reader.take()
        if code in _ANSI_ESCAPES:
            out.append(_ANSI_ESCAPES[code])
        elif code in _HEX:
            digits = ""
            while len(digits) < _HEX[code] and reader.peek() in "0123456789abcdefABCDEF":
                digits += reader.take()
            out.append(chr(int(digits, 16)) if digits else "\\" + code)
        elif code in "01234567":
            digits = code
            while len(digits) < 3 and reader.peek() in "01234567":
                digits += reader.take()
            out.append(chr(int(digits, 8)))
        else:
            out.append("\\" + code)


def _from_cmd(text: str) -> str:
    """cmd's form (`curl ^"https://…^" ^` + newline): drop `^` escapes and continuations, turn
    cmd's `""` inside quotes into bash's `\\"`."""
    text = re.sub(r"\^\r?\n", " ", text)
    text = re.sub(r"\^(.)", r"\1", text)
    return re.sub(r'(?<=[^\s])""(?=[^\s])', r"\\\"", text)
