"""A `DataTable` of one-line rows kept in order by a sort key, cheap at 10,000 rows: a row whose
key changed moves on its own (no re-sort of the table), a cell update re-renders only its row,
and what DataTable recomputes for the whole table after any change (the rows in order, each
line's row) is kept until the order itself changes."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable
from itertools import count
from typing import Any

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual._two_way_dict import TwoWayDict
from textual.cache import LRUCache
from textual.coordinate import Coordinate
from textual.widgets.data_table import Column, ColumnKey, Row, RowKey

from apimd.tui.widgets.cell_cache import CellCachedTable, RowLines

SortKey = tuple[Any, ...]
Cell = str | Text


class SortedTable(CellCachedTable):
    """Rows are added with `insert_row` (at the place `row_key` gives them) and moved with
    `move_rows`; `update_cell` and `remove_row` work as in DataTable. Every row is one line."""

    def __init__(
        self, row_key: Callable[[str], SortKey], *, id: str | None = None, cursor_type: str = "row"
    ) -> None:
        self._row_key_of = row_key
        self._order: list[str] = []
        """Row keys, top to bottom; sorted by `_placed`."""
        self._placed: dict[str, SortKey] = {}
        """The sort key each row is at its place under (a row may wait to move)."""
        self._ordered: list[Row] | None = None
        self._row_keys: dict[str, RowKey] = {}
        self._columns: list[Column] | None = None
        self._versions: dict[str, int] = {}
        """Bumped whenever a row's cells change: part of its render cache key."""
        self._version = count(1)
        self._rows_cache: LRUCache[tuple[object, ...], tuple[int, RowLines]] = LRUCache(400)
        self.rows_rendered = 0
        """Rows rendered (cache misses): what a frame cost."""
        super().__init__(id=id, cursor_type=cursor_type)

    # --- order ----------------------------------------------------------------------------------

    @property
    def ordered_names(self) -> list[str]:
        """Every row's key, top to bottom (do not modify)."""
        return self._order

    def insert_row(self, name: str, cells: Iterable[Cell]) -> None:
        """Add a row at the place its sort key gives it."""
        key = self._row_key_of(name)
        order = self._order
        at = len(order)
        if order and key < self._placed[order[-1]]:
            at = bisect_left(order, key, key=self._placed.__getitem__)
        self._row_keys[name] = self.add_row(*cells, key=name)
        order.insert(at, name)
        self._placed[name] = key
        self._versions[name] = next(self._version)
        self._relocate(at, len(order))

    def move_rows(self, names: Iterable[str]) -> int:
        """Put each of `names` where its sort key says now; how many rows moved. Only those
        rows are taken out and put back (by bisection); the others keep their relative order."""
        moving = {}
        for name in names:
            key = self._row_key_of(name)
            if self._placed.get(name) != key:
                moving[name] = key
        if not moving:
            return 0
        locations = self._row_locations
        first = min(locations.get(self._row_keys[name]) or 0 for name in moving)
        order = [name for name in self._order if name not in moving]
        self._placed.update(moving)
        placed = self._placed.__getitem__
        for name, key in moving.items():
            at = bisect_left(order, key, key=placed)
            order.insert(at, name)
            first = min(first, at)
        self._order = order
        self._relocate(first, len(order))
        self._update_count += 1
        self.refresh()
        return len(moving)

    def _relocate(self, start: int, stop: int) -> None:
        """Rows `start:stop` of `_order` moved: tell DataTable where they are."""
        keys, order = self._row_keys, self._order
        if stop - start > 64:
            self._row_locations = TwoWayDict({keys[name]: i for i, name in enumerate(order)})
        else:
            locations = self._row_locations
            for index in range(start, stop):
                locations[keys[order[index]]] = index
        self._ordered = None

    def remove_row(self, row_key: RowKey | str) -> None:
        name = str(row_key.value if isinstance(row_key, RowKey) else row_key)
        super().remove_row(row_key)
        self._order.remove(name)
        self._placed.pop(name, None)
        self._versions.pop(name, None)
        self._row_keys.pop(name, None)
        self._ordered = None

    def clear(self, columns: bool = False) -> Any:
        self._order = []
        self._placed = {}
        self._versions = {}
        self._row_keys = {}
        self._ordered = None
        if columns:
            self._columns = None
        return super().clear(columns)

    def update_cell(
        self,
        row_key: RowKey | str,
        column_key: ColumnKey | str,
        value: Cell,
        *,
        update_width: bool = False,
    ) -> None:
        name = str(row_key.value if isinstance(row_key, RowKey) else row_key)
        key = self._row_keys.get(name)
        column = ColumnKey(column_key) if isinstance(column_key, str) else column_key
        index = self._row_locations.get(key) if key is not None else None
        if update_width or key is None or index is None or column not in self._column_locations:
            super().update_cell(row_key, column_key, value, update_width=update_width)
        else:
            # DataTable repaints the whole table after any cell update; only this row changed.
            self._data[key][column] = value
            self._update_count += 1
            self.refresh_row(index)
        self._versions[name] = next(self._version)

    # --- what DataTable recomputes for the whole table after every change -----------------------

    @property
    def ordered_rows(self) -> list[Row]:
        if self._ordered is None or len(self._ordered) != len(self._order):
            rows, keys = self.rows, self._row_keys
            self._ordered = [rows[keys[name]] for name in self._order]
        return self._ordered

    @property
    def ordered_columns(self) -> list[Column]:
        # DataTable rebuilds this list for every row added and every line rendered.
        size = len(self.columns)
        if self._columns is None or len(self._columns) != size:
            self._columns = super().ordered_columns
        return self._columns

    @property
    def _total_row_height(self) -> int:
        return len(self._order)

    def _get_offsets(self, y: int) -> tuple[RowKey, int]:
        if self.show_header:
            if y < self.header_height:
                return self._header_row_key, y
            y -= self.header_height
        return self._row_keys[self._order[y]], 0  # IndexError (a LookupError) past the end

    # --- a render cache per row -----------------------------------------------------------------

    def _clear_caches(self) -> None:
        super()._clear_caches()
        self._rows_cache.clear()

    def notify_style_update(self) -> None:
        self._rows_cache.clear()
        super().notify_style_update()

    def _render_line_in_row(
        self,
        row_key: RowKey,
        line_no: int,
        base_style: Style,
        cursor_location: Coordinate,
        hover_location: Coordinate,
    ) -> RowLines:
        # DataTable keys this on a table-wide update counter and the whole cursor position, so
        # any change or cursor move re-renders every visible row; a row's lines depend only on
        # its own cells and whether the cursor or the mouse is on it. Its place shows only in
        # each cell's mouse metadata (and the stripe, when zebra): a row that merely shifted
        # (a row above it moved) gets that metadata re-applied instead of being rendered again.
        name = row_key.value
        index = self._row_locations.get(row_key) if name is not None else -1
        assert index is not None
        cache_key = (
            name,
            self._versions.get(name, 0) if name is not None else len(self.columns),
            line_no,
            base_style,
            cursor_location.row == index,
            cursor_location.column,
            hover_location.row == index,
            hover_location.column,
            self.cursor_type,
            self.show_cursor,
            self._show_hover_cursor,
            self._pseudo_class_state,
            self.size.width,
            index % 2 if self.zebra_stripes else 0,
        )
        cached = self._rows_cache.get(cache_key)
        if cached is not None and cached[0] == index:
            return cached[1]
        if cached is not None and not cached[1][0]:
            lines = self._placed_at(cached[1], index)
        else:
            self.rows_rendered += 1
            lines = super()._render_line_in_row(
                row_key, line_no, base_style, cursor_location, hover_location
            )
        self._rows_cache[cache_key] = (index, lines)
        return lines

    @staticmethod
    def _placed_at(lines: RowLines, index: int) -> RowLines:
        """A row's rendered cells with the mouse metadata of row `index` (what DataTable puts
        on each cell, and on the padding after the last column)."""
        _, cells = lines
        moved = [
            list(
                Segment.apply_style(cell, post_style=Style.from_meta({"row": index, "column": at}))
            )
            for at, cell in enumerate(cells[:-1])
        ]
        padding = Style.from_meta({"row": index, "column": 0, "out_of_bounds": True})
        moved.append(list(Segment.apply_style(cells[-1], post_style=padding)))
        return [], moved
