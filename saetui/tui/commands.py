"""Command palette (Ctrl+P): the app's actions (from saetui/tui/actions.py), load a model or SAE (the registry filtered by the loaded model), switch SAE,
export the analysis or generation as JSON, save and load steering presets.

Commands that take an argument read it from what follows their name in the palette: typing
`load model google/gemma-2-2b` offers exactly that command; `load preset` and `use sae` list the names
that exist; choosing a command without its argument asks for it.
"""

from __future__ import annotations

import contextlib
from functools import partial
from typing import TYPE_CHECKING, Any, Callable

from textual import on
from textual.app import ComposeResult
from textual.command import CommandInput as _CommandInput
from textual.command import CommandPalette, DiscoveryHit, Hit, Hits, Provider
from textual.worker import WorkerCancelled, WorkerFailed

from saetui.tui.actions import key_text, palette_actions
from saetui.tui.widgets.text_input import CommandInput, Input  # Input.Submitted: the message, Textual's own class

if TYPE_CHECKING:
    from saetui.tui.app import SaeTuiApp

# (prefix typed in the palette, the method taking the rest as its argument, help): the app's own (what is
# loaded and shown), `PANE.method` for a command that acts on what a pane shows, or `module:function` taking
# (app, argument) for one that opens a screen of its own (imported when run)
_WITH_ARGUMENT = [
    ("load model ", "load_model", "HF id or local directory; the demo SAE is dropped"),
    ("load sae ", "load_sae", "RELEASE/SAE_ID, a sae-lens directory or params.npz"),
    ("use sae ", "use_sae", "show another loaded SAE (name, hook or layer)"),
    ("save preset ", "steer.save_preset", "save the steering specs under a name"),
    ("load preset ", "steer.load_preset", "replace the steering specs with a saved preset"),
    ("contrast ", "search.contrast_command", "A1; A2 | B1; B2: features separating two sets of prompts (Search tab)"),
    ("save vector ", "search.save_vector", "keep the last contrast's A−B direction as a named steering vector"),
    ("steer vector ", "steer.steer_vector", "add a saved steering vector to the steering specs"),
    ("health ", "action_health", "SAE health over a .txt/.jsonl corpus: L0, FVU, the loss with each SAE spliced in, dead/dense"),
    ("circuit ", "saetui.tui.screens.circuit:palette_circuit",
     "TARGET \\[VERSUS]: the feature circuit of the prompt's next token across the SAEs (Paris = ' Paris'; quote exact text)"),
]


class Palette(CommandPalette):
    """Textual's command palette, its box taking editing keys in order with the characters typed in the same read
    (saetui/tui/widgets/text_input.py): `lox<backspace>ad` typed over a slow link read `loxa`."""

    def compose(self) -> ComposeResult:
        for widget in super().compose():
            if type(widget) is _CommandInput:  # the box Textual makes, made again with the same arguments
                widget = CommandInput(placeholder=widget.placeholder, select_on_focus=False)
            yield widget

    @on(Input.Submitted)
    async def _submit_once_searched(self, event: Input.Submitted) -> None:
        """Enter, once the search for the text as typed has finished. Read with the text (`save preset p2` Enter
        sent at once, or typed ahead over a slow link), it came while the search was still running and picked what
        an earlier text had highlighted (Textual's 'Save screenshot'), or nothing."""
        event.prevent_default()  # Textual's own handler (CommandPalette._select_or_command) runs below, after the wait
        event.stop()
        for worker in [w for w in self.workers if w.group == self._GATHER_COMMANDS_GROUP]:
            with contextlib.suppress(WorkerCancelled, WorkerFailed):
                await worker.wait()
        self._select_or_command()


