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
from typing import TYPE_CHECKING, Any, Iterator

from saetui.errors import InputError
from saetui.steering.spec import MODES, SteeringSpec

if TYPE_CHECKING:
    from saetui.models.model import ModelWithHooks
    from saetui.sae.analyzer import AnalysisResult
    from saetui.sae.manager import LoadedSAE, SAEManager
    from saetui.steering.generate import Piece

MAX_PROMPT_CHARS = 20_000


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
    """What the detail view shows about one feature."""

    sae: str
    feature: int
    label: str
    max_activation: float | None  # over the last analysis, or from a feature index
    promoted: list[tuple[str, float]]
    suppressed: list[tuple[str, float]]
    neuronpedia_url: str | None
    density: float | None = None
    top_examples: list[str] = field(default_factory=list)


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

    # ------------------------------------------------------------------ loading
    def load(self, model: str | None = None, saes: list[str] | None = None, *, device: str | None = None,
             dtype: str | None = None, trust_remote_code: bool = False) -> None:
        """Load a model and SAEs; with no model, the bundled demo."""
        from saetui import demo
        from saetui.models.model import ModelWithHooks, quiet_hf_output
        from saetui.sae.manager import SAEManager

        quiet_hf_output()  # a progress bar on stderr would garble the app's screen
        with self.lock:
            if model is None:
                loaded_model, manager = demo.load_demo(device=device)
            else:
                loaded_model = ModelWithHooks.from_pretrained(model, device=device, dtype=dtype, trust_remote_code=trust_remote_code)
                manager = SAEManager(loaded_model)
                for spec in saes or []:
                    manager.load(spec)
            self.attach(loaded_model, manager)

    def attach(self, model: ModelWithHooks, saes: SAEManager) -> None:
        """Use an already-loaded model and SAEs (scripts, the CLI), with their feature indexes."""
        with self.lock:
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

    def load_sae(self, spec: str) -> LoadedSAE:
        with self.lock:
            loaded = self._require_saes().load(spec)
            self._attach_index(loaded)
            return loaded

    @property
    def ready(self) -> bool:
        return self.model is not None and self.saes is not None and len(self.saes) > 0

    def status(self) -> dict[str, Any]:
        """Model, SAEs, device, dtype, GPU memory and the last analysis latency, for the status bar."""
        if self.model is None:
            return {"model": None}
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
            "latency_ms": None if self.last_latency is None else self.last_latency * 1e3,
        }

    # ------------------------------------------------------------------ analysis
    def analyze(self, prompt: str, top_k: int = 10, *, include_special: bool = False,
                predictions: int = 0) -> AnalysisResult:
        """Per-token top-k features of every loaded SAE (see SAEAnalyzer.analyze); kept as `self.last`."""
        from saetui.sae.analyzer import SAEAnalyzer

        check_text(prompt)
        with self.lock:
            analyzer = SAEAnalyzer(self._require_model(), self._require_saes())
            start = time.perf_counter()
            result = analyzer.analyze(prompt, top_k=top_k, include_special=include_special, predictions=predictions)
            self.last_latency = time.perf_counter() - start
            self.last = result
            return result

    def feature_activations(self, sae: str | None, feature: int) -> list[float]:
        """The feature's exact activation on every token of the last analyzed prompt (one forward)."""
        from saetui.sae.analyzer import SAEAnalyzer

        if self.last is None:
            return []
        with self.lock:
            lat = SAEAnalyzer(self._require_model(), self._require_saes()).latents(self.last.prompt, sae)
            return lat[:, feature].tolist()

    # ------------------------------------------------------------------ features
    def feature_info(self, feature: int, sae: str | None = None, k: int = 8) -> FeatureInfo:
        manager = self._require_saes()
        loaded = manager.get(sae)
        if not 0 <= feature < loaded.d_sae:
            raise InputError(f"feature {feature} out of range: SAE {loaded.name} has features 0..{loaded.d_sae - 1}")
        from saetui.sae.effects import logit_effects

        with self.lock:
            effects = logit_effects(self._require_model(), loaded, [feature])[0]  # (vocab,)
        up, down = effects.topk(k), (-effects).topk(k)
        texts = self._require_model().token_texts
        max_act = None
        index = self.indexes.get(loaded.name)
        if index is None and self.last is not None:  # no index: the max over the last prompt (one forward)
            acts = self.feature_activations(loaded.name, feature)
            max_act = max(acts[1:] or acts) if acts else None  # BOS excluded when there is more
        density, examples = None, []
        if index is not None:
            max_act = float(loaded.max_activations[feature])
            density = index.density(feature)
            for val, window, at in index.examples(feature)[:k]:
                pieces = texts(window)
                pieces[at] = f"[[{pieces[at]}]]"
                examples.append(f"{val:6.2f}  {''.join(pieces)!s}".replace("\n", " "))
        return FeatureInfo(
            sae=loaded.name, feature=feature, label=self.labels.get((loaded.name, feature), ""),
            max_activation=max_act,
            promoted=list(zip(texts(up.indices.tolist()), up.values.tolist())),
            suppressed=list(zip(texts(down.indices.tolist()), (-down.values).tolist())),
            neuronpedia_url=loaded.neuronpedia_url(feature),
            density=density, top_examples=examples,
        )

    def search(self, query: str, sae: str | None = None, limit: int = 50) -> list[tuple[int, str, float]]:
        """Features matching `query` (see saetui.sae.search): (feature, description, score), best first."""
        from saetui.sae.search import search_features

        loaded = self._require_saes().get(sae)
        text = check_text(query, "query").strip()
        if text.isdigit() and not text.isascii():
            raise InputError(f"feature number {query!r} must be written in ASCII digits")
        if text.isdigit() and int(text) >= loaded.d_sae:
            raise InputError(f"feature {text} out of range: SAE {loaded.name} has features 0..{loaded.d_sae - 1}")
        labels = self._sae_labels.get(loaded.name, {})
        with self.lock:
            return search_features(self._require_model(), loaded, query, labels=labels,
                                   index=self.indexes.get(loaded.name), limit=limit)

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

    def toggle_spec(self, i: int) -> None:
        self.specs[i] = replace(self.specs[i], enabled=not self.specs[i].enabled)

    def nudge_spec(self, i: int, delta: float) -> None:
        self.specs[i] = self.specs[i].with_coefficient(round(self.specs[i].coefficient + delta, 4))

    def cycle_mode(self, i: int) -> None:
        spec = self.specs[i]
        self.specs[i] = replace(spec, mode=MODES[(MODES.index(spec.mode) + 1) % len(MODES)])

    def remove_spec(self, i: int) -> None:
        del self.specs[i]

    # ------------------------------------------------------------------ generation
    def generate(self, prompt: str, rows: list[list[SteeringSpec]] | None = None, *,
                 stop_event: threading.Event | None = None, **settings: Any) -> Iterator[Piece]:
        """Each row of specs generated side by side in one batch, token by token (default: baseline as
        row 0 and the session's specs as row 1). `settings` are GenerationSettings fields; their
        defaults are the library's, the same the CLI and the app's fields start from."""
        from saetui.steering.generate import SteeringEngine

        check_text(prompt)
        with self.lock:
            engine = SteeringEngine(self._require_model(), self._require_saes())
            rows = [[], list(self.specs)] if rows is None else [list(r) for r in rows]
        # The lock is taken per forward step (inside stream), never across a yield: F5 during a
        # generation is answered between two tokens, and a suspended generator holds nothing.
        yield from engine.stream(prompt, rows, stop_event=stop_event, lock=self.lock, **settings)

    # ------------------------------------------------------------------ helpers
    def _require_model(self) -> ModelWithHooks:
        if self.model is None:
            raise InputError("no model loaded yet")
        return self.model

    def _require_saes(self) -> SAEManager:
        if self.saes is None or len(self.saes) == 0:
            raise InputError("no SAE loaded yet")
        return self.saes
