"""SteeringPanel: the steering specs (feature, mode, coefficient, on/off) and the two generation columns."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import DataTable, Input, Label, Static

from saetui.steering.generate import GenerationSettings  # torch-free at import

DEFAULTS = GenerationSettings()  # the fields start at the library's defaults, as the CLI's options do


class SpecTable(DataTable):
    BINDINGS = [
        Binding("space", "app.spec('toggle')", "On/off", key_display="␣"),
        Binding("plus,equals_sign", "app.spec('up')", "Coef", key_display="+/-"),
        Binding("minus", "app.spec('down')", "Coef -1", show=False),
        Binding("m", "app.spec('mode')", "Mode", show=False),
        Binding("delete,backspace", "app.spec('remove')", "Remove", key_display="del", show=False),
    ]

    def on_mount(self) -> None:
        self.cursor_type = "row"
        self.add_columns("on", "feature", "mode", "coef", "label")

    def show(self, specs: list[Any], labels: dict) -> None:
        row = self.cursor_row
        self.clear()
        for i, s in enumerate(specs):
            coef = "-" if s.mode == "ablate" else f"{s.coefficient:g}"
            self.add_row("✓" if s.enabled else " ", f"{s.sae}/{s.feature}", s.mode, coef, labels.get((s.sae, s.feature), ""), key=str(i))
        if specs:
            self.move_cursor(row=min(row, len(specs) - 1))


class GenerationColumn(VerticalScroll):
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
        self._dirty = False

    def compose(self) -> ComposeResult:
        yield Static(classes="gen-text")

    def on_mount(self) -> None:
        self.set_interval(1 / self.REFRESH_HZ, self.flush)

    @property
    def text(self) -> str:
        return self._rich.plain

    @property
    def _body(self) -> Static:
        return self.query_one(".gen-text", Static)

    def reset(self, title: str) -> None:
        self.border_title = title
        self._rich = Text()
        self._dirty = False
        self._body.update(self._rich)
        self.scroll_home(animate=False)

    def append(self, piece: str, marked: bool = False) -> None:
        self._rich.append(piece, style="bold underline" if marked else "")
        self._dirty = True

    def flush(self) -> None:
        if self._dirty:
            self._dirty = False
            follow = self.scroll_y >= self.max_scroll_y - 1
            self._body.update(self._rich.copy())
            if follow:
                self.call_after_refresh(self.scroll_end, animate=False)


class SteeringPanel(Vertical):
    def compose(self) -> ComposeResult:
        yield SpecTable(id="specs")
        with Horizontal(id="gen-settings"):
            yield Label("coef")
            yield Input(placeholder="value⏎", id="coef")
            yield Label("max tokens")
            yield Input(str(DEFAULTS.max_new_tokens), id="max-tokens", type="integer")
            yield Label("temp")
            yield Input(f"{DEFAULTS.temperature:g}", id="temperature")
            yield Label("seed")
            yield Input(str(DEFAULTS.seed), id="seed", type="integer")
        with Horizontal(id="gen-columns"):
            yield GenerationColumn(id="gen-baseline")
            yield GenerationColumn(id="gen-steered")
