"""The discovery half of Session (saetui.session): search, contrast (and the vector it saves), decoder
neighbours, spans.

`DiscoveryMethods` is a part of `Session`, not a class of its own: it uses the session's lock, model, SAEs,
labels, indexes and `chat_prompt` (see `SessionState`). Kept apart so each file reads as one concern.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from saetui.errors import InputError
from saetui.inputs import check_text
from saetui.models.chat import Chat
from saetui.session_state import SessionState
from saetui.settings import AnalysisSettings, ContrastSettings, NeighbourSettings, SearchSettings

if TYPE_CHECKING:
    from saetui.sae.contrast import ContrastResult
    from saetui.sae.neighbours import NeighbourResult
    from saetui.sae.search import SearchResult
    from saetui.sae.span import SpanResult


class DiscoveryMethods(SessionState):
    """Session methods: search, contrast, save_vector, neighbours, span."""

    # ------------------------------------------------------------------ discover: contrast, neighbours, spans, vectors
    def contrast(self, a: list[str], b: list[str], top_k: int = ContrastSettings.top_k, *,
                 pool: str = ContrastSettings.pool, by: str = ContrastSettings.by, include_special: bool = False,
                 batch_size: int = ContrastSettings.batch_size, save_vector: str | None = None) -> ContrastResult:
        """Every loaded SAE's features ranked by how they separate prompts `a` from prompts `b`, and the
        difference of the mean hooked activations (see saetui.sae.contrast); kept as `self.last_contrast`.
        save_vector: also keep that difference as the steering vector of that name (`result.vector`)."""
        import warnings

        from saetui.sae.contrast import contrast
        from saetui.steering.vectors import check_vector_name

        if save_vector is not None:
            check_vector_name(save_vector)
        sets = []
        for which, prompts in (("A", a), ("B", b)):
            if isinstance(prompts, str):
                prompts = [prompts]  # one prompt, not its letters
            elif not isinstance(prompts, Iterable):
                raise InputError(f"set {which} is a list of prompts, got {type(prompts).__name__}")
            sets.append(prompts := list(prompts))  # a generator read once
            if not prompts:
                raise InputError(f"set {which} is empty: give at least one prompt")
            for prompt in prompts:
                check_text(prompt)
        a, b = sets
        if sorted(a) == sorted(b):
            zero = f" (the vector {save_vector} saved is zero)" if save_vector is not None else ""
            warnings.warn(f"sets A and B hold the same prompts: every difference is 0{zero}")
        with self.lock:
            result = contrast(self._require_model(), self._require_saes(), a, b, top_k=top_k, pool=pool,
                              by=by, include_special=include_special, batch_size=batch_size)
        for sae in result.saes:
            for row in sae.features:
                row.label = self.labels.get((sae.name, row.feature), "")
        self.last_contrast = result
        if save_vector is not None:
            result.vector = {"name": save_vector, "path": self.save_vector(save_vector, result)}
        return result

    def save_vector(self, name: str, result: ContrastResult | None = None) -> str:
        """Save a contrast's direction (A's mean activation minus B's, at every hooked point) as the steering
        vector `name` (default: the last contrast). Returns the folder it was written to."""
        from saetui.steering.vectors import check_vector_name, save_vector

        check_vector_name(name)
        result = result if result is not None else self.last_contrast
        if result is None:
            raise InputError("no contrast to save: run a contrast first")
        meta = {"source": "contrast", "pool": result.pool, "n_prompts": list(result.n_prompts),
                "n_tokens": list(result.n_tokens)}
        return str(save_vector(name, result.directions, model=result.model, meta=meta))

    def neighbours(self, feature: int, sae: str | None = None, against: str | None = None,
                   top_k: int = NeighbourSettings.top_k) -> NeighbourResult:
        """Features of SAE `against` (default: the feature's own) whose decoder directions have the highest
        cosine with `feature`'s, and its encoder/decoder cosine (see saetui.sae.neighbours). `sae` None: the
        only SAE, or with several the first loaded."""
        from saetui.sae.neighbours import decoder_neighbours

        manager = self._require_saes()
        loaded = manager.get(sae) if sae is not None or len(manager) == 1 else list(manager)[0]
        other = manager.get(against) if against is not None else None
        feature = loaded.check_feature(feature)
        with self.lock:
            result = decoder_neighbours(loaded, feature, other, top_k)
        result.label = self.labels.get((result.sae, feature), "")
        for n in result.neighbours:
            n.label = self.labels.get((result.against, n.feature), "")
        return result

    def span(self, prompt: str, start: int, end: int, *, pool: str = AnalysisSettings.span_pool,
             top_k: int = AnalysisSettings.top_k,
             include_special: bool = False, chat: Chat = False, system: str | None = None) -> SpanResult:
        """Every loaded SAE's top features over tokens start..end-1 of `prompt` (see saetui.sae.span).
        chat/system: see `chat_prompt`; positions are then those of the rendered conversation, as `analyze` gives them."""
        from saetui.sae.span import span_features

        check_text(prompt)
        text = self.chat_prompt(prompt, chat, system)
        with self.lock:
            result = span_features(self._require_model(), self._require_saes(), text, start, end, pool=pool,
                                   top_k=top_k, include_special=include_special)
        for sae in result.saes:
            for row in sae.features:
                row.label = self.labels.get((sae.name, row.feature), "")
        return result

    def dense_features(self, sae: str | None = None) -> frozenset[int] | None:
        """The SAE's dense features: those firing on more than saetui.sae.evals.DENSE (10%) of its feature index's
        tokens, which say little about any one word. None where the SAE has no index to tell."""
        from saetui.sae.evals import DENSE

        loaded = self._require_saes().get(sae)
        index = self.indexes.get(loaded.name)
        if index is None:
            return None
        rates = index.counts.double() / max(1, index.n_tokens)
        return frozenset((rates > DENSE).nonzero().flatten().tolist())

    # ------------------------------------------------------------------ search
    def search(self, query: str, sae: str | None = None, limit: int = SearchSettings.limit) -> SearchResult:
        """Features matching `query` (a number, label words, or `promotes WORD`; see saetui.sae.search):
        hits best first, each with its score, label and a line saying why, and a note on how the query was read."""
        from dataclasses import replace

        from saetui.sae.search import search_features

        loaded = self._require_saes().get(sae)
        text = check_text(query, "query")
        with self.lock:
            result = search_features(self._require_model(), loaded, text, labels=self.labels.of(loaded.name),
                                     index=self.indexes.get(loaded.name), limit=limit)
        return replace(result, hits=[replace(h, sae=loaded.name) for h in result.hits])

    def search_all(self, query: str, limit: int = SearchSettings.limit) -> SearchResult:
        """`search` over every loaded SAE, hits tagged with their SAE (`hit.sae`) and merged best first;
        the notes of every SAE joined. A feature number outside one SAE only skips that SAE. `SAE/NUMBER`, as every
        list names a feature (`demo-late/416`), is that SAE's feature; with no SAE of that name it is searched as
        text, and the note says so."""
        from dataclasses import replace

        from saetui.inputs import feature_ref
        from saetui.sae.search import SearchResult

        saes = self._require_saes()
        note = None
        try:
            sae, number = feature_ref(check_text(query, "query"))
        except InputError:  # not SAE/NUMBER: a number, a label, `promotes WORD`
            sae = None
        if sae is not None:
            if any(s.name == sae for s in saes):
                return replace(self.search(str(number), sae, limit), query=query)
            note = f"no loaded SAE is named {sae!r} ({', '.join(s.name for s in saes)}): searched as text"
        results, errors = [], []
        for loaded in saes:
            try:
                results.append(self.search(query, loaded.name, limit))
            except InputError as exc:
                if "out of range" not in str(exc):
                    raise
                errors.append(exc)
        if len(errors) == 1 and not results:
            raise errors[0]
        if not results:  # out of every SAE: each one's range (the first's alone read as if it were the only one)
            ranges = ", ".join(f"{s.name} has 0..{s.d_sae - 1}" for s in saes)
            raise InputError(f"{str(errors[0]).split(':')[0]} of every SAE loaded: {ranges}")
        merged = SearchResult.merged(results, limit)
        return replace(merged, note="; ".join(filter(None, [note, merged.note]))) if note else merged
