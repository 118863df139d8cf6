"""Lifecycle: what the app loads and restores, as one small state machine.

    idle ──start()/load_model()/load_sae()/refresh()──> loading ──succeeded()──> ready
                                                            └──failed()──> the demo instead (restoring the
                                                                           last session's model), else idle/ready

`Lifecycle` (no Textual in it) says what to load (a `LoadJob`) and is told how each job ended; `LoadingApp`,
the part of the app that runs the jobs, is below: its load worker, the failure handling (a modal, or the demo
instead), the palette's load commands, and saving the session.
The last session (model, SAEs, prompt, steering specs, prompt history) is read when the app starts and written
when it analyzes or quits, unless `persist` is off (snapshots and tests leave the user's state alone).
The model saved is the last one that loaded: one restored from the last session that no longer loads falls back
to the demo, with a notice, instead of opening on an error every time.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

from textual import work
from textual.worker import Worker, WorkerState

from saetui import state
from saetui.errors import InputError, SaetuiError, one_line
from saetui.steering.draft import Draft
from saetui.tui import heap
from saetui.tui.widgets.download_panel import DownloadPanel, ProgressRelay
from saetui.tui.widgets.status_bar import StatusBar

if TYPE_CHECKING:  # the messages, the settings and the error screen are imported after the first frame (issue 28)
    from saetui.tui import messages as msg

DEFAULT_PROMPT = "The capital of France is Paris. Anna has a red cat."


@dataclass(frozen=True)
class LoadJob:
    """One load: a model (None: the bundled demo) with its SAEs, or one SAE added to the loaded model."""

    model: str | None = None
    saes: list[str] | None = None
    refresh: bool = False
    sae: str | None = None  # set: add this SAE to the loaded model instead of loading a model
    announce: bool = False  # asked for from the palette: say when it is done
    restoring: bool = False  # the last session's model: on failure, the demo instead

    @property
    def what(self) -> str:
        return f"SAE {self.sae}" if self.sae is not None else (self.model or "the bundled demo")


class Lifecycle:
    """Loading and restoring: the job running (`job`), the last model that loaded (`good`), what the last session
    left to restore (prompt, specs, history)."""

    def __init__(self, *, model: str | None = None, saes: list[str] | None = None, prompt: str | None = None,
                 refresh: bool = False, restore: bool = True, persist: bool = True, freeze_heap: bool = False) -> None:
        self.persist = persist
        self.freeze_heap = freeze_heap  # after each load, collect once and freeze what survives (tui/heap.py)
        saved, self.restore_note = state.load_session() if restore else (None, None)
        saved = saved or {}
        self.good: tuple[str | None, list[str] | None] = (saved.get("model"), saved.get("saes"))
        # The SAE shown and the chat come back when the app reopens the last session's model (no --model, no
        # --prompt): taken once, by the first load that succeeds.
        same = prompt is None and model is None
        self.saved_shown: str | None = saved.get("shown_sae") if same else None
        self.saved_chat: list[dict] | None = saved.get("chat") if same else None
        self.saved_boxes: dict[str, str] = saved.get("boxes", {})  # the steer pane's boxes, put back once it is in
        restoring = model is None and bool(saved.get("model"))
        if restoring:
            model, saes = saved["model"], saved.get("saes")
        self._first = LoadJob(model, saes, refresh, restoring=restoring)
        self.prompt = prompt if prompt is not None else saved.get("prompt") or DEFAULT_PROMPT
        self.saved_specs: list[dict] = saved.get("specs", []) if prompt is None else []
        self.history = PromptHistory([p for p in saved.get("history", []) if isinstance(p, str)])
        self.job: LoadJob | None = None  # the load running, if any

    @property
    def loading(self) -> bool:
        return self.job is not None

    # ------------------------------------------------------------------ what to load
    def start(self, session_ready: bool) -> LoadJob | None:
        """The first frame is on screen: the first load (none when the app was given a loaded session and no model)."""
        job = self._first
        if session_ready and job.model is None and not job.saes and not job.restoring:
            return None
        return self._begin(job)

    def load_model(self, name: str) -> LoadJob:
        """`demo` (or `saetui-demo`) is the bundled demo model and its SAEs."""
        demo = name.strip().lower() in ("demo", "saetui-demo")
        return self._begin(LoadJob(None if demo else name, None, announce=True))

    def load_sae(self, spec: str) -> LoadJob:
        return self._begin(LoadJob(sae=spec, announce=True))

    def refresh(self, loaded_saes: Sequence[str] | None) -> LoadJob:
        """The loaded model and SAEs (those added since its load too) again, asking the Hub for newer files.
        `loaded_saes` None: no model is loaded."""
        if loaded_saes is None or self.good[0] is None:
            raise InputError("nothing to update: the bundled demo ships with saetui (load a Hub model first)")
        return self._begin(LoadJob(self.good[0], list(loaded_saes) or None, refresh=True, announce=True))

    def _begin(self, job: LoadJob) -> LoadJob:
        self.job = job
        return job

    # ------------------------------------------------------------------ how it ended
    def succeeded(self, job: LoadJob) -> None:
        if job.sae is None:
            self.good = (job.model, job.saes)
        if self.job == job:
            self.job = None

    def failed(self, job: LoadJob) -> LoadJob | None:
        """The job to run instead: the demo, when the last session's model did not load; else None."""
        if self.job == job:
            self.job = None
        if job.restoring and job.model is not None:
            return self._begin(LoadJob())
        return None

    # ------------------------------------------------------------------ restoring and saving
    def restored_draft(self, draft: Draft, fits: Any) -> tuple[Draft, int]:
        """The draft after a load: the last session's specs on the first load, else the draft's; only the specs
        that still fit (`fits(spec)`) are kept. Returns it and how many were dropped."""
        if self.saved_specs:
            specs = [state.spec_from_saved(data) for data in self.saved_specs]
        else:  # another model or SAE loaded: keep the specs that still fit
            specs = list(draft.specs)
        kept = [s for s in specs if s is not None and fits(s)]
        dropped = len(specs) - len(kept) if self.saved_specs else 0
        self.saved_specs = []
        return Draft(tuple(kept)), dropped

    def take_restored_view(self) -> tuple[str | None, list[dict] | None]:
        """(the SAE shown, the chat) the last session left, once: after the first load they are the app's."""
        view = (self.saved_shown, self.saved_chat)
        self.saved_shown = self.saved_chat = None
        return view

    def save(self, prompt: str, draft: Draft, shown_sae: str | None = None, chat: list[dict] | None = None,
             boxes: dict[str, str] | None = None) -> None:
        """The session as the next start restores it (OSError when it cannot be written)."""
        if not self.persist:
            return
        from saetui.settings import AppSettings

        model, saes = self.good
        # What the last session left waits for the model to load; quitting before that keeps it.
        specs = self.saved_specs if self.saved_specs else [s.to_dict() for s in draft.specs]
        data = {"model": model, "saes": saes, "prompt": prompt, "specs": specs,
                "history": self.history.items[-AppSettings.history:],
                "shown_sae": self.saved_shown or shown_sae, "chat": self.saved_chat or chat,
                "boxes": boxes if boxes is not None else self.saved_boxes}
        state.save_session({k: v for k, v in data.items() if not (k == "shown_sae" and v is None)})


