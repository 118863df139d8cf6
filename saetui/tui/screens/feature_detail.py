"""FeatureDetailScreen: label, max activation, promoted/suppressed tokens and the Neuronpedia URL of a feature."""

from __future__ import annotations

from typing import Any

from rich.markup import escape
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static


class FeatureDetailScreen(ModalScreen[str | None]):
    """Dismisses with "steer" when the user asks to add the feature to steering."""

    BINDINGS = [Binding("escape,q", "dismiss(None)", "close"), Binding("a", "dismiss('steer')", "add to steering")]

    def __init__(self, info: Any) -> None:
        super().__init__()
        self.info = info

    def compose(self) -> ComposeResult:
        i = self.info
        fmt = lambda pairs: "  ".join(f"{escape(repr(t))} {v:+.2f}" for t, v in pairs)  # noqa: E731
        lines = [
            f"[b]feature {i.feature}[/b] of {escape(i.sae)}",
            f"label: {escape(i.label) or '(none)'}",
            f"max activation: {'n/a' if i.max_activation is None else f'{i.max_activation:.2f}'}"
            f"   density: {'n/a (no feature index)' if i.density is None else f'{i.density:.2%}'}",
            "",
            f"[b]promotes[/b]   {fmt(i.promoted)}",
            f"[b]suppresses[/b] {fmt(i.suppressed)}",
        ]
        if i.top_examples:
            lines += ["", "[b]top examples[/b]", *map(escape, i.top_examples)]
        if i.neuronpedia_url:
            lines += ["", f"Neuronpedia: {i.neuronpedia_url}"]
        lines += ["", "a: add to steering   Esc: close"]
        with VerticalScroll(id="detail-box"):
            yield Static("\n".join(lines))
