"""FeatureList: a table of features (number, activation or score, description); Enter opens the detail."""

from __future__ import annotations

from rich.cells import cell_len
from rich.text import Text
from textual.binding import Binding
from textual.widgets import DataTable


class FeatureList(DataTable):
    BINDINGS = [Binding("a", "app.add_feature", "Add"), Binding("h", "app.heat", "Heat"),
                Binding("l", "app.label", "Label")]

    def on_mount(self) -> None:
        self.cursor_type = "row"
        self._rows: list[tuple[int, float, str]] = []
        self._width = 0
        self.add_columns("feature", "value", "about")

    def show(self, rows: list[tuple[int, float, str]]) -> None:
        """Fill the rows; a description longer than the room left ends with an ellipsis, never a bare cut."""
        self._rows = list(rows)
        self._width = self.content_size.width
        row = self.cursor_row
        self.clear()
        room = self._about_room(rows)
        for feature, value, about in rows:
            text = Text(about, no_wrap=True)
            if room is not None and cell_len(about) > room:
                text.truncate(max(room, 1), overflow="ellipsis")
            self.add_row(str(feature), f"{value:.2f}", text, key=str(feature))
        if self.row_count:
            self.move_cursor(row=min(max(row, 0), self.row_count - 1), scroll=False)

    def _about_room(self, rows: list[tuple[int, float, str]]) -> int | None:
        width = self.content_size.width
        if width <= 0:
            return None  # not laid out yet: shown again on the first resize
        feature_w = max([len("feature")] + [len(str(f)) for f, _, _ in rows])
        value_w = max([len("value")] + [len(f"{v:.2f}") for _, v, _ in rows])
        return width - (feature_w + 2) - (value_w + 2) - 2  # content_size already leaves out a scrollbar

    def on_resize(self) -> None:
        if self._rows and self.content_size.width != self._width:
            self.show(self._rows)

    def current_feature(self) -> int | None:
        if self.row_count == 0:
            return None
        key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key
        return int(key.value) if key.value is not None else None
