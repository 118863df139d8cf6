"""Search pane (F3): features of every loaded SAE by number, label or `promotes WORD`, as you type.
Owns the search worker, and the palette's contrast and save vector (the last contrast's A−B direction).

Each hit shows its score and why it matched (the label beside it, never instead of it); a note says
how the query was read where that is not obvious (e.g. a word that is several tokens)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from textual import on, work
from textual.app import ComposeResult
from textual.reactive import reactive
from textual.worker import WorkerCancelled, WorkerFailed

from saetui.tui.markup import escape
from saetui.tui.widgets.text_input import Input

from saetui.errors import SaetuiError
from saetui.inputs import read_prompt_sets
from saetui.settings import AppSettings, ContrastSettings
from saetui.tui.actions import bindings
from saetui.tui.key_order import STUCK_S, InOrderKeys
from saetui.tui.panes.base import Pane
from saetui.tui.widgets.feature_list import FeatureList, FeatureRow
from saetui.tui.widgets.text_box import TextBox


class SearchBox(InOrderKeys, Input):
    """The search box: Down moves to the results, in order with the keys typed after it (`Down a` adds the first
    hit; the `a` went into the box, forwarded to it before the focus moved)."""

    BINDINGS = bindings("search")

    async def action_results(self) -> None:
        await self.query_ancestor(SearchPane).action_results()


class SearchPane(Pane):
    sae_name: reactive[str | None] = reactive(None, init=False)
    labels_rev: reactive[int] = reactive(0, init=False)

    def compose(self) -> ComposeResult:
        yield SearchBox(placeholder="feature number, label, or: promotes WORD", id="search-input", select_on_focus=False)
        yield TextBox(id="search-note")
        yield FeatureList(id="search-results", value_title="score")

    def on_mount(self) -> None:
        self.query_one("#search-results").border_title = "Features"
        self._contrast_shown = False

    def watch_sae_name(self) -> None:
        self.refresh_results()

    def watch_labels_rev(self) -> None:
        self.refresh_results()

    def refresh_results(self) -> None:
        """Search again for what the box holds (the SAE or the labels changed)."""
        query = self.query_one("#search-input", Input).value
        if query.strip() and self.session.ready and self.sae_name is not None:
            self._search_worker(query, self.sae_name)

    @on(Input.Changed, "#search-input")
    def _changed(self, event: Input.Changed) -> None:
        event.stop()
        if not event.value.strip():
            if self._contrast_shown:  # a contrast just emptied the box: its rows stay
                self._contrast_shown = False
            else:
                self._show(event.value, None)
        elif self.session.ready and self.sae_name is not None:
            self._search_worker(event.value, self.sae_name)

    @on(Input.Submitted, "#search-input")
    async def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        await self.action_results()

    async def action_results(self) -> None:
        """Down or Enter in the box: to the results, once the search for the text typed has them. Typed with the
        query (`417 Down a` in one read) it came before them, found none, and the `a` went into the box. The wait
        stays under key_order.STUCK_S: the keys held behind it are let go after that anyway."""
        for worker in [w for w in self.workers if w.group == "search" and w.is_running]:
            with contextlib.suppress(asyncio.TimeoutError, WorkerCancelled, WorkerFailed):
                await asyncio.wait_for(worker.wait(), STUCK_S * 0.75)
        results = self.query_one("#search-results", FeatureList)
        if results.row_count:
            results.focus()

    # ------------------------------------------------------------------ palette: contrast, save vector
    def contrast_command(self, text: str) -> None:
        """`A1; A2 | B1; B2`: features separating the prompts before `|` from those after, shown here. Each item is a
        prompt or, as `saetui contrast` reads it, a .txt/.jsonl file of prompts (read in the worker)."""
        if not self.app.ready_or_say():
            return
        parts = text.split("|")
        a, b = ([p.strip() for p in part.split(";") if p.strip()] for part in (parts + [""])[:2])
        if len(parts) != 2 or not a or not b:
            self.notify("contrast takes two sets: A1; A2 | B1; B2 (one |; a prompt or a .txt/.jsonl file each)",
                        severity="error")
            return
        if "-" in a + b:
            self.notify("standard input ('-') is the terminal here: give a prompt or a file", severity="error")
            return
        self.app.action_show_tab("search")
        self.contrast(a, b)

    def save_vector(self, name: str) -> None:
        """Keep the last contrast's A−B direction as the steering vector `name`."""
        try:
            where = self.session.save_vector(name)
        except SaetuiError as exc:
            self.notify(str(exc), severity="error")
            return
        from saetui.steering.spec import vector_usage

        from saetui.files import take_notices

        hooks = list(self.session.last_contrast.directions) if self.session.last_contrast is not None else []
        self.notify(f"steering vector {name} saved in {where} (saetui steer --vector {vector_usage(name, hooks)})")
        for said in take_notices():  # one of that name replaced
            self.notify(said, severity="warning")

    def contrast(self, a: list[str], b: list[str]) -> None:
        """Show every loaded SAE's features ranked by how they separate prompts `a` from prompts `b`."""
        self._set_note(f"contrasting {len(a)} vs {len(b)} prompts…")
        self._contrast_worker(a, b)

    @work(thread=True, exclusive=True, group="search", exit_on_error=False)
    def _contrast_worker(self, a: list[str], b: list[str]) -> None:
        a, b = read_prompt_sets(a, b)  # files of prompts read, as the CLI reads them
        result = self.session.contrast(a, b, top_k=ContrastSettings.top_k)
        self.app.call_from_thread(self._show_contrast, result)

    def _show_contrast(self, result: Any) -> None:
        rows = [FeatureRow(s.name, f.feature, f"{f.diff:+.2f}",
                           " · ".join(x for x in (f.label, f"A {f.mean_a:.2f} vs B {f.mean_b:.2f}"
                                                  + ("" if f.effect is None else f", effect {f.effect:.1f}")) if x))
                for s in result.saes for f in s.features]
        rows.sort(key=lambda r: -float(r.value))
        box = self.query_one("#search-input", Input)
        self._contrast_shown = bool(box.value)  # emptying the box below must not clear the rows
        box.value = ""
        self.query_one("#search-results", FeatureList).show(rows, tagged=len(result.saes) > 1)
        (na, nb), (ta, tb) = result.n_prompts, result.n_tokens
        self._set_note(
            f"contrast: A {na} prompt{'s' * (na != 1)} ({ta} tokens) vs B {nb} ({tb}); mean per token, A-ish first, B-ish last · "
            "Ctrl+P 'save vector NAME' keeps A−B as a steering vector")

    def focus_box(self) -> None:
        self.query_one("#search-input").focus()

    @work(thread=True, exclusive=True, group="search", exit_on_error=False)
    def _search_worker(self, query: str, sae: str) -> None:
        from saetui.errors import InputError

        # `promotes` typed, its word not yet (the trailing space not typed either: it searched labels for "promotes")
        if query.strip().lower() == "promotes":
            self.app.call_from_thread(self._show, query, None, "promotes WORD: type the word")
            return
        try:
            result = self.session.search_all(query, AppSettings.search_limit)  # every SAE; each hit names its own
        except InputError as exc:  # a query being typed (e.g. a number out of range): said in the note line
            self.app.call_from_thread(self._show, query, None, str(exc))
            return
        self.app.call_from_thread(self._show, query, result)

    @staticmethod
    def _count(result: Any) -> str:
        """`12 features · text search · Enter/↓ to the list`; `the best 50 ...` where the list stops at the limit."""
        n = len(result.hits)
        count = f"the best {n} features" if n >= AppSettings.search_limit else f"{n} feature{'' if n == 1 else 's'}"
        return f"{count} · {result.kind} search" + (" · Enter/↓ to the list" if n else "")

    def _show(self, query: str, result: Any, problem: str | None = None) -> None:
        # Thread workers cannot be interrupted: a slower, older query must not overwrite a newer one.
        if query != self.query_one("#search-input", Input).value:
            return
        rows = [] if result is None else [
            FeatureRow(h.sae, h.feature, f"{h.score:.2f}", " · ".join(x for x in (h.label, h.why) if x))
            for h in result.hits
        ]
        # tagged whenever several SAEs are loaded: hits all from demo-late read as demo's untagged
        self.query_one("#search-results", FeatureList).show(rows, tagged=len(self.session.sae_names) > 1)
        self._set_note(problem or ("" if result is None else (result.note or self._count(result))))

    # ------------------------------------------------------------------ the note line
    # It says how the query was read; while the results have the focus, the highlighted hit's whole text instead
    # (the list's `about` column is cut at 80 columns), as the token pane's box does for its list.
    _note = ""

    def _set_note(self, text: str) -> None:
        self._note = text
        self._show_note()

    def _show_note(self) -> None:
        results = self.query_one("#search-results", FeatureList)
        row = results.current() if results.has_focus else None
        text = self._note if row is None else f"{row.sae}/{row.feature} · {row.about}"
        self.query_one("#search-note", TextBox).show(escape(text))

    @on(FeatureList.RowHighlighted, "#search-results")
    def _hit_highlighted(self) -> None:
        self._show_note()

    def on_descendant_focus(self, event: Any) -> None:
        if event.widget.id == "search-results":
            self._show_note()

    def on_descendant_blur(self, event: Any) -> None:
        if event.widget.id == "search-results":
            self._show_note()
