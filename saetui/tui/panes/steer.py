"""Steer pane (F4): the steering draft (specs), the generation settings and the generated rows.

The draft is the app's reactive; edits here post `DraftChanged` with a new value. Owns the generation
worker (baseline and steered side by side, or one row per coefficient of a sweep, Ctrl+W), and the palette
commands that act on the draft or the generation: presets, steering vectors, the export of the generation."""

from __future__ import annotations

import math
from dataclasses import replace
import threading
from typing import Any

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.reactive import reactive
from textual.widgets import Label

from saetui.tui.widgets.text_input import Input

from saetui import state
from saetui.errors import InputError, SaetuiError
from saetui.generation import mean_kl, row_title
from saetui.inputs import SweepValue, parse_sweep
from saetui.settings import AppSettings, GenerationSettings, SteeringSettings
from saetui.steering.draft import Draft, coefficient_step
from saetui.steering.spec import MAX_COEFFICIENT, SteeringSpec
from saetui.tui.messages import DraftChanged, GenerationDone, GenerationPiece, Notice
from saetui.tui.panes.base import Pane
from saetui.tui.widgets.steering_panel import GenerationView, SpecTable


class SweepBox(Input):
    """The sweep box: Ctrl+W sweeps here, as Enter does. Every other text box keeps Ctrl+W for deleting the word
    before the cursor, as terminals do (the app's Ctrl+W is not a priority binding: it sweeps from the lists)."""

    BINDINGS = [Binding("ctrl+w", "submit", "Sweep", show=False)]


DEFAULTS = GenerationSettings()  # the fields start at the library's defaults, as the CLI's options do


