"""A `DataTable` that renders a one-line text cell itself and caches what it renders by the
cell's own value and by the row's own rendering, where DataTable keys its caches on a table-wide
update counter (any change anywhere renders every cell on screen again)."""

from __future__ import annotations

from itertools import chain

from rich.cells import cell_len
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual._segment_tools import line_crop
from textual._types import SegmentLines
from textual.cache import LRUCache
from textual.strip import Strip
from textual.widgets import DataTable
from textual.widgets._data_table import default_cell_formatter

RowLines = tuple[list[list[Segment]], list[list[Segment]]]
_JOIN = Text("\n")
_NULL = Style.null()


class CellCachedTable(DataTable[str | Text]):
    """Every row one line; no fixed rows or columns take the fast paths."""

    def __init__(self, *, id: str | None = None, cursor_type: str = "row") -> None:
        self._cells_cache: LRUCache[tuple[object, ...], tuple[object, SegmentLines]]
        self._cells_cache = LRUCache(1000)
        self._strips: LRUCache[tuple[object, ...], tuple[RowLines, Strip]] = LRUCache(200)
        self.cells_rendered = 0
        """Cells rendered (cache misses)."""
        super().__init__(id=id, cursor_type=cursor_type)  # type: ignore[arg-type]

    def _clear_caches(self) -> None:
        super()._clear_caches()
        self._cells_cache.clear()
        self._strips.clear()

    def notify_style_update(self) -> None:
        self._cells_cache.clear()
        self._strips.clear()
        super().notify_style_update()

    def _render_line(self, y: int, x1: int, x2: int, base_style: Style) -> Strip:
        # DataTable caches a line by its y and the table-wide update counter: after any change
        # or scroll every line on screen is cropped and made a Strip again. A row's strip
        # depends only on its rendered cells (the object `_render_line_in_row` caches) and
        # the crop.
        width = self.size.width
        try:
            row_key, line_no = self._get_offsets(y)
        except LookupError:
            return Strip.blank(width, base_style)
        if row_key is self._header_row_key or self.fixed_columns:
            return super()._render_line(y, x1, x2, base_style)
        _, cells = lines = self._render_line_in_row(
            row_key,
            line_no,
            base_style,
            cursor_location=self.cursor_coordinate,
            hover_location=self.hover_coordinate,
        )
        strip_key = (id(lines), x1, x2, width, base_style)
        cached = self._strips.get(strip_key)
        if cached is not None and cached[0] is lines:
            return cached[1]
        segments = line_crop(list(chain.from_iterable(cells)), x1, x2, width)
        strip = Strip(segments).adjust_cell_length(width, base_style).simplify()
        self._strips[strip_key] = (lines, strip)
        return strip

    # --- cells ----------------------------------------------------------------------------------

    def _render_cell(
        self,
        row_index: int,
        column_index: int,
        base_style: Style,
        width: int,
        cursor: bool = False,
        hover: bool = False,
    ) -> SegmentLines:
        # DataTable renders each cell through Rich's general machinery (Styled(Padding(Text))
        # rendered to lines, cropped and padded twice): ~1 ms a cell, 36 rows × 8 cells a
        # screenful. A body cell of one line of text that fits gives the same segments directly.
        if row_index >= 0 and column_index >= 0 and not (self.fixed_rows or self.fixed_columns):
            row_key = self._row_locations.get_key(row_index)
            column_key = self._column_locations.get_key(column_index)
            if row_key is not None and column_key is not None:
                datum = self._data.get(row_key, {}).get(column_key)
                # DataTable's own cell cache is keyed on the table-wide update counter: a cell
                # renders again after any change anywhere. Ours: after its own value changed.
                cell_key = (
                    row_key,
                    column_index,
                    row_index,
                    id(datum),
                    base_style,
                    width,
                    cursor,
                    hover,
                    self.show_cursor,
                    self._show_hover_cursor,
                    self._pseudo_class_state,
                )
                cached = self._cells_cache.get(cell_key)
                if cached is not None and cached[0] is datum:
                    return cached[1]
                self.cells_rendered += 1
                line = self._one_line_cell(
                    datum, row_index, column_index, base_style, width, cursor, hover
                )
                if line is not None:
                    self._cells_cache[cell_key] = (datum, [line])
                    return [line]
        return super()._render_cell(row_index, column_index, base_style, width, cursor, hover)

    def _one_line_cell(
        self,
        datum: object,
        row_index: int,
        column_index: int,
        base_style: Style,
        width: int,
        cursor: bool,
        hover: bool,
    ) -> list[Segment] | None:
        """The one line `_render_cell` gives a cell holding `datum`, or None when that takes
        Rich's general path (not text, empty, several lines, tabs, justified, or wider than the
        cell)."""
        if not isinstance(datum, str | Text):
            return None
        text = default_cell_formatter(datum, wrap=False, height=1)
        padding = self.cell_padding
        inner = width - 2 * padding
        if (
            not isinstance(text, Text)
            or not text
            or inner <= 0
            or text.justify not in (None, "default")
        ):
            return None
        plain = text.plain
        if "\n" in plain or "\t" in plain or cell_len(plain) > inner:
            return None
        segments = list(_JOIN.join([text]).render(self.app.console))
        used = sum(segment.cell_length for segment in segments)
        if used < inner:
            segments.append(Segment(" " * (inner - used), _NULL))
        if padding:
            segments = [Segment(" " * padding, _NULL), *segments, Segment(" " * padding, _NULL)]
        component_style, post_style = self._get_styles_to_render_cell(
            False,
            False,
            False,
            hover,
            cursor,
            self.show_cursor,
            self._show_hover_cursor,
            self.cursor_foreground_priority == "css",
            self.cursor_background_priority == "css",
        )
        pre_style = base_style + Style.from_meta({"row": row_index, "column": column_index})
        pre_style += component_style
        return list(Segment.apply_style(segments, style=pre_style, post_style=post_style))
