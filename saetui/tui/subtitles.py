"""Border labels that fit: at 80 columns a subtitle loses its least important parts, not its end.

Textual cuts a border title or subtitle that is too long with `…`, which at 80x24 took the FVU off the
token table and the max off a steered column's KL. `FittedSubtitle` keeps the parts and drops them in a
stated order until the rest fits, again on every resize.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.cells import cell_len
from textual.widget import Widget

from saetui.tui.markup import escape


def fit_label(parts: Sequence[str], width: int, drop_order: Sequence[int], sep: str = " · ") -> str:
    """`parts` joined by `sep`, leaving out parts in `drop_order` (indices, least important first) until the
    text fits in `width` cells; what cannot be dropped is kept whole (Textual then cuts it)."""
    keep = [bool(p) for p in parts]
    text = sep.join(p for p, k in zip(parts, keep) if k)
    for i in drop_order:
        if width <= 0 or cell_len(text) <= width:
            break
        keep[i] = False
        text = sep.join(p for p, k in zip(parts, keep) if k)
    return text


class FittedSubtitle:
    """Mixin for a bordered widget: `fit_subtitle(parts, drop_order)` sets a subtitle that fits its width."""

    _subtitle: tuple[tuple[str, ...], tuple[int, ...], str] = ((), (), " · ")

    def fit_subtitle(self: Widget, parts: Sequence[str], drop_order: Sequence[int], sep: str = " · ") -> None:
        self._subtitle = (tuple(parts), tuple(drop_order), sep)
        room = self.size.width - 4  # the corners and a space each side
        self.border_subtitle = escape(fit_label(parts, room, drop_order, sep))

    def refit_subtitle(self: Widget) -> None:
        parts, order, sep = self._subtitle
        if parts:
            self.fit_subtitle(parts, order, sep)
