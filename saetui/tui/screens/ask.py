"""AskScreen: one line of text for a palette command that takes an argument; Enter runs it, Esc cancels."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static

from saetui.tui.widgets.text_input import Input


class AskScreen(ModalScreen[str | None]):
    BINDINGS = [Binding("escape", "dismiss(None)", "cancel")]

    def __init__(self, question: str, choices: list[str] | None = None, hint: str = "") -> None:
        """`hint`: what the command takes (its palette help), as the box's placeholder."""
        super().__init__()
        self.question, self.choices, self.hint = question, choices or [], hint

    def compose(self) -> ComposeResult:
        with Vertical(id="label-box"):
            yield Static(f"{self.question} (Enter runs, Esc cancels)", markup=False)
            if self.choices:
                yield Static("existing: " + ", ".join(self.choices), id="ask-choices", markup=False)
            yield Input(placeholder=self.hint, id="ask-input")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        value = event.value.strip()
        if not value:  # the box stays open: an Enter on nothing closed it with no word
            self.notify(f"{self.question}: type it first (Esc cancels)", severity="warning", timeout=4)
            return
        self.dismiss(value)
