"""The dashboard's table: one row per monitor, keyed by name, so live changes touch only the
cells that changed, the cursor stays on its monitor, and rows off screen wait until they show."""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import datetime
from functools import partial
from typing import ClassVar

from rich.text import Text
from textual.binding import Binding, BindingType
from textual.widgets.data_table import RowKey

from apimd.tui.formatting import (
    age,
    name_with_certificate,
    outcome_text,
    reason_text,
    running_for,
    token_state_text,
    uptime_text,
)
from apimd.tui.monitors import Board
from apimd.tui.ports import Clock
from apimd.tui.sparkline import sparkline
from apimd.tui.widgets.sorted_table import SortedTable

SORT_S = 0.5
"""Rows move to their new place at most this often."""
FIRST_ROWS = 200
"""A fill adds this many rows at once (more than a screenful), then paints."""
FILL_ROWS = 500
"""The rest of a fill is added this many rows at a time, between frames and key presses."""
FILL_PAUSE_S = 0.005

COLUMNS: tuple[tuple[str, str], ...] = (
    ("outcome", "outcome"),
    ("name", "name"),
    ("kind", "kind"),
    ("last", "last"),
    ("latency", "latency"),
    ("uptime", "up 24h"),
    ("next", "next"),
    ("token", "token"),
    ("why", "why"),
)
NARROW = 100
"""Below this width the kind and the latency sparkline give way to the name and `why` (at 80
columns, 15 each): which monitor fails and why come first."""
WIDE = 120
"""From this width `last` says `running 75s` in words; below, `▶ 75s`."""
WHY_MIN = 15
"""The least the `why` column gets: the name gives way to it down to 12 columns."""

Cells = dict[str, str | Text]


