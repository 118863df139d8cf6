"""PickTokenScreen (`t` / `v` in why?): choose the token to explain, or the one to compare it with.

The model's top next-token predictions at the position are listed with their probabilities: Up/Down move,
Enter picks. Typing a token's text (or its id, in digits, as the CLI's --target reads it) and Enter picks
that instead. What is typed is only read here; the why? screen's worker checks it against the tokenizer (one
token, known) and says on its own screen what is wrong, keeping its last good choice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import OptionList, Static

from saetui.tui.markup import escape
from saetui.tui.widgets.text_input import Input
from textual.widgets.option_list import Option

from saetui.inputs import token_ref, word_token
from saetui.tui.actions import bindings

NONE = "none"  # the option id of "no versus"


@dataclass(frozen=True)
class Pick:
    """A choice: a token id (int), a token's text (str), or None (versus only: no versus, the target's logit alone)."""

    token: int | str | None


class PickTokenScreen(ModalScreen["Pick | None"]):
    """Dismissed with a Pick, or None when cancelled."""

    BINDINGS = bindings("pick")

    def __init__(self, what: str, predictions: list[Any], current: int | None, optional: bool = False,
                 other: int | None = None) -> None:
        """what: "target" or "versus"; predictions: TokenTarget-like (id, text, prob, logit), most probable first;
        current: the id chosen now (highlighted); optional: offer "none" first (versus); other: the id of the
        other choice (the target, when choosing versus), marked: the two cannot be the same."""
        super().__init__()
        self.what, self.predictions, self.current, self.optional, self.other = what, predictions, current, optional, other

    def compose(self) -> ComposeResult:
        with Vertical(id="pick-box"):
            yield Input(placeholder="type a token (' Paris': mind the space), or pick", id="pick-input")
            options = [Option("(none: the target's logit alone)", id=NONE)] if self.optional else []
            other = "versus" if self.what == "target" else "target"
            options += [Option(f"{escape(repr(p.text)):<16} {p.prob:6.1%}  logit {p.logit:.2f}"
                               + (f"  (the {other})" if p.id == self.other else ""), id=str(p.id))
                        for p in self.predictions]
            yield OptionList(*options, id="pick-list")
            yield Static("", id="pick-note")

    def on_mount(self) -> None:
        box = self.query_one("#pick-box")
        box.border_title = "explain which token?" if self.what == "target" else "versus which token?"
        box.border_subtitle = "↑↓ Enter: pick · type + Enter · Esc"
        listing = self.query_one(OptionList)
        listing.can_focus = False  # the keys stay with the Input: arrows move the list, letters type
        ids = [o.id for o in listing.options]
        want = NONE if self.optional and self.current is None else str(self.current)
        listing.highlighted = ids.index(want) if want in ids else (0 if ids else None)
        self._say("" if self.predictions else "the predictions come with the first attribution: type a token")
        self.query_one(Input).focus()

    def _say(self, markup: str) -> None:
        note = self.query_one("#pick-note", Static)
        note.update(markup)
        note.display = bool(markup)

    def action_move(self, delta: int) -> None:
        listing = self.query_one(OptionList)
        listing.action_cursor_down() if delta > 0 else listing.action_cursor_up()

    def action_choose(self) -> None:
        self._choose(self.query_one(Input).value)

    def action_close(self) -> None:
        self.dismiss(None)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self._choose(event.value)

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:  # a click
        event.stop()
        self._pick_option(event.option.id)

    def _choose(self, typed: str) -> None:
        """The typed token if there is one, else the highlighted prediction. Quoted, as the list shows tokens
        (`' Rome'`, `'Rome'`), or with a leading space typed, it is that exact text; a bare word is the token after
        a space where that is one (`Rome` = ' Rome'), as the palette's `circuit Rome` reads it; digits are an id."""
        quoted = len(typed) > 2 and typed[0] == typed[-1] and typed[0] in "'\""
        if quoted:
            typed = typed[1:-1]  # the quotes are not part of the token
        if typed:  # anything but digits is checked by the why? worker
            token = token_ref(typed, self.what)
            model = getattr(self.app.session, "model", None)
            if isinstance(token, str) and not quoted and not token[0].isspace() and model is not None:
                token = word_token(token, model.tokenizer)
            self.dismiss(Pick(token))
            return
        listing = self.query_one(OptionList)
        if listing.highlighted is None:
            self._say("[red]no prediction to pick: type a token[/red]")
            return
        self._pick_option(listing.get_option_at_index(listing.highlighted).id)

    def _pick_option(self, option_id: str | None) -> None:
        self.dismiss(Pick(None if option_id == NONE else int(str(option_id))))
