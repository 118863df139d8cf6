"""FeatureList: a table of features (number, activation or score, description); Enter opens the detail."""

from __future__ import annotations

from textual.binding import Binding
from textual.widgets import DataTable


class FeatureList(DataTable):
    BINDINGS = [Binding("a", "app.add_feature", "Add"), Binding("h", "app.heat", "Heat"),
                Binding("l", "app.label", "Label")]

    def on_mount(self) -> None:
        self.cursor_type = "row"
        self.add_columns("feature", "value", "about")

    def show(self, rows: list[tuple[int, float, str]]) -> None:
        self.clear()
        for feature, value, about in rows:
            self.add_row(str(feature), f"{value:.2f}", about, key=str(feature))

    def current_feature(self) -> int | None:
        if self.row_count == 0:
            return None
        key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key
        return int(key.value) if key.value is not None else None
