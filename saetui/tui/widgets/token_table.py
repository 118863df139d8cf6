"""TokenTable: one row per prompt token with its top features; a chosen feature colours every token (heat line).

Its key `s` shows the next loaded SAE (posts SaeSwitch)."""

from __future__ import annotations

from typing import Any, Callable

from rich.text import Text
from rich.cells import cell_len
from textual.coordinate import Coordinate
from textual.widgets import DataTable

from saetui.models.token_text import byte_text
from saetui.tui.subtitles import FittedSubtitle
from saetui.tui.actions import bindings
from saetui.tui.widgets.row_table import RowTable

_HEAT = ["#303030", "#5f3f00", "#8f5f00", "#bf7f00", "#ff9f00"]


def token_label(tok: Any, tokenizer: Any = None) -> str:
    """What a token row shows: escapes (\\n) visible, a whitespace-only token as `␣`, and the bytes of a
    partial UTF-8 character as `<0xF0>` (byte-level BPE pieces decode to `�` alone), never a blank."""
    text = tok.text
    if "\ufffd" in text and tokenizer is not None:
        text = byte_text(tokenizer, tok.id) or text
    elif text and not text.strip():
        return text.replace(" ", "␣").replace("\n", "\\n").replace("\t", "\\t")
    shown = repr(text)[1:-1]
    return shown or "·"


def _index_width(tokens: list[Any]) -> int:
    """The `#` column's content width: the widest index as shown (`12`, `0*` for a special token), or the header."""
    return max([len("#")] + [len(str(t.index)) + int(bool(t.special)) for t in tokens])