class MonitorTable(SortedTable):
    """Shows `board`; enter opens the history of the monitor under the cursor."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "select_cursor", "Results", id="dashboard.results"),
    ]

    def __init__(self, board: Board, clock: Clock, *, id: str | None = None) -> None:
        super().__init__(self._sort_key, id=id)
        self.board = board
        self.clock = clock
        self.rebuilds = 0
        """How many times the rows were filled from scratch (load, filter, resize)."""
        self._shown: dict[str, Cells] = {}
        self._changed: set[str] = set()
        """Monitors changed since the last flush."""
        self._stale: set[str] = set()
        """Rows whose cells are behind their monitor (off screen until they scroll into view)."""
        self._moves: set[str] = set()
        """Rows whose monitor may have changed rank: they move at the next sort."""
        self._sorted_at = 0.0
        self._spark_width = 10
        self._layout_width = 0
        self._shown_columns: tuple[str, ...] = ()
        """The keys of the columns shown at this width (kind and sparkline go when narrow)."""
        self._filling: list[str] = []
        """Rows still to add after the first screenful (`fill`), in order."""
        self._fill_cursor: str | None = None
        self._fill_generation = 0

    def _sort_key(self, name: str) -> tuple[int, str, str]:
        """Dashboard order (`Board.sort_key`), ties broken by the exact name."""
        return (*self.board.sort_key(name), name)

    # --- filling --------------------------------------------------------------------------------

    def fill(self, names: Iterable[str], width: int) -> None:
        """Show exactly `names`, in that order, keeping the cursor on the same monitor. The
        first `FIRST_ROWS` are added at once (the screen can paint), the rest `FILL_ROWS` at a
        time between frames and key presses."""
        current = self._fill_cursor if self._filling else self.current_name()
        if width != self._layout_width or not self.columns:
            self._layout(width)
        self.clear()
        self._shown.clear()
        self._changed.clear()
        self._stale.clear()
        self._moves.clear()
        self.rebuilds += 1
        self._fill_generation += 1
        pending = list(names)
        self._filling, self._fill_cursor = pending[FIRST_ROWS:], current
        self._add_rows(pending[:FIRST_ROWS])
        self.restore_cursor(current)
        if self._filling:
            self.set_timer(FILL_PAUSE_S, partial(self._fill_more, self._fill_generation))

    def _fill_more(self, generation: int) -> None:
        if generation != self._fill_generation:
            return  # a newer fill started
        chunk, self._filling = self._filling[:FILL_ROWS], self._filling[FILL_ROWS:]
        self._add_rows(chunk)
        if self._filling:
            self.set_timer(FILL_PAUSE_S, partial(self._fill_more, generation))
        elif self._fill_cursor is not None:
            if self.current_name() != self._fill_cursor:
                self.restore_cursor(self._fill_cursor)
            self._fill_cursor = None

    def _add_rows(self, names: Iterable[str]) -> None:
        now = self.clock()
        for name in names:
            if name in self.board.monitors and name not in self._shown:
                self._add(name, now)

    @property
    def filling(self) -> bool:
        """Rows of the last `fill` are still being added."""
        return bool(self._filling)

    def _update_dimensions(self, new_rows: Iterable[RowKey]) -> None:
        # DataTable measures every cell of each new row to size auto-width columns; ours all
        # have fixed widths and rows one line high, so that is wasted: about half the first
        # paint of 10,000 monitors (bench/tui_bench.py). The virtual size is still updated.
        if any(column.auto_width for column in self.columns.values()):
            super()._update_dimensions(new_rows)
        else:
            super()._update_dimensions(())

    def needs_layout(self, width: int) -> bool:
        return bool(self._layout_width) and width != self._layout_width

    def _layout(self, width: int) -> None:
        self._layout_width = width
        self._spark_width = 20 if width >= 150 else 10
        widths = {
            "outcome": 9,
            "kind": 4,
            "last": 11 if width >= WIDE else 5,
            "latency": self._spark_width,
            "uptime": 6,
            "next": 6,
            "token": 8,
        }
        if width < NARROW:
            del widths["kind"], widths["latency"]
        columns = [
            (key, label) for key, label in COLUMNS if key in widths or key in ("name", "why")
        ]
        # Each column has one cell of padding on both sides; the scrollbar takes 2. Names get
        # the rest, up to what the longest one needs, leaving `why` at least `WHY_MIN`; `why`
        # takes what is left.
        longest = max((len(n) for n in self.board.monitors), default=12)
        room = width - sum(widths.values()) - 2 * len(columns) - 2
        widths["name"] = max(12, min(room - WHY_MIN, max(24, longest + 2)))
        widths["why"] = max(WHY_MIN, room - widths["name"])
        self._shown_columns = tuple(key for key, _ in columns)
        self.clear(columns=True)
        for key, label in columns:
            self.add_column(label, key=key, width=widths[key])

    def _add(self, name: str, now: datetime) -> None:
        cells = self.cells(name, now)
        self.insert_row(name, cells.values())
        self._shown[name] = cells

    def add_monitors(self, names: Iterable[str]) -> None:
        """New rows, at their place."""
        current = self.current_name()
        self._add_rows(names)
        self.restore_cursor(current)

    def remove_monitors(self, names: Iterable[str]) -> None:
        current = self.current_name()
        for name in names:
            if name in self._filling:
                self._filling.remove(name)
            if name in self._shown:
                self.remove_row(name)
                del self._shown[name]
                self._stale.discard(name)
                self._moves.discard(name)
        self.restore_cursor(current)

    # --- cells --------------------------------------------------------------------------------

    def cells(self, name: str, now: datetime) -> Cells:
        """Every cell of a monitor's row, in column order (only the columns shown)."""
        board = self.board
        monitor = board.monitors[name]
        cells: Cells = {
            "outcome": outcome_text(monitor.outcome),
            "name": name_with_certificate(name, monitor.cert_expires_at, now),
            # A call that runs only as a workflow's step (no schedule of its own) says so; one with
            # its own schedule stays a call whichever way it ran last.
            "kind": "step"
            if monitor.step_of and monitor.next_run is None
            else "call"
            if monitor.kind == "call"
            else "flow",
            "last": self._last_cell(name, now),
            "latency": Text(sparkline(monitor.latency_values, self._spark_width), style="cyan"),
            "uptime": uptime_text(monitor.uptime),
            "next": board.next_run(name, now).text(now),
            "token": token_state_text(monitor.token_state),
            "why": reason_text(monitor.outcome, monitor.reason),
        }
        if len(cells) > len(self._shown_columns):  # narrow: kind and sparkline are not shown
            del cells["kind"], cells["latency"]
        return cells

    def _last_cell(self, name: str, now: datetime) -> str | Text:
        monitor = self.board.monitors[name]
        if monitor.running:
            if monitor.running_since is None:
                return Text("▶", style="bold cyan")
            took = running_for(monitor.running_since, now)
            words = f"running {took}" if self._layout_width >= WIDE else f"▶ {took}"
            return Text(words, style="bold cyan")
        return age(monitor.last_run_at, now)

    def _update(self, name: str, cells: Cells) -> None:
        shown = self._shown[name]
        for column, value in cells.items():
            if shown.get(column) != value:
                self.update_cell(name, column, value)
                shown[column] = value

    # --- live changes ---------------------------------------------------------------------------

    def mark_changed(self, names: Iterable[str]) -> None:
        """These monitors changed: their rows are updated at the next `flush`."""
        self._changed.update(names)

    def flush(self) -> None:
        """Move the rows whose monitor changed rank (at most every `SORT_S`; only those rows
        move), then update the changed cells of the rows on screen. Rows off screen are updated
        when they scroll into view: only the rows on screen are ever rendered."""
        if not self._changed and not self._moves and not self._stale:
            return
        changed, self._changed = self._changed, set()
        for name in changed:
            if name in self._shown and name in self.board.monitors:
                self._stale.add(name)
                self._moves.add(name)
        if self._moves and time.monotonic() - self._sorted_at >= SORT_S:
            moves, self._moves = self._moves, set()
            self._sorted_at = time.monotonic()
            current = self.current_name()
            self.move_rows(n for n in moves if n in self._shown and n in self.board.monitors)
            self.restore_cursor(current)
        now = self.clock()
        for name in self.visible_names():
            if name in self._stale:
                self._stale.discard(name)
                if name in self.board.monitors:
                    self._update(name, self.cells(name, now))

    def tick(self) -> None:
        """The time columns (last run age, next run) of the rows on screen, where their text
        changed; call once a second."""
        now = self.clock()
        for name in self.visible_names():
            shown = self._shown.get(name)
            if shown is None or name not in self.board.monitors:
                continue
            for column, value in (
                ("last", self._last_cell(name, now)),
                ("next", self.board.next_run(name, now).text(now)),
            ):
                if shown.get(column) != value:
                    self.update_cell(name, column, value)
                    shown[column] = value

    @property
    def settled(self) -> bool:
        """Every change so far is on screen."""
        return not (self._changed or self._stale or self._moves or self._filling)

    # --- where things are -------------------------------------------------------------------------

    def shown_names(self) -> list[str]:
        """Every row's monitor, in table order."""
        return list(self.ordered_names)

    def visible_names(self) -> list[str]:
        """The monitors of the rows on screen, top to bottom."""
        top = int(self.scroll_offset.y)
        height = max(1, self.size.height - 1)  # the header row is fixed
        return self.ordered_names[top : top + height]

    def current_name(self) -> str | None:
        if self.row_count == 0:
            return None
        return str(self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value)

    def restore_cursor(self, name: str | None) -> None:
        if name is not None and name in self._shown:
            index = self.get_row_index(name)
            if index != self.cursor_row:
                self.move_cursor(row=index, animate=False)
