"""SaeTuiApp: prompt, per-token feature table, feature search, steering panel with streamed generation.

The app never runs the model on its own thread: each job (load, analyze, describe, search,
generate) is one thread worker, exclusive within its group, that calls the Session facade and posts
messages back. A single Worker.StateChanged handler turns any failure into a one-line notification.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from rich.markup import escape
from textual import events, on, work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.geometry import Size
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Footer, Input, Static, TabbedContent, TabPane, TextArea
from textual.worker import Worker, WorkerState

from saetui import state
from saetui.session import Session
from saetui.steering.spec import SteeringSpec
from saetui.tui.commands import SaetuiCommands
from saetui.tui.messages import AnalysisDone, GenerationDone, GenerationPiece, Loaded
from saetui.tui.screens.error import ErrorScreen
from saetui.tui.screens.feature_detail import FeatureDetailScreen
from saetui.tui.screens.help import HelpScreen
from saetui.tui.screens.label_edit import LabelScreen
from saetui.tui.widgets.feature_list import FeatureList
from saetui.tui.widgets.status_bar import StatusBar
from saetui.tui.widgets.steering_panel import GenerationColumn, SpecTable, SteeringPanel
from saetui.tui.widgets.token_table import TokenTable

MIN_WIDTH, MIN_HEIGHT = 40, 12


class _NoWaitExecutor(ThreadPoolExecutor):
    """The event loop's executor for thread workers: closing the loop never waits for a running job.

    A model load or a forward cannot be interrupted; asyncio.run() ends with
    `loop.shutdown_default_executor()`, which would join it, so quitting would wait for the load to end.
    """

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        super().shutdown(wait=False, cancel_futures=True)


class SaeTuiApp(App[None]):
    CSS_PATH = "saetui.tcss"
    TITLE = "saetui"
    COMMANDS = App.COMMANDS | {SaetuiCommands}
    BINDINGS = [
        Binding("f5,ctrl+r", "analyze", "Analyze", priority=True),
        Binding("ctrl+up", "history(-1)", "Older prompt", show=False, priority=True),
        Binding("ctrl+down", "history(1)", "Newer prompt", show=False, priority=True),
        # The tab headers name their keys; the footer keeps its 80 columns for the rest.
        Binding("f2", "show_tab('tokens')", "Tokens", show=False),
        Binding("f3", "show_tab('search')", "Search", show=False),
        Binding("f4", "show_tab('steer')", "Steer", show=False),
        Binding("ctrl+g", "generate", "Generate", priority=True),
        Binding("ctrl+s", "stop", "Stop", priority=True),
        Binding("f1", "help", "Help"),
        Binding("ctrl+q", "quit", "Quit", priority=True),
    ]
    # Keys handled by the tables, listed for the help screen.
    TABLE_KEYS = [
        ("Enter", "feature list: open the feature's detail"),
        ("h", "feature list: color the prompt tokens by this feature (heat line)"),
        ("a", "feature list / detail: add the feature to steering"),
        ("l", "feature list: label the feature (saved beside its index)"),
        ("space", "steering: switch the spec on/off"),
        ("+ / -", "steering: raise / lower the coefficient"),
        ("m", "steering: cycle add / clamp / ablate"),
        ("delete", "steering: remove the spec"),
    ]

    DEFAULT_PROMPT = "The capital of France is Paris. Anna has a red cat."

    def __init__(self, session: Session | None = None, *, model: str | None = None, saes: list[str] | None = None,
                 prompt: str | None = None, restore: bool = True) -> None:
        """`restore`: reopen the last session (model, SAEs, prompt, specs) where no argument says otherwise."""
        super().__init__()
        self.session = session or Session()
        saved, self._restore_note = state.load_session() if restore else (None, None)
        saved = saved or {}
        # The model saved is the last one that loaded; one restored from the session that no longer
        # loads falls back to the demo (with a notice) instead of opening on an error every time.
        self._good_model: tuple[str | None, list[str] | None] = (saved.get("model"), saved.get("saes"))
        self._restoring = model is None and bool(saved.get("model"))
        if self._restoring:
            model, saes = saved["model"], saved.get("saes")
        self._model_arg, self._sae_args = model, saes
        self._initial_prompt = prompt if prompt is not None else saved.get("prompt") or self.DEFAULT_PROMPT
        self._saved_specs = saved.get("specs", []) if prompt is None else []
        self._history: list[str] = [p for p in saved.get("history", []) if isinstance(p, str)][-50:]
        self._history_pos = len(self._history)
        self._stop = threading.Event()
        self._sae_name: str | None = None
        self._heat_feature: int | None = None  # the feature whose heat line is on, if any
        self._generated: list[list[int]] = [[], []]

    # ------------------------------------------------------------------ layout
    def compose(self) -> ComposeResult:
        with Vertical(id="main"):
            yield TextArea(self._initial_prompt, id="prompt", soft_wrap=True, show_line_numbers=False)
            with TabbedContent(id="tabs", initial="tokens"):
                with TabPane("Tokens F2", id="tokens"):
                    with Horizontal():
                        yield TokenTable(id="token-table")
                        yield FeatureList(id="token-features")
                with TabPane("Search F3", id="search"):
                    yield Input(placeholder="feature number, label, or: promotes WORD", id="search-input", select_on_focus=False)
                    yield FeatureList(id="search-results")
                with TabPane("Steer F4", id="steer"):
                    yield SteeringPanel(id="steering")
            yield StatusBar("loading…", id="status")
            yield Footer(compact=True)
        yield Static(f"terminal too small: saetui needs at least {MIN_WIDTH}x{MIN_HEIGHT}", id="too-small")

    def on_load(self) -> None:
        asyncio.get_running_loop().set_default_executor(_NoWaitExecutor(thread_name_prefix="saetui-worker"))

    def on_mount(self) -> None:
        self.query_one("#prompt").border_title = "Prompt (F5 analyzes)"
        self.query_one("#token-table").border_title = "Tokens"
        self.query_one("#token-features").border_title = "Features of token"
        self.query_one("#search-results").border_title = "Features"
        self.query_one("#specs").border_title = "Steering (Ctrl+G generates, Ctrl+S stops)"
        self.query_one("#gen-baseline", GenerationColumn).reset("baseline")
        self.query_one("#gen-steered", GenerationColumn).reset("steered")
        prompt = self.query_one("#prompt", TextArea)
        prompt.move_cursor(prompt.document.end)  # typing continues the restored text
        prompt.focus()
        self._check_size()
        if self._restore_note:
            self.notify(self._restore_note, severity="warning", timeout=8)

    def on_ready(self) -> None:
        """The first frame is on screen: only now start importing torch and loading the model."""
        self.first_paint = time.perf_counter()
        self._start_load()

    def _start_load(self) -> None:
        what = self._model_arg or "the bundled demo"
        self.query_one(StatusBar).show({}, note=f"loading {what}… (the app stays usable; Ctrl+Q quits)")
        self.load_worker()

    def on_resize(self, event: events.Resize) -> None:
        self._check_size(event.size)  # self.size may still be the old size here

    def _check_size(self, size: Size | None = None) -> None:
        size = size or self.size
        small = size.width < MIN_WIDTH or size.height < MIN_HEIGHT
        self.query_one("#main").display = not small
        self.query_one("#too-small").display = small

    # ------------------------------------------------------------------ workers
    @work(thread=True, exclusive=True, group="load", exit_on_error=False)
    def load_worker(self) -> None:
        model, saes = self._model_arg, self._sae_args
        self.session.load(model, saes)
        self._good_model = (model, saes)
        self.post_message(Loaded(self.session.status()))

    @work(thread=True, exclusive=True, group="load", exit_on_error=False)
    def sae_worker(self, spec: str) -> None:
        loaded = self.session.load_sae(spec)
        self._sae_name = loaded.name
        self.post_message(Loaded(self.session.status()))

    @work(thread=True, exclusive=True, group="analyze", exit_on_error=False)
    def analyze_worker(self, prompt: str) -> None:
        self.post_message(AnalysisDone(self.session.analyze(prompt)))

    @work(thread=True, exclusive=True, group="generate", exit_on_error=False)
    def generate_worker(self, prompt: str, settings: dict[str, Any]) -> None:
        stopped = False
        for piece in self.session.generate(prompt, stop_event=self._stop, **settings):
            self.post_message(GenerationPiece(piece.row, piece.text, piece.token_id))
        stopped = self._stop.is_set()
        self.post_message(GenerationDone(stopped))

    @work(thread=True, exclusive=True, group="describe", exit_on_error=False)
    def describe_worker(self, feature: int) -> None:
        info = self.session.feature_info(feature, self._sae_name)
        self.call_from_thread(self.push_screen, FeatureDetailScreen(info), self._after_detail(feature))

    @work(thread=True, exclusive=True, group="search", exit_on_error=False)
    def search_worker(self, query: str) -> None:
        hits = self.session.search(query, self._sae_name)
        rows = [(f, score, about) for f, about, score in hits]
        self.call_from_thread(self._show_search, query, rows)

    @work(thread=True, exclusive=True, group="heat", exit_on_error=False)
    def heat_worker(self, feature: int) -> None:
        acts = self.session.feature_activations(self._sae_name, feature)
        self.call_from_thread(self._show_heat, feature, acts)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """Every failure, in any worker, becomes one visible line; the app keeps running."""
        if event.state == WorkerState.ERROR:
            error = event.worker.error
            message = " ".join(str(error).split()) or type(error).__name__
            if event.worker.group != "load":  # a load failure gets a modal; a toast would cover its text
                self.notify(message, title=f"{event.worker.group} failed", severity="error", timeout=8)
            self.query_one(StatusBar).show(self.session.status(), note=f"error: {message}")
            if event.worker.name == "load_worker" and self._restoring and self._model_arg is not None:
                self._restoring = False
                self.notify(f"the last session's model {self._model_arg} did not load; opened the demo instead",
                            severity="warning", timeout=10)
                self._model_arg, self._sae_args = None, None
                self._start_load()
            elif event.worker.group == "load":
                if self.session.model is None:
                    hint = "\n\nCtrl+P, then 'load model demo' opens the bundled demo."
                else:
                    hint = f"\n\n{self.session.model.name} stays loaded."
                self.clear_notifications()  # nothing covers the modal's text
                self.push_screen(ErrorScreen("Could not load the model or SAE", message + hint))

    # ------------------------------------------------------------------ messages from workers
    def on_loaded(self, message: Loaded) -> None:
        names = [s.name for s in self.session.saes or []]
        if not names:
            self.query_one(StatusBar).show(message.status, note="no SAE: Ctrl+P, then 'load sae SPEC'")
            return
        if self._sae_name not in names:
            self._sae_name = names[0]
        self.query_one(StatusBar).show(message.status)
        self._restore_specs()
        self.action_analyze()

    def on_analysis_done(self, message: AnalysisDone) -> None:
        self.query_one(TokenTable).show(message.result, self._sae_name, tokenizer=self._tokenizer)
        self._set_heat_title(None)
        if self._heat_feature is not None:  # keep the heat line on, computed for the new prompt
            self.heat_worker(self._heat_feature)
        self.query_one(StatusBar).show(self.session.status())
        self._show_token_features(0)
        # Focus stays where the user put it (the prompt, on start): what they type while the model loads is kept.
        prompt = message.result.prompt
        if not self._history or self._history[-1] != prompt:
            self._history.append(prompt)
        self._history_pos = len(self._history) - 1  # the prompt on screen; Ctrl+Up goes to the one before
        self.save_session()

    def on_generation_piece(self, message: GenerationPiece) -> None:
        self._generated[message.row].append(message.token_id)
        other = self._generated[1 - message.row]
        i = len(self._generated[message.row]) - 1
        differs = i < len(other) and other[i] != message.token_id
        self.query_one("#gen-steered" if message.row else "#gen-baseline", GenerationColumn).append(message.text, differs)

    def on_generation_done(self, message: GenerationDone) -> None:
        for column in self.query(GenerationColumn):
            column.flush()
        same = self._generated[0] == self._generated[1]
        note = "generation stopped" if message.stopped else ("generation done: steered = baseline" if same else "generation done")
        self.query_one(StatusBar).show(self.session.status(), note=note)

    # ------------------------------------------------------------------ actions
    def action_analyze(self) -> None:
        if not self.session.ready:
            self.notify(self._not_ready(), severity="warning")
            return
        self.analyze_worker(self.query_one("#prompt", TextArea).text)

    def action_show_tab(self, tab: str) -> None:
        """Switch tab and focus its main widget, so the keys that follow go there."""
        self.query_one(TabbedContent).active = tab
        target = self.query_one({"tokens": "#token-table", "search": "#search-input", "steer": "#specs"}[tab])
        target.focus()
        self.call_after_refresh(target.focus)  # the tab switch may move focus once more; the target wins

    def action_help(self) -> None:
        rows = [(b.key.replace(",", " / "), b.description) for b in self.BINDINGS] + self.TABLE_KEYS
        self.push_screen(HelpScreen(rows))

    def _not_ready(self) -> str:
        if any(w.group == "load" and w.is_running for w in self.workers):
            return "still loading the model"
        if self.session.model is None:
            return "no model loaded: Ctrl+P, then 'load model demo' (or a model id)"
        return "no SAE loaded: Ctrl+P, then 'load sae SPEC'"

    def action_generate(self) -> None:
        if not self.session.ready:
            self.notify(self._not_ready(), severity="warning")
            return
        try:
            settings = {
                "max_new_tokens": int(self.query_one("#max-tokens", Input).value),
                "temperature": float(self.query_one("#temperature", Input).value),
                "seed": int(self.query_one("#seed", Input).value),
            }
        except ValueError:
            self.notify("max tokens, temperature and seed must be numbers", severity="error")
            return
        self._stop.clear()
        self._generated = [[], []]
        self.query_one("#gen-baseline", GenerationColumn).reset("baseline")
        self.query_one("#gen-steered", GenerationColumn).reset(f"steered ({sum(s.enabled for s in self.session.specs)} specs)")
        self.action_show_tab("steer")
        self.generate_worker(self.query_one("#prompt", TextArea).text, settings)

    def action_stop(self) -> None:
        self._stop.set()

    async def action_quit(self) -> None:
        self._stop.set()  # a running generation ends at its next token
        self.save_session()
        self.exit()

    def action_history(self, step: int) -> None:
        """Ctrl+Up / Ctrl+Down: older and newer analyzed prompts."""
        if not self._history:
            return
        self._history_pos = max(0, min(len(self._history) - 1, self._history_pos + step))
        self.query_one("#prompt", TextArea).text = self._history[self._history_pos]

    # ------------------------------------------------------------------ palette commands and saved state
    def save_session(self) -> None:
        try:
            model, saes = self._good_model
            state.save_session({
                "model": model, "saes": saes,
                "prompt": self.query_one("#prompt", TextArea).text,
                "specs": [s.to_dict() for s in self.session.specs], "history": self._history[-50:],
            })
        except OSError as exc:
            self.notify(f"could not save the session: {exc}", severity="warning")

    def save_session_quietly(self) -> None:
        """Save the session where the app can no longer show a notice (after it has exited)."""
        try:
            self.save_session()
        except Exception:  # noqa: BLE001 - the widgets may be gone; nothing to show it on
            pass

    def _restore_specs(self) -> None:
        from saetui.errors import SaetuiError
        from saetui.steering.spec import resolve

        kept, dropped = [], 0
        for data in self._saved_specs:
            try:
                spec = SteeringSpec.from_dict(data)
                resolve(spec, self.session.saes)
                kept.append(spec)
            except (SaetuiError, TypeError):
                dropped += 1
        self._saved_specs = []
        if kept:
            self.session.specs = kept
            self.query_one(SpecTable).show(self.session.specs, self.session.labels)
        if dropped:
            self.notify(f"{dropped} saved steering spec(s) no longer fit the loaded SAEs and were dropped", severity="warning")

    def load_model(self, name: str) -> None:
        """`demo` (or `saetui-demo`) is the bundled demo model and SAE."""
        self._restoring = False
        self._model_arg, self._sae_args = (None if name.strip().lower() in ("demo", "saetui-demo") else name), None
        self.notify(f"loading {name}… (then: load sae SPEC)")
        self._start_load()

    def load_sae(self, spec: str) -> None:
        self.query_one(StatusBar).show(self.session.status(), note=f"loading SAE {spec}…")
        self.sae_worker(spec)

    def use_sae(self, key: str) -> None:
        from saetui.errors import SaetuiError

        try:
            self._sae_name = self.session.saes.get(key).name
            self._heat_feature = None  # feature numbers belong to one SAE
        except SaetuiError as exc:
            self.notify(str(exc), severity="error")
            return
        self.action_analyze()

    def save_preset(self, name: str) -> None:
        from saetui.errors import SaetuiError

        try:
            path = state.save_preset(name, self.session.specs)
        except SaetuiError as exc:
            self.notify(str(exc), severity="error")
            return
        self.notify(f"preset saved: {path}")

    def load_preset(self, name: str) -> None:
        from saetui.errors import SaetuiError
        from saetui.steering.spec import resolve

        try:
            specs = state.load_preset(name)
            for spec in specs:
                resolve(spec, self.session.saes)
        except SaetuiError as exc:
            self.notify(str(exc), severity="error")
            return
        self.session.specs = specs
        self.query_one(SpecTable).show(self.session.specs, self.session.labels)
        self.notify(f"preset {name} loaded ({len(specs)} specs)")

    def action_export_analysis(self) -> None:
        if self.session.last is None:
            self.notify("nothing analyzed yet", severity="warning")
            return
        self._export("analysis", self.session.last.to_dict())

    def action_export_generation(self) -> None:
        if not any(self._generated):
            self.notify("nothing generated yet", severity="warning")
            return
        tok = self.session.model.tokenizer
        data = {"prompt": self.query_one("#prompt", TextArea).text, "specs": [s.to_dict() for s in self.session.specs],
                "baseline": {"text": tok.decode(self._generated[0], skip_special_tokens=True), "token_ids": self._generated[0]},
                "steered": {"text": tok.decode(self._generated[1], skip_special_tokens=True), "token_ids": self._generated[1]}}
        self._export("generation", data)

    def _export(self, kind: str, data: dict) -> None:
        import time
        from pathlib import Path

        path = Path.cwd() / f"saetui-{kind}-{time.strftime('%Y%m%d-%H%M%S')}.json"
        try:
            state.write_json_atomic(path, data)
        except OSError as exc:
            self.notify(f"could not write {path}: {exc}", severity="error")
            return
        self.notify(f"{kind} written to {path}")

    def action_add_feature(self) -> None:
        feature = self._focused_feature()
        if feature is not None:
            self._add_to_steering(feature)

    def action_label(self) -> None:
        feature = self._focused_feature()
        if feature is None:
            return
        current = self.session.labels.get((self._sae_name, feature), "")

        def save(label: str | None) -> None:
            from saetui.errors import SaetuiError

            if label is None:
                return
            try:
                where = self.session.set_label(feature, label, self._sae_name)
            except SaetuiError as exc:
                self.notify(str(exc), severity="error")
                return
            self.notify(f"label saved in {where}")
            self._show_token_features(self.query_one(TokenTable).cursor_row)

        self.push_screen(LabelScreen(feature, current), save)

    def action_heat(self) -> None:
        """h: heat line of the highlighted feature; h on the feature already shown turns it off."""
        feature = self._focused_feature()
        if feature is None:
            return
        if feature == self._heat_feature:
            self._heat_feature = None
            if self.session.last is not None:
                self.query_one(TokenTable).show(self.session.last, self._sae_name, tokenizer=self._tokenizer)
            self._set_heat_title(None)
            return
        self._heat_feature = feature
        self.heat_worker(feature)

    def action_spec(self, op: str) -> None:
        table = self.query_one(SpecTable)
        if not self.session.specs:
            return
        i = table.cursor_row
        {"toggle": lambda: self.session.toggle_spec(i), "up": lambda: self.session.nudge_spec(i, 1.0),
         "down": lambda: self.session.nudge_spec(i, -1.0), "mode": lambda: self.session.cycle_mode(i),
         "remove": lambda: self.session.remove_spec(i)}[op]()
        table.show(self.session.specs, self.session.labels)

    # ------------------------------------------------------------------ widget events
    @on(DataTable.RowHighlighted, "#token-table")
    def _token_moved(self, event: DataTable.RowHighlighted) -> None:
        self._show_token_features(event.cursor_row)

    @on(DataTable.RowSelected, "FeatureList")
    def _feature_chosen(self, event: DataTable.RowSelected) -> None:
        self.describe_worker(int(event.row_key.value))

    @on(Input.Submitted, "#coef")
    def _coefficient_typed(self, event: Input.Submitted) -> None:
        """Enter in the coef box sets the highlighted spec's coefficient to the number typed."""
        import math

        if not self.session.specs:
            self.notify("no steering spec to set: add a feature first (a)", severity="warning")
            return
        try:
            value = float(event.value)
            if not math.isfinite(value):
                raise ValueError
        except ValueError:
            self.notify(f"coefficient must be a finite number, got {event.value!r}", severity="error")
            return
        i = self.query_one(SpecTable).cursor_row
        self.session.specs[i] = self.session.specs[i].with_coefficient(value)
        self.query_one(SpecTable).show(self.session.specs, self.session.labels)
        event.input.value = ""

    @on(Input.Changed, "#search-input")
    def _search_changed(self, event: Input.Changed) -> None:
        if self.session.ready:
            self.search_worker(event.value)

    def _show_token_features(self, index: int) -> None:
        result = self.session.last
        if result is None or not 0 <= index < len(result.tokens):
            return
        feats = result.sae(self._sae_name).per_token[index]
        labels = self.session.labels
        rows = [(f, a, labels.get((self._sae_name, f), "")) for f, a in feats]
        table = self.query_one("#token-features", FeatureList)
        table.show(rows)
        table.border_title = escape(f"Features of {result.tokens[index].text!r}")

    def _show_search(self, query: str, rows: list[tuple[int, float, str]]) -> None:
        # Thread workers cannot be interrupted: a slower, older query must not overwrite a newer one.
        if query == self.query_one("#search-input", Input).value:
            self.query_one("#search-results", FeatureList).show(rows)

    def _show_heat(self, feature: int, acts: list[float]) -> None:
        if feature != self._heat_feature or self.session.last is None or len(acts) != len(self.session.last.tokens):
            return  # turned off, or another feature or prompt since
        self.query_one(TokenTable).show(self.session.last, self._sae_name, heat=acts, tokenizer=self._tokenizer)
        self._set_heat_title(feature, max(acts, default=0.0))

    def _set_heat_title(self, feature: int | None, top: float = 0.0) -> None:
        table = self.query_one("#token-table")
        table.border_title = "Tokens" if feature is None else f"Tokens — heat of feature {feature}, max {top:.2f}"

    @property
    def _tokenizer(self) -> Any:
        return self.session.model.tokenizer if self.session.model is not None else None

    def _focused_feature(self) -> int | None:
        focused = self.focused
        return focused.current_feature() if isinstance(focused, FeatureList) else None

    def _add_to_steering(self, feature: int) -> None:
        table = self.query_one(SpecTable)
        for i, existing in enumerate(self.session.specs):
            if existing.feature == feature and existing.sae == self._sae_name:  # once is enough: point at it
                table.move_cursor(row=i)
                self.notify(f"feature {feature} is already in steering (row {i + 1}, F4)")
                return
        spec = self.session.add_spec(feature, sae=self._sae_name)
        table.show(self.session.specs, self.session.labels)
        table.move_cursor(row=len(self.session.specs) - 1)
        self.notify(f"feature {feature} added to steering ({spec.mode} {spec.coefficient:g})")

    def _after_detail(self, feature: int):
        def done(choice: str | None) -> None:
            if choice == "steer":
                self._add_to_steering(feature)
            elif self.query_one(TabbedContent).active == "search":
                self.query_one("#search-input").focus()  # back to refining the search, not to the list's keys

        return done


def run(model: str | None = None, saes: list[str] | None = None) -> None:
    """Run the app; once it has exited (session saved), end the process without waiting.

    A worker thread may still be loading a model or running a forward, and tearing torch down at
    interpreter exit takes a second or more: neither is worth waiting for once the screen is restored.
    """
    app = SaeTuiApp(model=model, saes=saes)
    try:
        app.run()
    except KeyboardInterrupt:  # Ctrl+C outside the app's own key handling: leave quietly
        app.save_session_quietly()
    finish(app.return_code or 0)


def finish(code: int) -> None:
    """Flush what was written and end the process now, without joining worker threads."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)
