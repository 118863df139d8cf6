"""LabelScreen: type a feature's label; Enter saves, Esc cancels."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static

from saetui.tui.widgets.text_input import Input


class LabelScreen(ModalScreen[str | None]):
    BINDINGS = [Binding("escape", "dismiss(None)", "cancel")]

    def __init__(self, feature: int, current: str) -> None:
        super().__init__()
        self.feature, self.current = feature, current

    def compose(self) -> ComposeResult:
        with Vertical(id="label-box"):
            yield Static(f"Label for feature {self.feature} (Enter saves, Esc cancels)")
            yield Input(self.current, id="label-input")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value.strip())
