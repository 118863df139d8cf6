"""WhyScreen (`w` on a token row): which features drive the model's prediction after that token.

For every loaded SAE at once: each feature's attribution (activation x gradient of the explained value,
summed over positions up to the token, the SAE's error term kept so the forward is unchanged), its
activation, and for the strongest ones the real effect of zeroing it (ablation). The explained value is
the logit of the model's top prediction, or of a target chosen with `t` (from the top predictions or
typed), minus a `versus` token's logit when one is chosen with `v`, as `saetui attribute --target/--versus`.
Rows where the linear estimate (attribution) and the measurement (ablation) disagree in sign or by more
than AttributionSettings.disagree are flagged `!`: the ablation is the one to trust. Owns its worker (a new
choice cancels the one running); Enter opens a feature, `a`/`A` add it to steering signed to push the
explained value up or down.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Static
from textual.worker import Worker, WorkerState, get_current_worker

from saetui.errors import InputError, one_line
from saetui.sae.attribution import disagreement_flag
from saetui.sae.circuit import metric_name
from saetui.settings import AttributionSettings
from saetui.tui.actions import bindings
from saetui.tui.key_order import InOrderKeys
from saetui.tui.markup import escape
from saetui.tui.messages import FeatureChosen, JobFailed, SteerFeature
from saetui.tui.screens.pick_token import Pick, PickTokenScreen
from saetui.tui.widgets.row_table import RowTable

SETTINGS = AttributionSettings()


def explained(result: Any) -> str:
    """What a result explains: "logit(' Paris')" or "logit(' Paris') - logit(' Berlin')" (as a circuit of the
    logit metric names it)."""
    return metric_name(result.target.text, None if result.versus is None else result.versus.text, "logit")


def flag(f: Any) -> str:
    """The `!` cell of a feature row: why its attribution (estimate) and ablation (measured) disagree."""
    return disagreement_flag(f.attribution, f.ablation, SETTINGS.disagree)


class WhyTable(RowTable):  # Home/End (RowTable's) beside the why? keys
    """One row per feature; the flag beside the two numbers it compares, before the columns a 60-column screen
    narrows. Labels are shown as typed (never read as markup) and end with `…` where the table is too narrow."""

    BINDINGS = bindings("why")
    HEADERS = ("feature", "attrib", "ablation", "flag", "max act", "label")
    LABEL_ROOM = 8  # the fewest cells worth giving a label: where the others leave fewer, `max act` makes way

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._rows: list[list[str]] = []
        self._width = 0

    def on_mount(self) -> None:
        self.add_columns(*self.HEADERS)

    def show(self, rows: list[list[str]], keep_cursor: bool = False) -> None:
        """Fill the table with `rows` (each a list of cell texts, in HEADERS' order); the cursor goes to the top
        unless kept. At 60 columns the five numbers' columns took the whole width and the labels were off screen:
        there the max activation (also in the feature's detail) gives the label its room."""
        self._rows, self._width = rows, self.content_size.width
        row = self.cursor_row if keep_cursor else 0
        titles, cells = list(self.HEADERS), [[Text(cell) for cell in r] for r in rows]
        room = self.width_for_rows(len(rows))
        if room > 0 and sum(w + 2 for w in self.cell_widths(titles, cells)[:-1]) + self.LABEL_ROOM + 2 > room:
            drop = titles.index("max act")
            del titles[drop]
            for r in cells:
                del r[drop]
        self.fill_fitted(titles, cells, [str(i) for i in range(len(rows))])
        if rows:
            self.move_cursor(row=min(max(row, 0), len(rows) - 1))

    def on_resize(self) -> None:
        if self._rows and self.content_size.width != self._width:
            self.show(self._rows, keep_cursor=True)  # the labels fitted to the new width

    def action_open(self) -> None:
        self.screen.open_current()  # type: ignore[attr-defined]

    def action_steer(self, direction: int) -> None:
        self.screen.steer_current(direction)  # type: ignore[attr-defined]

    def action_pick(self, what: str) -> None:
        self.screen.action_pick(what)  # type: ignore[attr-defined]

    def action_close(self) -> None:
        self.screen.dismiss(None)


class WhyScreen(InOrderKeys, ModalScreen[None]):
    BINDINGS = bindings("why")

    def __init__(self, session: Any, prompt: str, position: int, token: str, chat: Any = False) -> None:
        super().__init__()
        self.session, self.prompt, self.position, self.token, self.chat = session, prompt, position, token, chat
        self.result: Any = None  # the AttributionResult on screen
        self.rows: list[tuple[str, Any]] = []  # (sae, FeatureAttribution) in table order
        self.asked: tuple[int | str | None, int | str | None] = (None, None)  # (target, versus) being attributed
        self._job: Worker | None = None

    def compose(self) -> ComposeResult:
        with Vertical(id="why-box"):
            yield Static(f"why? the prediction after {escape(repr(self.token))} (position {self.position})", id="why-head")
            yield Static("", id="why-note")
            yield WhyTable(id="why-table")

    def on_mount(self) -> None:
        box = self.query_one("#why-box")
        box.border_title = "why this token?"
        box.border_subtitle = "t/v target/versus · a/A push up/down · ⏎ open · Esc"
        self.query_one("#why-table").focus()
        self.on_resize()
        self._ask(None, None)

    def on_resize(self) -> None:
        """The box takes the whole screen where 90% of it leaves the table only a few rows (60x20, 80x24)."""
        self.query_one("#why-box").set_class(self.app.size.height < 30 or self.app.size.width < 90, "-full")

    # ------------------------------------------------------------------ choosing what to explain
    def action_pick(self, what: str) -> None:
        """`t` / `v`: choose the target or the versus token among the top predictions, or type one."""
        result = self.result
        current, other = (None, None) if result is None else (result.target, result.versus)
        if what == "versus":
            current, other = other, current
        predictions = [] if result is None else result.predictions or []

        def chosen(pick: Pick | None) -> None:
            if pick is None:
                return
            target, versus = self.choice()
            self._ask(pick.token, versus) if what == "target" else self._ask(target, pick.token)

        self.app.push_screen(PickTokenScreen(what, predictions, None if current is None else current.id,
                                             optional=what == "versus", other=None if other is None else other.id), chosen)

    def choice(self) -> tuple[int | str | None, int | str | None]:
        """(target, versus) of the result on screen, as ids; before the first result, what was asked."""
        r = self.result
        return self.asked if r is None else (r.target.id, None if r.versus is None else r.versus.id)

    def _ask(self, target: int | str | None, versus: int | str | None) -> None:
        self.asked = (target, versus)
        wanted = "the top prediction" if target is None else f"logit({self._token_text(target)})"
        if versus is not None:
            wanted += f" - logit({self._token_text(versus)})"
        still = f" (the rows are still for {escape(explained(self.result))})" if self.result is not None else ""
        self._note(f"attributing {escape(wanted)}: one forward and one backward, then the top "
                   f"{SETTINGS.verify} checked by ablation…{still}")
        self._job = self._attribute(target, versus)

    def _token_text(self, token: int | str) -> str:
        """A token as the header writes it: its text for an id among the predictions, else as given."""
        known = {p.id: p.text for p in (self.result.predictions or [])} if self.result is not None else {}
        return repr(known[token]) if isinstance(token, int) and token in known else repr(token)

    @work(thread=True, exclusive=True, group="why", exit_on_error=False)
    def _attribute(self, target: int | str | None, versus: int | str | None) -> None:
        result = self.session.attribute(self.prompt, position=self.position, target=target, versus=versus,
                                        top_k=SETTINGS.top_k, verify=SETTINGS.verify,
                                        predictions=SETTINGS.predictions, chat=self.chat)
        if not get_current_worker().is_cancelled:  # a newer choice replaced this one: its result is not shown
            self.app.call_from_thread(self._show, result)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state != WorkerState.ERROR or event.worker is not self._job:
            return
        error = event.worker.error
        message = one_line(error)
        if isinstance(error, InputError) and self.result is not None:  # a bad choice: keep what is on screen
            self._note(f"[red]{escape(message)}[/red]")
            return
        self._note("")
        self.query_one("#why-head", Static).update(f"why? failed: {escape(message)}")
        if not isinstance(error, InputError):
            self.app.post_message(JobFailed("why", message))

    def _note(self, markup: str) -> None:
        note = self.query_one("#why-note", Static)
        note.update(markup)
        note.display = bool(markup)

    # ------------------------------------------------------------------ the result
    def _show(self, result: Any) -> None:
        self.result = result
        self._note("")
        self.query_one("#why-head", Static).update(self._head(result))
        self.rows = sorted(((s.name, f) for s in result.saes for f in s.features), key=lambda r: -abs(r[1].attribution))
        self._fill_rows(keep_cursor=False)

    def _fill_rows(self, keep_cursor: bool) -> None:
        """The table from self.rows, with the labels as they are now."""
        tagged = self.result is not None and len(self.result.saes) > 1
        labels = self.session.labels
        self.query_one("#why-table", WhyTable).show([
            [f"{sae}/{f.feature}" if tagged else str(f.feature), f"{f.attribution:+.2f}",
             "–" if f.ablation is None else f"{f.ablation:+.2f}", flag(f), f"{f.activation:.2f}",
             labels.get((sae, f.feature), "")]
            for sae, f in self.rows], keep_cursor=keep_cursor)

    def on_screen_resume(self) -> None:
        """Back from a feature's detail: its label may have changed there."""
        if self.rows:
            self._fill_rows(keep_cursor=True)

    def _head(self, result: Any) -> str:
        """What is explained and its value; the tokens' probabilities; each SAE's error term; the legend."""
        t, v = result.target, result.versus
        top = result.predictions[0].id if result.predictions else None
        # to 0.1%, as the token picker lists them: a versus at 0.1% read `p 0%`
        tokens = [f"{escape(repr(t.text))} p {t.prob:.1%}{' (top)' if t.id == top else ''}"]
        if v is not None:
            tokens.append(f"{escape(repr(v.text))} p {v.prob:.1%}")
        errors = ", ".join(f"{escape(s.name)} {s.error:+.2f} ({abs(s.error) / max(abs(result.value), 1e-9):.0%})"
                           for s in result.saes)
        return "\n".join([
            f"[b]{escape(explained(result))} = {result.value:.2f}[/b] after {escape(repr(self.token))} (position {result.position})",
            " · ".join(tokens) + f" · SAE error (what it misses): {errors}",
            f"[b]![/b] attrib (act × gradient: an estimate) and ablation (measured: the drop with it zeroed, top "
            f"{SETTINGS.verify}) differ in sign or > {SETTINGS.disagree:g}×: trust the ablation "
            f"[dim]· max act: over tokens 0..{result.position}[/dim]",
        ])

    # ------------------------------------------------------------------ acting on a row
    def _current(self) -> tuple[str, Any] | None:
        table = self.query_one("#why-table", DataTable)
        return self.rows[table.cursor_row] if self.rows and 0 <= table.cursor_row < len(self.rows) else None

    def open_current(self) -> None:
        self._note("")
        row = self._current()
        if row is not None:
            self.app.post_message(FeatureChosen(row[0], row[1].feature))

    def steer_current(self, direction: int) -> None:
        """Add the feature signed so that it pushes the explained value up (1) or down (-1).

        Adding more of a feature moves the value the way the feature's presence does. That way is the measured
        ablation's sign where the feature was verified (ablation = value(clean) - value(feature zeroed), so a
        feature whose zeroing lowers the value pushes it up), and attribution's (a linear estimate) where it was
        not: on a row flagged "! sign" the ablation decides. Pressing it again changes nothing (the steer pane
        says so); the other key turns the feature around."""
        self._note("")  # a refused target/versus (the red note under the header) is said once: an action ends it
        row = self._current()
        if row is None or self.result is None:
            return
        sae, f = row
        sign = direction * f.push_sign()
        reason = f"to push {explained(self.result)} {'up' if direction > 0 else 'down'}"
        self.app.post_message(SteerFeature(sae, f.feature, sign, signed=True, reason=reason))

    def action_open(self) -> None:
        self.open_current()

    def action_steer(self, direction: int) -> None:
        self.steer_current(direction)

    def action_close(self) -> None:
        self.dismiss(None)

    def action_circuit(self) -> None:
        """`c`: the circuit of the prediction explained here (saetui/tui/screens/circuit.py), on tokens 0..position."""
        from saetui.tui.messages import CircuitAsked

        self._note("")
        if self.result is None:
            self.notify("wait for the attribution: the circuit explains its target", severity="warning", timeout=3)
            return
        r = self.result
        # the value explained here (logit(t), or the logit difference), not the circuit's default log p(t)
        self.app.post_message(CircuitAsked(self.prompt, r.target.id, None if r.versus is None else r.versus.id,
                                           upto=r.position, chat=self.chat, metric="logit"))
