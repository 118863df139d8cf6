"""RowTable: a DataTable whose cursor is a whole row, with the keys a list takes.

DataTable binds Home/End to scrolling sideways; in a list of rows they go to the first and last row (Ctrl+Home and
Ctrl+End do that in DataTable, PageUp/PageDown move a page). The token table, the feature lists, the steering specs
and the why? table are RowTables; their own keys come from saetui/tui/actions.py as these do.
"""

from __future__ import annotations

from typing import Any

from textual.widgets import DataTable

from saetui.tui.actions import bindings


class RowTable(DataTable):
    BINDINGS = bindings("rows")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("cursor_type", "row")
        super().__init__(*args, **kwargs)
