"""RowTable: a DataTable whose cursor is a whole row, with the keys a list takes.

DataTable binds Home/End to scrolling sideways; in a list of rows they go to the first and last row (Ctrl+Home and
Ctrl+End do that in DataTable, PageUp/PageDown move a page). The token table, the feature lists, the steering specs
and the why? table are RowTables; their own keys come from saetui/tui/actions.py as these do.
"""

from __future__ import annotations

from typing import Any, Sequence

from rich.cells import cell_len
from rich.text import Text
from textual.widgets import DataTable

from saetui.tui.actions import bindings
from saetui.tui.key_order import InOrderKeys


class RowTable(InOrderKeys, DataTable):
    BINDINGS = bindings("rows")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("cursor_type", "row")
        super().__init__(*args, **kwargs)

    def width_for_rows(self, rows: int) -> int:
        """The cells the columns may take once `rows` rows are in: the width without the vertical scrollbar, also
        one those rows are about to bring (content_size counts its cells; left no room, a horizontal bar would show
        up too); 0 before the table is laid out."""
        width = self.scrollable_content_region.width
        if width > 0 and rows + int(self.show_header) > self.content_size.height and not self.show_vertical_scrollbar:
            width -= self.styles.scrollbar_size_vertical
        return width

    @staticmethod
    def cell_widths(titles: Sequence[str], rows: Sequence[Sequence[Text]]) -> list[int]:
        """Each column's content width: its widest cell, or its title."""
        return [max([cell_len(title)] + [cells[c].cell_len for cells in rows]) for c, title in enumerate(titles)]

    def fill(self, titles: Sequence[str], rows: Sequence[Sequence[Text]], keys: Sequence[str],
             widths: Sequence[int] | None = None) -> None:
        """Replace the columns and rows, each column fixed at `widths` (default: cell_widths). Measured here, not
        left to DataTable's auto width: auto columns start as wide as their titles and widen when the table is next
        idle, and cells drawn in between are cached without their width; a modal pushed then covered a token
        table whose `#` column stayed one cell wide ("1" for "10"). The columns go too, so a refill's narrower
        cells give their room back."""
        self.clear(columns=True)
        for title, width in zip(titles, widths or self.cell_widths(titles, rows)):
            self.add_column(title, width=width)
        for key, cells in zip(keys, rows):
            self.add_row(*cells, key=key)

    def fill_fitted(self, titles: Sequence[str], rows: Sequence[Sequence[Text]], keys: Sequence[str]) -> None:
        """`fill`, each column as wide as its widest cell; where they would be wider than the table, the last column
        (a label) gives way and its cells end with `…` (they are truncated in place). Measured at the table's width
        now: a table that shows labels fills again when its width changes."""
        widths = self.cell_widths(titles, rows)
        room = self.width_for_rows(len(rows))
        over = sum(w + 2 for w in widths) - room  # every cell is padded on both sides
        if room > 0 and over > 0:
            widths[-1] = max(cell_len(titles[-1]), widths[-1] - over)
            for cells in rows:
                cells[-1].truncate(widths[-1], overflow="ellipsis")
        self.fill(titles, rows, keys, widths)