class PromptHistory:
    """The prompts analyzed, oldest first, and where Ctrl+Up/Ctrl+Down are in them. As a shell's history: text
    on screen that is not the entry stepped to (typed, or edited) is the draft, kept after the newest entry, and
    Ctrl+Down past the newest brings it back; an entry edited while a draft is kept keeps its edit in its place
    (as readline does), so neither text is lost."""

    def __init__(self, items: list[str]) -> None:
        self.items = list(items)  # the saved ones, already cut to AppSettings.history (state.load_session)
        self.pos = len(self.items)
        self.draft: str | None = None  # at position len(items) when there is one
        self.edits: dict[int, str] = {}  # entries edited since the last analysis, by position

    def add(self, prompt: str) -> None:
        if not self.items or self.items[-1] != prompt:
            self.items.append(prompt)
        self.pos = len(self.items) - 1  # the prompt on screen; Ctrl+Up goes to the one before
        self.draft, self.edits = None, {}  # analyzed: it is the newest entry now

    def _at(self, pos: int) -> str | None:
        return self.draft if pos == len(self.items) else self.edits.get(pos, self.items[pos])

    def step(self, step: int, shown: str) -> str | None:
        """The text `step` entries away (-1 older, +1 newer) from `shown`, the prompt box's text; None past either
        end (the box stays as it is)."""
        entry = 0 <= self.pos < len(self.items)
        if not (entry or self.pos == len(self.items)) or self._at(self.pos) != shown:  # typed or edited since
            if entry and self.draft is not None:
                self.edits[self.pos] = shown  # an entry edited: the draft stays the draft
            else:
                self.draft, self.pos = shown, len(self.items)  # kept, to come back to
        last = len(self.items) - (self.draft is None)
        if not 0 <= self.pos + step <= last:
            return None
        self.pos += step
        return self._at(self.pos)


