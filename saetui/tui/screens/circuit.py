"""CircuitScreen (palette `circuit TARGET [VERSUS]`, `c` on why?): the feature circuit behind a prediction.

Runs `Session.circuit` (saetui.sae.circuit) in the screen's own worker and shows the nodes of every loaded SAE
as a layer x token grid (saetui/tui/widgets/circuit_grid.py), the selected node's label, estimate, measured
ablation and edges, and the faithfulness curve; the header has the metric, m full/empty and the Spearman
correlation between estimates and measured ablations. `x` ablates the selected node alone (Session.ablate_circuit,
the path that measured the top nodes) and shows the metric's change; Enter opens the feature's detail. Esc closes
at any time: a circuit still being found is dropped when it arrives. Errors are one line on the screen.
"""

from __future__ import annotations

import dataclasses
import re
import textwrap
from typing import Any

from textual import work
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.worker import Worker, WorkerState, get_current_worker

from saetui.errors import InputError, one_line
from saetui.inputs import ascii_int, word_token
from saetui.sae.circuit import metric_name
from saetui.settings import CircuitSettings
from saetui.tui.actions import bindings
from saetui.tui.key_order import InOrderKeys
from saetui.tui.markup import escape
from saetui.tui.messages import CircuitAsked, FeatureChosen, Notice
from saetui.tui.widgets.circuit_grid import CircuitCells, CircuitGrid
from saetui.tui.widgets.circuit_parts import Lines, curve_lines, header_lines, node_lines

_ARG = re.compile(r'"([^"]*)"|\'([^\']*)\'|(\S+)')
USAGE = "circuit takes TARGET [VERSUS], e.g. circuit Paris Rome (a word is taken with the space before it; quote exact text)"


def circuit_tokens(text: str, tokenizer: Any) -> tuple[int | str, int | str | None]:
    """The palette's `TARGET [VERSUS]` as token refs: a quoted argument is that exact text, digits a token id,
    and a bare word the word as it follows a space (`Paris` -> ' Paris') when that is one token, else as typed."""
    args: list[int | str] = []
    for match in _ARG.finditer(text):
        quoted = match.group(1) if match.group(1) is not None else match.group(2)
        word = match.group(3)
        if quoted is not None:
            args.append(quoted)
        elif word.isascii() and word.isdigit():
            args.append(ascii_int(word))
        else:
            args.append(word_token(word, tokenizer))
    if not 1 <= len(args) <= 2:
        raise InputError(USAGE)
    return args[0], args[1] if len(args) == 2 else None


def palette_circuit(app: Any, text: str) -> None:
    """Palette `circuit TARGET [VERSUS]`: the circuit of the prompt box's text (its next token)."""
    if not app.ready_or_say():
        return
    try:
        target, versus = circuit_tokens(text, app.session.model.tokenizer)
    except InputError as exc:
        app.notify(str(exc), severity="error")
        return
    app.post_message(CircuitAsked(app.prompt_text, target, versus, chat=app.chat is not None))


def circuit_prompt(session: Any, prompt: str, upto: int | None, chat: Any) -> str:
    """The text whose last token's prediction the circuit explains: `prompt`, or its tokens 0..upto (why? on an
    earlier token) when they decode to a text that tokenizes back to them."""
    if chat:
        raise InputError("the circuit of a chat turn is not built yet: Ctrl+T turns chat mode off")
    if upto is None:
        return prompt
    model = session.model
    if model is None:
        raise InputError("no model loaded yet")
    ids = model.tokenize(prompt).input_ids[0].tolist()
    if upto >= len(ids) - 1:
        return prompt
    text = session.decode(ids[: upto + 1])
    if not text.strip():  # <bos> (and other special tokens) only: no text to find a circuit in
        raise InputError(f"tokens 0..{upto} are special tokens only (no text before the prediction): pick a later token")
    if model.tokenize(text).input_ids[0].tolist() != ids[: upto + 1]:
        raise InputError(f"the prompt up to token {upto} does not make the same tokens as a text of its own: "
                         "type it as the prompt, then Ctrl+P circuit TARGET")
    return text


