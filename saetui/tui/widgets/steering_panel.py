"""Steering widgets: the spec table, and generation columns streamed side by side (or one row per
sweep coefficient). The Steer pane (saetui/tui/panes/steer.py) puts them together."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Container, VerticalScroll
from textual.message import Message

from saetui.tui.actions import bindings
from saetui.tui.markup import escape
from saetui.tui.subtitles import FittedSubtitle
from saetui.tui.widgets.row_table import RowTable
from saetui.tui.widgets.text_box import TextBox


class SpecTable(RowTable):
    """One row per spec: on, SAE/feature, mode, coefficient (and its +/- step), scope, label.

    A view only: its keys post `SpecTable.Edit`, which the Steer pane turns into a new draft."""

    BINDINGS = bindings("specs")

    @dataclass
    class Edit(Message):
        op: str      # "toggle" | "nudge" | "cycle_mode" | "cycle_scope" | "remove" | "undo"
        row: int
        arg: int = 0

    HEADERS = ("on", "feature", "mode", "coef", "step", "scope", "label")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, cursor_type="row", **kwargs)
        self._shown: tuple[list[Any], dict, list[float]] | None = None
        self._width = 0

    def on_mount(self) -> None:
        self.add_columns(*self.HEADERS)

    def on_resize(self) -> None:
        if self._shown is not None and self.content_size.width != self._width:
            self.show(*self._shown)  # the labels fitted to the new width
        """The highlighted row in sight at the table's new height. A row highlighted while the steer tab was hidden
        (`a` in why? or a feature list adds a spec there) could not be scrolled to: a hidden table has no height, and
        it gets one (a Resize) when it shows; at 60x20 it shrinks again when the pane's -short class comes with the
        pane's first size. Without this, Ctrl+W sweeps a spec out of sight (at 60x20 one row shows)."""
        if self.row_count:
            self.call_after_refresh(self.move_cursor, row=self.cursor_row)

    def show(self, specs: list[Any], labels: dict, steps: list[float]) -> None:
        """Fill the rows, the label column giving way where they would be wider than the table (RowTable.fill_fitted)."""
        self._shown, self._width = (specs, labels, steps), self.content_size.width
        row = self.cursor_row
        rows = []
        for s, step in zip(specs, steps):
            max_units = s.kind == "feature" and s.unit == "max"  # a vector's 1 is its whole direction, no unit shown
            coef = "-" if s.mode == "ablate" else f"{s.coefficient:g}{'×max' if max_units else ''}"
            # the mode as wide as its widest (ablate): m does not shift the columns after it
            rows.append([Text(cell) for cell in ("✓" if s.enabled else " ", s.target, f"{s.mode:<6}", coef,
                                                 "" if s.mode == "ablate" else f"±{step:g}", s.scope, s.label(labels))])
        self.fill_fitted(self.HEADERS, rows, [str(i) for i in range(len(rows))])
        if specs:
            self.move_cursor(row=min(max(row, 0), len(specs) - 1))

    def _edit(self, op: str, arg: int = 0) -> None:
        # with no row the pane says so (a key that does nothing says why)
        self.post_message(self.Edit(op, self.cursor_row if self.row_count else -1, arg))

    def action_toggle(self) -> None:
        self._edit("toggle")

    def action_nudge(self, steps: int) -> None:
        self._edit("nudge", steps)

    def action_cycle_mode(self) -> None:
        self._edit("cycle_mode")

    def action_cycle_scope(self) -> None:
        self._edit("cycle_scope")

    def action_remove(self) -> None:
        self._edit("remove")

    def action_undo(self) -> None:
        self.post_message(self.Edit("undo", self.cursor_row))  # also with no row left: the last one removed comes back


