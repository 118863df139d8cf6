"""WhyScreen (`w` on a token row): which features drive the model's prediction after that token.

For every loaded SAE at once: each feature's attribution (activation x gradient of the predicted
token's logit, summed over positions up to the token, the SAE's error term kept so the forward is
unchanged), its activation, and for the strongest ones the real effect of zeroing it (ablation). The
error term's share says how much each SAE misses. Owns its worker; Enter opens a feature, `a`/`A` add
it to steering signed to push the prediction up or down.
"""

from __future__ import annotations

from typing import Any

from rich.markup import escape
from textual import work
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Static
from textual.worker import Worker, WorkerState

from saetui.errors import one_line
from saetui.settings import AttributionSettings
from saetui.tui.actions import bindings
from saetui.tui.messages import FeatureChosen, JobFailed, SteerFeature


class WhyTable(DataTable):
    BINDINGS = bindings("why")

    def action_open(self) -> None:
        self.screen.open_current()  # type: ignore[attr-defined]

    def action_steer(self, direction: int) -> None:
        self.screen.steer_current(direction)  # type: ignore[attr-defined]

    def action_close(self) -> None:
        self.screen.dismiss(None)


class WhyScreen(ModalScreen[None]):
    BINDINGS = bindings("why")

    def __init__(self, session: Any, prompt: str, position: int, token: str, chat: Any = False) -> None:
        super().__init__()
        self.session, self.prompt, self.position, self.token, self.chat = session, prompt, position, token, chat
        self.result: Any = None
        self.rows: list[tuple[str, Any]] = []  # (sae, FeatureAttribution) in table order

    def compose(self) -> ComposeResult:
        with Vertical(id="why-box"):
            yield Static(f"why? the prediction after {escape(repr(self.token))} (position {self.position})\n\n"
                         "attributing… (one forward and one backward, then the top 10 checked by ablation)", id="why-head")
            yield WhyTable(id="why-table", cursor_type="row")

    def on_mount(self) -> None:
        box = self.query_one("#why-box")
        box.border_title = "why this token?"
        box.border_subtitle = "Enter: open · a/A: steer up/down · Esc: close"
        self.query_one("#why-table", DataTable).add_columns("feature", "max act", "attrib", "ablation", "label")
        self.query_one("#why-table").focus()
        self._attribute()

    @work(thread=True, exclusive=True, group="why", exit_on_error=False)
    def _attribute(self) -> None:
        result = self.session.attribute(self.prompt, position=self.position, top_k=AttributionSettings.top_k,
                                        verify=AttributionSettings.verify, chat=self.chat)
        self.app.call_from_thread(self._show, result)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state == WorkerState.ERROR:
            message = one_line(event.worker.error)
            self.query_one("#why-head", Static).update(f"why? failed: {escape(message)}")
            self.app.post_message(JobFailed("why", message))

    def _show(self, result: Any) -> None:
        self.result = result
        t = result.target
        head = [f"after {escape(repr(self.token))} (position {result.position}) the model predicts "
                f"[b]{escape(repr(t.text))}[/b] (p {t.prob:.0%}, logit {t.logit:.2f})"]
        for s in result.saes:
            head.append(f"SAE {escape(s.name)}: error term {s.error:+.2f} of the logit {result.value:.2f}"
                        f" ({abs(s.error) / max(abs(result.value), 1e-9):.0%}: what the SAE misses)")
        head.append("[dim]max act: over tokens 0..I · attrib: act × gradient, summed · ablation: the logit's real "
                    "drop with the feature zeroed (top 10)[/dim]")
        self.query_one("#why-head", Static).update("\n".join(head))
        tagged = len(result.saes) > 1
        self.rows = sorted(((s.name, f) for s in result.saes for f in s.features), key=lambda r: -abs(r[1].attribution))
        table = self.query_one("#why-table", DataTable)
        table.clear()
        labels = self.session.labels
        for sae, f in self.rows:
            ablation = "–" if f.ablation is None else f"{f.ablation:+.2f}"
            table.add_row(f"{sae}/{f.feature}" if tagged else str(f.feature), f"{f.activation:.2f}",
                          f"{f.attribution:+.2f}", ablation, labels.get((sae, f.feature), ""))

    def _current(self) -> tuple[str, Any] | None:
        table = self.query_one("#why-table", DataTable)
        return self.rows[table.cursor_row] if self.rows and 0 <= table.cursor_row < len(self.rows) else None

    def open_current(self) -> None:
        row = self._current()
        if row is not None:
            self.app.post_message(FeatureChosen(row[0], row[1].feature))

    def steer_current(self, direction: int) -> None:
        """Add the feature signed so that it pushes the predicted token up (1) or down (-1): a feature
        with negative attribution pushes it down when added, so its sign is flipped."""
        row = self._current()
        if row is not None:
            sign = direction if row[1].attribution >= 0 else -direction
            self.app.post_message(SteerFeature(row[0], row[1].feature, sign, signed=True))

    def action_open(self) -> None:
        self.open_current()

    def action_steer(self, direction: int) -> None:
        self.steer_current(direction)

    def action_close(self) -> None:
        self.dismiss(None)

    def action_circuit(self) -> None:
        """`c`: the circuit of the prediction explained here (saetui/tui/screens/circuit.py), on tokens 0..position."""
        from saetui.tui.messages import CircuitAsked

        if self.result is None:
            self.notify("wait for the attribution: the circuit explains its target", severity="warning", timeout=3)
            return
        r = self.result
        self.app.post_message(CircuitAsked(self.prompt, r.target.id, None if r.versus is None else r.versus.id,
                                           upto=r.position, chat=self.chat))