class LoadingApp:
    """The app's side of the lifecycle (a part of SaeTuiApp, saetui/tui/app.py): runs `Lifecycle`'s jobs in one
    load worker, turns their ends into the screen's state, and saves the session. Uses the app's `session`,
    `lifecycle`, `draft`, `sae_name`, `analysis` and `status()`."""

    def start_loading(self) -> None:
        """The first frame is on screen: the first load, or, for a session loaded already (a snapshot's), show it."""
        from saetui.tui import messages as msg

        job = self.lifecycle.start(self.session.ready)
        if job is not None:
            self._run(job)
        else:
            self.post_message(msg.Loaded(self.session.status()))

    def _not_ready(self) -> str | None:
        if self.session.ready:
            return None
        if any(w.group == "load" and w.is_running for w in self.workers):
            return "still loading the model"
        if self.session.model is None:
            return "no model loaded: Ctrl+P, then 'load model demo' (or a model id)"
        return "no SAE loaded: Ctrl+P, then 'load sae SPEC'"

    def ready_or_say(self) -> bool:
        """Whether the session can run the model; if not, a notice says why (what to load)."""
        if (why := self._not_ready()) is not None:
            self.notify(why, severity="warning")
            return False
        return True

    def _run(self, job: LoadJob) -> None:
        if job.sae is not None:
            self.status(f"loading SAE {job.sae}…")
        else:
            self.query_one(StatusBar).show({}, note=f"loading {job.what}… (the app stays usable; Ctrl+Q quits)")
        self._download_stop = threading.Event()
        self._load_worker(job, self._download_stop)

    @work(thread=True, exclusive=True, group="load", exit_on_error=False)
    def _load_worker(self, job: LoadJob, stop: threading.Event) -> None:
        # Hub downloads (only what the HF cache lacks) report to the download panel; Ctrl+S sets `stop`
        from saetui.tui import messages as msg

        if job.sae is not None:
            loaded = self.session.load_sae(job.sae, progress=ProgressRelay(self), cancel=stop)
        else:
            self.session.load(job.model, job.saes, refresh=job.refresh, progress=ProgressRelay(self), cancel=stop)
        if self.lifecycle.freeze_heap:
            heap.settle_after_load()
        self.lifecycle.succeeded(job)
        self.post_message(msg.Loaded(self.session.status(), job.announce))
        if job.sae is not None:
            self.call_from_thread(setattr, self, "sae_name", loaded.name)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """A failed load gets a modal (or, restoring the last session, the demo instead); a stopped download a notice."""
        if event.worker.group != "load" or event.state not in (WorkerState.SUCCESS, WorkerState.ERROR, WorkerState.CANCELLED):
            return
        self.query_one(DownloadPanel).finish()
        if event.state != WorkerState.ERROR:
            return
        from saetui.hub import DownloadCancelled

        error, job = event.worker.error, self.lifecycle.job
        message = one_line(error)
        if isinstance(error, DownloadCancelled):  # the user asked for it: say what is kept, no modal
            self.status("download stopped: the finished files are kept in the HF cache")
            self.notify(message, title="download stopped", severity="warning", timeout=10)
            return
        self.status(f"error: {message}")
        instead = self.lifecycle.failed(job) if job is not None else None
        if instead is not None:
            self.notify(f"the last session's model {job.model} did not load; opened the demo instead",
                        severity="warning", timeout=10)
            self._run(instead)
            return
        model = self.session.model
        hint = ("\n\nCtrl+P, then 'load model demo' opens the bundled demo." if model is None
                else f"\n\n{model.name} stays loaded.")
        self.clear_notifications()  # nothing covers the modal's text
        from saetui.tui.screens.error import ErrorScreen

        self.push_screen(ErrorScreen("Could not load the model or SAE", message + hint))

    def on_loaded(self, message: msg.Loaded) -> None:
        from saetui.files import take_notices

        for notice in take_notices():  # e.g. a damaged labels file set aside while loading
            self.notify(notice, severity="warning", timeout=10)
        names = self.session.sae_names
        if message.announce:  # a load the user asked for in the palette: say it is done
            self.notify(f"loaded {message.status.get('model')} with SAE(s): {', '.join(names) or 'none yet'}")
        if not names:
            self.status("no SAE: Ctrl+P, then 'load sae SPEC'")
            return
        shown, chat = self.lifecycle.take_restored_view()
        if shown in names:
            self.sae_name = shown
        elif self.sae_name not in names:
            self.sae_name = names[0]
        if chat is not None:
            self._restore_chat(chat)
        self.analysis = None
        self.status()
        self.draft, dropped = self.lifecycle.restored_draft(self.draft, self.session.spec_fits)
        if dropped:
            self.notify(f"{dropped} saved steering spec(s) no longer fit the loaded SAEs and were dropped", severity="warning")
        self.action_analyze()

    def _restore_chat(self, chat: list[dict]) -> None:
        """The last session's chat mode and conversation, where the model still has a chat template."""
        try:
            self.session.check_chat_template()
        except SaetuiError as exc:
            self.notify(f"the last session's chat was not restored: {exc}", severity="warning")
            return
        self.chat = list(chat)

    def on_download_progress(self, message: msg.DownloadProgress) -> None:
        if any(w.group == "load" and w.is_running for w in self.workers):  # a late message after the load ended
            self.query_one(DownloadPanel).show_progress(message.progress)

    # ------------------------------------------------------------------ palette: what is loaded
    def load_model(self, name: str) -> None:
        job = self.lifecycle.load_model(name)
        self.notify("loading the bundled demo and its SAE…" if job.model is None else f"loading {name}… (then: load sae SPEC)")
        self._run(job)

    def load_sae(self, spec: str) -> None:
        self._run(self.lifecycle.load_sae(spec))

    def refresh_from_hub(self) -> None:
        """Ask the Hub for newer files of the loaded model and SAEs, fetch them, and load them again."""
        try:
            job = self.lifecycle.refresh([s.spec for s in self.session.saes or []] if self.session.model else None)
        except SaetuiError as exc:
            self.notify(str(exc), severity="warning")
            return
        self.notify(f"asking the Hub for newer files of {job.model}…")
        self._run(job)

    def use_sae(self, key: str) -> None:
        try:
            self.sae_name = self.session.sae(key).name
        except SaetuiError as exc:
            self.notify(str(exc), severity="error")

    # ------------------------------------------------------------------ saved state
    def save_session(self) -> None:
        try:
            boxes = self.steer.boxes() if self.panes_in is not None else None
            self.lifecycle.save(self.prompt_text, self.draft, self.sae_name, self.chat, boxes)
        except OSError as exc:
            self.notify(f"could not save the session: {exc}", severity="warning")

    def save_session_quietly(self) -> None:
        """Save the session where the app can no longer show a notice (after it has exited)."""
        try:
            self.save_session()
        except Exception:  # noqa: BLE001 - the widgets may be gone; nothing to show it on
            pass