class GenerationColumn(FittedSubtitle, VerticalScroll):
    """Streamed text of one row; pieces whose token differs from the other column's are underlined.

    The column scrolls, and follows the stream while its end is in view (scroll up to read back; the
    next repaint at the end follows again). Pieces arrive faster than a terminal needs to repaint
    (hundreds a second), so they are collected and the text re-renders at most 30 times a second;
    `flush` paints what is pending at once.
    """

    REFRESH_HZ = 30
    can_focus = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._rich = Text()
        self._note = Text()  # a dim line after the text (why a row is blank), not part of it
        self._spans: list[tuple[int, int]] = []  # each piece's place in the text
        self._dirty = False

    def compose(self) -> ComposeResult:
        yield TextBox(classes="gen-text")

    def on_mount(self) -> None:
        self.set_interval(1 / self.REFRESH_HZ, self.flush)

    def on_resize(self) -> None:
        self.refit_subtitle()

    @property
    def text(self) -> str:
        return self._rich.plain

    def render_text(self) -> Text:
        """The text with its marks (underlined: differs from the first row), as the column shows it."""
        return self._rich.copy()

    @property
    def _body(self) -> TextBox:
        return self.query_one(".gen-text", TextBox)

    def set_title(self, title: str) -> None:
        """The column's title (`generation.row_title`): it names specs (an SAE's, a vector's name), text not markup."""
        self.border_title = escape(title)

    def reset(self, title: str) -> None:
        self.set_title(title)
        self.fit_subtitle([], [])
        self._rich = Text()
        self._note = Text()
        self._spans = []
        self._dirty = False
        self._body.show(self._rich)
        self.scroll_home(animate=False)

    def append(self, piece: str, marked: bool = False) -> None:
        start = len(self._rich)
        self._rich.append(piece, style="bold underline" if marked else "")
        self._spans.append((start, len(self._rich)))
        self._dirty = True

    def note(self, text: str) -> None:
        """A dim line after the generated text saying something about it (not part of `text`)."""
        self._note = Text(text, style="dim italic")
        self._dirty = True

    def mark(self, pieces: list[int], style: str) -> None:
        """Style the given pieces (by their order in the stream), e.g. where steering moved the model most."""
        for i in pieces:
            if 0 <= i < len(self._spans):
                self._rich.stylize(style, *self._spans[i])
        self._dirty = True

    def flush(self) -> None:
        if self._dirty:
            self._dirty = False
            follow = self.scroll_y >= self.max_scroll_y - 1
            self._body.show(self._rich + self._note if self._note else self._rich.copy())
            if follow:
                self.call_after_refresh(self.scroll_end, animate=False)


class GenerationView(Container):
    """The generation rows: two columns side by side (baseline, steered), or one row per coefficient of a sweep."""

    def compose(self) -> ComposeResult:
        yield GenerationColumn(id="gen-baseline")
        yield GenerationColumn(id="gen-steered")

    def on_mount(self) -> None:
        self.query_one("#gen-baseline", GenerationColumn).reset("baseline")
        self.query_one("#gen-steered", GenerationColumn).reset("steered")

    @property
    def columns(self) -> list[GenerationColumn]:
        # The direct children, not a query: read for every streamed piece (400/s), a query over the columns' whole
        # subtree cost ~90 us each, ~4% of the event loop while streaming.
        return [child for child in self.children if isinstance(child, GenerationColumn)]

    async def set_rows(self, titles: list[str]) -> None:
        """One column a row, titled; two rows sit side by side, more are stacked."""
        have = self.columns
        for extra in have[len(titles):]:
            if extra.id not in ("gen-baseline", "gen-steered"):
                await extra.remove()
        have = self.columns
        if len(have) < len(titles):
            await self.mount_all([GenerationColumn(classes="gen-sweep") for _ in titles[len(have):]])
        for i, column in enumerate(self.columns):  # a one-row sweep leaves the steered column out, emptied
            column.reset(titles[i] if i < len(titles) else "")
            column.display = i < len(titles)
        self.set_class(len(titles) > 2, "-stacked")