class SaetuiCommands(Provider):
    @property
    def _app(self) -> SaeTuiApp:
        return self.app  # type: ignore[return-value]

    def _command(self, method: str) -> Callable[..., Any]:
        """`load_model` is the app's; `steer.save_preset` the Steer pane's; `module:function` that function's."""
        if ":" in method:
            import importlib

            module, name = method.split(":")
            return partial(getattr(importlib.import_module(module), name), self._app)
        owner: Any = self._app
        for part in method.split("."):
            owner = getattr(owner, part)
        return owner

    def _simple(self) -> list[tuple[str, object, str]]:
        """The app's own actions (from the registry, with their keys) and the two exports."""
        app = self._app
        simple: list[tuple[str, object, str]] = [
            (f"{a.description} ({key_text(a.keys)})", partial(app.run_action, a.action), a.help)
            for a in palette_actions()
        ]
        return simple + [
            ("Export analysis as JSON", app.tokens.export_analysis, "write the current analysis to a .json file"),
            ("Export generation as JSON", app.steer.export_generation, "write the generated rows to a .json file"),
            ("Update from the Hub", app.refresh_from_hub,
             "ask the Hub for newer files of the loaded model and SAEs, fetch them and reload (saetui --refresh)"),
        ]

    def _names(self, prefix: str) -> list[str]:
        """The arguments that exist already: saved presets, loaded SAEs."""
        if prefix in ("load preset ", "save preset "):
            from saetui import state

            try:
                return state.list_presets()
            except OSError:
                return []
        if prefix == "use sae ":
            return self._app.session.sae_names
        if prefix in ("steer vector ", "save vector "):
            try:
                return self._app.session.vectors()
            except OSError:
                return []
        return []

    def _ask(self, prefix: str, method: str, help_text: str) -> None:
        """The command chosen without its argument: ask for it (listing what exists, its help in the empty box),
        then run it."""
        from rich.text import Text

        from saetui.tui.screens.ask import AskScreen

        def run(value: str | None) -> None:
            if value:
                self._command(method)(value)

        self._app.push_screen(AskScreen(prefix.strip().capitalize(), self._names(prefix),
                                        Text.from_markup(help_text).plain), run)

    async def discover(self) -> Hits:
        for name, callback, help_text in self._simple():
            yield DiscoveryHit(name, callback, help=help_text)
        for prefix, method, help_text in _WITH_ARGUMENT:
            yield DiscoveryHit(prefix + "…", partial(self._ask, prefix, method, help_text), help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for name, callback, help_text in self._simple():
            score = matcher.match(name)
            if score > 0:
                yield Hit(score, matcher.highlight(name), callback, help=help_text)
        lowered = query.lower()
        for prefix, method, help_text in _WITH_ARGUMENT:
            arg = query[len(prefix):].strip() if lowered.startswith(prefix) else ""
            if arg:
                yield Hit(1.0, f"{prefix}{arg}", partial(self._command(method), arg), help=help_text)
            elif lowered.strip() and lowered.strip() in prefix or lowered.startswith(prefix.strip()):
                yield Hit(0.5, prefix + "…", partial(self._ask, prefix, method, help_text), help=help_text)
            if lowered.startswith(prefix.strip()):  # the names that exist, matching what is typed so far
                # a save's names come after its `…` (which asks): Enter on the bare command replaced the first preset
                replaces = prefix.startswith("save ")
                for name in self._names(prefix):
                    if name.lower().startswith(arg.lower()) and name != arg:
                        yield Hit(0.4 if replaces else 0.8, f"{prefix}{name}", partial(self._command(method), name),
                                  help=f"replace the saved {name}" if replaces else help_text)
        if lowered.startswith("load sae ") and self._app.session.model is not None:
            # Browse the sae-lens registry for the loaded model.
            term = query[len("load sae "):].strip().lower()
            for entry in self._app.session.registry(self._app.session.model.name)[:2000]:
                if term and term in entry.spec.lower():
                    yield Hit(0.9, f"load sae {entry.spec}", partial(self._app.load_sae, entry.spec),
                              help=f"{entry.hook or '?'}, width {entry.width or '?'}")
