"""TextBox: a Static whose updates repaint only itself unless its wrapped height changes.

`Static.update` asks for a layout pass every time, and a layout pass repaints the whole screen: with a
token table on it that is a 30-60 ms frame at 120x40, paid on every cursor move (the token's info under
the side list) and on every streamed frame (the generation columns). `show` lays out again only when the
text wraps to another number of lines, or the width it was wrapped at changed.

A `sticky` box (the token's info, refilled on every cursor move) only grows: a text that wraps to fewer
lines leaves the box its height until `unstick()` (a new prompt), so walking the tokens lays out at most
as often as the tallest text so far grows.
"""

from __future__ import annotations

from typing import Any

from textual.visual import VisualType
from textual.widgets import Static


class TextBox(Static):
    _wrapped: tuple[int, int] | None = None  # (width, lines) of the last text shown, or the tallest if sticky

    def __init__(self, *args: Any, sticky: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._sticky = sticky

    def show(self, content: VisualType) -> None:
        self.update(content, layout=False)
        width = self.content_size.width
        wrapped = (width, self.get_content_height(self.size, self.app.size, width)) if width > 0 else None
        if self._sticky and wrapped is not None and self._wrapped is not None and wrapped[0] == self._wrapped[0]:
            if wrapped[1] <= self._wrapped[1]:
                return  # fits the height it has: repaint this box only
            self.styles.min_height = wrapped[1]  # keep the new tallest when a shorter text comes
        if wrapped is None or wrapped != self._wrapped:
            self._wrapped = wrapped
            self.refresh(layout=True)

    def unstick(self) -> None:
        """A sticky box may shrink again, to the next text it shows."""
        self._wrapped = None
        self.styles.min_height = None
