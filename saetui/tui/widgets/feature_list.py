"""FeatureList: a table of features (feature, a number, what it is); its keys post intents for the app.

Rows may come from several SAEs: the feature column then names the SAE (`early/12`). Enter opens the
detail, `a` adds to steering, `h` shows the heat line, `l` labels: each posts a message that bubbles up.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.cells import cell_len
from rich.text import Text
from textual.widgets import DataTable

from saetui.tui import messages
from saetui.tui.actions import bindings
from saetui.tui.widgets.row_table import RowTable


@dataclass(frozen=True)
class FeatureRow:
    sae: str
    feature: int
    value: str   # already formatted: an activation, a score
    about: str   # label, what matched; cut with an ellipsis where the column ends
    dim: bool = False  # shown dimmed (a dense feature: it fires on most text)


class FeatureList(RowTable):
    BINDINGS = bindings("features")

    def __init__(self, *args, value_title: str = "act", **kwargs) -> None:  # noqa: ANN002, ANN003
        super().__init__(*args, cursor_type="row", **kwargs)
        self._rows: list[FeatureRow] = []
        self._tagged = False
        self._width = 0
        self._widths: tuple[int, int, int, int] | None = None  # the columns' content widths and padding, once laid out
        self._value_title = value_title

    def on_mount(self) -> None:
        self.add_columns("feature", self._value_title, "about")

    @property
    def rows_shown(self) -> list[FeatureRow]:
        return list(self._rows)

    def show(self, rows: list[FeatureRow], *, tagged: bool = False) -> None:
        """Fill the rows; `tagged` names each row's SAE. An about text longer than the room ends with `…`.

        Once laid out, the columns get explicit widths that add up to the widget's width (the about column
        takes what the others leave), so refilling for another token keeps the table's virtual width: a
        changed virtual size would cost a layout pass and a repaint of the whole screen on every cursor move."""
        same = [(r.sae, r.feature) for r in rows] == [(r.sae, r.feature) for r in self._rows]
        self._rows, self._tagged = list(rows), tagged
        self._width = self.content_size.width
        row = self.cursor_row if same else 0  # the same list again (labels, widths) keeps its place; a new one starts at its top
        names = [f"{r.sae}/{r.feature}" if tagged else str(r.feature) for r in rows]
        widths = self._column_widths(names, rows)
        if widths is None or widths != self._widths:
            self.clear(columns=True)  # auto widths only ever widen: start again, so shorter names give room back
            if widths is not None:
                self.cell_padding = widths[3]
            for title, width in zip(("feature", self._value_title, "about"), widths or (None, None, None)):
                self.add_column(title, width=width)
            self._widths = widths
        else:
            self.clear()
        room = None if widths is None else widths[2]
        for name, r in zip(names, rows):
            text = Text(r.about, no_wrap=True, style="dim" if r.dim else "")
            if room is not None and cell_len(r.about) > room:
                text.truncate(max(room, 1), overflow="ellipsis")
            style = "dim" if r.dim else ""  # Text, not str: DataTable reads a str cell as markup (an SAE's name)
            cells = (Text(name, style=style), Text(r.value, style=style), text)
            self.add_row(*cells, key=f"{r.sae}/{r.feature}")
        if self.row_count:
            self.move_cursor(row=min(max(row, 0), self.row_count - 1), scroll=False)
        if not same:
            self.scroll_home(animate=False)

    def _column_widths(self, names: list[str], rows: list[FeatureRow]) -> tuple[int, int, int, int] | None:
        """(feature, value, about) content widths filling the widget, and the cell padding; None before it is
        laid out. Where padded cells would not leave the feature and its value whole (`demo-late/721` and
        `3.37` in the 20 cells of the side list at 60x20), nor the `about` title, the padding goes and the columns
        keep one blank cell between them instead: a number cut at the edge would read as another number."""
        width = self.width_for_rows(len(rows))
        if width <= 0:
            return None  # not laid out yet: shown again on the first resize
        # (rows that no longer overflow drop the bar: the wider content then comes back through on_resize)
        name_w = max([len("feature")] + [len(n) for n in names])
        value_w = max([len(self._value_title)] + [cell_len(r.value) for r in rows])
        about_w = width - (name_w + 2) - (value_w + 2) - 2  # a cell is padded on both sides
        if about_w >= len("about"):  # (padded, `about` was cut to `abou` in the 30 cells of the side list at 80x24)
            return name_w, value_w, about_w, 1
        return name_w + 1, value_w + 1, max(1, width - (name_w + 1) - (value_w + 1)), 0

    def on_resize(self) -> None:
        if self._rows and self.content_size.width != self._width:
            self.show(self._rows, tagged=self._tagged)

    def current(self) -> FeatureRow | None:
        if self.row_count == 0 or not 0 <= self.cursor_row < len(self._rows):
            return None
        return self._rows[self.cursor_row]

    def current_feature(self) -> int | None:
        row = self.current()
        return None if row is None else row.feature

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()  # a mouse click on a row: open it, as Enter does
        self._post(messages.FeatureChosen)

    def _post(self, kind: type[messages.FeatureIntent]) -> None:
        row = self.current()
        if row is not None:
            self.post_message(kind(row.sae, row.feature))

    def action_open(self) -> None:
        self._post(messages.FeatureChosen)

    def action_steer(self) -> None:
        self._post(messages.SteerFeature)

    def action_heat(self) -> None:
        self._post(messages.HeatFeature)

    def action_dense(self) -> None:
        self.post_message(messages.DenseToggle())  # the tokens pane acts on it; elsewhere nothing does

    def action_label(self) -> None:
        self._post(messages.LabelFeature)
