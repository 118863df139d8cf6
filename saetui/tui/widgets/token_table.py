"""TokenTable: one row per prompt token with its top features; a chosen feature colors every token (heat line)."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.widgets import DataTable

_HEAT = ["#303030", "#5f3f00", "#8f5f00", "#bf7f00", "#ff9f00"]


class TokenTable(DataTable):
    """Rows: index, token (special tokens marked), its top features as `f:act`, heat of the chosen feature."""

    def on_mount(self) -> None:
        self.cursor_type = "row"
        self.zebra_stripes = True
        self.add_columns("#", "token", "top features")

    def show(self, result: Any, sae: str, heat: list[float] | None = None) -> None:
        """Fill the rows; the cursor stays on the row it was on (as far as the new rows go)."""
        row = self.cursor_row
        self.clear()
        res = result.sae(sae)
        top = max(heat) if heat else 0.0
        for tok, feats in zip(result.tokens, res.per_token):
            text = Text(repr(tok.text)[1:-1] or "·", style="dim italic" if tok.special else "")
            if heat and top > 0:
                level = min(len(_HEAT) - 1, int(len(_HEAT) * heat[tok.index] / top)) if heat[tok.index] > 0 else 0
                text.stylize(f"on {_HEAT[level]}")
            label = Text(f"{tok.index}{'*' if tok.special else ''}")
            shown = Text("  ".join(f"{f}:{a:.1f}" for f, a in feats[:3]))
            if heat:  # the heat as a number too, not only a colour
                shown = Text.assemble((f"{heat[tok.index]:5.2f}", "bold"), " │ ", shown)
            self.add_row(label, text, shown, key=str(tok.index))
        if self.row_count:
            self.move_cursor(row=min(max(row, 0), self.row_count - 1), scroll=False)
