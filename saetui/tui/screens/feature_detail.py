"""FeatureDetailScreen: one feature's label, max activation (and where it comes from), density and
activation histogram, promoted/suppressed tokens, top examples shaded by activation, Neuronpedia URL.

Owns its describe worker: it opens at once with "loading…" and fills in when the numbers are ready.
Token lists are packed into lines by whole tokens, so a token is never split across two lines."""

from __future__ import annotations

import asyncio
from typing import Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static
from textual.worker import Worker, WorkerState

from saetui.errors import one_line
from saetui.settings import DetailSettings
from saetui.tui.actions import bindings
from saetui.tui.key_order import InOrderKeys
from saetui.tui.markup import escape
from saetui.tui.messages import JobFailed, LabelFeature, SteerFeature
from saetui.tui.widgets.feature_list import FeatureList, FeatureRow
from saetui.tui.widgets.text_box import Items, TextBox

_BARS = "▁▂▃▄▅▆▇█"
_SHADES = ["#3a2a00", "#5f3f00", "#8f5f00", "#bf7f00", "#ff9f00"]


def histogram_line(bins: list[tuple[float, float, int]]) -> str:
    """Bars over the log-spaced activation bins, with the range they cover."""
    if not bins:
        return ""
    top = max(count for _, _, count in bins) or 1
    bars = "".join(_BARS[min(len(_BARS) - 1, int((len(_BARS) - 1) * count / top + 0.999))] if count else " "
                   for _, _, count in bins)
    return f"{bars}  log bins from {bins[0][0]:.3g} to {bins[-1][1]:.3g} (bin edges, not the max)"