class SteerPane(Pane):
    draft: reactive[Draft] = reactive(Draft, init=False)
    labels_rev: reactive[int] = reactive(0, init=False)
    sae_name: reactive[str | None] = reactive(None, init=False)  # the SAE shown (a vector steers at its hook)

    def __init__(self, session: Any, **kwargs: Any) -> None:
        super().__init__(session, **kwargs)
        self._stop = threading.Event()
        self._undo: list[Draft] = []  # the drafts before each change made here, oldest first (`u`)
        self.generated: list[list[int]] = [[], []]  # token ids of each row of the last generation
        self.rows_specs: list[list[Any]] = []       # the specs each row ran with
        self._run = 0                               # the current generation's number
        self._prompt = ""
        self._chat: Any = False
        self.done = False  # the last generation ran to its end (a chat can keep one of its replies)
        self._kept: str | None = None  # which of its replies was kept ("baseline", "steered"), None before F6/F7
        self._kept_turns: list[dict[str, str]] = []  # the user turn and the reply F6/F7 kept
        self.kl: list[list[float] | None] = []      # per row, per generated token: KL(steered || unsteered)
        self.rows: list[Any] = []                   # the rows of the last generation (saetui.generation.Row)
        # what the rows shown were generated from: (prompt, chat, the swept spec's row or None, `_steering`)
        self._made_from: tuple[Any, ...] | None = None
        self._steer_run: Any = None  # the last generation (saetui.generation.SteerRun), for its export

    def compose(self) -> ComposeResult:
        yield SpecTable(id="specs")
        with Horizontal(id="gen-settings"):
            yield Label("coef")
            yield Input(placeholder="value⏎", id="coef")
            yield Label("max")
            yield Input(str(DEFAULTS.max_new_tokens), id="max-tokens", type="integer")
            yield Label("temp")
            yield Input(f"{DEFAULTS.temperature:g}", id="temperature")
            yield Label("seed")
            yield Input(str(DEFAULTS.seed), id="seed", type="integer")
            yield Label("sweep")
            yield SweepBox(placeholder=self.SWEEP_HINT, id="sweep")
        yield Label(id="gen-stale")  # shown when the rows below no longer match the prompt or the specs
        yield GenerationView(id="gen-columns")

    # What the sweep box takes, said in its placeholder: plain numbers are raw coefficients, as the coef box and the
    # table's coef column hold them; a number ending in x is that many times the feature's max activation.
    SWEEP_HINT = "raw; 2x = 2×max ⏎"

    SHORT = 14  # below this height the spec table gives its rows to the generated text (60x20 has 11)

    def on_mount(self) -> None:
        self.query_one("#specs").border_title = "Steering (Ctrl+G generates, Ctrl+W sweeps, Ctrl+S stops)"

    NARROW = 76  # below this width the generation fields shrink (saetui.tcss), so the sweep box stays in sight

    def on_resize(self) -> None:
        self.set_class(self.size.height < self.SHORT, "-short")
        self.set_class(self.size.width < self.NARROW, "-narrow")

    # ------------------------------------------------------------------ the draft
    def steps(self) -> list[float]:
        """Each spec's +/- step, scaled to its feature's max activation where an index knows it."""
        return [coefficient_step(s, self.session.max_activation(s.sae, s.feature) if s.kind == "feature" else None)
                for s in self.draft.specs]

    def watch_draft(self) -> None:
        self._repaint()
        self.check_stale()

    def watch_labels_rev(self) -> None:
        self._repaint()

    def _repaint(self) -> None:
        self.query_one(SpecTable).show(list(self.draft.specs), self.session.labels, self.steps())

    def select(self, row: int) -> None:
        self.query_one(SpecTable).move_cursor(row=row)

    def _set_draft(self, draft: Draft, undoable: bool = True) -> None:
        if undoable and draft != self.draft:
            self._undo = [*self._undo, self.draft][-AppSettings.undo:]
        self.draft = draft  # at once: the next key (before the app's value comes back down) edits this one
        self.post_message(DraftChanged(draft))

    def undo(self) -> None:
        """`u` / Ctrl+Z: the specs as they were before the last change made here (a removal, a toggle, a nudge, an
        added feature, a preset loaded), as many steps back as AppSettings.undo."""
        if not self._undo:
            self.post_message(Notice("nothing to undo", "warning"))
            return
        *self._undo, previous = self._undo
        self._set_draft(previous, undoable=False)
        self.post_message(Notice(f"undone: {_specs(len(previous))} again"))

    def add_feature(self, sae: str, feature: int, sign: int = 1, signed: bool = False, reason: str = "") -> None:
        """Add a feature to the draft at twice its max activation (`sign` -1: negated); once: adding it
        again points at its row (`signed`, from the why? screen: and turns it to `sign`'s direction, see
        `_turn`). `reason` says in the toast what the sign is for."""
        name, why = f"feature {sae}/{feature}", f" {reason}" if reason else ""
        existing = self.draft.index_of(sae, feature)
        if existing is not None:
            self.select(existing)
            if signed:
                self._turn(existing, sign, name, why)
            else:
                self.notify(f"{name} is already in steering (row {existing + 1}, F4)")
            return
        coefficient = sign * self._start(sae, feature)
        self._set_draft(self.draft.add(SteeringSpec(feature, coefficient, "add", sae)))
        self.select(len(self.draft) - 1)
        self.notify(f"{name} added to steering (add {coefficient:g}){why}; F4")

    def _start(self, sae: str, feature: int) -> float:
        return max(-MAX_COEFFICIENT, min(MAX_COEFFICIENT, SteeringSettings().start(self.session.max_activation(sae, feature))))

    def _turn(self, i: int, sign: int, name: str, why: str) -> None:
        """The why? screen's a/A on a feature already in steering: an added spec is pointed `sign`'s way and
        switched on; the toast says what changed, or that nothing did (a/A pressed again). A clamp or ablate
        spec has no direction to turn: it is left as it is, and the toast says so."""
        spec, draft, changes = self.draft.specs[i], self.draft, []
        if spec.mode != "add":
            self.notify(f"{name} is in steering as {spec.mode} (row {i + 1}), not turned: m in F4 cycles it to add",
                        severity="warning")
            return
        if spec.coefficient * sign <= 0:  # the other way, or 0: turn it (0 gets the starting value)
            new = -spec.coefficient if spec.coefficient else sign * self._start(spec.sae, spec.feature)
            draft = draft.set_coefficient(i, new)
            changes.append(f"add {spec.coefficient:g} → {draft.specs[i].coefficient:g}")
        if not spec.enabled:
            draft = draft.toggle(i)
            changes.append("switched back on")
        if not changes:
            self.notify(f"{name} already steers{why} (add {spec.coefficient:g}, row {i + 1}): unchanged; F4")
            return
        self._set_draft(draft)
        self.notify(f"{name} now steers{why}: {', '.join(changes)} (row {i + 1}; F4)")

    # ------------------------------------------------------------------ palette: vectors and presets
    def steer_vector(self, text: str) -> None:
        """Add a saved steering vector (e.g. a contrast's A−B direction) to the draft at coefficient 1:
        `NAME[@HOOK]`; a vector saved at several hook points is used at the displayed SAE's hook."""
        name, _, hook = text.strip().partition("@")
        try:
            if not hook and self.session.ready and self.sae_name is not None:
                hook = self.session.vector_hook(name, self.sae_name)
            spec = self.session.vector_spec(name, 1.0, hook=hook or None)
        except SaetuiError as exc:
            self.notify(str(exc), severity="error")
            return
        if self.draft.index_of_vector(spec.vector, spec.hook) is not None:  # at another hook it is another spec
            self.notify(f"{spec.target} is already in steering (F4)")
            return
        self._set_draft(self.draft.add(spec))
        self.select(len(self.draft) - 1)
        self.notify(f"vector {name} added to steering (add 1; F4)")

    def save_preset(self, name: str) -> None:
        specs = list(self.draft.specs)
        try:
            replaced = name in state.list_presets()
            path = state.save_preset(name, specs)
        except SaetuiError as exc:
            self.notify(str(exc), severity="error")
            return
        self.notify(f"preset {name} {'replaced' if replaced else 'saved'} ({_specs(len(specs))}): {path}")

    def load_preset(self, name: str) -> None:
        try:
            specs = state.load_preset(name)
            for spec in specs:
                if spec.kind == "feature":  # a vector is checked when it is used
                    self.session.check_spec(spec)
        except SaetuiError as exc:
            self.notify(str(exc), severity="error")
            return
        self._set_draft(Draft(tuple(specs)))
        self.notify(f"preset {name} loaded ({_specs(len(specs))})")

    @on(SpecTable.Edit)
    def _edit(self, edit: SpecTable.Edit) -> None:
        edit.stop()
        d, i = self.draft, edit.row
        if edit.op == "undo":
            self.undo()
            return
        if not 0 <= i < len(d):
            self.post_message(Notice("no steering spec to change: add a feature first (a)", "warning"))
            return
        spec = d.specs[i]
        if edit.op == "nudge" and spec.mode == "ablate":  # the hidden coefficient came back changed with m
            self.post_message(Notice(f"{spec.target} is ablated: it has no coefficient (m changes its mode)", "warning"))
            return
        new = {"toggle": lambda: d.toggle(i), "nudge": lambda: d.nudge(i, edit.arg, self.steps()[i]),
               "cycle_mode": lambda: d.cycle_mode(i), "cycle_scope": lambda: d.cycle_scope(i),
               "remove": lambda: d.remove(i)}[edit.op]()
        if new == d and edit.op == "nudge":
            self.post_message(Notice(f"the coefficient of {spec.target} is at the limit, ±{MAX_COEFFICIENT:g}: steering "
                                     "beyond swamps the model's activations", "warning"))
        elif new == d and edit.op == "cycle_mode":
            self.post_message(Notice(f"{spec.target} is a steering vector: it is only added (m changes a feature's "
                                     "mode)", "warning"))
        self._set_draft(new)
        if edit.op == "remove":  # Backspace removes too: a key meant for a box must not drop a spec unseen
            self.post_message(Notice(f"removed {d.specs[i].target} from the specs (u brings it back)"))

    @on(Input.Submitted, "#coef")
    def _coefficient_typed(self, event: Input.Submitted) -> None:
        """Enter in the coef box sets the highlighted spec's coefficient to the number typed: raw, or with an `x`
        (`2x`) that many times the feature's max activation, as the sweep box reads them (set as the raw value)."""
        event.stop()
        if not len(self.draft):
            self.post_message(Notice("no steering spec to set: add a feature first (a)", "warning"))
            return
        row = self._spec_row()
        spec = self.draft.specs[row]
        if spec.mode == "ablate":  # set unseen, it came back with m: said, as for + and -
            self.post_message(Notice(f"{spec.target} is ablated: it has no coefficient (m changes its mode)", "warning"))
            return
        try:
            value = self._coefficient(event.value, spec)
        except InputError as exc:
            self.post_message(Notice(str(exc), "error"))
            return
        try:
            self.draft.specs[row].with_coefficient(value)  # the spec's own check: within ±MAX_COEFFICIENT
        except InputError as exc:
            self.post_message(Notice(str(exc), "error"))
            return
        self._set_draft(self.draft.set_coefficient(row, value))
        event.input.value = ""

    def _coefficient(self, text: str, spec: Any) -> float:
        """The coef box's text as a raw coefficient for `spec`: a number (ASCII digits, as the CLI reads one: float()
        took '1_0' and '١'), or `2x` = 2 × the feature's max activation; else one InputError line."""
        try:
            # no limit here: the spec's own check says it (within ±MAX_COEFFICIENT)
            (typed,) = parse_sweep(text, "coef", limit=math.inf) if text.strip() and "," not in text else (None,)
        except (InputError, ValueError):
            typed = None
        if typed is None:
            raise InputError(f"coef takes a number, or 2x for twice the max activation; got {text!r}")
        if typed.unit == "raw":
            return typed.value
        top = self._max_of(spec)
        if top is None:
            raise InputError(f"{spec.target} has no known max activation (no feature index for a vector's, or its "
                             f"SAE's): type a raw coefficient, not {text.strip()}")
        return SteeringSettings.times_max(typed.value, top)  # what `a` sets for 2x

    @on(Input.Submitted, "#sweep")
    async def _sweep_typed(self, event: Input.Submitted) -> None:
        """Enter in the sweep box sweeps, as Ctrl+W (the box's text is complete: Enter comes after it in the box's
        own queue, so no wait for typed keys as the Ctrl+W action has)."""
        event.stop()
        if self.app.ready_or_say():
            await self.app.generate_now(sweep=True)  # the focus stays in the box, to change the values and sweep again
        event.input.select_all()  # selected: the next values typed replace these

    # ------------------------------------------------------------------ the boxes, as a restart restores them
    BOXES = ("max-tokens", "temperature", "seed", "sweep")

    def boxes(self) -> dict[str, str]:
        """What is typed in the generation boxes, as typed (a restart puts it back; generating checks it)."""
        return {box: self.query_one(f"#{box}", Input).value for box in self.BOXES}

    def restore_boxes(self, saved: dict[str, str]) -> None:
        for box, value in saved.items():
            if box in self.BOXES:
                self.query_one(f"#{box}", Input).value = value

    # ------------------------------------------------------------------ generation
    def settings(self) -> dict[str, Any]:
        """The typed settings; InputError names the box that holds no number, and what it holds."""
        out: dict[str, Any] = {}
        for key, box, read, what in (("max_new_tokens", "#max-tokens", int, "a whole number"),
                                     ("temperature", "#temperature", float, "a number"),
                                     ("seed", "#seed", int, "a whole number")):
            text = self.query_one(box, Input).value
            try:
                out[key] = read(text)
            except ValueError:
                raise InputError(f"the {box[1:].replace('-', ' ')} box needs {what}, got {text.strip()[:20]!r}") from None
        return out

    def sweep_plan(self) -> tuple[list[Any], Any, list[SweepValue]]:
        """The highlighted spec swept over the coefficients typed in the sweep box (plain numbers: raw
        coefficients; `2x`: twice the feature's max activation), the other enabled specs held as they are:
        (held, swept, coefficients). Empty box: SteeringSettings.sweep, in max units where the feature's max is
        known (0,1x,2x,4x), else as multiples of a vector's direction or of the raw start coefficient."""
        if not len(self.draft):
            raise InputError("no steering spec to sweep: add a feature first (a)")
        i = self._spec_row()
        spec = replace(self.draft.specs[i], enabled=True)  # the spec asked for is swept, even if switched off
        if spec.mode == "ablate":
            raise InputError("an ablated spec has no coefficient to sweep: m cycles its mode")
        top = self.session.max_activation(spec.sae, spec.feature) if spec.kind == "feature" else None
        text = self.query_one("#sweep", Input).value
        defaults = SteeringSettings()
        if text.strip():
            coefs = parse_sweep(text, "sweep")
        elif top is not None:
            coefs = [SweepValue(k, "max") for k in defaults.sweep]
        else:
            unit = 1.0 if spec.kind == "vector" else defaults.coefficient
            coefs = [SweepValue(k * unit) for k in defaults.sweep]
        if spec.kind == "feature" and top is None and any(c.unit == "max" for c in coefs):
            raise InputError(f"{spec.target} has no known max activation (no feature index): sweep raw "
                             f"coefficients, without x")
        held = [s for j, s in enumerate(self.draft.specs) if j != i and s.enabled]
        return held, spec, coefs

    def _spec_row(self) -> int:
        """The highlighted spec's row (the table's cursor, kept inside the draft); the draft must not be empty."""
        return min(max(self.query_one(SpecTable).cursor_row, 0), len(self.draft) - 1)

    def _max_of(self, spec: Any) -> float | None:
        return self.session.max_activation(spec.sae, spec.feature) if spec.kind == "feature" else None

    async def generate(self, prompt: str, sweep: bool = False, chat: Any = False) -> None:
        """Start generating (replacing a running generation); InputError for bad settings. `chat`: False,
        or the conversation so far (True = none): the rows are then the assistant's replies."""
        settings = self.settings()
        if sweep:
            held, spec, coefs = self.sweep_plan()
            plan: dict[str, Any] = {"specs": [spec], "sweep": coefs, "held": held}
            if not self.draft.specs[self._spec_row()].enabled:
                # swept anyway (the spec asked for), but a switched-off spec steering every row must not surprise
                self.post_message(Notice(f"{spec.target} is switched off in the specs: swept anyway, on in every "
                                         f"row (space switches it on for Ctrl+G)", "information"))
        else:
            plan = {"specs": self.draft.enabled(), "compare": True}
        # Checked here, before the rows are cleared: a refusal (a prompt that fills the context, a spec that no
        # longer fits what is loaded) is one line and the last generation stays on screen.
        steer_run = self.session.steer(prompt, **plan, chat=chat, **settings)
        rows = steer_run.rows
        self.rows = rows
        titles = [row_title(row, self._max_of) for row in rows]  # a sweep's: the coefficient in both units
        self._stop.set()  # a generation still running ends at its next token
        self._stop = threading.Event()
        self.generated = [[] for _ in rows]
        self.rows_specs = [list(r.specs) for r in rows]
        self._run += 1
        self._prompt, self._chat, self.done, self._kept = prompt, chat, False, None
        swept = self._spec_row() if sweep else None
        self._made_from = (prompt, chat is not False, swept, self._steering(swept))
        self._steer_run = steer_run
        self.check_stale()
        await self.query_one(GenerationView).set_rows(titles)
        # the status line said the last run's 'generation done' until this one ended
        self.post_message(Notice(f"sweeping {len(rows)} coefficients…" if sweep else "generating…"))
        self._generate_worker(steer_run, self._stop, self._run)

    # ------------------------------------------------------------------ rows from earlier settings
    def _steering(self, sweep: int | None) -> tuple[Any, ...]:
        """The specs that steer a generation from the draft now: the enabled ones, or for a sweep of row `sweep` all
        of them, the swept one without its coefficient (the sweep sets it)."""
        if sweep is None:
            return tuple(s for s in self.draft.specs if s.enabled)
        return tuple(replace(s, coefficient=0.0) if i == sweep else s for i, s in enumerate(self.draft.specs))

    def check_stale(self) -> None:
        """Say above the generated rows when they come from another prompt, chat mode or specs than those now (the
        rows stay: they are what was generated; Ctrl+G or Ctrl+W makes new ones)."""
        reasons = []
        if self._made_from is not None and any(self.generated):
            prompt, chat, sweep, steering = self._made_from
            typed = self.app.prompt_text
            if typed.strip() and typed != prompt:  # an empty box (a chat's next turn being started) is no change
                reasons.append("prompt")
            if chat != (self.app.chat is not None):
                reasons.append("chat mode")
            if steering != self._steering(sweep):
                reasons.append("specs")
        again = "Ctrl+W" if self._made_from and self._made_from[2] is not None else "Ctrl+G"
        note = self.query_one("#gen-stale", Label)
        note.update(f"generated before the {' and '.join(reasons)} changed: {again} generates anew" if reasons else "")
        note.set_class(bool(reasons), "-shown")
        self.query_one(GenerationView).set_class(bool(reasons), "-stale")

    def reply(self, row: int) -> str:
        """The text of a generated row, without special tokens (e.g. the end-of-turn marker)."""
        return self.session.decode(self.generated[row]).strip()

    def keep_reply(self, row: int, chat: Any) -> tuple[list[dict[str, str]], str]:
        """A chat's turns after keeping generated row `row` as the assistant's reply: (the user turn and the
        reply, which row it was). `chat`: the conversation now, as `generate` takes it. InputError, saying why,
        when there is no finished reply there (none yet, still streaming, stopped, kept already), when the last
        generation answered another conversation (or none: plain text), or when the conversation
        with it would leave fewer than AppSettings.chat_room tokens of the model's context for another turn:
        refused, never kept into a chat that can no longer be continued (nor trimmed behind the user's back)."""
        which = "baseline" if row == 0 else "steered"
        before = self._chat if isinstance(self._chat, list) else []  # the turns the reply answered
        # the conversation the reply belongs to: the one it answered, or once kept, that one with the reply in it
        owner = [*before, *self._kept_turns] if self._kept else self._chat
        if not self.running and any(self.generated) and chat != owner:
            # before 'kept already': in a new chat (Ctrl+T twice) the reply kept was the old chat's
            raise InputError("the last generation was plain text, not a chat reply: Ctrl+G generates one"
                             if self._chat is False else
                             "the last reply answers another conversation: Ctrl+G generates one for this one")
        if not self.done or row >= len(self.generated) or not self.generated[row]:
            raise InputError(self._no_reply(row, which))
        turns = [{"role": "user", "content": self._prompt}, {"role": "assistant", "content": self.reply(row)}]
        self._check_chat_room([*before, *turns])
        self.done, self._kept, self._kept_turns = False, which, turns
        return turns, which

    def _no_reply(self, row: int, which: str) -> str:
        """Why there is no reply to keep in row `row` (F6: 0, F7: 1), and what to do."""
        if self.running:
            return "the reply is still being generated: keep it once it has finished (Ctrl+S stops it)"
        if self._kept is not None:
            return f"the {self._kept} reply is kept already: type the next user turn, then Ctrl+G"
        if not any(self.generated):
            return "generate a reply first (Ctrl+G), and let it finish"
        if not self.done:
            return "the last generation was stopped before its end: Ctrl+G generates a whole reply"
        if row >= len(self.generated):
            return f"the last generation has no {which} reply"
        return f"the {which} reply is empty: nothing to keep"

    def _check_chat_room(self, messages: list[dict[str, str]]) -> None:
        """InputError if `messages` leave fewer than AppSettings.chat_room tokens of the model's context free."""
        model = self.session.model
        context = model.context_length if model is not None else None
        if context is None:
            return
        try:
            n: int | None = len(self.session.render_chat(messages, add_generation_prompt=False))
        except InputError:  # longer than the context itself
            n = None
        if n is None or context - n < AppSettings.chat_room:
            used = "more than" if n is None else f"{n} of"
            raise InputError(f"reply not kept: the chat would use {used} the model's {context}-token context, too "
                             f"little for another turn (Ctrl+T twice starts a new chat)")

    def export_generation(self) -> None:
        """The palette's "Export generation as JSON": the object `saetui steer --json` prints for the same run (its
        rows, specs, KL, the model, SAEs and decoding settings to run it again), written in a worker (the KL may
        still need its forward)."""
        if self.running:  # first: a generation just started has no token yet
            self.notify("the generation is still running: export it once it has ended (Ctrl+S stops it)",
                        severity="warning")
            return
        if self._steer_run is None or not any(self.generated):
            self.notify("nothing generated yet", severity="warning")
            return
        self._export_worker(self._steer_run)

    @work(thread=True, group="export", exit_on_error=False)
    def _export_worker(self, steer_run: Any) -> None:
        data = steer_run.to_dict()
        self.app.call_from_thread(self.export, "generation", data)

    def stop(self) -> None:
        self._stop.set()

    @property
    def running(self) -> bool:
        """A generation (or sweep) is streaming."""
        from textual.worker import WorkerState

        busy = (WorkerState.PENDING, WorkerState.RUNNING)
        return any(w.group == "generate" and w.state in busy for w in self.workers)

    @work(thread=True, exclusive=True, group="generate", exit_on_error=False)
    def _generate_worker(self, steer_run: Any, stop: threading.Event, run: int) -> None:
        for note in steer_run.notes("max"):  # fewer new tokens than asked, a scope with nothing to steer: said
            self.post_message(Notice(note, "warning"))
        for piece in steer_run.pieces(stop):
            self.post_message(GenerationPiece(piece.row, piece.text, piece.token_id, run))
        self.post_message(GenerationDone(stop.is_set(), run, steer_run))

    @on(GenerationPiece)
    def _piece(self, message: GenerationPiece) -> None:
        message.stop()
        if message.run != self._run or message.row >= len(self.generated):
            return  # from a generation replaced since
        ids = self.generated[message.row]
        ids.append(message.token_id)
        ref = self.generated[0] if message.row else []  # tokens differing from the first row are underlined
        i = len(ids) - 1
        differs = message.row > 0 and i < len(ref) and ref[i] != message.token_id
        columns = self.query_one(GenerationView).columns
        if message.row < len(columns):
            columns[message.row].append(message.text, differs)

    @work(thread=True, exclusive=True, group="kl", exit_on_error=False)
    def _kl_worker(self, steer_run: Any, run: int) -> None:
        self.app.call_from_thread(self._show_kl, steer_run.kl(), run)

    MARKED = 3  # tokens marked per row: where steering moved the next-token distribution most

    def _show_kl(self, kl: list[list[float] | None], run: int) -> None:
        """Each steered row: mean and max KL from the baseline in the subtitle (a sweep's rows, one line high, also
        in the title, as `row_title` and `saetui steer` head them), and the tokens where it was largest marked
        (reverse video; none where steering changed nothing: a KL of exactly 0)."""
        if run != self._run:
            return
        self.kl = kl
        for column, row, row_kl in zip(self.query_one(GenerationView).columns, self.rows, kl):
            if not row_kl:
                continue
            if row.kind == "variant":  # side by side, the steered column has room for the KL in its subtitle
                column.set_title(row_title(row, self._max_of, row_kl))
            top = sorted((i for i in range(len(row_kl)) if row_kl[i] > 0), key=lambda i: -row_kl[i])[: self.MARKED]
            column.mark(top, "reverse")
            column.fit_subtitle([f"KL mean {mean_kl(row_kl):.2f}", f"max {max(row_kl):.2f}", "marked"],
                                drop_order=[2, 1])
            column.flush()

    @on(GenerationDone)
    def _done(self, message: GenerationDone) -> None:
        message.stop()
        if message.run != self._run:
            return
        self.done = not message.stopped
        for column, ids in zip(self.query_one(GenerationView).columns, self.generated):
            if not message.stopped and not self.session.decode(ids).strip():  # a blank row says why it is blank
                column.note("(no text: the model ended it at its first token)" if len(ids) <= 1
                            else "(no text: only special or blank tokens)")
            column.flush()
        if not message.stopped and any(self.rows_specs) and message.result is not None:
            self._kl_worker(message.result, self._run)
        same = len(self.generated) > 1 and all(ids == self.generated[0] for ids in self.generated[1:])
        baseline = [row.kind for row in self.rows] == ["baseline", "steered"]  # else a sweep's rows
        note = "generation stopped" if message.stopped else (
            "generation done: steered = baseline" if same and baseline else
            "generation done: every row = the first" if same else "generation done")
        room = getattr(message.result, "room", None)
        if room is not None and room.capped:  # the notice said it at the start; the status line keeps it
            note += f" · capped at {room.tokens} tokens by the context"
        idle = message.result.idle_scopes() if message.result is not None else []
        if idle:  # likewise: why steered = baseline
            note += f" · scope {', '.join(idle)} steers nothing here"
        self.post_message(Notice(note))


def _specs(n: int) -> str:
    return f"{n} spec{'s' * (n != 1)}"
