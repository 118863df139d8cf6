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
        self.clear()
        res = result.sae(sae)
        top = max(heat) if heat else 0.0
        for tok, feats in zip(result.tokens, res.per_token):
            text = Text(repr(tok.text)[1:-1] or "·", style="dim italic" if tok.special else "")
            if heat and top > 0:
                level = min(len(_HEAT) - 1, int(len(_HEAT) * heat[tok.index] / top)) if heat[tok.index] > 0 else 0
                text.stylize(f"on {_HEAT[level]}")
            label = Text(f"{tok.index}{'*' if tok.special else ''}")
            shown = "  ".join(f"{f}:{a:.1f}" for f, a in feats[:3])
            self.add_row(label, text, shown, key=str(tok.index))
