"""SaeTuiApp: the shell around the panes. Compose, global keys, routing, session start and stop.

- Panes (saetui/tui/panes/) own their views, workers, palette commands and exports: Tokens (analyze, heat,
  export the analysis), Search (search, contrast, save a vector), Steer (the draft, generate, presets, vectors,
  export the generation); the feature detail screen owns its describe worker.
- Intents come up as messages (saetui/tui/messages.py) and are routed here; state goes down as the
  reactives below, bound to the panes (`data_bind`), whose watchers repaint.
- Keys, footer, F1 help and palette all come from one registry (saetui/tui/actions.py).
- What loads when, and what the last session restores, is saetui/tui/lifecycle.py; the app runs its jobs in
  one load worker after the first frame, and never waits for a worker to quit.
- The first frame is the prompt box, the tab headers, the status bar and the footer: the panes (and the session
  and screens they import) are imported and mounted in `on_ready`, before the load starts (`_mount_panes`).
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textual import events
from textual.actions import SkipAction
from textual.app import App, ComposeResult, ScreenStackError
from textual.containers import Vertical
from textual.geometry import Size
from textual.reactive import reactive
from textual.notifications import SeverityLevel
from textual.timer import Timer
from textual.widgets import Footer, Static

from saetui.errors import SaetuiError
from saetui.inputs import MIN_SIZE
from saetui.steering.draft import Draft
from saetui.tui.actions import bindings
from saetui.tui.commands import Palette, SaetuiCommands
from saetui.tui.key_order import KeyOrder
from saetui.tui.lifecycle import DEFAULT_PROMPT, Lifecycle, LoadingApp
from saetui.tui.widgets.download_panel import DownloadPanel
from saetui.tui.widgets.pane_tabs import PaneSwitcher, PaneTabs
from saetui.tui.widgets.status_bar import StatusBar
from saetui.tui.widgets.text_input import TextArea

if TYPE_CHECKING:  # imported after the first frame (see `_mount_panes`): not needed to draw it
    from saetui.session import Session
    from saetui.tui import messages as msg
    from saetui.tui.panes.search import SearchPane
    from saetui.tui.panes.steer import SteerPane
    from saetui.tui.panes.tokens import TokensPane

MIN_WIDTH, MIN_HEIGHT = MIN_SIZE  # below it the app shows only a 'too small' notice (snapshot --size refuses it)
PANES_CSS = Path(__file__).with_name("panes.tcss")  # read in `_mount_panes`; CSS_PATH holds the first frame's
HINT = "type a prompt, F5 analyzes · F1 keys · Ctrl+P commands"


class _NoWaitExecutor(ThreadPoolExecutor):
    """The event loop's executor for thread workers: closing the loop never waits for a running job.

    A model load or a forward cannot be interrupted; asyncio.run() ends with
    `loop.shutdown_default_executor()`, which would join it, so quitting would wait for the load to end.
    """

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        super().shutdown(wait=False, cancel_futures=True)


class SaeTuiApp(KeyOrder, LoadingApp, App[None]):
    CSS_PATH = "saetui.tcss"
    TITLE = "saetui"
    COMMANDS = App.COMMANDS | {SaetuiCommands}
    BINDINGS = bindings("app")
    DEFAULT_PROMPT = DEFAULT_PROMPT

    analysis: reactive[Any] = reactive(None, init=False)      # the last AnalysisResult
    sae_name: reactive[str | None] = reactive(None, init=False)  # the SAE whose features are displayed
    draft: reactive[Draft] = reactive(Draft, init=False)      # the steering specs being edited
    labels_rev: reactive[int] = reactive(0, init=False)       # bumped when a label changes
    chat: reactive[Any] = reactive(None, init=False)          # None: plain text; a list: the conversation so far

    def __init__(self, session: Session | None = None, *, model: str | None = None, saes: list[str] | None = None,
                 prompt: str | None = None, restore: bool = True, persist: bool = True, refresh: bool = False,
                 freeze_heap: bool = False) -> None:
        """`session`: the Session to show (a loaded one is shown as it is unless `model` asks for another).
        `restore`: reopen the last session (model, SAEs, prompt, specs) where no argument says otherwise;
        `persist`: save the session for the next start (both off: the user's saved state is left alone).
        `refresh`: ask the Hub for newer files of the model and SAEs (default: a complete HF cache is used as it is).
        `freeze_heap`: the process is the app's alone: keep the collector off what each load brings (tui/heap.py)."""
        super().__init__()
        self._session = session
        self.lifecycle = Lifecycle(model=model, saes=saes, prompt=prompt, refresh=refresh, restore=restore,
                                   persist=persist, freeze_heap=freeze_heap)
        self._download_stop: threading.Event | None = None  # set by Ctrl+S to stop the load's download
        self.analysis_input: tuple[str, Any] = ("", False)  # the typed prompt and chat behind `analysis`
        self.first_paint: float | None = None  # perf_counter() when the first frame was on screen, then the panes
        self.panes_in: float | None = None
        self._note_timer: Timer | None = None  # clears the status line's note (status())

    # ------------------------------------------------------------------ layout
    def compose(self) -> ComposeResult:
        # The panes straight on the screen, no container around them: every level above the token table costs each
        # key (a hop of its bubble). The rest is in two containers: Textual's compositor renders every widget whose
        # container spans a changed row, at every frame, so the prompt's TextArea (~0.15 ms: it reapplies its
        # theme's CSS at each render), the footer and the tab headers cost each cursor move a frame's worth (issue
        # 28). saetui.tcss hides them all when the terminal is too small (the screen's class -too-small), and
        # shows the notice instead.
        panes = PaneSwitcher(initial="tokens", id="panes")
        with Vertical(id="top"):
            yield TextArea(self.lifecycle.prompt, id="prompt", soft_wrap=True, show_line_numbers=False)
            yield DownloadPanel(id="download")
            # the panes go in after the first frame; F2/F3/F4 switch them (the headers never take the focus)
            yield PaneTabs([("tokens", "Tokens F2"), ("search", "Search F3"), ("steer", "Steer F4")], panes)
        yield panes
        with Vertical(id="bottom"):
            yield StatusBar("loading…", id="status", markup=False)  # notes hold user text (paths, tokens)
            yield Footer(compact=True)
        yield Static(f"terminal too small: saetui needs at least {MIN_WIDTH}x{MIN_HEIGHT}", id="too-small")

    async def _mount_panes(self) -> None:
        """The panes, imported and mounted once the first frame is on screen: the prompt box is drawn (and takes
        keys) without waiting for them, and no message that needs a pane is handled before they are in."""
        from saetui.tui.panes.search import SearchPane
        from saetui.tui.panes.steer import SteerPane
        from saetui.tui.panes.tokens import TokensPane

        # their rules and the screens', parsed now rather than before the first frame (user CSS, as saetui.tcss)
        self.stylesheet.add_source(PANES_CSS.read_text(encoding="utf-8"), read_from=(str(PANES_CSS), ""))
        app = SaeTuiApp
        await self.query_one(PaneSwitcher).add_panes(
            TokensPane(self.session, id="tokens").data_bind(app.analysis, app.sae_name, app.labels_rev),
            SearchPane(self.session, id="search").data_bind(app.sae_name, app.labels_rev),
            SteerPane(self.session, id="steer").data_bind(app.draft, app.labels_rev, app.sae_name))
        self.steer.restore_boxes(self.lifecycle.saved_boxes)

    @property
    def session(self) -> Session:
        """The session shown; a new (empty) one is made on first use, after the first frame."""
        if self._session is None:
            from saetui.session import Session

            self._session = Session()
        return self._session

    @property
    def tokens(self) -> TokensPane:
        return self.query_one("#tokens")  # type: ignore[return-value]

    @property
    def search(self) -> SearchPane:
        return self.query_one("#search")  # type: ignore[return-value]

    @property
    def steer(self) -> SteerPane:
        return self.query_one("#steer")  # type: ignore[return-value]

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
        if self.lifecycle.restore_note:
            self.notify(self.lifecycle.restore_note, severity="warning", timeout=8)

    async def on_ready(self) -> None:
        """The first frame is on screen: only now mount the panes, then start importing torch and loading the model."""
        self.first_paint = time.perf_counter()
        await self._mount_panes()
        self.panes_in = time.perf_counter()
        self.start_loading()

    def on_resize(self, event: events.Resize) -> None:
        self._check_size(event.size)  # self.size may still be the old size here

    def _check_size(self, size: Size | None = None) -> None:
        size = size or self.size
        small = size.width < MIN_WIDTH or size.height < MIN_HEIGHT
        self.screen_stack[0].set_class(small, "-too-small")  # the app's own screen, under any modal open

    def status(self, note: str = "") -> None:
        """The status bar: `note` (what just happened) and the session's model, SAEs, device, latency. A new note goes
        after AppSettings.status_note_s (a later one restarts the count)."""
        from saetui.settings import AppSettings  # after the first frame (issue 28): the status bar starts as "loading…"

        status = self.session.status()
        bar = self.query_one(StatusBar)
        renewed = bool(note) and note != bar.note
        bar.show(status, note=note)
        if renewed:
            if self._note_timer is not None:
                self._note_timer.stop()
            self._note_timer = self.set_timer(AppSettings.status_note_s, lambda: self._expire_note(note))
        if status.get("decoding") == "compiling":  # a decode step compiles in the background: show when it is done
            self.set_timer(2.0, lambda: self.status(self.query_one(StatusBar).note))

    def _expire_note(self, note: str) -> None:
        if self.query_one(StatusBar).note == note:  # still the one shown (not replaced, not a load's)
            self.status()

    def watch_draft(self, draft: Draft) -> None:
        self.session.specs = list(draft.specs)  # the session's default rows follow the app's draft

    # ------------------------------------------------------------------ messages from panes and screens
    def on_analyzed(self, message: msg.Analyzed) -> None:
        self.analysis_input = (message.prompt, message.chat)  # what produced `analysis`, as typed
        self.analysis = message.result
        self.status()
        # Focus stays where the user put it (the prompt, on start): what they type while the model loads is kept.
        self.lifecycle.history.add(message.prompt or message.result.prompt)
        self.save_session()

    def on_job_failed(self, message: msg.JobFailed) -> None:
        self.notify(message.message, title=f"{message.group} failed", severity="error", timeout=8)
        self.status(f"error: {message.message}")

    def on_notice(self, message: msg.Notice) -> None:
        if message.severity is not None:
            self.notify(message.text, severity=message.severity)  # type: ignore[arg-type]
        self.status(message.text)

    def on_feature_chosen(self, message: msg.FeatureChosen) -> None:
        def back(_: None) -> None:
            if self.query_one(PaneSwitcher).current == "search":
                self.search.focus_box()  # back to refining the search, not to the list's keys

        from saetui.tui.screens.feature_detail import FeatureDetailScreen

        self.push_screen(FeatureDetailScreen(self.session, message.sae, message.feature), back)

    def on_steer_feature(self, message: msg.SteerFeature) -> None:
        self.steer.add_feature(message.sae, message.feature, message.sign, signed=message.signed, reason=message.reason)

    def on_why_asked(self, message: msg.WhyAsked) -> None:
        if self.analysis is None or not 0 <= message.position < len(self.analysis.tokens):
            return
        from saetui.tui.screens.why import WhyScreen

        token = self.analysis.tokens[message.position].text
        prompt, chat = self.analysis_input
        self.push_screen(WhyScreen(self.session, prompt, message.position, token, chat=chat))

    def on_circuit_asked(self, message: msg.CircuitAsked) -> None:
        from saetui.tui.screens.circuit import CircuitScreen

        self.push_screen(CircuitScreen(self.session, message.prompt, message.target, message.versus,
                                       upto=message.upto, chat=message.chat, metric=message.metric))

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

        from saetui.tui.screens.label_edit import LabelScreen

        tagged = sae if len(self.session.sae_names) > 1 else None
        self.push_screen(LabelScreen(feature, self.session.labels.get((sae, feature), ""), tagged), save)

    def on_draft_changed(self, message: msg.DraftChanged) -> None:
        self.draft = message.draft

    def on_text_area_changed(self, event: TextArea.Changed) -> None:
        # the generated rows may no longer answer the prompt typed (the panes come after the first frame)
        if event.text_area.id == "prompt" and self.query("#steer"):
            self.steer.check_stale()

    def on_sae_switch(self, _: msg.SaeSwitch) -> None:
        self.action_next_sae()

    # ------------------------------------------------------------------ actions (keys: saetui/tui/actions.py)
    def _after_typed(self, job: Any) -> None:
        """Run `job` once the focused widget has handled the keys already sent to it. F5, Ctrl+G and Ctrl+Q are
        priority bindings: the app runs them as their key arrives, before the keys typed just ahead of them (in the
        same read, over a slow link) have reached the prompt or a settings box, which would be read without them."""
        if not (self.focused or self).call_later(job):  # the focused widget is closing: its queue will not run
            self.call_later(job)

    def notify(self, message: str, *, title: str = "", severity: SeverityLevel = "information",
               timeout: float | None = None, markup: bool = False) -> None:
        """Textual's notify, as plain text, then the whole screen repainted once the toast has gone.

        Plain: a toast says what happened in words that often hold user text (a path, a token, a label; `[/b]` in
        one was a MarkupError that closed the app), and none of the app's uses markup; widgets' `notify` asks
        for markup by default, so it is not taken from them. The repaint: where a toast expired over a generation
        column that had been streaming beneath it, the terminal kept its cells for good (about every other time at
        80x24 in tmux; the app's own picture had no toast; Textual repainted too little there)."""
        super().notify(message, title=title, severity=severity, timeout=timeout, markup=False)
        wait = self.NOTIFICATION_TIMEOUT if timeout is None else timeout
        self.set_timer(wait + 0.25, self._repaint_after_toast)

    def _repaint_after_toast(self) -> None:
        try:
            self.screen.refresh()
        except ScreenStackError:  # closing: no screen left to paint
            pass

    def action_focus_step(self, step: int) -> None:
        """Tab / Shift+Tab, in order with the keys typed around it (key_order.py): those before it run where they were
        typed (`Down Down Tab` moves the table, then the focus), those after it go where it moved (`Tab End`). A text
        area taking Tab as text keeps it."""
        if getattr(self.focused, "tab_behavior", "focus") == "indent":
            raise SkipAction()
        self.in_order(self, f"focus_now({step})", "tab" if step > 0 else "shift+tab")

    def action_focus_now(self, step: int) -> None:
        if step > 0:
            self.screen.focus_next()
        else:
            self.screen.focus_previous()

    def get_system_commands(self, screen: Any) -> Any:
        """Textual's own palette commands, less `Keys` (F1 lists saetui's; Textual's panel did not close on Esc), with
        a Screenshot that says where it saved or why it could not (Textual's wrote to ~/Downloads, which a server
        seldom has, and said only "Failed to save screenshot")."""
        from textual.app import SystemCommand

        for command in super().get_system_commands(screen):
            if command.title == "Keys":
                continue
            if command.title == "Screenshot":
                command = SystemCommand("Screenshot", "save an SVG screenshot of the screen (in Downloads, or else the "
                                        "current folder)", lambda: self.set_timer(0.1, self.save_screenshot_here))
            yield command

    def save_screenshot_here(self) -> None:
        """An SVG of the screen in the user's Downloads folder where there is one, else the current folder."""
        from platformdirs import user_downloads_dir

        from saetui.errors import one_line

        downloads = Path(user_downloads_dir())
        try:
            path = self.save_screenshot(path=str(downloads if downloads.is_dir() else Path.cwd()))
        except OSError as exc:
            self.notify(f"screenshot not saved: {one_line(exc)}", severity="error")
            return
        self.notify(f"screenshot saved: {path}")

    async def action_command_palette(self) -> None:
        """Ctrl+P: Textual's palette as App.action_command_palette opens it, with saetui's box (commands.Palette)."""
        if self.use_command_palette and not Palette.is_open(self):
            await self.push_screen(Palette(id="--command-palette"))

    def action_analyze(self) -> None:
        if self.ready_or_say():
            self._after_typed(lambda: self.tokens.analyze(self.prompt_text, self._chat_arg()))

    async def action_generate(self, sweep: bool = False) -> None:
        if self.ready_or_say():
            self._after_typed(lambda: self.generate_now(sweep))

    async def generate_now(self, sweep: bool = False) -> None:
        """Generate (or sweep) from the prompt and boxes as they are now, and show the steer tab. The focus stays
        where it was if it is still in sight (the prompt, a box or list of the steer tab): the keys typed next go
        on where they were meant, not to the specs, where Backspace removes one."""
        try:
            await self.steer.generate(self.prompt_text, sweep=sweep, chat=self._chat_arg())
        except SaetuiError as exc:
            self.notify(str(exc), severity="error")
            return
        focused = self.focused
        if focused is not None and (focused.id == "prompt" or self.steer in focused.ancestors_with_self):
            self.query_one(PaneSwitcher).current = "steer"
        else:
            self.action_show_tab("steer")

    async def action_sweep(self) -> None:
        await self.action_generate(sweep=True)

    def _chat_arg(self) -> Any:
        """What Session takes as `chat`: False, True (a first turn) or the conversation so far."""
        return False if self.chat is None else (list(self.chat) or True)

    def action_toggle_chat(self) -> None:
        """Chat mode: the prompt is the next user turn, rendered with the model's own chat template."""
        if self.chat is None:
            try:
                self.session.check_chat_template()
            except SaetuiError as exc:
                self.notify(str(exc), severity="error")
                return
            self.chat = []
            self.notify("chat mode: the prompt is a user turn; F6/F7 keep the baseline/steered reply")
        else:
            self.chat = None
            self.notify("chat mode off: the prompt is plain text")
        self.steer.check_stale()
        if self.session.ready and self.prompt_text.strip():  # an empty box: nothing to analyze, and no error said
            self.action_analyze()

    def action_focus_prompt(self) -> None:
        self.query_one("#prompt").focus()

    def action_continue_chat(self, row: int) -> None:
        """Keep one generated reply as the assistant's turn; the prompt box takes the next user turn."""
        if self.chat is None:
            self.notify("not in chat mode: Ctrl+T turns it on", severity="warning")
            return
        try:
            turns, which = self.steer.keep_reply(row, self._chat_arg())
        except SaetuiError as exc:
            self.notify(str(exc), severity="warning")
            # what the user types next is text (a new turn, or the prompt of a new chat), not keys of the pane
            self.query_one("#prompt").focus()
            return
        self.chat = [*self.chat, *turns]
        prompt = self.query_one("#prompt", TextArea)
        prompt.focus()
        if prompt.text.strip() and prompt.text != turns[0]["content"]:
            # typed since the generation: the next turn, begun already (cleared, it was lost without a word)
            self.notify(f"kept the {which} reply: the text in the box is the next user turn, then Ctrl+G")
            return
        prompt.text = ""
        self.notify(f"kept the {which} reply: type the next user turn, then Ctrl+G")

    def watch_chat(self, chat: Any) -> None:
        prompt = self.query_one("#prompt", TextArea)
        turns = 0 if chat is None else len(chat) // 2
        prompt.border_title = "Prompt" if chat is None else f"Prompt · chat, user turn {turns + 1} (Ctrl+T: off)"

    def action_stop(self) -> None:
        """Stop a download the load is making (what finished stays in the HF cache), else the generation."""
        if self.query_one(DownloadPanel).display and self._download_stop is not None:
            from saetui import hub

            hub.stop(self._download_stop)
            self.status("stopping the download…")
            return
        if not self.steer.running:
            self.status("nothing to stop: no generation or download is running")
            return
        self.steer.stop()

    def action_next_sae(self) -> None:
        names = self.session.sae_names
        if len(names) < 2:
            self.notify("only one SAE is loaded: Ctrl+P, then 'load sae SPEC' adds another", severity="warning")
            return
        i = names.index(self.sae_name) if self.sae_name in names else -1
        self.sae_name = names[(i + 1) % len(names)]
        self.status(f"showing SAE {self.sae_name}")

    def action_show_tab(self, tab: str) -> None:
        """Switch tab and focus its main widget, so the keys that follow go there."""
        self.query_one(PaneSwitcher).current = tab
        target = self.query_one({"tokens": "#token-table", "search": "#search-input", "steer": "#specs"}[tab])
        target.focus()
        self.call_after_refresh(target.focus)  # the tab switch may move focus once more; the target wins

    def action_help(self) -> None:
        from saetui.tui.screens.help import HelpScreen

        self.push_screen(HelpScreen())

    def action_health(self, corpus: str | None = None) -> None:
        """F8 / palette `health CORPUS`: every loaded SAE's health on a corpus (saetui/tui/screens/health.py)."""
        if self.ready_or_say():
            from saetui.tui.screens.health import HealthScreen

            self.push_screen(HealthScreen(self.session, corpus))

    async def action_quit(self) -> None:
        self.steer.stop()  # a running generation ends at its next token
        self._after_typed(self._save_and_exit)  # the prompt saved with the keys typed just before Ctrl+Q

    def _save_and_exit(self) -> None:
        self.save_session()
        self.exit()

    def action_history(self, step: int) -> None:
        """Ctrl+Up / Ctrl+Down: older and newer analyzed prompts."""
        box = self.query_one("#prompt", TextArea)
        prompt = self.lifecycle.history.step(step, box.text)
        if prompt is None:
            self.notify("no older analyzed prompt" if step < 0 else "no newer prompt: this is the newest", timeout=2)
        else:
            box.text = prompt
            box.move_cursor(box.document.end)  # at the end, as a shell puts it: typing goes on from there



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
