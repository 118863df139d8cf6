"""TextBox: a Static whose updates repaint only itself unless its wrapped height changes.

`Static.update` asks for a layout pass every time, and a layout pass repaints the whole screen: with a
token table on it that is a 30-60 ms frame at 120x40, paid on every cursor move (the token's info under
the side list) and on every streamed frame (the generation columns). `show` lays out again only when the
text wraps to another number of lines, or the width it was wrapped at changed.

A `sticky` box (the token's info, refilled on every cursor move) only grows: a text that wraps to fewer
lines leaves the box its height until `unstick()` (a new prompt), so walking the tokens lays out at most
as often as the tallest text so far grows.

A box may also show lines of whole items (`Items`: tokens with their numbers, `' Paris' 12%`): Textual wraps at
any space, the one inside a token's text included, so those lines are packed here by whole items for the box's
width, and packed again when the width changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from rich.cells import cell_len
from rich.text import Text
from textual.visual import VisualType
from textual.widgets import Static


@dataclass(frozen=True)
class Items:
    """One paragraph of whole items, wrapped between items only; lines after the first start at `indent`. `lead`
    (`next `) begins the first line, the first item after it where it fits, else on the next line."""

    items: Sequence[Text]
    sep: str = " "
    indent: int = 0
    lead: Text | None = None


Lines = Sequence["Text | Items"]  # what `TextBox.show` packs: plain lines (Textual wraps them) and Items


def pack(items: Sequence[Text], width: int, indent: int = 0, sep: str = " ", lead: Text | None = None) -> Text:
    """Whole items joined by `sep` into lines of at most `width` cells (an item longer than a line gets
    its own line, cut with an ellipsis): no item is ever broken across lines. `lead` begins the first line
    (a title like `next `, ending in its own space): the first item follows it where it fits."""
    lines: list[Text] = []
    line = lead.copy() if lead is not None else Text()
    used, empty = cell_len(line.plain), True  # empty: no item on this line yet
    for item in items:
        size = cell_len(item.plain)
        joint = "" if empty else sep
        if used > indent and used + len(joint) + size > width:
            lines.append(line)
            line, used, empty, joint = Text(" " * indent), indent, True, ""
        line.append(joint)
        used += len(joint)
        if size > width - used:
            item = item.copy()
            item.truncate(max(width - used, 1), overflow="ellipsis")
            size = cell_len(item.plain)
        line.append_text(item)
        used, empty = used + size, False
    lines.append(line)
    return Text("\n").join(lines)


def pack_lines(lines: Lines, width: int) -> Text:
    """`lines` as one Text for `width` cells: each Items packed, plain lines as they are."""
    return Text("\n").join(pack(line.items, width, line.indent, line.sep, line.lead) if isinstance(line, Items)
                           else line for line in lines)


class TextBox(Static):
    _wrapped: tuple[int, int] | None = None  # (width, lines) of the last text shown, or the tallest if sticky
    _lines: Lines | None = None  # the lines shown, while they are Lines (packed again on a resize)

    def __init__(self, *args: Any, sticky: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._sticky = sticky

    def show(self, content: VisualType | list[Text | Items]) -> None:
        """Show `content`; a list is Lines, packed for the box's width (and again when it changes)."""
        width = self.content_size.width
        if isinstance(content, list):
            self._lines = content
            content = pack_lines(content, width if width > 0 else 10_000)  # not laid out yet: packed on resize
        else:
            self._lines = None
        self.update(content, layout=False)
        wrapped = (width, self.get_content_height(self.size, self.app.size, width)) if width > 0 else None
        if self._sticky and wrapped is not None and self._wrapped is not None and wrapped[0] == self._wrapped[0]:
            if wrapped[1] <= self._wrapped[1]:
                return  # fits the height it has: repaint this box only
            self.styles.min_height = wrapped[1]  # keep the new tallest when a shorter text comes
        if wrapped is None or wrapped != self._wrapped:
            self._wrapped = wrapped
            self.refresh(layout=True)

    def on_resize(self) -> None:
        width = self.content_size.width
        if self._lines is not None and width > 0 and (self._wrapped is None or width != self._wrapped[0]):
            self.show(list(self._lines))

    def unstick(self) -> None:
        """A sticky box may shrink again, to the next text it shows."""
        self._wrapped = None
        self.styles.min_height = None
