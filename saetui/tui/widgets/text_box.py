"""TextBox: a Static whose updates repaint only itself unless its wrapped height changes.

`Static.update` asks for a layout pass every time, and a layout pass repaints the whole screen: with a
token table on it that is a 30-60 ms frame at 120x40, paid on every cursor move (the token's info under
the side list) and on every streamed frame (the generation columns). `show` lays out again only when the
text wraps to another number of lines, or the width it was wrapped at changed.
"""

from __future__ import annotations

from textual.visual import VisualType
from textual.widgets import Static


class TextBox(Static):
    _wrapped: tuple[int, int] | None = None  # (width, lines) of the last text shown

    def show(self, content: VisualType) -> None:
        self.update(content, layout=False)
        width = self.content_size.width
        wrapped = (width, self.get_content_height(self.size, self.app.size, width)) if width > 0 else None
        if wrapped is None or wrapped != self._wrapped:
            self._wrapped = wrapped
            self.refresh(layout=True)
