"""HelpScreen: every binding of the app, generated from the bindings themselves."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,question_mark", "dismiss", "close")]

    def __init__(self, rows: list[tuple[str, str]]) -> None:
        super().__init__()
        self.rows = rows

    def compose(self) -> ComposeResult:
        lines = ["[b]saetui keys[/b]", ""] + [f"[b]{key:<14}[/b] {text}" for key, text in self.rows]
        lines += ["", "Esc closes this screen."]
        with VerticalScroll(id="help-box"):
            yield Static("\n".join(lines))
