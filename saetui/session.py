"""Session: the one Textual-free facade the TUI talks to. It owns the model, its SAEs and their lock.

Every action the app offers is a method here that a script could call: load, analyze, search
features, describe a feature, edit the steering specs, generate. Methods that run the model take
`self.lock`, so a worker thread analyzing and another generating never interleave forwards.
Nothing here imports Textual, and torch is only imported when a model is loaded.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Iterator, Sequence, Union

from saetui.errors import InputError, SaetuiError
from saetui.sae.index import Example
from saetui.sae.search import SearchHit, SearchResult
from saetui.steering.spec import SteeringSpec

if TYPE_CHECKING:
    from saetui.models.chat import ChatTokens
    from saetui.models.model import ModelWithHooks
    from saetui.sae.analyzer import AnalysisResult
    from saetui.sae.contrast import ContrastResult
    from saetui.sae.neighbours import NeighbourResult
    from saetui.sae.span import SpanResult
    from saetui.steering.vectors import VectorSpec
    from saetui.sae.attribution import AttributionResult
    from saetui.sae.manager import LoadedSAE, SAEManager
    from saetui.steering.generate import Piece
    from saetui.hub import ProgressSink

MAX_PROMPT_CHARS = 20_000

#: How a prompt is read: False = plain text; True = one user turn in the model's chat template; a list of
#: {"role", "content"} messages = the conversation so far, the prompt (if any) its next user turn.
Chat = Union[bool, Sequence[dict]]


def check_text(text: str, what: str = "prompt") -> str:
    """`text` if it is usable as a prompt (or query), else a one-line InputError: empty, too long, or
    not text (undecodable bytes reach Python from argv or a paste as lone surrogates)."""
    if not text.strip():
        raise InputError(f"empty {what}: type some text first")
    if len(text) > MAX_PROMPT_CHARS:
        raise InputError(f"{what} is {len(text):,} characters; the limit is {MAX_PROMPT_CHARS:,}")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        char = ord(text[exc.start])
        bad = f"invalid UTF-8 byte 0x{char - 0xDC00:02x}" if 0xDC80 <= char <= 0xDCFF else f"a lone surrogate U+{char:04X}"
        raise InputError(f"the {what} has {bad} at character {exc.start}: give UTF-8 text") from None
    return text


@dataclass
class FeatureInfo:
    """What the detail view shows about one feature (see Session.feature_info for where each number comes from)."""

    sae: str
    feature: int
    label: str
    max_activation: float | None
    promoted: list[tuple[str, float]]
    suppressed: list[tuple[str, float]]
    neuronpedia_url: str | None
    density: float | None = None
    top_examples: list[Example] = field(default_factory=list)
    max_source: str = ""  # where max_activation comes from, special tokens included or not
    histogram: list[tuple[float, float, int]] = field(default_factory=list)  # (lo, hi, count); [] without index


class Session:
    """Model, SAEs, steering specs and the last results, behind one lock."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.model: ModelWithHooks | None = None
        self.saes: SAEManager | None = None
        self.specs: list[SteeringSpec] = []
        self.labels: dict[tuple[str, int], str] = {}
        self.last: AnalysisResult | None = None
        self.last_latency: float | None = None
        self.indexes: dict[str, Any] = {}  # SAE name -> FeatureIndex, where one was built
        self._sae_labels: dict[str, dict[int, str]] = {}  # SAE name -> {feature: label}, for search
        # generation decodes with a static KV cache and a compiled step: None = on CUDA only, False = never
        # (the eager loop), True = also elsewhere (saetui.steering.static)
        self.compile: bool | None = None

    # ------------------------------------------------------------------ loading
    def load(self, model: str | None = None, saes: list[str] | None = None, *, device: str | None = None,
             dtype: str | None = None, trust_remote_code: bool = False, refresh: bool = False,
             progress: ProgressSink | None = None, cancel: threading.Event | None = None) -> None:
        """Load a model and SAEs; with no model, the bundled demo (and `saes`, if any, beside its own).

        Hub models and registry SAEs come from the HF cache: what is complete there loads without a request;
        what is missing is fetched first, every repo asked about before any bytes (see `download`).
        refresh: ask the Hub for newer files even when the cache is complete. progress: where downloads report
        (default: lines on stderr); cancel: set it to stop a download (DownloadCancelled)."""
        from saetui import demo, hub
        from saetui.models.model import ModelWithHooks, quiet_hf_output
        from saetui.sae.manager import SAEManager

        if model is None and dtype not in (None, "auto", "float32"):
            raise InputError(f"the bundled demo runs in float32 only; dtype {dtype} needs another model")
        quiet_hf_output()  # a progress bar on stderr would garble the app's screen
        with hub.reporting(progress, cancel):
            targets = hub_targets(model, saes)
            if targets:  # network only for what is missing; fails in one line before torch loads anything
                hub.fetch(targets, refresh=refresh)
            with self.lock:
                if model is None:
                    loaded_model, manager = demo.load_demo(device=device)
                    names = {s.name for s in manager}
                    for spec in saes or []:
                        if spec not in names:  # the demo's own SAEs are named (`demo`, `demo-late`): already loaded
                            manager.load(spec)
                else:
                    loaded_model = ModelWithHooks.from_pretrained(model, device=device, dtype=dtype,
                                                                  trust_remote_code=trust_remote_code)
                    manager = SAEManager(loaded_model)
                    for spec in saes or []:
                        manager.load(spec)
                self.attach(loaded_model, manager)

    def download(self, model: str | None = None, saes: list[str] | None = None, *, refresh: bool = False,
                 progress: ProgressSink | None = None, cancel: threading.Event | None = None) -> DownloadReport:
        """Fetch into the HF cache everything a later `load(model, saes)` reads (the model's config, generation
        config, tokenizer, chat template and weights; each registry SAE's folder), with progress, and load
        nothing: afterwards that load works with HF_HUB_OFFLINE=1. What is complete in the cache is not asked
        for again unless refresh. Local folders and the demo's SAEs are listed as they are."""
        from saetui import hub

        if model is None and not saes:
            raise InputError("nothing to download: give a model (--model) and/or SAEs (--sae)")
        with hub.reporting(progress, cancel):
            targets = hub_targets(model, saes)
            stored = iter(hub.fetch(targets, refresh=refresh)) if targets else iter(())
        items: list[dict[str, Any]] = []
        for kind, spec in [("model", model)] * (model is not None) + [("SAE", s) for s in saes or []]:
            local = _local_source(kind, spec)
            items.append(next(stored).to_dict() | {"source": "hub"} if local is None else
                         {"kind": kind, "name": spec, "path": local, "source": "local"})
        return DownloadReport(str(hub.cache_dir()), hub.endpoint(), items)

    def attach(self, model: ModelWithHooks, saes: SAEManager) -> None:
        """Use an already-loaded model and SAEs (scripts, the CLI), with their feature indexes."""
        with self.lock:
            if self.model is not None and self.model is not model:
                from saetui.steering.static import forget

                forget(self.model)  # its decoders (KV caches, CUDA graphs) go with it
            self.model, self.saes = model, saes
            self.specs, self.last, self.indexes, self.labels = [], None, {}, {}
            self._sae_labels = {}
            for loaded in saes:
                self._attach_index(loaded)

    def _attach_index(self, loaded: LoadedSAE) -> None:
        """Use the SAE's feature index when one exists: labels, densities, examples, max activations."""
        from saetui import demo
        from saetui.sae.index import default_index_dir, find_index
        from saetui.sae.search import labels_of

        model = self._require_model()
        index = find_index(model, loaded, [default_index_dir(model, loaded), *demo.index_places()])
        if index is None:
            return
        self.indexes[loaded.name] = index
        loaded.max_activations = index.max_activation()
        labels = labels_of(index)  # a corrupt labels file is set aside with a notice, never fatal
        self._sae_labels[loaded.name] = labels
        for f, label in labels.items():
            self.labels[(loaded.name, f)] = label

    def build_index(self, corpus: str, out: str | None = None, sae: str | None = None, *, field: str = "text",
                    settings: Any = None, resume: bool = False) -> Any:
        """Build (or resume) the feature index of SAE `sae` (default: the last loaded) from a .txt/.jsonl
        corpus into `out` (default: the cache folder the session looks in), and use it. Returns the FeatureIndex."""
        from saetui.sae.index import build_index, default_index_dir

        model = self._require_model()
        loaded = self._require_saes().get(sae) if sae is not None else list(self._require_saes())[-1]
        folder = out or default_index_dir(model, loaded)
        with self.lock:
            index = build_index(model, loaded, corpus, folder, field=field, settings=settings, resume=resume)
            self._attach_index(loaded)
        return index

    last_corpus: str | None = None  # the corpus file the app's health screen evaluated last

    def evals(self, corpus: str | list[str], saes: list[str] | None = None, *, field: str = "text",
              max_tokens: int | None = None, batch_size: int | None = None, progress: bool = True) -> Any:
        """SAE health (saetui.sae.evals) of the named SAEs (default: every loaded one) over a .txt/.jsonl corpus or a
        list of texts: reconstruction, sparsity, and the model's loss with each SAE spliced in. Returns an EvalResult."""
        from saetui.sae.evals import EvalSettings, evaluate

        model = self._require_model()
        manager = self._require_saes()
        chosen = [manager.get(name) for name in saes] if saes else list(manager)
        settings = EvalSettings(max_tokens=max_tokens, **({"batch_size": batch_size} if batch_size is not None else {}))
        with self.lock:
            return evaluate(model, chosen, corpus, field=field, settings=settings, progress=progress)

    def load_sae(self, spec: str, *, progress: ProgressSink | None = None,
                 cancel: threading.Event | None = None) -> LoadedSAE:
        """Add an SAE to the loaded model (a registry SAE is fetched first where the HF cache lacks it; see `load`)."""
        from saetui import hub

        self._require_model()
        if self.saes is None:
            raise InputError("no model loaded yet")
        with hub.reporting(progress, cancel):
            registry = hub_targets(None, [spec])
            if registry:
                hub.fetch(registry)  # outside the lock: analysis goes on while it downloads
            with self.lock:
                loaded = self.saes.load(spec)  # the first SAE of a model loaded without any, too
                self._attach_index(loaded)
                return loaded

    @property
    def ready(self) -> bool:
        return self.model is not None and self.saes is not None and len(self.saes) > 0

    def status(self) -> dict[str, Any]:
        """Model, SAEs, device, dtype, GPU memory, how generation decodes (saetui.steering.static.compile_status:
        eager, uncompiled, compiling, compiled) and the last analysis latency, for the status bar."""
        if self.model is None:
            return {"model": None}
        from saetui.steering.static import compile_status

        gpu = None
        if self.model.device.type == "cuda":
            import torch

            gpu = torch.cuda.memory_allocated(self.model.device) / 2**30
        return {
            "model": self.model.name,
            "saes": [f"{s.name} ({s.hook_name})" for s in self.saes or []],
            "device": str(self.model.device),
            "dtype": str(self.model.dtype).replace("torch.", ""),
            "gpu_gib": gpu,
            "decoding": compile_status(self.model),
            "latency_ms": None if self.last_latency is None else self.last_latency * 1e3,
        }

    # ------------------------------------------------------------------ analysis
    def analyze(self, prompt: str | None, top_k: int = 10, *, include_special: bool = False,
                predictions: int = 0, chat: Chat = False, system: str | None = None,
                include_template: bool = False) -> AnalysisResult:
        """Per-token top-k features of every loaded SAE (see SAEAnalyzer.analyze); kept as `self.last`.

        chat/system: see `chat_prompt`; a chat prompt ends with the template's reply opener (unless the
        conversation ends with the assistant's turn), so the position that predicts the reply is analyzed.
        Its template tokens are marked (TokenInfo.role/template) and left out of the summaries unless
        include_template."""
        from saetui.sae.analyzer import SAEAnalyzer

        text = self.chat_prompt(prompt, chat, system)
        with self.lock:
            analyzer = SAEAnalyzer(self._require_model(), self._require_saes())
            start = time.perf_counter()
            result = analyzer.analyze(text, top_k=top_k, include_special=include_special, predictions=predictions,
                                      include_template=include_template)
            self.last_latency = time.perf_counter() - start
            self.last = result
            return result

    def feature_activations(self, sae: str | None, feature: int) -> list[float]:
        """The feature's exact activation on every token of the last analyzed prompt (one forward)."""
        from saetui.sae.analyzer import SAEAnalyzer

        if self.last is None:
            return []
        with self.lock:
            model = self._require_model()
            # the very ids analyzed (a chat prompt's are not its text re-tokenized)
            batch = model.batch_from_ids([[t.id for t in self.last.tokens]])
            lat = SAEAnalyzer(model, self._require_saes()).latents(batch, sae)
            return lat[:, feature].tolist()

    # ------------------------------------------------------------------ attribution
    def attribute(self, prompt: str | None, position: int | None = None, target: int | str | None = None,
                  versus: int | str | None = None, top_k: int = 20, verify: int = 10, *, chat: Chat = False,
                  system: str | None = None) -> AttributionResult:
        """Why this token? The prediction after token `position` (default: the last) attributed to the
        features of every loaded SAE, the top `verify` checked by real ablation (see saetui.sae.attribution).

        target/versus: a token id (int) or a token's text (str, one token); target defaults to the
        model's top prediction there, and with `versus` the target is the logit difference.
        chat/system: see `chat_prompt` (by default the last position is then the reply's first token's).
        """
        from saetui.sae.attribution import attribute

        text = self.chat_prompt(prompt, chat, system)
        with self.lock:
            return attribute(self._require_model(), list(self._require_saes()), text, position=position,
                             target=target, versus=versus, top_k=top_k, verify=verify)

    # ------------------------------------------------------------------ features
    def feature_info(self, feature: int, sae: str | None = None, k: int = 8) -> FeatureInfo:
        """One feature, for the detail view. Where each number comes from:

        max_activation  with a feature index: the largest activation over every token it indexed, special
                        tokens (BOS/EOS/pad) excluded; without one: the largest over the last analyzed
                        prompt, special tokens excluded (None before any analysis). `max_source` says which,
                        so a larger value on a prompt's BOS (shown in the token table) is not a contradiction.
        density         the share of indexed tokens the feature fires on (> 0); None without an index
        histogram       (lo, hi, count) bins of its nonzero activations in the index (log-spaced bins, the
                        counts add up to the tokens it fired on, empty bins at both ends left out); [] without
        top_examples    the index's top `k` activations, each an Example window with the feature's activation
                        on every token, recomputed in one batched forward over the documents' prefixes (so the
                        numbers are the ones the index saw; special tokens dropped from the windows)
        promoted/suppressed  the `k` tokens whose logits the decoder direction raises/lowers most per unit
                        activation (direct effect through the unembedding, saetui.sae.effects)
        """
        manager = self._require_saes()
        loaded = manager.get(sae)
        if not 0 <= feature < loaded.d_sae:
            raise InputError(f"feature {feature} out of range: SAE {loaded.name} has features 0..{loaded.d_sae - 1}")
        from saetui.sae.effects import logit_effects

        model = self._require_model()
        index = self.indexes.get(loaded.name)
        with self.lock:
            effects = logit_effects(model, loaded, [feature])[0]  # (vocab,)
            examples = index.exact_examples(model, loaded, feature, k) if index is not None else []
        up, down = effects.topk(k), (-effects).topk(k)
        texts = model.token_texts
        density, histogram = None, []
        if index is not None:
            max_act: float | None = float(index.max_activation()[feature])
            max_source = f"index: max over {index.n_tokens:,} tokens, special tokens (BOS/EOS/pad) excluded"
            density, histogram = index.density(feature), index.histogram(feature)
        elif self.last is not None:  # no index: the max over the last prompt (one forward)
            acts = self.feature_activations(loaded.name, feature)
            counted = [a for a, tok in zip(acts, self.last.tokens) if not (tok.special or tok.template)]
            max_act = max(counted) if counted else None
            max_source = "this prompt, special tokens (BOS/EOS/pad) excluded (no feature index)"
        else:
            max_act, max_source = None, "n/a: no feature index and no analyzed prompt"
        return FeatureInfo(
            sae=loaded.name, feature=feature, label=self.labels.get((loaded.name, feature), ""),
            max_activation=max_act,
            promoted=list(zip(texts(up.indices.tolist()), up.values.tolist())),
            suppressed=list(zip(texts(down.indices.tolist()), (-down.values).tolist())),
            neuronpedia_url=loaded.neuronpedia_url(feature),
            density=density, top_examples=examples, max_source=max_source, histogram=histogram,
        )

    def search(self, query: str, sae: str | None = None, limit: int = 50) -> SearchResult:
        """Features matching `query` (a number, label words, or `promotes WORD`; see saetui.sae.search):
        hits best first, each with its score, label and a line saying why, and a note on how the query was read."""
        from saetui.sae.search import search_features

        loaded = self._require_saes().get(sae)
        text = check_text(query, "query")
        labels = self._sae_labels.get(loaded.name, {})
        with self.lock:
            result = search_features(self._require_model(), loaded, text, labels=labels,
                                     index=self.indexes.get(loaded.name), limit=limit)
        return replace(result, hits=[replace(h, sae=loaded.name) for h in result.hits])

    def set_label(self, feature: int, label: str, sae: str | None = None) -> str:
        """Label a feature and save it beside the SAE's index (for the bundled demo, whose index is
        package data, in the user's config folder). Returns where it was written."""
        from saetui.sae.search import save_labels_of

        loaded = self._require_saes().get(sae)
        index = self.indexes.get(loaded.name)
        if index is None:
            raise InputError(f"SAE {loaded.name} has no feature index: build one with `saetui index` to keep labels")
        labels = self._sae_labels.setdefault(loaded.name, {})
        if label:
            labels[feature] = self.labels[(loaded.name, feature)] = label
        else:
            labels.pop(feature, None), self.labels.pop((loaded.name, feature), None)
        return str(save_labels_of(index, labels))  # where labels go is the index's own (IndexPlace.labels_dir)

    def add_labels(self, new: dict[int, str], sae: str | None = None, index_dir: str | None = None) -> dict[str, Any]:
        """Merge labels (e.g. from `saetui.sae.search.import_labels`) into an SAE's index: the one at
        `index_dir`, else the one the session found (the demo's go to the user's config folder)."""
        from saetui.sae.index import FeatureIndex
        from saetui.sae.search import labels_of, save_labels_of

        loaded = self._require_saes().get(sae)
        if index_dir is not None:
            index = FeatureIndex.load(index_dir, self._require_model(), loaded)  # an index for this very SAE
        elif (index := self.indexes.get(loaded.name)) is None:
            raise InputError(f"SAE {loaded.name} has no feature index: build one with `saetui index` first, or give --index")
        out_of_range = [f for f in new if not 0 <= f < loaded.d_sae]
        if out_of_range:
            raise InputError(f"labels for features outside 0..{loaded.d_sae - 1}: {out_of_range[:5]}")
        merged = {**labels_of(index), **new}
        folder = save_labels_of(index, merged)
        if index_dir is None:
            self._sae_labels[loaded.name] = merged
            self.labels.update({(loaded.name, f): label for f, label in merged.items()})
        return {"index": str(index.root), "labels_dir": str(folder), "imported": len(new), "labels": len(merged)}

    # ------------------------------------------------------------------ steering specs (plain data)
    def add_spec(self, feature: int, coefficient: float = 4.0, mode: str = "add", sae: str | None = None) -> SteeringSpec:
        name = self._require_saes().get(sae).name
        spec = SteeringSpec(feature, coefficient, mode, name)
        self.specs.append(spec)
        return spec

    def max_activation(self, sae: str | None, feature: int) -> float | None:
        """The feature's max activation from its SAE's feature index (special tokens excluded); None without one."""
        if self.saes is None:
            return None
        try:
            loaded = self.saes.get(sae)
        except SaetuiError:
            return None
        acts = loaded.max_activations
        return None if acts is None or not 0 <= feature < len(acts) else float(acts[feature])

    # ------------------------------------------------------------------ generation
    def generate(self, prompt: str | None, rows: list[list[SteeringSpec]] | None = None, *,
                 stop_event: threading.Event | None = None, chat: Chat = False, system: str | None = None,
                 steer_template: bool = False, **settings: Any) -> Iterator[Piece]:
        """Each row of specs generated side by side in one batch, token by token (default: baseline as
        row 0 and the session's specs as row 1). `settings` are GenerationSettings fields; their
        defaults are the library's, the same the CLI and the app's fields start from.

        chat: True = the prompt as one user turn; a list of messages = continue that conversation (the
        prompt, if given, is its next user turn); the reply follows the template's generation prompt. In a
        chat a spec's scope `all` means the reply (see `chat_rows`); steer_template also steers the
        template's tokens in the prompt."""
        from saetui.steering.generate import SteeringEngine

        text = self.chat_prompt(prompt, chat, system, reply=True)
        with self.lock:
            engine = SteeringEngine(self._require_model(), self._require_saes(), compile=self.compile)
            rows = [[], list(self.specs)] if rows is None else [list(r) for r in rows]
            if is_chat(chat):
                rows = chat_rows(rows, steer_template)
        # The lock is taken per forward step (inside stream), never across a yield: F5 during a
        # generation is answered between two tokens, and a suspended generator holds nothing.
        yield from engine.stream(text, rows, stop_event=stop_event, lock=self.lock, **settings)

    # ------------------------------------------------------------------ discover: contrast, neighbours, spans, vectors
    last_contrast: ContrastResult | None = None  # the last Session.contrast, what save_vector saves by default

    def contrast(self, a: list[str], b: list[str], top_k: int = 20, *, pool: str = "mean", by: str = "diff",
                 include_special: bool = False, batch_size: int = 16) -> ContrastResult:
        """Every loaded SAE's features ranked by how they separate prompts `a` from prompts `b`, and the
        difference of the mean hooked activations (see saetui.sae.contrast); kept as `self.last_contrast`."""
        from saetui.sae.contrast import contrast

        for which, prompts in (("A", a), ("B", b)):
            if not prompts:
                raise InputError(f"set {which} is empty: give at least one prompt")
            for prompt in prompts:
                check_text(prompt)
        with self.lock:
            result = contrast(self._require_model(), self._require_saes(), list(a), list(b), top_k=top_k, pool=pool,
                              by=by, include_special=include_special, batch_size=batch_size)
        for sae in result.saes:
            for row in sae.features:
                row.label = self.labels.get((sae.name, row.feature), "")
        self.last_contrast = result
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

    def vectors(self) -> list[str]:
        """The names of the saved steering vectors."""
        from saetui.steering.vectors import list_vectors

        return list_vectors()

    def vector_spec(self, name: str, coefficient: float = 1.0, hook: str | None = None, scope: str = "all") -> VectorSpec:
        """A steering spec for a saved vector, checked against the loaded model; pass it in a row to `generate`
        beside feature specs."""
        from saetui.steering.vectors import VectorSpec, resolve_vector

        spec = VectorSpec(name, float(coefficient), hook, scope)
        resolve_vector(spec, self._require_model())
        return spec

    def neighbours(self, feature: int, sae: str | None = None, against: str | None = None,
                   top_k: int = 10) -> NeighbourResult:
        """Features of SAE `against` (default: the feature's own) whose decoder directions have the highest
        cosine with `feature`'s, and its encoder/decoder cosine (see saetui.sae.neighbours)."""
        from saetui.sae.neighbours import check_feature, decoder_neighbours

        manager = self._require_saes()
        loaded = manager.get(sae)
        other = manager.get(against) if against is not None else None
        check_feature(loaded, feature)
        with self.lock:
            result = decoder_neighbours(loaded, feature, other, top_k)
        result.label = self.labels.get((result.sae, feature), "")
        for n in result.neighbours:
            n.label = self.labels.get((result.against, n.feature), "")
        return result

    def span(self, prompt: str, start: int, end: int, *, pool: str = "max", top_k: int = 10,
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

    def search_all(self, query: str, limit: int = 50) -> SearchResult:
        """`search` over every loaded SAE, hits tagged with their SAE (`hit.sae`) and merged best first;
        the notes of every SAE joined. A feature number outside one SAE only skips that SAE."""
        results, errors = [], []
        for loaded in self._require_saes():
            try:
                results.append(self.search(query, loaded.name, limit))
            except InputError as exc:
                if "out of range" not in str(exc):
                    raise
                errors.append(exc)
        if not results:
            raise errors[0]
        hits = sorted((h for r in results for h in r.hits), key=lambda h: -h.score)[:limit]
        notes = list(dict.fromkeys(r.note for r in results if r.note))
        return SearchResult(results[0].query, results[0].kind, hits, "; ".join(notes) or None)
    def steering_kl(self, prompt: str | None, rows: list[list[SteeringSpec]], token_ids: list[list[int]], *,
                    chat: Chat = False, system: str | None = None, steer_template: bool = False) -> list[list[float] | None]:
        """What steering changed, after a generation: per generated token of each steered row, the KL
        divergence (nats) between the steered and the unsteered model's next-token distributions on
        that row's text (one teacher-forced batched forward; see SteeringEngine.kl). None for rows
        without specs. Each token's log-probability comes with the generation (`Piece.logprob`).
        chat/system/steer_template: as given to `generate`."""
        from saetui.steering.generate import SteeringEngine

        text = self.chat_prompt(prompt, chat, system, reply=True)
        with self.lock:
            engine = SteeringEngine(self._require_model(), self._require_saes())
            return engine.kl(text, chat_rows(rows, steer_template) if is_chat(chat) else rows, token_ids)

    # ------------------------------------------------------------------ chat (instruct models)
    def chat_prompt(self, prompt: str | None, chat: Chat = False, system: str | None = None, *,
                    reply: bool = False) -> str | ChatTokens:
        """What a prompt becomes: the text itself (chat False), or the conversation rendered with the model's
        chat template (saetui.models.chat): [system] + the history in `chat` (a list; True = none) + the prompt
        as the next user turn, ending with the template's generation prompt unless it ends with the assistant.

        reply=True (generation) refuses a conversation that ends with the assistant's turn. One-line errors:
        a model without a chat template, a template that refuses a system turn, a system prompt without chat."""
        if not is_chat(chat):
            if system is not None:
                raise InputError("a system prompt needs a chat prompt (--chat)")
            if prompt is None:
                raise InputError("empty prompt: type some text first")
            return check_text(prompt)
        from saetui.models.chat import conversation

        if prompt is not None:
            check_text(prompt)
        if system is not None:
            check_text(system, "system prompt")
        messages = conversation(prompt, [] if chat is True else chat, system)
        if reply and messages[-1]["role"] == "assistant":
            raise InputError("the conversation ends with the assistant's turn: add a user turn to generate a reply")
        return self._require_model().render_chat(messages)

    def render_chat(self, messages: Sequence[dict], *, add_generation_prompt: bool | None = None) -> ChatTokens:
        """A whole conversation (a list of {"role", "content"}) as the model's chat template makes it: `.ids`
        (== tokenizer.apply_chat_template(messages, tokenize=True)), `.roles`, `.text`. To continue one after a
        generation, append {"role": "assistant", "content": reply} and pass the list as `chat=` with the next prompt."""
        return self._require_model().render_chat(messages, add_generation_prompt=add_generation_prompt)

    # ------------------------------------------------------------------ helpers
    def _require_model(self) -> ModelWithHooks:
        if self.model is None:
            raise InputError("no model loaded yet")
        return self.model

    def _require_saes(self) -> SAEManager:
        if self.saes is None or len(self.saes) == 0:
            raise InputError("no SAE loaded yet")
        return self.saes


@dataclass
class DownloadReport:
    """What `Session.download` left where: `items` per model and SAE (Stored.to_dict() with "source": "hub", or
    {"kind", "name", "path", "source": "local"}); `cache` is the HF cache folder, `host` the Hub asked."""

    cache: str
    host: str
    items: list[dict[str, Any]]

    @property
    def bytes(self) -> int:
        return sum(i.get("bytes", 0) for i in self.items)

    @property
    def fetched_bytes(self) -> int:
        return sum(i.get("fetched_bytes", 0) for i in self.items)

    def to_dict(self) -> dict[str, Any]:
        return {"cache": self.cache, "host": self.host, "bytes": self.bytes, "fetched_bytes": self.fetched_bytes,
                "items": self.items}


def _local_source(kind: str, spec: str) -> str | None:
    """The folder a model or SAE spec names on this machine (or "bundled" for the demo's SAEs); None for the Hub."""
    from saetui import demo
    from saetui.models.model import hub_model_id
    from saetui.sae.manager import registry_spec

    if kind == "model":
        return None if hub_model_id(spec) is not None else spec
    if spec in {s.name for s in demo.SAES}:
        return "bundled"
    return None if registry_spec(spec) is not None else spec


def hub_targets(model: str | None, saes: Sequence[str] | None) -> list[Any]:
    """The Hub downloads a load of (model, saes) needs, in order: the model (a Hub id), then registry SAEs.
    Local folders, the demo and its SAEs need none. Bad specs fail here in one line, before any request."""
    from saetui import hub

    targets = []
    if model is not None and _local_source("model", model) is None:
        targets.append(hub.model_target(model))
    for spec in saes or []:
        if _local_source("SAE", spec) is None:
            from saetui.sae.manager import registry_spec

            release, sae_id = registry_spec(spec)  # type: ignore[misc]
            targets.append(hub.sae_target(release, sae_id))
    return targets


def is_chat(chat: Chat) -> bool:
    """True for chat=True and for a conversation (a list, even an empty one)."""
    return chat is True or (chat is not None and not isinstance(chat, bool))


def chat_rows(rows: Sequence[Sequence[Any]], steer_template: bool = False) -> list[list[Any]]:
    """Rows of specs for a chat: a spec's scope `all` (the default) becomes the reply (`generated`); with
    steer_template every spec also steers the chat template's prompt tokens (`+template`). Explicit scopes
    stay as given (`0:` steers every position, the user's text included)."""
    from saetui.steering.spec import chat_scope

    return [[replace(s, scope=chat_scope(s.scope, steer_template)) for s in row] for row in rows]
