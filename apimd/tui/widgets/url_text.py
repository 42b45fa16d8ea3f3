"""An address shown whole and copied as one line."""

from __future__ import annotations

from rich.style import Style
from rich.text import Text
from textual.selection import Selection
from textual.widgets import Static

from apimd.tui.formatting import screen_text


class UrlText(Static):
    """A long address folded to the width (all of it in view) that still copies as one line:
    selecting it in the app (drag, then ctrl+c) leaves out the fold's line breaks, and in a
    terminal that knows OSC 8 links every line of it is a link to the whole address. (The
    terminal's own selection, shift+drag, copies the screen's lines; ctrl+y copies with OSC 52.)
    The address comes from a server or a project: it is shown, linked and copied with its
    control characters escaped (the link is written inside an OSC 8 sequence, where an ESC or
    BEL would end it and start a sequence of the server's own)."""

    def __init__(self, url: str, *, id: str | None = None) -> None:
        url = screen_text(url)
        super().__init__(Text(url, style=Style(link=url), overflow="fold"), id=id, markup=False)
        self.url = url

    def get_selection(self, selection: Selection) -> tuple[str, str] | None:
        width = max(1, self.content_region.width)
        lines = "\n".join(self.url[at : at + width] for at in range(0, len(self.url), width))
        return selection.extract(lines).replace("\n", ""), "\n"