class TokenTable(FittedSubtitle, RowTable):
    """Rows: index (`*` marks special tokens), token, its top features as `f:act`, as many as the width
    allows; with a heat line, the chosen feature's activation first, as a number and a colour."""

    BINDINGS = bindings("tokens")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, cursor_type="row", zebra_stripes=True, **kwargs)
        self._shown: tuple[Any, str, list[float] | None, Any] | None = None
        self._width = 0
        self._anchor: int | None = None      # where a span selection (shift+arrows) started
        self._extend_to: list[int] = []      # rows shift+arrows are moving to, not yet highlighted
        self._marked: set[int] = set()       # rows whose index cell shows them in the span
        self._span_end: int | None = None    # the row shift+arrows last moved to: the span's other end

    @property
    def span(self) -> tuple[int, int] | None:
        """The selected tokens as (start, end), end exclusive; None without a selection."""
        if self._anchor is None:
            return None
        lo, hi = sorted((self._anchor, self.cursor_row))
        return lo, hi + 1

    def action_extend(self, step: int) -> None:
        from saetui.tui.messages import SpanChanged

        if not self.row_count:
            return
        if self._anchor is None:
            self._anchor = self.cursor_row
        row = max(0, min(self.row_count - 1, self.cursor_row + step))
        self._extend_to.append(row)
        self._span_end = row
        self.move_cursor(row=row)
        self._mark_span()
        self.post_message(SpanChanged(self.span))

    # A plain cursor key ends the span as it runs, not when its RowHighlighted arrives: a shift+arrow read in the
    # same burst (`Down Down Shift+Down`) runs before that, and extended the old span instead of starting anew.
    def action_cursor_up(self) -> None:
        self._end_span()
        super().action_cursor_up()

    def action_cursor_down(self) -> None:
        self._end_span()
        super().action_cursor_down()

    def action_page_up(self) -> None:
        self._end_span()
        super().action_page_up()

    def action_page_down(self) -> None:
        self._end_span()
        super().action_page_down()

    def action_scroll_top(self) -> None:
        self._end_span()
        super().action_scroll_top()

    def action_scroll_bottom(self) -> None:
        self._end_span()
        super().action_scroll_bottom()

    def _end_span(self) -> None:
        from saetui.tui.messages import SpanChanged

        if self._anchor is not None:
            self._anchor, self._extend_to = None, []
            self._mark_span()
            self.post_message(SpanChanged(None))

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        """A cursor move that is not a shift+arrow ends the span. A refill of the same prompt (a resize, the heat
        line) is no move: it puts the cursor back on its row (clearing the table first moved it to row 0), and the
        highlights it posts arrive with the cursor already back."""
        if event.cursor_row in self._extend_to:
            self._extend_to.remove(event.cursor_row)
        elif self._anchor is not None and (event.cursor_row != self.cursor_row or event.cursor_row == self._span_end):
            return
        else:
            self._end_span()  # a move of another kind (a click)

    SPAN_STYLE = "reverse"  # the index cells of a span's rows: the rows the side list pools over

    def _mark_span(self) -> None:
        """Show the span in the table: its rows' index cells in SPAN_STYLE (only the cells whose state changed are
        rewritten, so a held shift+arrow repaints two rows)."""
        lo, hi = self.span or (0, 0)
        want = set(range(lo, hi))
        for row in want ^ self._marked:
            if row < self.row_count:
                self.update_cell_at(Coordinate(row, 0), self._index_cell(row, row in want))
        self._marked = want

    def _index_cell(self, row: int, in_span: bool) -> Text:
        tok = self._shown[0].tokens[row] if self._shown is not None else None
        special = tok is not None and tok.special
        return Text(f"{row}{'*' if special else ''}", style=self.SPAN_STYLE if in_span else "")

    def on_mount(self) -> None:
        self.add_columns("#", "token", "top features")

    def show(self, result: Any, sae: str, heat: list[float] | None = None, tokenizer: Any = None,
             dense: Callable[[int], bool] | None = None, dense_last: bool = True) -> None:
        """Fill the rows; the cursor stays on the row it was on (as far as the new rows go); a span
        selection stays for the same prompt and ends for a new one. `dense(feature)`: whether a feature is
        dense (the tokens pane's rule): dense ones are dimmed, and with `dense_last` listed after the others
        (the last column has room for a few: they then give their place to the features that say something)."""
        if self._shown is not None and self._shown[0].prompt != result.prompt:
            self._anchor, self._extend_to, self._marked = None, [], set()
        self._shown = (result, sae, heat, tokenizer, dense, dense_last)
        self._width = self.content_size.width
        row = self.cursor_row
        res = result.sae(sae)
        top = max(heat) if heat else 0.0
        labels = [token_label(tok, tokenizer) for tok in result.tokens]
        fit, header, room = self._layout(result, sae, labels, heat is not None)
        rows: list[tuple[Text, Text, Text]] = []
        for tok, text_label, feats in zip(result.tokens, labels, res.per_token):
            template = getattr(tok, "template", False)  # a chat template's own token (turn markers, role names)
            text = Text(text_label, style="dim italic" if tok.special else ("dim" if template else ""))
            if room is not None and cell_len(text_label) > room:
                text.truncate(room, overflow="ellipsis")
            if heat and top > 0:
                level = min(len(_HEAT) - 1, int(len(_HEAT) * heat[tok.index] / top)) if heat[tok.index] > 0 else 0
                text.stylize(f"on {_HEAT[level]}")
            label = self._index_cell(tok.index, tok.index in self._marked)
            marks = self._in_shown_order(feats, dense, dense_last)
            shown = Text("  ").join(Text(f"{f}:{a:.1f}", style="dim" if is_dense else "") for f, a, is_dense in marks[:fit])
            if heat:  # the heat as a number too, not only a colour
                shown = Text.assemble((f"{heat[tok.index]:5.2f}", "bold"), " │ ", shown)
            rows.append((label, text, shown))
        # fixed widths (RowTable.fill says why); a chat's long template tokens do not keep their room
        self.fill(("#", "token", header), rows, [str(tok.index) for tok in result.tokens])
        if self.row_count:
            self.move_cursor(row=min(max(row, 0), self.row_count - 1), scroll=False)

    @staticmethod
    def _in_shown_order(feats: list[tuple[int, float]], dense: Callable[[int], bool] | None,
                        dense_last: bool) -> list[tuple[int, float, bool]]:
        """A token's (feature, activation, dense) in the order its row shows them."""
        marks = [(f, a, dense is not None and dense(f)) for f, a in feats]
        if dense_last:
            marks.sort(key=lambda m: m[2])  # stable: each group stays ordered by activation
        return marks

    def _layout(self, result: Any, sae: str, labels: list[str], heat: bool) -> tuple[int, str, int | None]:
        """(how many `f:act` items the last column has room for, at least 1 and 3 at 80 columns; its header; the
        room for a token label, None: as long as it is). Where the three columns would be wider than the table (a
        chat's `<|assistant|>` at 60x20), the header is `top` and labels longer than the room left end with `…`,
        so the table never scrolls sideways (a horizontal scrollbar would also take one of its few rows)."""
        width = self.width_for_rows(len(result.tokens))
        if width <= 0:
            return 3, "top features", None
        index_w = _index_width(result.tokens)
        token_w = max([len("token")] + [cell_len(label) for label in labels])
        heat_w = 10 if heat else 0
        items = [[len(f"{f}:{a:.1f}") for f, a in feats] for feats in result.sae(sae).per_token]  # each `f:act`'s width
        room = width - (index_w + 2) - (token_w + 2) - 2 - heat_w  # every cell padded on both sides
        item = max((w for row in items for w in row), default=7) + 2  # two spaces between
        fit = max(1, (room + 2) // item)
        shown_w = (max((w for row in items for w in row[:fit]), default=0) + 2) * fit - 2 + heat_w
        if (index_w + 2) + (token_w + 2) + (max(len("top features"), shown_w) + 2) <= width:
            return fit, "top features", None
        return fit, "top", max(width - (index_w + 2) - 2 - (max(len("top"), shown_w) + 2), len("token"))

    def on_resize(self) -> None:
        self.refit_subtitle()
        if self._shown is not None and self.content_size.width != self._width:
            self.show(*self._shown)

    def action_next_sae_here(self) -> None:
        from saetui.tui.messages import SaeSwitch

        self.post_message(SaeSwitch())

    def action_heat(self) -> None:
        from saetui.tui.messages import HeatFeature

        if self._shown is None or not self.row_count:
            self._no_rows()
            return
        result, sae, _, _, dense, dense_last = self._shown
        features = self._in_shown_order(result.sae(sae).per_token[self.cursor_row], dense, dense_last)
        if features:  # the first the row shows (a dense feature, listed last, is not what the row is about)
            self.post_message(HeatFeature(sae, features[0][0]))
        else:
            self.notify("no feature of this SAE fires on this token: nothing to heat", timeout=3)

    def action_dense(self) -> None:
        from saetui.tui.messages import DenseToggle

        self.post_message(DenseToggle())

    def action_why(self) -> None:
        from saetui.tui.messages import WhyAsked

        if self.row_count:
            self.post_message(WhyAsked(self.cursor_row))
        else:
            self._no_rows()

    def _no_rows(self) -> None:
        """A key about the highlighted token with no tokens shown: say why (the model still loading, or no prompt
        analyzed yet)."""
        if getattr(self.app, "ready_or_say", lambda: True)():  # the app says what it is waiting for
            self.notify("no tokens yet: F5 analyzes the prompt", severity="warning", timeout=3)
