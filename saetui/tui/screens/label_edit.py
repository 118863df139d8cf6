"""LabelScreen: type a feature's label; Enter saves, Esc cancels."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static

from saetui.tui.markup import escape
from saetui.tui.widgets.text_input import Input


class LabelScreen(ModalScreen[str | None]):
    BINDINGS = [Binding("escape", "dismiss(None)", "cancel")]

    def __init__(self, feature: int, current: str, sae: str | None = None) -> None:
        """`sae`: the feature's SAE, named where several are loaded (the same number is another feature in each)."""
        super().__init__()
        self.feature, self.current, self.sae = feature, current, sae

    def compose(self) -> ComposeResult:
        name = f"{self.sae}/{self.feature}" if self.sae else f"feature {self.feature}"
        with Vertical(id="label-box"):
            yield Static(escape(f"Label for {name} (Enter saves, Esc cancels)"))
            yield Input(self.current, id="label-input")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value.strip())
