"""The dashboard table renders a body cell of one line itself (issue 18 item 5: Rich's general
path cost ~1 ms a cell, a screenful ~36 × 8 cells): the segments must be exactly DataTable's. It
renders a cell again only when its own value changed, and a cell update repaints only its row."""

from __future__ import annotations

from typing import Any

import pytest
from rich.padding import Padding
from rich.style import Style
from rich.text import Text
from textual.app import App, ComposeResult
from textual.renderables.styled import Styled
from textual.widgets import DataTable

from apimd.tui.widgets.sorted_table import SortedTable

CELLS: list[str | Text] = [
    "svc-00001-health",
    "",
    "a [b]bold[/b] name",  # DataTable reads a str as markup
    "123456789012345678",  # exactly the inner width of a 20-cell column
    "1234567890123456789",  # wider: Rich crops it
    "日本語のサービス",  # double-width characters (16 cells)
    "tab\there",
    "two\nlines",
    Text("✗ fail", style="bold red"),
    Text("▁▂▃▄▅▆▇█", style="cyan"),
    Text.assemble(("ab", "green"), "cd", ("ef", "underline")),
    Text("", style="dim"),
    Text("right", justify="right"),
    Text("ellipsis but long", overflow="ellipsis"),
    Text("up 99%", style="green", end=""),
]


class Host(App[None]):
    CSS = "SortedTable { height: 1fr; }"

    def __init__(self, table: SortedTable) -> None:
        super().__init__()
        self.table = table

    def compose(self) -> ComposeResult:
        yield self.table


async def test_a_cell_renders_to_exactly_the_segments_datatable_gives_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    table = SortedTable(lambda name: (name,))
    async with Host(table).run_test(size=(60, 24)) as pilot:
        table.add_column("a", key="a", width=20)
        table.add_column("b", key="b", width=3)
        for index, cell in enumerate(CELLS):
            table.insert_row(f"r{index:02d}", [cell, cell])
        await pilot.pause()
        base = Style(color="white", bgcolor="black")
        compared = 0
        for row in range(len(CELLS)):
            for column, width in ((0, 20), (1, 3)):
                for cursor in (False, True):
                    for hover in (False, True):
                        ours = table._render_cell(row, column, base, width, cursor, hover)
                        theirs = DataTable._render_cell(
                            table, row, column, base, width, cursor, hover
                        )
                        assert ours == theirs, (CELLS[row], width, cursor, hover)
                        compared += 1
        assert compared == len(CELLS) * 8

        # The direct path is the one taken: Rich renders only the header and the cells that
        # need it (empty, tabs, justified, too wide).
        console = table.app.console
        rendered: list[str] = []
        render_lines = console.render_lines

        def counted(renderable: Any, *args: Any, **kwargs: Any) -> Any:
            if isinstance(renderable, Styled):  # one per cell DataTable renders
                padding = renderable.renderable
                assert isinstance(padding, Padding)
                rendered.append(str(padding.renderable))
            return render_lines(renderable, *args, **kwargs)

        monkeypatch.setattr(console, "render_lines", counted)
        table._clear_caches()
        table.refresh()
        await pilot.pause()
        assert table.rows_rendered >= len(CELLS)
        # Column a shows 20 cells of text, column b 3 (DataTable pads each side by one).
        column_a = ["", "tab\there", "", "right"]  # empty (twice), a tab, justified
        column_b = [Text.from_markup(c) if isinstance(c, str) else c for c in CELLS]
        column_b = [cell for cell in column_b if cell.plain != "two\nlines"]  # "two" fits
        assert sorted(rendered) == sorted(["a", "b", *column_a, *map(str, column_b)])


async def test_a_cell_update_renders_that_cell_again_and_repaints_only_its_row() -> None:
    table = SortedTable(lambda name: (name,))
    async with Host(table).run_test(size=(60, 12)) as pilot:
        for key in ("name", "age", "state"):
            table.add_column(key, key=key, width=10)
        for index in range(100):
            table.insert_row(f"m{index:03d}", [f"m{index:03d}", f"{index}s", "ok"])
        await pilot.pause()
        cells, rows = table.cells_rendered, table.rows_rendered
        table.update_cell("m003", "age", "1m")
        await pilot.pause()
        assert (table.cells_rendered - cells, table.rows_rendered - rows) == (1, 1)
        assert table.render_lines(table.region)[4].text.split() == ["m003", "1m", "ok"]

        cells = table.cells_rendered
        for _ in range(12):  # past the bottom: the table scrolls a line at a time
            await pilot.press("down")
        await pilot.pause()
        assert table.scroll_offset.y > 0
        # The rows that came into view and the cursor's: every other row is reused as it was.
        assert table.cells_rendered - cells <= 3 * (12 + 2)
