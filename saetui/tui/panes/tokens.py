"""Tokens pane (F2): one row per prompt token with its top features, the features of the highlighted
token from every loaded SAE, its reconstruction and the model's next-token predictions, and the heat
line of one feature. Owns the analyze and heat workers, and the export of the analysis.

Dense features (firing on more than 10% of the tokens their SAE's index has seen) say little about any one
word, yet their activations put them at the top of every token's list. The side list moves them after the
others, dimmed, and says how many it moved (on its lower border); `d` shows them in place. An SAE without an index cannot tell its
dense features: the app says so once."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import events, on, work
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.reactive import reactive
from textual.widgets import DataTable

from saetui.settings import AppSettings
from saetui.tui.markup import escape
from saetui.tui.messages import Analyzed, DenseToggle, HeatFeature, Notice, SpanChanged
from saetui.tui.panes.base import Pane
from saetui.tui.widgets.feature_list import FeatureList, FeatureRow
from saetui.tui.widgets.text_box import Items, TextBox
from saetui.tui.widgets.token_table import TokenTable, token_label


class TokensPane(Pane):
    analysis: reactive[Any] = reactive(None, init=False)
    sae_name: reactive[str | None] = reactive(None, init=False)
    labels_rev: reactive[int] = reactive(0, init=False)

    def __init__(self, session: Any, **kwargs: Any) -> None:
        super().__init__(session, **kwargs)
        self.heat: tuple[str, int] | None = None        # the (sae, feature) whose heat line is on
        self._heat_acts: list[float] | None = None
        self._token_pending = False  # a cursor move whose side list is yet to be shown
        self._analyzed: tuple[str, Any] | None = None  # (prompt, chat) of the last analysis asked for
        self.dense_in_place = False  # `d`: dense features keep their place in the side list
        self._dense: dict[str, frozenset[int] | None] = {}  # SAE name -> its dense features (None: no index)
        self._said_no_index: set[str] = set()
        self._span_result: Any = None  # the span's features last shown (`d` shows them again)
        self._table_stale = False  # `d` or a label changed the dense order during a span: the table is refilled when it ends
        self._info_base: list[Text | Items] = []  # the token's (or span's) lines in the box under the side list

    def compose(self) -> ComposeResult:
        # Titles are set here, not in on_mount: mounted after the first frame (app._mount_panes), the pane's
        # on_mount may run before the widgets nested in its containers are in.
        table, features = TokenTable(id="token-table"), FeatureList(id="token-features")
        table.border_title, features.border_title = "Tokens", "Features of token"
        yield table  # straight in the pane, laid out side by side (panes.tcss): a container less for every key to cross
        with Vertical(id="token-side"):
            yield features
            yield TextBox(id="token-info", sticky=True)

    # ------------------------------------------------------------------ workers
    def analyze(self, prompt: str, chat: Any = False) -> None:
        """`chat`: False, or the conversation so far (True = none): the prompt is then the next user turn."""
        self._analyzed = (prompt, chat)  # what spans of the table are taken from
        self._analyze_worker(prompt, chat)

    @work(thread=True, exclusive=True, group="analyze", exit_on_error=False)
    def _analyze_worker(self, prompt: str, chat: Any) -> None:
        result = self.session.analyze(prompt, AppSettings.top_k, predictions=AppSettings.predictions, chat=chat)
        self.post_message(Analyzed(result, prompt, chat))
        if "cut" in result.meta:  # after Analyzed, whose status line would replace the note
            cut = result.meta["cut"]
            self.post_message(Notice(f"prompt cut to its first {cut['kept']} of {cut['of']} tokens: the model's "
                                     f"context; the rest was not analyzed", "warning"))

    def export_analysis(self) -> None:
        """The palette's "Export analysis as JSON": the analysis shown, as `saetui analyze --json` prints it."""
        if self.analysis is None:
            self.notify("nothing analyzed yet", severity="warning")
            return
        self.export("analysis", self.analysis.to_dict())

    @work(thread=True, exclusive=True, group="heat", exit_on_error=False)
    def _heat_worker(self, sae: str, feature: int, prompt: str) -> None:
        acts = self.session.feature_activations(sae, feature)
        self.app.call_from_thread(self._show_heat, sae, feature, prompt, acts)

    # ------------------------------------------------------------------ state coming down
    def watch_analysis(self) -> None:
        self._heat_acts = None
        self._learn_dense()
        self.query_one("#token-info", TextBox).unstick()
        self._repaint()
        if self.heat is not None and self.analysis is not None:  # keep the heat line on, for the new prompt
            self._heat_worker(*self.heat, self.analysis.prompt)

    def watch_sae_name(self) -> None:
        self._repaint()

    def watch_labels_rev(self) -> None:
        """A label given or removed: the side list shows it, and a dense feature labelled leaves the dense group
        (`_is_dense`), so the table's top features move too (during a span the table waits for its end, as `d`)."""
        self._relist()

    def _relist(self) -> None:
        """The table and the side list again, for a change of what is dense (`d`, a label)."""
        if self.query_one(TokenTable).span is None:
            self._repaint()  # the table's top features and the side list
        else:  # refilling the table would end the span: its list now, the table once the span ends
            self._table_stale = True
            if self._span_result is not None:
                self._show_span(self._span_result)

    def toggle_heat(self, sae: str, feature: int) -> None:
        """The feature's heat line; asked again for the feature already shown, it turns off."""
        if self.heat == (sae, feature):
            self.heat, self._heat_acts = None, None
            self._repaint()
            return
        self.heat = (sae, feature)
        if self.analysis is not None:
            self._heat_worker(sae, feature, self.analysis.prompt)

    @on(HeatFeature)
    def _heat_asked(self, message: HeatFeature) -> None:
        message.stop()
        self.toggle_heat(message.sae, message.feature)

    # ------------------------------------------------------------------ painting
    @property
    def _tokenizer(self) -> Any:
        return self.session.model.tokenizer if self.session.model is not None else None

    def _repaint(self) -> None:
        result, sae = self.analysis, self.sae_name
        table = self.query_one(TokenTable)
        if result is None or sae is None or sae not in [s.name for s in result.saes]:
            return
        table.show(result, sae, heat=self._heat_acts, tokenizer=self._tokenizer,
                   dense=lambda f: self._is_dense(sae, f), dense_last=not self.dense_in_place)
        title = f"SAE {sae}"
        if self.heat is not None and self._heat_acts is not None:
            hsae, feature = self.heat
            title += f" · heat of feature {feature}{'' if hsae == sae else f' of {hsae}'}, max {max(self._heat_acts, default=0.0):.2f}"
        table.border_title = escape(title)
        res = result.sae(sae)
        l0 = "" if res.mean_l0 is None else f"L0 {res.mean_l0:.1f}"
        fvu = "" if res.fvu is None else f"FVU {res.fvu:.3f}"
        more = "s: next SAE" if len(result.saes) > 1 else ""
        # At 80 columns the hook goes first (the status bar names it), then the hint, then the FVU.
        table.fit_subtitle([res.hook, l0, fvu, more], drop_order=[0, 3, 2])
        if table.span is None:  # a span's list stays (same prompt: the table keeps the selection)
            self._show_token(table.cursor_row)

    def _show_heat(self, sae: str, feature: int, prompt: str, acts: list[float]) -> None:
        if self.heat != (sae, feature) or self.analysis is None or self.analysis.prompt != prompt:
            return  # turned off, or another feature or prompt since
        if len(acts) != len(self.analysis.tokens):
            return
        self._heat_acts = acts
        self._repaint()

    @on(DataTable.RowHighlighted, "#token-table")
    def _token_moved(self, event: DataTable.RowHighlighted) -> None:
        event.stop()  # nothing above handles it: bubbling on through the six containers would cost a message each
        # The side list follows after the table has repainted its cursor: filling it costs a 15-20 ms
        # repaint, and while an arrow key is held only the row the cursor rests on is worth showing.
        if not self._token_pending:
            self._token_pending = True
            self.call_after_refresh(self._show_moved_token)

    def _show_moved_token(self) -> None:
        self._token_pending = False
        table = self.query_one(TokenTable)
        if table.span is None:
            self._show_token(table.cursor_row)

    @on(SpanChanged)
    def _span_changed(self, message: SpanChanged) -> None:
        message.stop()
        if message.span is None:
            if self._table_stale:  # `d` was pressed during the span
                self._table_stale = False
                self._repaint()
            else:
                self._show_token(self.query_one(TokenTable).cursor_row)
        elif self.analysis is not None and self._analyzed is not None:
            self._span_worker(*self._analyzed, *message.span)

    @work(thread=True, exclusive=True, group="span", exit_on_error=False)
    def _span_worker(self, prompt: str, chat: Any, start: int, end: int) -> None:
        # positions as analyzed; as many features per SAE as a token gets, so the dense ones, moved last, do not
        # crowd out the span's own
        result = self.session.span(prompt, start, end, pool="max", top_k=AppSettings.top_k, chat=chat)
        self.app.call_from_thread(self._show_span, result)

    def _show_span(self, result: Any) -> None:
        """Every loaded SAE's features ranked by their max over the span (special tokens left out)."""
        if self.query_one(TokenTable).span != (result.start, result.end) or self.analysis is None \
                or self.analysis.prompt != result.prompt:
            return  # the selection moved on since
        self._span_result = result
        ordered = sorted(result.saes, key=lambda s: s.name != self.sae_name)
        rows, note = self._dense_last([FeatureRow(s.name, f.feature, f"{f.value:.2f}", f.label,
                                                  dim=self._is_dense(s.name, f.feature))
                                       for s in ordered for f in s.features])
        features = self.query_one("#token-features", FeatureList)
        features.show(rows, tagged=len(result.saes) > 1)
        text = "".join(result.tokens)
        features.border_title = escape(f"Span {result.start}–{result.end - 1} {text!r} (max)")
        features.border_subtitle = note
        self._info_base = [Text(f"{result.counted} of {result.end - result.start} tokens counted (special tokens left out)")]
        self._show_info()

    def _show_token(self, index: int) -> None:
        """The highlighted token's features from every loaded SAE (the displayed one first), its
        reconstruction by the displayed SAE, and the model's top next-token predictions."""
        result = self.analysis
        if result is None or self.sae_name is None or not 0 <= index < len(result.tokens):
            return
        labels = self.session.labels
        ordered = sorted(result.saes, key=lambda s: s.name != self.sae_name)
        rows, note = self._dense_last([FeatureRow(s.name, f, f"{a:.2f}", labels.get((s.name, f), ""),
                                                  dim=self._is_dense(s.name, f))
                                       for s in ordered for f, a in s.per_token[index]])
        features = self.query_one("#token-features", FeatureList)
        features.show(rows, tagged=len(result.saes) > 1)
        tok = result.tokens[index]
        features.border_title = escape(f"Features of '{token_label(tok, self._tokenizer)}'")  # the label is escaped already
        features.border_subtitle = note  # below the list: a long token in the title cannot push it out of sight
        self._info_base = self._info_text(result, index)
        self._show_info()

    # ------------------------------------------------------------------ dense features
    def _learn_dense(self) -> None:
        """Each analyzed SAE's dense features, from its index (asked again per analysis: an SAE loaded or indexed
        since counts); an SAE without one is named once."""
        result = self.analysis
        self._dense = {}
        if result is None:
            return
        for s in result.saes:
            self._dense[s.name] = self.session.dense_features(s.name)
            if self._dense[s.name] is None and s.name not in self._said_no_index:
                self._said_no_index.add(s.name)
                self.notify(f"SAE {s.name} has no feature index: its dense features (firing on most text) cannot be "
                            "told apart and stay in place (saetui index builds one)", timeout=8)

    def _dense_last(self, rows: list[FeatureRow]) -> tuple[list[FeatureRow], str]:
        """The side list's rows with the dense ones after the others (a stable sort: each group keeps its order),
        unless `d` keeps them in place; and the note for the list's lower border."""
        moved = sum(r.dim for r in rows)
        if not self.dense_in_place:
            rows = sorted(rows, key=lambda r: r.dim)
        return rows, (f"{moved} dense {'dimmed' if self.dense_in_place else 'at the end'} (d)" if moved else "")

    def _is_dense(self, sae: str, feature: int) -> bool:
        """Dense and unlabelled: a label someone gave says what the feature means, so it keeps its place."""
        dense = self._dense.get(sae)
        return dense is not None and feature in dense and not self.session.labels.get((sae, feature), "")

    @on(DenseToggle)
    def _dense_toggled(self, message: DenseToggle) -> None:
        message.stop()
        self.dense_in_place = not self.dense_in_place
        self._relist()

    # ------------------------------------------------------------------ the box under the side list
    def _show_info(self) -> None:
        """The token's (or span's) info, under the highlighted feature's whole label while the side list has the
        focus: its `about` column has a few characters at 80 columns and none at 60."""
        about = self._about_line()
        self.query_one("#token-info", TextBox).show([about, *self._info_base] if about else self._info_base)

    def _about_line(self) -> Text | None:
        side = self.query_one("#token-features", FeatureList)
        rows = side.rows_shown
        if not side.has_focus or not 0 <= side.cursor_row < len(rows) or not rows[side.cursor_row].about:
            return None
        row = rows[side.cursor_row]
        return Text.assemble(("about", "bold"), f" {row.sae}/{row.feature}: {row.about}")  # plain text: no markup

    @on(DataTable.RowHighlighted, "#token-features")
    def _feature_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()  # as the token table's: every refill of the list posts one
        if self.query_one("#token-features").has_focus:
            self._show_info()

    def on_descendant_focus(self, event: events.DescendantFocus) -> None:
        if event.widget.id == "token-features":
            self._show_info()

    def on_descendant_blur(self, event: events.DescendantBlur) -> None:
        if event.widget.id == "token-features":
            self._show_info()

    def _info_text(self, result: Any, index: int) -> list[Text | Items]:
        """Two lines: the displayed SAE's reconstruction of this token, the model's next-token guesses; each wraps
        between its items only, so a guess like `' Paris' 12%` is never cut at its space."""
        res = result.sae(self.sae_name)
        lines: list[Text | Items] = []
        if index < len(res.reconstruction):
            r = res.reconstruction[index]
            fvu = f"{r.fvu:.3f}" if r.fvu is not None else "n/a"  # a special token: not in the prompt's mean
            cos = "n/a" if r.cosine is None else f"{r.cosine:.3f}"
            # with several SAEs: which one (the table's, `s` changes it), as the list above tags its features
            which = f"recon {self.sae_name} " if len(self.session.sae_names) > 1 else "recon "
            lines.append(Items([Text(f"L0 {r.l0}"), Text(f"FVU {fvu}"), Text(f"cos {cos}")], sep=" · ",
                               lead=Text(which, style="bold")))
        if result.predictions and index < len(result.predictions):
            guesses = [Text(f"{text!r} {p:.0%}") for _, text, p in result.predictions[index][:AppSettings.predictions]]
            if guesses:  # a long first guess goes whole to the next line, not cut after `next`
                lines.append(Items(guesses, sep=" · ", lead=Text("next ", style="bold")))
        return lines
