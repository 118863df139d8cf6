"""HelpScreen (F1): every key of the app, made from the action registry, plus the palette's commands,
the search syntax and what the marks mean. Long lines wrap inside their column, never to column 0."""

from __future__ import annotations

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from saetui.tui.actions import help_rows

NOTES = [
    ("Ctrl+P", "command palette: load model ID|demo, load sae SPEC, use sae NAME, save/load preset NAME, "
               "export analysis/generation JSON, circuit TARGET [VERSUS]"),
    ("search", "a feature number (12), words of a label (colour), or promotes WORD: features whose decoder "
               "raises WORD's logit most"),
    ("*", "after a token's index: a special token (BOS, EOS, pad); left out of summaries, search and the index"),
    ("underline", "in a generated row: the token differs from the first row's (baseline) at that place"),
    ("f:act", "in the token table: feature f fired with activation act on that token"),
    ("dim", "in chat mode: a token of the chat template (turn markers, role names), left out of summaries"),
]


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,question_mark,f1", "dismiss", "close")]

    def compose(self) -> ComposeResult:
        """One titled grid per scope: the key column is as wide as its keys, not as its title."""
        self.tables: list[Table] = []
        with VerticalScroll(id="help-box"):
            for title, rows in [*help_rows(), ("more", NOTES)]:
                table = Table.grid(padding=(0, 2))
                table.add_column(style="bold", no_wrap=True)
                table.add_column(overflow="fold")
                for keys, text in rows:
                    table.add_row(keys, text)
                self.tables.append(table)
                yield Static(f"[u]{title}[/u]", classes="help-title")
                yield Static(table, classes="help-table")

    def on_mount(self) -> None:
        box = self.query_one("#help-box")
        box.border_title = "saetui keys"
        box.border_subtitle = "Esc closes"
