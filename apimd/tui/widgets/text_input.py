"""Inputs that cannot drive the terminal with what they hold."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Input, TextArea

_SYMBOLS = {
    **{code: chr(0x2400 + code) for code in range(0x20)},  # ␀ … ␟ (␛ for ESC)
    0x7F: "\u2421",  # ␡
    **dict.fromkeys(range(0x80, 0xA0), "\ufffd"),
    **dict.fromkeys((0x2028, 0x2029), "\u21b5"),  # ↵
    **dict.fromkeys(range(0xD800, 0xE000), "\ufffd"),  # a lone surrogate
}
"""Each control character (and line separator, lone surrogate) as one visible character of one
cell: the cursor and the selection, counted in characters of the value, stay where they are."""


class TextInput(Input):
    """`Input` showing each control character of its value as a symbol (`␛` for ESC): a value
    from a project file or an import holding `ESC ]0;…` set the terminal's title, cleared it or
    coloured it, as Textual writes an Input's text as it is. The value itself is untouched."""

    @property
    def _value(self) -> Text:
        if self.password:
            return super()._value
        text = Text(self.value.translate(_SYMBOLS), no_wrap=True, overflow="ignore", end="")
        if self.highlighter is not None:
            text = self.highlighter(text)
        return text


_IN_TEXT = {code: symbol for code, symbol in _SYMBOLS.items() if code != 0x09}
"""`_SYMBOLS` but tab, which a text area lays out itself."""


class TextAreaInput(TextArea):
    """`TextArea` showing each control character of a line as a symbol, as `TextInput` does (a
    request body from a project file holding ESC sequences drove the terminal). The document is
    untouched; a line holding one is laid out a cell wider per control character than it shows,
    which only such a line pays."""

    def get_line(self, line_index: int) -> Text:
        line = self.document.get_line(line_index)
        return Text(line.translate(_IN_TEXT), end="", no_wrap=True)
