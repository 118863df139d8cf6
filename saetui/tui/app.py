"""SaeTuiApp: the shell around the panes. Compose, global keys, routing, session start and stop.

- Panes (saetui/tui/panes/) own their views and workers: Tokens (analyze, heat), Search, Steer
  (generate); the feature detail screen owns its describe worker.
- Intents come up as messages (saetui/tui/messages.py) and are routed here; state goes down as the
  reactives below, bound to the panes (`data_bind`), whose watchers repaint.
- Keys, footer, F1 help and palette all come from one registry (saetui/tui/actions.py).
- The app loads the model in a worker after the first frame, and never waits for a worker to quit.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from textual import events, on, work
from textual.app import App, ComposeResult
from textual.containers import Vertical
from textual.geometry import Size
from textual.reactive import reactive
from textual.widgets import Footer, Static, TabbedContent, TabPane, TextArea
from textual.worker import Worker, WorkerState

from saetui import hub, state
from saetui.errors import SaetuiError
from saetui.files import stamped_path, write_json_atomic
from saetui.session import Session
from saetui.steering.draft import Draft
from saetui.steering.spec import SteeringSpec, resolve
from saetui.tui import heap
from saetui.tui import messages as msg
from saetui.tui.actions import bindings
from saetui.tui.commands import SaetuiCommands
from saetui.tui.panes.search import SearchPane
from saetui.tui.panes.steer import SteerPane
from saetui.tui.panes.tokens import TokensPane
from saetui.tui.screens.error import ErrorScreen
from saetui.tui.screens.feature_detail import FeatureDetailScreen
from saetui.tui.screens.help import HelpScreen
from saetui.tui.screens.label_edit import LabelScreen
from saetui.tui.widgets.download_panel import DownloadPanel, ProgressRelay
from saetui.tui.widgets.status_bar import StatusBar

MIN_WIDTH, MIN_HEIGHT = 40, 12
HINT = "type a prompt, F5 analyzes · F1 keys · Ctrl+P commands"


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
    BINDINGS = bindings("app")
    DEFAULT_PROMPT = "The capital of France is Paris. Anna has a red cat."

    analysis: reactive[Any] = reactive(None, init=False)      # the last AnalysisResult
    sae_name: reactive[str | None] = reactive(None, init=False)  # the SAE whose features are displayed
    draft: reactive[Draft] = reactive(Draft, init=False)      # the steering specs being edited
    labels_rev: reactive[int] = reactive(0, init=False)       # bumped when a label changes
    chat: reactive[Any] = reactive(None, init=False)          # None: plain text; a list: the conversation so far

    def __init__(self, session: Session | None = None, *, model: str | None = None, saes: list[str] | None = None,
                 prompt: str | None = None, restore: bool = True, refresh: bool = False, freeze_heap: bool = False) -> None:
        """`restore`: reopen the last session (model, SAEs, prompt, specs) where no argument says otherwise.
        `refresh`: ask the Hub for newer files of the model and SAEs (default: a complete HF cache is used as it is).
        `freeze_heap`: the process is the app's alone: keep the collector off what each load brings (tui/heap.py)."""
        super().__init__()
        self._freeze_heap = freeze_heap
        self._refresh = refresh
        self._download_stop: threading.Event | None = None  # set by Ctrl+S to stop the load's download
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
        self._announce = False  # say when a load started from the palette has ended
        self.analysis_input: tuple[str, Any] = ("", False)  # the typed prompt and chat behind `analysis`

    # ------------------------------------------------------------------ layout
    def compose(self) -> ComposeResult:
        with Vertical(id="main"):
            yield TextArea(self._initial_prompt, id="prompt", soft_wrap=True, show_line_numbers=False)
            yield DownloadPanel(id="download")
            with TabbedContent(id="tabs", initial="tokens"):
                with TabPane("Tokens F2", id="tokens"):
                    yield TokensPane(self.session, id="tokens-pane").data_bind(
                        SaeTuiApp.analysis, SaeTuiApp.sae_name, SaeTuiApp.labels_rev)
                with TabPane("Search F3", id="search"):
                    yield SearchPane(self.session, id="search-pane").data_bind(SaeTuiApp.sae_name, SaeTuiApp.labels_rev)
                with TabPane("Steer F4", id="steer"):
                    yield SteerPane(self.session, id="steering").data_bind(SaeTuiApp.draft, SaeTuiApp.labels_rev)
            yield StatusBar("loading…", id="status")
            yield Footer(compact=True)
        yield Static(f"terminal too small: saetui needs at least {MIN_WIDTH}x{MIN_HEIGHT}", id="too-small")

    @property
    def tokens(self) -> TokensPane:
        return self.query_one(TokensPane)

    @property
    def steer(self) -> SteerPane:
        return self.query_one(SteerPane)

    @property
    def prompt_text(self) -> str:
        return self.query_one("#prompt", TextArea).text

    def on_load(self) -> None:
        asyncio.get_running_loop().set_default_executor(_NoWaitExecutor(thread_name_prefix="saetui-worker"))

    def on_mount(self) -> None:
        prompt = self.query_one("#prompt", TextArea)
        prompt.border_title = "Prompt"
        prompt.border_subtitle = HINT
        prompt.move_cursor(prompt.document.end)  # typing continues the restored text
        prompt.focus()
        self._check_size()
        if self._restore_note:
            self.notify(self._restore_note, severity="warning", timeout=8)

    def on_ready(self) -> None:
        """The first frame is on screen: only now start importing torch and loading the model."""
        self.first_paint = time.perf_counter()
        self._start_load(refresh=self._refresh)

    def on_resize(self, event: events.Resize) -> None:
        self._check_size(event.size)  # self.size may still be the old size here

    def _check_size(self, size: Size | None = None) -> None:
        size = size or self.size
        small = size.width < MIN_WIDTH or size.height < MIN_HEIGHT
        self.query_one("#main").display = not small
        self.query_one("#too-small").display = small

    def status(self, note: str = "") -> None:
        """The status bar: `note` (what just happened) and the session's model, SAEs, device, latency."""
        status = self.session.status()
        self.query_one(StatusBar).show(status, note=note)
        if status.get("decoding") == "compiling":  # a decode step compiles in the background: show when it is done
            self.set_timer(2.0, self._refresh_status)

    def _refresh_status(self) -> None:
        bar = self.query_one(StatusBar)
        self.status(bar.note)

    # ------------------------------------------------------------------ session lifecycle
    def _start_load(self, refresh: bool = False) -> None:
        what = self._model_arg or "the bundled demo"
        self.query_one(StatusBar).show({}, note=f"loading {what}… (the app stays usable; Ctrl+Q quits)")
        self._download_stop = threading.Event()
        self._load_worker(self._model_arg, self._sae_args, refresh, self._download_stop)

    @work(thread=True, exclusive=True, group="load", exit_on_error=False)
    def _load_worker(self, model: str | None, saes: list[str] | None, refresh: bool, stop: threading.Event) -> None:
        # Hub downloads (only what the HF cache lacks) report to the download panel; Ctrl+S sets `stop`
        self.session.load(model, saes, refresh=refresh, progress=ProgressRelay(self), cancel=stop)
        self._good_model = (model, saes)
        if self._freeze_heap:
            heap.settle_after_load()
        self.post_message(msg.Loaded(self.session.status()))

    @work(thread=True, exclusive=True, group="load", exit_on_error=False)
    def _sae_worker(self, spec: str, stop: threading.Event) -> None:
        loaded = self.session.load_sae(spec, progress=ProgressRelay(self), cancel=stop)
        if self._freeze_heap:
            heap.settle_after_load()
        self.post_message(msg.Loaded(self.session.status()))
        self.call_from_thread(setattr, self, "sae_name", loaded.name)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """A failed load gets a modal (or, restoring the last session, the demo instead); a stopped download a notice."""
        if event.worker.group == "load" and event.state in (WorkerState.SUCCESS, WorkerState.ERROR, WorkerState.CANCELLED):
            self.query_one(DownloadPanel).finish()
        if event.state != WorkerState.ERROR or event.worker.group != "load":
            return
        error = event.worker.error
        message = " ".join(str(error).split()) or type(error).__name__
        if isinstance(error, hub.DownloadCancelled):  # the user asked for it: say what is kept, no modal
            self.status("download stopped: the finished files are kept in the HF cache")
            self.notify(message, title="download stopped", severity="warning", timeout=10)
            return
        self.status(f"error: {message}")
        if event.worker.name == "_load_worker" and self._restoring and self._model_arg is not None:
            self._restoring = False
            self.notify(f"the last session's model {self._model_arg} did not load; opened the demo instead",
                        severity="warning", timeout=10)
            self._model_arg, self._sae_args = None, None
            self._start_load()
            return
        hint = ("\n\nCtrl+P, then 'load model demo' opens the bundled demo." if self.session.model is None
                else f"\n\n{self.session.model.name} stays loaded.")
        self.clear_notifications()  # nothing covers the modal's text
        self.push_screen(ErrorScreen("Could not load the model or SAE", message + hint))

    def on_loaded(self, message: msg.Loaded) -> None:
        from saetui.files import take_notices

        for notice in take_notices():  # e.g. a damaged labels file set aside while loading
            self.notify(notice, severity="warning", timeout=10)
        names = [s.name for s in self.session.saes or []]
        if self._announce:  # a load the user asked for in the palette: say it is done
            self._announce = False
            self.notify(f"loaded {message.status.get('model')} with SAE(s): {', '.join(names) or 'none yet'}")
        if not names:
            self.status("no SAE: Ctrl+P, then 'load sae SPEC'")
            return
        if self.sae_name not in names:
            self.sae_name = names[0]
        self.analysis = None
        self.status()
        self._restore_specs()
        self.action_analyze()

    def _restore_specs(self) -> None:
        kept, dropped = [], 0
        for data in self._saved_specs:
            spec = state.spec_from_saved(data)
            if spec is not None and self._fits(spec):
                kept.append(spec)
            else:
                dropped += 1
        if self._saved_specs:
            self.draft = Draft(tuple(kept))
        else:  # another model or SAE loaded: keep the specs that still fit
            self.draft = Draft(tuple(s for s in self.draft.specs if self._fits(s)))
        self._saved_specs = []
        if dropped:
            self.notify(f"{dropped} saved steering spec(s) no longer fit the loaded SAEs and were dropped", severity="warning")

    def _fits(self, spec: Any) -> bool:
        """The spec still applies to the loaded model and SAEs (a vector: its file and hook point exist)."""
        from saetui.steering.vectors import resolve_any

        try:
            resolve_any(spec, self.session.saes, self.session.model)
            return True
        except SaetuiError:
            return False

    def watch_draft(self, draft: Draft) -> None:
        self.session.specs = list(draft.specs)  # the session's default rows follow the app's draft

    # ------------------------------------------------------------------ messages from panes and screens
    def on_analyzed(self, message: msg.Analyzed) -> None:
        self.analysis_input = (message.prompt, message.chat)  # what produced `analysis`, as typed
        self.analysis = message.result
        self.status()
        # Focus stays where the user put it (the prompt, on start): what they type while the model loads is kept.
        prompt = message.prompt or message.result.prompt
        if not self._history or self._history[-1] != prompt:
            self._history.append(prompt)
        self._history_pos = len(self._history) - 1  # the prompt on screen; Ctrl+Up goes to the one before
        self.save_session()

    def on_download_progress(self, message: msg.DownloadProgress) -> None:
        if any(w.group == "load" and w.is_running for w in self.workers):  # a late message after the load ended
            self.query_one(DownloadPanel).show_progress(message.progress)

    def on_job_failed(self, message: msg.JobFailed) -> None:
        self.notify(message.message, title=f"{message.group} failed", severity="error", timeout=8)
        self.status(f"error: {message.message}")

    def on_notice(self, message: msg.Notice) -> None:
        if message.severity is not None:
            self.notify(message.text, severity=message.severity)  # type: ignore[arg-type]
        self.status(message.text)

    def on_feature_chosen(self, message: msg.FeatureChosen) -> None:
        def back(_: None) -> None:
            if self.query_one(TabbedContent).active == "search":
                self.query_one(SearchPane).focus_box()  # back to refining the search, not to the list's keys

        self.push_screen(FeatureDetailScreen(self.session, message.sae, message.feature), back)

    def on_steer_feature(self, message: msg.SteerFeature) -> None:
        self.add_to_steering(message.sae, message.feature, message.sign, signed=message.signed)

    def on_why_asked(self, message: msg.WhyAsked) -> None:
        if self.analysis is None or not 0 <= message.position < len(self.analysis.tokens):
            return
        from saetui.tui.screens.why import WhyScreen

        token = self.analysis.tokens[message.position].text
        prompt, chat = self.analysis_input
        self.push_screen(WhyScreen(self.session, prompt, message.position, token, chat=chat))

    def on_heat_feature(self, message: msg.HeatFeature) -> None:  # from the search results: shown on F2
        self.tokens.toggle_heat(message.sae, message.feature)
        self.action_show_tab("tokens")

    def on_label_feature(self, message: msg.LabelFeature) -> None:
        sae, feature = message.sae, message.feature

        def save(label: str | None) -> None:
            if label is None:
                return
            try:
                where = self.session.set_label(feature, label, sae)
            except SaetuiError as exc:
                self.notify(str(exc), severity="error")
                return
            self.labels_rev += 1
            self.notify(f"label saved in {where}" if label.strip() else f"label of {sae}/{feature} removed ({where})")

        self.push_screen(LabelScreen(feature, self.session.labels.get((sae, feature), "")), save)

    def on_draft_changed(self, message: msg.DraftChanged) -> None:
        self.draft = message.draft

    def on_sae_switch(self, _: msg.SaeSwitch) -> None:
        self.action_next_sae()

    def add_to_steering(self, sae: str, feature: int, sign: int = 1, signed: bool = False) -> None:
        """Add a feature to the draft at twice its max activation (`sign` -1: negated); once: adding it
        again points at its row (`signed`, from the why? screen: and turns it to `sign`'s direction)."""
        existing = self.draft.index_of(sae, feature)
        if existing is not None:
            self.steer.select(existing)
            spec = self.draft.specs[existing]
            if signed and spec.coefficient * sign < 0:  # the why? screen asked for the other direction
                self.draft = self.draft.set_coefficient(existing, -spec.coefficient)
                self.notify(f"feature {sae}/{feature} now steers {'up' if sign > 0 else 'down'} ({-spec.coefficient:g}; F4)")
                return
            self.notify(f"feature {sae}/{feature} is already in steering (row {existing + 1}, F4)")
            return
        max_act = self.session.max_activation(sae, feature)
        coefficient = sign * (4.0 if max_act is None else round(2 * max_act, 2))  # twice its max: visible, not overwhelming
        spec = SteeringSpec(feature, coefficient, "add", sae)
        self.draft = self.draft.add(spec)
        self.steer.select(len(self.draft) - 1)
        self.notify(f"feature {sae}/{feature} added to steering (add {coefficient:g}; F4)")

    # ------------------------------------------------------------------ actions (keys: saetui/tui/actions.py)
    def _not_ready(self) -> str | None:
        if self.session.ready:
            return None
        if any(w.group == "load" and w.is_running for w in self.workers):
            return "still loading the model"
        if self.session.model is None:
            return "no model loaded: Ctrl+P, then 'load model demo' (or a model id)"
        return "no SAE loaded: Ctrl+P, then 'load sae SPEC'"

    def action_analyze(self) -> None:
        if (why := self._not_ready()) is not None:
            self.notify(why, severity="warning")
            return
        self.tokens.analyze(self.prompt_text, self._chat_arg())

    async def action_generate(self, sweep: bool = False) -> None:
        if (why := self._not_ready()) is not None:
            self.notify(why, severity="warning")
            return
        try:
            await self.steer.generate(self.prompt_text, sweep=sweep, chat=self._chat_arg())
        except SaetuiError as exc:
            self.notify(str(exc), severity="error")
            return
        self.action_show_tab("steer")

    async def action_sweep(self) -> None:
        await self.action_generate(sweep=True)

    def _chat_arg(self) -> Any:
        """What Session takes as `chat`: False, True (a first turn) or the conversation so far."""
        return False if self.chat is None else (list(self.chat) or True)

    def action_toggle_chat(self) -> None:
        """Chat mode: the prompt is the next user turn, rendered with the model's own chat template."""
        if self.chat is None:
            model = self.session.model
            if model is not None and not getattr(model.tokenizer, "chat_template", None):
                self.notify(f"{model.name} has no chat template: chat mode needs an instruct model", severity="error")
                return
            self.chat = []
            self.notify("chat mode: the prompt is a user turn; F6/F7 keep the baseline/steered reply")
        else:
            self.chat = None
            self.notify("chat mode off: the prompt is plain text")
        if self.session.ready:
            self.action_analyze()

    def action_continue_chat(self, row: int) -> None:
        """Keep one generated reply as the assistant's turn; the prompt box takes the next user turn."""
        if self.chat is None:
            self.notify("not in chat mode: Ctrl+T turns it on", severity="warning")
            return
        steer = self.steer
        if not steer.done or row >= len(steer.generated) or not steer.generated[row]:
            self.notify("generate a reply first (Ctrl+G), and let it finish", severity="warning")
            return
        which = "baseline" if row == 0 else "steered"
        self.chat = [*self.chat, {"role": "user", "content": steer._prompt},
                     {"role": "assistant", "content": steer.reply(row)}]
        self.query_one("#prompt", TextArea).text = ""
        self.query_one("#prompt").focus()
        steer.done = False
        self.notify(f"kept the {which} reply: type the next user turn, then Ctrl+G")

    def watch_chat(self, chat: Any) -> None:
        prompt = self.query_one("#prompt", TextArea)
        turns = 0 if chat is None else len(chat) // 2
        prompt.border_title = "Prompt" if chat is None else f"Prompt · chat, user turn {turns + 1} (Ctrl+T: off)"

    def action_stop(self) -> None:
        """Stop a download the load is making (what finished stays in the HF cache), else the generation."""
        if self.query_one(DownloadPanel).display and self._download_stop is not None:
            hub.stop(self._download_stop)
            self.status("stopping the download…")
            return
        self.steer.stop()

    def action_next_sae(self) -> None:
        names = [s.name for s in self.session.saes or []]
        if len(names) < 2:
            self.notify("only one SAE is loaded: Ctrl+P, then 'load sae SPEC' adds another", severity="warning")
            return
        i = names.index(self.sae_name) if self.sae_name in names else -1
        self.sae_name = names[(i + 1) % len(names)]
        self.status(f"showing SAE {self.sae_name}")

    def action_show_tab(self, tab: str) -> None:
        """Switch tab and focus its main widget, so the keys that follow go there."""
        self.query_one(TabbedContent).active = tab
        target = self.query_one({"tokens": "#token-table", "search": "#search-input", "steer": "#specs"}[tab])
        target.focus()
        self.call_after_refresh(target.focus)  # the tab switch may move focus once more; the target wins

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    def action_health(self, corpus: str | None = None) -> None:
        """F8 / palette `health CORPUS`: every loaded SAE's health on a corpus (saetui/tui/screens/health.py)."""
        if (why := self._not_ready()) is not None:
            self.notify(why, severity="warning")
            return
        from saetui.tui.screens.health import HealthScreen

        self.push_screen(HealthScreen(self.session, corpus))

    def health(self, corpus: str) -> None:
        self.action_health(corpus)

    async def action_quit(self) -> None:
        self.steer.stop()  # a running generation ends at its next token
        self.save_session()
        self.exit()

    def action_history(self, step: int) -> None:
        """Ctrl+Up / Ctrl+Down: older and newer analyzed prompts."""
        if not self._history:
            return
        self._history_pos = max(0, min(len(self._history) - 1, self._history_pos + step))
        self.query_one("#prompt", TextArea).text = self._history[self._history_pos]

    # ------------------------------------------------------------------ palette commands (saetui/tui/commands.py)
    def load_model(self, name: str) -> None:
        """`demo` (or `saetui-demo`) is the bundled demo model and SAE."""
        self._restoring = False
        demo = name.strip().lower() in ("demo", "saetui-demo")
        self._model_arg, self._sae_args = (None if demo else name), None
        self.notify("loading the bundled demo and its SAE…" if demo else f"loading {name}… (then: load sae SPEC)")
        self._announce = True
        self._start_load()

    def load_sae(self, spec: str) -> None:
        self.status(f"loading SAE {spec}…")
        self._announce = True
        self._download_stop = threading.Event()
        self._sae_worker(spec, self._download_stop)

    def refresh_from_hub(self) -> None:
        """Ask the Hub for newer files of the loaded model and SAEs, fetch them, and load them again."""
        if self.session.model is None or self._good_model[0] is None:
            self.notify("nothing to update: the bundled demo ships with saetui (load a Hub model first)", severity="warning")
            return
        self._restoring = False
        self._model_arg = self._good_model[0]
        self._sae_args = [s.spec for s in self.session.saes or []] or None  # those added since the load too
        self.notify(f"asking the Hub for newer files of {self._model_arg}…")
        self._announce = True
        self._start_load(refresh=True)

    def use_sae(self, key: str) -> None:
        try:
            self.sae_name = self.session.saes.get(key).name
        except SaetuiError as exc:
            self.notify(str(exc), severity="error")

    def contrast(self, text: str) -> None:
        """`A1; A2 | B1; B2`: features separating the prompts before `|` from those after (Search tab)."""
        if (why := self._not_ready()) is not None:
            self.notify(why, severity="warning")
            return
        left, bar, right = text.partition("|")
        a = [p.strip() for p in left.split(";") if p.strip()]
        b = [p.strip() for p in right.split(";") if p.strip()]
        if not bar or not a or not b:
            self.notify("contrast takes two sets: A1; A2 | B1; B2", severity="error")
            return
        self.action_show_tab("search")
        self.query_one(SearchPane).contrast(a, b)

    def steer_vector(self, text: str) -> None:
        """Add a saved steering vector (e.g. a contrast's A−B direction) to the draft at coefficient 1:
        `NAME[@HOOK]`; a vector saved at several hook points is used at the displayed SAE's hook."""
        name, _, hook = text.strip().partition("@")
        if self.draft.index_of_vector(name) is not None:
            self.notify(f"vector {name} is already in steering (F4)")
            return
        try:
            if not hook and self.session.saes is not None and self.sae_name is not None:
                from saetui.steering.vectors import load_vector

                points = load_vector(name).directions
                shown = self.session.saes.get(self.sae_name).hook_name
                hook = shown if len(points) > 1 and shown in points else ""
            spec = self.session.vector_spec(name, 1.0, hook=hook or None)
        except SaetuiError as exc:
            self.notify(str(exc), severity="error")
            return
        self.draft = self.draft.add(spec)
        self.steer.select(len(self.draft) - 1)
        self.notify(f"vector {name} added to steering (add 1; F4)")

    def save_vector(self, name: str) -> None:
        try:
            where = self.session.save_vector(name)
        except SaetuiError as exc:
            self.notify(str(exc), severity="error")
            return
        self.notify(f"steering vector {name} saved in {where} (saetui steer --vector {name}:COEF)")

    def save_preset(self, name: str) -> None:
        try:
            path = state.save_preset(name, list(self.draft.specs))
        except SaetuiError as exc:
            self.notify(str(exc), severity="error")
            return
        self.notify(f"preset saved: {path}")

    def load_preset(self, name: str) -> None:
        try:
            specs = state.load_preset(name)
            for spec in specs:
                if not hasattr(spec, "vector"):
                    resolve(spec, self.session.saes)
        except SaetuiError as exc:
            self.notify(str(exc), severity="error")
            return
        self.draft = Draft(tuple(specs))
        self.notify(f"preset {name} loaded ({len(specs)} specs)")

    def action_export_analysis(self) -> None:
        if self.analysis is None:
            self.notify("nothing analyzed yet", severity="warning")
            return
        self._export("analysis", self.analysis.to_dict())

    def action_export_generation(self) -> None:
        steer = self.steer
        if not any(steer.generated):
            self.notify("nothing generated yet", severity="warning")
            return
        tok = self.session.model.tokenizer
        rows = [{"specs": [s.to_dict() for s in specs], "text": tok.decode(ids, skip_special_tokens=True), "token_ids": ids}
                for specs, ids in zip(steer.rows_specs, steer.generated)]
        data: dict[str, Any] = {"prompt": self.prompt_text, "rows": rows}
        if len(rows) == 2 and not rows[0]["specs"]:  # baseline and steered, named as the CLI names them
            data.update(specs=rows[1]["specs"], baseline=rows[0], steered=rows[1])
        self._export("generation", data)

    def _export(self, kind: str, data: dict) -> None:
        path = stamped_path(lambda stamp: Path.cwd() / f"saetui-{kind}-{stamp}.json")
        try:
            write_json_atomic(path, data)
        except OSError as exc:
            self.notify(f"could not write {path}: {exc}", severity="error")
            return
        self.notify(f"{kind} written to {path}")

    # ------------------------------------------------------------------ saved state
    def save_session(self) -> None:
        try:
            model, saes = self._good_model
            # Specs restored from the last session wait for the model to load; quitting before that keeps them.
            specs = self._saved_specs if self._saved_specs else [s.to_dict() for s in self.draft.specs]
            state.save_session({
                "model": model, "saes": saes, "prompt": self.prompt_text,
                "specs": specs, "history": self._history[-50:],
            })
        except OSError as exc:
            self.notify(f"could not save the session: {exc}", severity="warning")

    def save_session_quietly(self) -> None:
        """Save the session where the app can no longer show a notice (after it has exited)."""
        try:
            self.save_session()
        except Exception:  # noqa: BLE001 - the widgets may be gone; nothing to show it on
            pass


def run(model: str | None = None, saes: list[str] | None = None, refresh: bool = False) -> None:
    """Run the app; once it has exited (session saved), end the process without waiting.

    A worker thread may still be loading a model or running a forward, and tearing torch down at
    interpreter exit takes a second or more: neither is worth waiting for once the screen is restored.
    """
    app = SaeTuiApp(model=model, saes=saes, refresh=refresh, freeze_heap=True)
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