class Flow(TextBox):
    """Items (rich Text) packed into whole-token lines for the width it has; repacked on resize."""

    def __init__(self, items: list[Text], indent: int = 0, sep: str = " ", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._items = Items(items, sep, indent)

    def on_mount(self) -> None:
        self.show([self._items])


class FeatureDetailScreen(InOrderKeys, ModalScreen[None]):
    BINDINGS = bindings("detail")

    def __init__(self, session: Any, sae: str, feature: int) -> None:
        super().__init__()
        self._showing = asyncio.Lock()
        self.session, self.sae, self.feature = session, sae, feature
        self.info: Any = None

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="detail-box"):
            yield Static(f"[b]feature {self.feature}[/b] of {escape(self.sae)}\n\nloading…", id="detail-head")

    def on_mount(self) -> None:
        self.query_one("#detail-box").border_title = escape(f"feature {self.sae}/{self.feature}")
        self.query_one("#detail-box").border_subtitle = "a: add to steering · l: label · Esc: close"
        self._describe()
        self.watch(self.app, "labels_rev", lambda: self._describe(), init=False)  # a label saved (l): shown again

    @work(thread=True, exclusive=True, group="describe", exit_on_error=False)
    def _describe(self) -> None:
        info = self.session.feature_info(self.feature, self.sae)
        neighbours, enc_dec = self._neighbours()
        self.app.call_from_thread(self._show, info, neighbours, enc_dec)

    def _neighbours(self) -> tuple[list[FeatureRow], float | None]:
        """Decoder-cosine neighbours in the feature's own SAE, then in every other loaded SAE of the same
        d_in; and the feature's encoder/decoder cosine."""
        from saetui.errors import SaetuiError

        rows: list[FeatureRow] = []
        enc_dec = None
        own = self.session.saes.get(self.sae)
        for other in sorted(self.session.saes, key=lambda s: s is not own):  # its own SAE first
            if other.sae.cfg.d_in != own.sae.cfg.d_in:
                continue
            try:
                result = self.session.neighbours(self.feature, self.sae, against=other.name, top_k=DetailSettings.neighbours if other is own else DetailSettings.other_neighbours)
            except SaetuiError:
                continue
            if other is own:
                enc_dec = result.encoder_decoder_cosine
            rows += [FeatureRow(other.name, n.feature, f"{n.cosine:.2f}", n.label) for n in result.neighbours]
        return rows, enc_dec

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state == WorkerState.ERROR:
            message = one_line(event.worker.error)
            self.query_one("#detail-head", Static).update(f"[b]feature {self.feature}[/b]\n\n{escape(message)}")
            self.app.post_message(JobFailed("describe", message))

    async def _show(self, info: Any, neighbours: list[FeatureRow], enc_dec: float | None) -> None:
        # One at a time: a label saved right after the detail opened (`Enter l text Enter` in one read) described
        # it twice, and two of these interleaved (removing and mounting) left a widget half-mounted in the box.
        async with self._showing:
            await self._show_now(info, neighbours, enc_dec)

    async def _show_now(self, info: Any, neighbours: list[FeatureRow], enc_dec: float | None) -> None:
        self.info = info
        box = self.query_one("#detail-box")
        await box.remove_children()
        await box.mount_all(self._parts(info))
        if neighbours:
            tagged = len({r.sae for r in neighbours}) > 1
            about = "" if enc_dec is None else f" · its encoder/decoder cosine {enc_dec:.2f}"
            await box.mount(Static(f"\n[b]neighbours[/b] [dim](decoder cosine; Tab to the list, Enter walks to one, Esc comes back){about}[/dim]"))
            table = FeatureList(id="neighbours", value_title="cos")
            await box.mount(table)
            table.show(neighbours, tagged=tagged)

    def _parts(self, i: Any) -> list[Static]:
        max_act = "n/a" if i.max_activation is None else f"{i.max_activation:.2f}"
        from saetui.sae.evals import DENSE

        density = "n/a (no feature index)" if i.density is None else f"{i.density:.3%} of tokens"
        if i.density == 0:
            density += " [b]· dead[/b] [dim](never fired on the indexed text)[/dim]"
        elif i.density is not None and i.density > DENSE:
            density += f" [b]· dense[/b] [dim](fires on more than {DENSE:.0%} of tokens: says little about any one word)[/dim]"
        head = [
            f"[b]feature {i.feature}[/b] of {escape(i.sae)} · label: {escape(i.label) or '(none: l labels it)'}",
            f"max activation {max_act} [dim]({escape(i.max_source)})[/dim]",
            f"density {density}",
        ]
        if i.histogram:
            head.append(f"histogram {escape(histogram_line(i.histogram))}")
        parts: list[Static] = [Static("\n".join(head), id="detail-head")]
        for title, pairs in (("promotes", i.promoted), ("suppresses", i.suppressed)):
            items = [Text.assemble((repr(t), "bold"), f" {v:+.2f}") for t, v in pairs]
            parts += [Static(f"\n[b]{title}[/b]"), Flow(items, classes="detail-flow")]
        if i.top_examples:
            parts.append(Static("\n[b]top examples[/b] [dim](each token shaded by its activation)[/dim]"))
            for ex in i.top_examples:
                parts.append(Flow(self._example_items(ex), indent=7, sep="", classes="detail-flow"))
        if i.neuronpedia_url:
            parts.append(Static(f"\nNeuronpedia: {escape(i.neuronpedia_url)}"))
        return parts

    @staticmethod
    def _example_items(ex: Any) -> list[Text]:
        top = max(ex.acts, default=0.0) or 1.0
        items = [Text(f"{ex.value:6.2f} ", style="bold")]
        for k, (tok, act) in enumerate(zip(ex.tokens, ex.acts)):
            text = Text(repr(tok)[1:-1] or "·")
            if act > 0:
                text.stylize(f"on {_SHADES[min(len(_SHADES) - 1, int(len(_SHADES) * act / top))]}")
            if k == ex.at:
                text.stylize("bold underline")
            items.append(text)
        return items

    def action_steer(self) -> None:
        self.app.post_message(SteerFeature(self.sae, self.feature))
        self.dismiss(None)

    def action_label(self) -> None:
        self.app.post_message(LabelFeature(self.sae, self.feature))  # the app asks for the text and saves it

    def action_close(self) -> None:
        self.dismiss(None)
