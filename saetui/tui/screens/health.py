"""HealthScreen (F8, palette `health CORPUS`): how well each loaded SAE fits the model on a corpus.

Runs `Session.evals` (saetui.sae.evals) in its own worker: per SAE the mean L0, FVU and cosine of the
reconstruction, the model's next-token loss clean / with the SAE spliced in / with the hook zeroed (and the
share recovered), the KL of splicing, the dead and dense shares, and the latents' firing rates as a chart.
The corpus is a .txt/.jsonl path typed in the box (Enter runs it); on the bundled demo it starts on held-out
demo text, elsewhere on the last corpus used.
"""

from __future__ import annotations

from typing import Any

from textual import work
from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from saetui.tui.markup import escape
from saetui.tui.widgets.text_input import Input
from textual.worker import Worker, WorkerState

from saetui.sae.evals import recovered_text
from saetui.settings import AppSettings
from saetui.tui.messages import JobFailed

DEMO_CORPUS = "demo held-out text"  # the box's value that means the demo's own held-out documents
DEMO_DOCS = 60  # of them: about 5,000 positions, seconds on a laptop CPU
_BARS = " ▁▂▃▄▅▆▇█"


def rate_chart(counts: list[int]) -> str:
    """The latents per log10 firing-rate bin as one line of bars, scaled to the fullest bin."""
    top = max(counts) if counts else 0
    if top == 0:
        return ""
    return "".join(_BARS[0] if c == 0 else _BARS[max(1, round(c / top * (len(_BARS) - 1)))] for c in counts)


def health_text(result: Any) -> str:
    """The screen's body for an EvalResult: a block per SAE."""
    lines = [f"{escape(result.corpus)}: {result.documents:,} documents, {result.tokens:,} positions"
             + (f" ({result.cut} cut to the context)" if result.cut else "")]
    for h in result.saes:
        fvu = "n/a" if h.fvu is None else f"{h.fvu:.3f}"
        hist = h.density_histogram
        edges = hist["edges"]
        lines += [
            "",
            f"[b]{escape(h.name)}[/b] ({escape(h.hook)})",
            f"  L0 {h.l0:.1f} · FVU {fvu} · cos {h.cosine:.3f} · KL spliced {h.kl_spliced:.4f}",
            f"  loss {h.ce_loss_clean:.3f} clean → {h.ce_loss_spliced:.3f} spliced ({recovered_text(h)}) · "
            f"{h.ce_loss_zero:.3f} zeroed",
            f"  dead {h.dead_fraction:.1%} ({hist['dead']:,} latents) · dense {h.dense_fraction:.1%} (fire on > 10% of positions)",
            f"  firing rate  1e{edges[0]:.0f} [{rate_chart(hist['counts'])}] 1",
        ]
    return "\n".join(lines)


class HealthScreen(ModalScreen[None]):
    BINDINGS = [("escape", "close", "Close")]

    def __init__(self, session: Any, corpus: str | None = None) -> None:
        super().__init__()
        self.session = session
        self.corpus = corpus
        self.result: Any = None

    def compose(self) -> ComposeResult:
        with Vertical(id="health-box"):
            yield Static("a .txt (a document a line) or .jsonl (its `text` field) file; Enter evaluates every loaded SAE",
                         id="health-hint")
            yield Input(placeholder="corpus file", id="health-corpus")
            with VerticalScroll(id="health-scroll"):
                yield Static("", id="health-body")

    def on_mount(self) -> None:
        box = self.query_one("#health-box")
        box.border_title = "SAE health"
        box.border_subtitle = "Enter: evaluate · Esc: close"
        box_input = self.query_one("#health-corpus", Input)
        default = self.corpus or getattr(self.session, "last_corpus", None)
        if default is None and getattr(self.session.model, "name", None) == "saetui-demo":
            default = DEMO_CORPUS
        box_input.value = default or ""
        box_input.focus()
        # selected, so a path typed replaces the default (was 'demo held-out text/tmp/c.txt'); the focus alone
        # leaves the cursor after the value set in the same frame
        self.call_after_refresh(box_input.select_all)
        if self.corpus:  # asked for a corpus by name (palette): run it at once
            self._start(self.corpus)
        elif getattr(self.session, "last_health", None) is not None:  # closing F8 lost minutes of work
            self._show(self.session.last_health, "[dim](the last evaluation; Enter evaluates again)[/dim]\n")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if event.value.strip():
            self._start(event.value.strip())
        else:  # the last result or error stays: say what the box wants
            self.notify(f"type a .txt/.jsonl corpus path, or '{DEMO_CORPUS}'", severity="warning", timeout=3)

    def _start(self, corpus: str) -> None:
        self.query_one("#health-body", Static).update(f"evaluating every loaded SAE on {escape(corpus)}… "
                                                      "(one pass: the clean model, each SAE spliced in, each hook zeroed)")
        self._evaluate(corpus)

    @work(thread=True, exclusive=True, group="health", exit_on_error=False)
    def _evaluate(self, corpus: str) -> None:
        texts: Any = corpus
        if corpus == DEMO_CORPUS:
            from saetui.demo.report import heldout_texts

            texts = heldout_texts(DEMO_DOCS)
        result = self.session.evals(texts, progress=False, max_tokens=AppSettings.health_max_tokens)
        if corpus == DEMO_CORPUS:
            result.corpus = DEMO_CORPUS
        else:
            self.session.last_corpus = corpus
        self.app.call_from_thread(self._show, result)

    def _show(self, result: Any, note: str = "") -> None:
        self.result = self.session.last_health = result
        self.query_one("#health-body", Static).update(note + health_text(result))

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state == WorkerState.ERROR:
            message = " ".join(str(event.worker.error).split()) or type(event.worker.error).__name__
            # a wrong path does not take the last result away: the error above it
            last = "" if self.result is None else "\n\n[dim](the last evaluation)[/dim]\n" + health_text(self.result)
            self.query_one("#health-body", Static).update(f"[red]{escape(message)}[/red]{last}")
            self.app.post_message(JobFailed("health", message))

    def action_close(self) -> None:
        self.dismiss(None)
