"""ErrorScreen: a failure the user must see before going on (a model or SAE that did not load)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from saetui.tui.markup import escape


class ErrorScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,enter,q", "dismiss", "close")]

    def __init__(self, title: str, message: str) -> None:
        super().__init__()
        self.title_text, self.message = title, message

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="error-box"):  # scrolls where the screen is shorter than the message (60x20)
            yield Static(f"[b]{escape(self.title_text)}[/b]\n\n{escape(self.message)}\n\nEsc closes this; the app keeps running.")