class CircuitScreen(InOrderKeys, ModalScreen[None]):
    BINDINGS = bindings("circuit")
    DEFAULT_CSS = """
    CircuitScreen { align: center middle; }
    #circuit-box { width: 100%; height: 100%; border: round $accent; background: $surface; padding: 0 1; }
    #circuit-grid { height: 1fr; min-height: 3; }
    #circuit-node { border-top: solid $panel-lighten-2; }
    """

    def __init__(self, session: Any, prompt: str, target: int | str, versus: int | str | None = None, *,
                 upto: int | None = None, chat: Any = False, settings: CircuitSettings | None = None,
                 metric: str | None = None) -> None:
        """The circuit of `prompt`'s last token (or of its tokens 0..`upto`) for logit(target) - logit(versus), or
        without a versus for `metric` ("logprob", "logit"; default the settings')."""
        super().__init__()
        self.session, self.prompt, self.target, self.versus = session, prompt, target, versus
        self.upto, self.chat = upto, chat
        self.settings = settings or CircuitSettings()
        if metric is not None:
            self.settings = dataclasses.replace(self.settings, metric=metric)
        self.result: Any = None
        self.cells: CircuitCells | None = None
        self.error: str | None = None
        self.measured: dict[str, float] = {}  # node key -> the metric's change measured with `x`
        self.measuring: str | None = None     # the node `x` is measuring now
        self.closed = False                   # Esc: what a worker still brings is dropped

    def compose(self) -> ComposeResult:
        with Vertical(id="circuit-box"):
            yield Lines(id="circuit-head")
            yield CircuitGrid(id="circuit-grid")
            yield Lines(id="circuit-node")
            yield Lines(id="circuit-curve")

    def on_mount(self) -> None:
        box = self.query_one("#circuit-box")
        box.border_title = "feature circuit"
        box.border_subtitle = "arrows: node · x: ablate · ⏎: open · Esc"
        # as the result will name it (circuit_parts.metric_text); a token id (why? passes ids) by its text
        target, versus = self._token_text(self.target), self._token_text(self.versus)
        wanted = metric_name(target, versus, self.settings.metric)  # as why? writes it, and the JSON
        self.query_one("#circuit-head", Lines).show([
            f"finding the circuit of {escape(wanted)}…",
            "[dim]integrated gradients, the edges, then the top nodes ablated one at a time (Esc closes)[/dim]"])
        self._find()

    def _token_text(self, token: int | str | None) -> int | str | None:
        """A target or versus as the header shows it (metric_name quotes a text): the text of an id (`1567` was
        shown), or the id itself when the model has no such token (the circuit then says so)."""
        if isinstance(token, int) and self.session.model is not None:
            try:
                return self.session.model.token_texts([token])[0]
            except (IndexError, ValueError, TypeError):
                return token
        return token

    @work(thread=True, exclusive=True, group="circuit", name="find", exit_on_error=False)
    def _find(self) -> None:
        text = circuit_prompt(self.session, self.prompt, self.upto, self.chat)
        result = self.session.circuit(text, self.target, self.versus, settings=self.settings)
        if not get_current_worker().is_cancelled and not self.closed:  # closed meanwhile: the result is dropped
            self.app.call_from_thread(self._show, result)

    def _show(self, result: Any) -> None:
        if self.closed:
            return
        self.result = result
        order = [s.name for s in sorted(self.session.saes or [], key=lambda s: s.layer)]
        order += sorted({n.sae for n in result.nodes} - set(order))
        self.cells = CircuitCells(result.nodes, order, result.tokens)
        self.query_one("#circuit-head", Lines).show(header_lines(result, self.settings.verify))
        self.query_one(CircuitGrid).show(self.cells, lambda sae, feature: self.session.labels.get((sae, feature), ""))
        self.query_one("#circuit-curve", Lines).show(lambda width: curve_lines(result.faithfulness, width))
        self._show_node()

    def _show_node(self) -> None:
        cells, result = self.cells, self.result
        if cells is None or result is None:
            return
        node = cells.selected
        saes = cells.saes
        if node is None:
            self.query_one("#circuit-node", Lines).show(node_lines(result, None, "", "", saes, "", 80))
            return
        from types import SimpleNamespace

        from saetui.tui.widgets.token_table import token_label

        token = token_label(SimpleNamespace(text=result.tokens[node.position], id=None))
        label = "" if node.feature is None else self.session.labels.get((node.sae, node.feature), "")
        if node.key in self.measured:
            measured = f"[b]{self.measured[node.key]:+.3f}[/b] now"
        elif self.measuring == node.key:
            measured = "measuring…"
        else:
            measured = "ablate it"
        self.query_one("#circuit-node", Lines).show(
            lambda width: node_lines(result, node, token, label, saes, measured, width))
        self.query_one(CircuitGrid).refresh()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state != WorkerState.ERROR or self.closed:
            return
        message = one_line(event.worker.error)
        if event.worker.name == "ablate":
            key, self.measuring = self.measuring, None
            self.notify(f"ablating {key} failed: {message}", severity="error")
            self._show_node()
            return
        self.error = message
        self.query_one("#circuit-head", Lines).show(  # the whole message, wrapped to the width
            lambda width: [f"[red]{escape(line)}[/red]" for line in textwrap.wrap(f"circuit failed: {message}", width)])
        self.query_one("#circuit-box").border_subtitle = "Esc"  # no node to walk, ablate or open
        # said on the screen already: the status line keeps it for after Esc, with no toast saying it twice
        self.app.post_message(Notice(f"circuit failed: {message}"))

    # ------------------------------------------------------------------ keys (saetui/tui/actions.py, scope "circuit")
    def action_move(self, direction: str) -> None:
        if self.cells is not None and self.cells.move(direction):
            self._show_node()

    def on_screen_resume(self) -> None:
        """Back from a node's detail: its label may have changed there."""
        self.query_one(CircuitGrid).refresh()
        self._show_node()

    def _no_node(self) -> None:
        """Say why a key that acts on the selected node has none."""
        if self.error is not None:
            self.notify("the circuit failed (above): no node to act on; Esc closes", severity="warning", timeout=3)
        elif self.result is None:
            self.notify("no node yet: the circuit is still being found", severity="warning", timeout=3)
        else:
            self.notify("no node selected: the circuit has none", severity="warning", timeout=3)

    def action_open(self) -> None:
        node = self.cells.selected if self.cells is not None else None
        if node is None:
            self._no_node()
            return
        if node.feature is None:
            self.notify("an error node is no feature: nothing to open", severity="warning", timeout=3)
            return
        self.app.post_message(FeatureChosen(node.sae, node.feature))

    def action_ablate(self) -> None:
        node = self.cells.selected if self.cells is not None else None
        if node is None or self.result is None:
            self._no_node()
            return
        if self.measuring is not None:
            self.notify(f"still measuring {self.measuring}", severity="warning", timeout=3)
            return
        self.measuring = node.key
        self._show_node()
        self._ablate(node)

    @work(thread=True, exclusive=True, group="circuit", name="ablate", exit_on_error=False)
    def _ablate(self, node: Any) -> None:
        value = self.session.ablate_circuit(self.result, [node])
        if not get_current_worker().is_cancelled and not self.closed:
            self.app.call_from_thread(self._measured, node.key, value)

    def _measured(self, key: str, value: float) -> None:
        if self.closed:
            return
        self.measured[key] = value
        self.measuring = None
        self._show_node()

    def action_close(self) -> None:
        self.closed = True
        self.dismiss(None)

    def on_unmount(self) -> None:
        self.closed = True
