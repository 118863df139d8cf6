"""Session: the one entry the app and the CLI use. It owns the model, its SAEs, their labels and their lock.

Every action the app offers and every CLI command is one method here that a script could call: open or load
a model, analyze, attribute, search features, describe a feature, contrast, steer. Methods that run the model
take `self.lock`, so a worker thread analyzing and another generating never interleave forwards. Inputs are
checked by saetui.inputs, defaults come from saetui.settings. Nothing here imports Textual, and torch is only
imported when a model is loaded.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any, Sequence

from saetui.errors import InputError
from saetui.inputs import as_int, check_label, check_text
from saetui.session_discovery import DiscoveryMethods
from saetui.session_steering import SteeringMethods
from saetui.settings import AnalysisSettings, AttributionSettings, CircuitSettings, DetailSettings

if TYPE_CHECKING:
    from saetui.downloads import DownloadReport
    from saetui.hub_progress import ProgressSink
    from saetui.models.chat import Chat, ChatTokens
    from saetui.models.model import ModelWithHooks
    from saetui.sae.analyzer import AnalysisResult
    from saetui.sae.attribution import AttributionResult
    from saetui.sae.circuit import CircuitResult
    from saetui.sae.features import FeatureInfo
    from saetui.sae.index import FeatureIndex
    from saetui.sae.manager import LoadedSAE, SAEManager
    from saetui.sae.pretrained import RegistryEntry


class Session(SteeringMethods, DiscoveryMethods):
    """Model, SAEs, their labels, the steering specs and the last results, behind one lock (see SessionState);
    the steering and discovery methods are in saetui.session_steering and saetui.session_discovery."""

    # ------------------------------------------------------------------ loading
    @classmethod
    def open(cls, model: str | None = None, saes: list[str] | None = None, *, device: str | None = None,
             dtype: str | None = None, trust_remote_code: bool = False, refresh: bool = False,
             compile: bool | None = None, progress: ProgressSink | None = None) -> Session:
        """A session on `model` with `saes` loaded (no model: the bundled demo with its SAEs, and `saes` beside
        them), as the CLI's --model/--sae/--device/--dtype ask for it. A model needs at least one SAE."""
        if not model and dtype not in (None, "auto", "float32"):
            raise InputError(f"the bundled demo runs in float32 only; --dtype {dtype} needs --model")
        if model and not saes:
            raise InputError("--sae is required with --model: RELEASE/SAE_ID, a sae-lens directory or params.npz")
        session = cls()
        session.compile = compile
        session.load(model or None, saes or None, device=device, dtype=dtype, trust_remote_code=trust_remote_code,
                     refresh=refresh, progress=progress)
        return session

    def load(self, model: str | None = None, saes: list[str] | None = None, *, device: str | None = None,
             dtype: str | None = None, trust_remote_code: bool = False, refresh: bool = False,
             progress: ProgressSink | None = None, cancel: threading.Event | None = None) -> None:
        """Load a model and SAEs; with no model, the bundled demo (and `saes`, if any, beside its own).

        Hub models and registry SAEs come from the HF cache: what is complete there loads without a request;
        what is missing is fetched first, every repo asked about before any bytes (see `download`).
        refresh: ask the Hub for newer files even when the cache is complete. progress: where downloads report
        (default: lines on stderr); cancel: set it to stop a download (DownloadCancelled)."""
        from saetui import demo, hub
        from saetui.downloads import hub_targets
        from saetui.models.model import ModelWithHooks, quiet_hf_output
        from saetui.sae.manager import SAEManager

        if model is None and dtype not in (None, "auto", "float32"):
            raise InputError(f"the bundled demo runs in float32 only; dtype {dtype} needs another model")
        saes = [saes] if isinstance(saes, str) else saes  # one spec as a string: not its letters, one by one
        if saes:
            from saetui.sae.manager import unique_specs

            saes = unique_specs(saes)
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
        from saetui import downloads, hub

        saes = [saes] if isinstance(saes, str) else saes  # one spec as a string, not its letters
        with hub.reporting(progress, cancel):
            return downloads.download(model, saes, refresh=refresh)

    def attach(self, model: ModelWithHooks, saes: SAEManager) -> None:
        """Use an already-loaded model and SAEs (scripts, the CLI), with their feature indexes."""
        with self.lock:
            if self.model is not None and self.model is not model:
                from saetui.steering.static import forget

                forget(self.model)  # its decoders (KV caches, CUDA graphs) go with it
            self.model, self.saes = model, saes
            self.specs, self.last, self.indexes = [], None, {}
            self.labels.clear()
            for loaded in saes:
                self._attach_index(loaded)

    def _attach_index(self, loaded: LoadedSAE, index: FeatureIndex | None = None) -> None:
        """Use `index`, else the SAE's feature index where the session looks for one (the cache folder, the demo's):
        labels, densities, examples, max activations."""
        from saetui import demo
        from saetui.sae.index import default_index_dir, find_index
        from saetui.sae.search import labels_of

        model = self._require_model()
        if index is None:
            index = find_index(model, loaded, [default_index_dir(model, loaded), *demo.index_places()])
        if index is None:
            return
        self.indexes[loaded.name] = index
        loaded.max_activations = index.max_activation()
        self.labels.replace(loaded.name, labels_of(index))  # a corrupt labels file is set aside with a notice

    def load_sae(self, spec: str, *, progress: ProgressSink | None = None,
                 cancel: threading.Event | None = None) -> LoadedSAE:
        """Add an SAE to the loaded model (a registry SAE is fetched first where the HF cache lacks it; see `load`)."""
        from saetui import hub
        from saetui.downloads import hub_targets

        self._require_model()
        if self.saes is None:
            raise InputError("no model loaded yet")
        check_text(spec, "SAE spec")
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

    @property
    def sae_names(self) -> list[str]:
        """The loaded SAEs' names, in the order they were loaded."""
        return [s.name for s in self.saes or []]

    def chosen_sae(self, named: Sequence[str] | None) -> LoadedSAE:
        """The SAE a one-SAE command works on (index, labels): the last of `named` (SAE specs or a demo SAE's name)
        when it is loaded by that name, else the last loaded; with none named, the first loaded (the demo's)."""
        manager = self._require_saes()
        named = [named] if isinstance(named, str) else named  # one name as a string, not its letters
        if not named:
            return list(manager)[0]
        by_name = [s for s in manager if s.name == named[-1]]
        return by_name[0] if by_name else list(manager)[-1]

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
    def analyze(self, prompt: str | None, top_k: int = AnalysisSettings.top_k, *, include_special: bool = False,
                predictions: int = AnalysisSettings.predictions, chat: Chat = False, system: str | None = None,
                include_template: bool = False, span: tuple[int, int] | None = None,
                span_pool: str = AnalysisSettings.span_pool) -> AnalysisResult:
        """Per-token top-k features of every loaded SAE (see SAEAnalyzer.analyze); kept as `self.last`.

        chat/system: see `chat_prompt`; a chat prompt ends with the template's reply opener (unless the
        conversation ends with the assistant's turn), so the position that predicts the reply is analyzed.
        Its template tokens are marked (TokenInfo.role/template) and left out of the summaries unless
        include_template. span=(START, END): the result also carries `span`, every SAE's features ranked over
        those tokens (see `span`), computed first so a span beyond the prompt fails before any analysis."""
        from saetui.sae.analyzer import SAEAnalyzer

        ranked = None
        if span is not None:
            ranked = self.span(prompt, *span, pool=span_pool, top_k=top_k, include_special=include_special,
                               chat=chat, system=system)
        text = self.chat_prompt(prompt, chat, system)
        with self.lock:
            analyzer = SAEAnalyzer(self._require_model(), self._require_saes())
            start = time.perf_counter()
            result = analyzer.analyze(text, top_k=top_k, include_special=include_special, predictions=predictions,
                                      include_template=include_template)
            self.last_latency = time.perf_counter() - start
            result.span = ranked
            self.last = result
            return result

    def feature_activations(self, sae: str | None, feature: int) -> list[float]:
        """The feature's exact activation on every token of the last analyzed prompt (one forward)."""
        from saetui.sae.analyzer import SAEAnalyzer

        feature = self._require_saes().get(sae).check_feature(feature)  # -1 read feature 255's values
        if self.last is None:
            return []
        with self.lock:
            model = self._require_model()
            # the very ids analyzed (a chat prompt's are not its text re-tokenized)
            batch = model.batch_from_ids([[t.id for t in self.last.tokens]])
            lat = SAEAnalyzer(model, self._require_saes()).latents(batch, sae)
            return lat[:, feature].tolist()

    def attribute(self, prompt: str | None, position: int | None = None, target: int | str | None = None,
                  versus: int | str | None = None, top_k: int = AttributionSettings.top_k,
                  verify: int = AttributionSettings.verify, *, predictions: int = 0, chat: Chat = False,
                  system: str | None = None) -> AttributionResult:
        """Why this token? The prediction after token `position` (default: the last) attributed to the
        features of every loaded SAE, the top `verify` checked by real ablation (see saetui.sae.attribution).

        target/versus: a token id (int) or a token's text (str, one token); target defaults to the
        model's top prediction there, and with `versus` the target is the logit difference.
        predictions: > 0 also returns the model's top-N next tokens there (`result.predictions`).
        chat/system: see `chat_prompt` (by default the last position is then the reply's first token's).
        """
        from saetui.sae.attribution import attribute

        text = self.chat_prompt(prompt, chat, system)
        with self.lock:
            return attribute(self._require_model(), list(self._require_saes()), text, position=position,
                             target=target, versus=versus, top_k=top_k, verify=verify, predictions=predictions)

    def circuit(self, prompts: str | Sequence[str], target: int | str, versus: int | str | None = None, *,
                settings: CircuitSettings = CircuitSettings()) -> CircuitResult:
        """The feature circuit of every loaded SAE for logit(target) - logit(versus) at the last position (without
        versus log p(target), or logit(target) with settings.metric "logit"), averaged over `prompts` (one text, or
        several of the same token length), checked by ablation (see saetui.sae.circuit). With several prompts, the last `settings.held_out` share
        is held out: the circuit is found on the others and its faithfulness scored on those too."""
        from saetui.sae.circuit import find_circuit

        if not isinstance(settings, CircuitSettings):  # a dict's .split was an AttributeError
            raise InputError(f"settings must be a CircuitSettings (saetui.settings), got {type(settings).__name__}")
        texts = [prompts] if isinstance(prompts, str) else list(prompts)
        for text in texts:
            check_text(text)
        found_on, held_out = settings.split(texts)
        with self.lock:
            return find_circuit(self._require_model(), list(self._require_saes()), found_on, target, versus,
                                settings=settings, held_out=held_out)

    def ablate_circuit(self, result: CircuitResult, nodes: Sequence[Any]) -> float:
        """The measured change of a circuit's metric with `nodes` (saetui.sae.circuit.Node) ablated together, on
        the prompts it was found on: m(ablated) - m(full), by the path that gives each top node its `ablated`."""
        from saetui.sae.circuit import ablate_nodes

        target = result.target if result.target_id is None else result.target_id
        versus = result.versus if result.versus_id is None else result.versus_id
        with self.lock:
            return ablate_nodes(self._require_model(), list(self._require_saes()), result.prompts, target, versus,
                                nodes, full=result.full, kind=result.kind)

    # ------------------------------------------------------------------ features
    def feature_info(self, feature: int, sae: str | None = None, k: int = DetailSettings.examples) -> FeatureInfo:
        """One feature, for the detail view (see saetui.sae.features.describe for where each number comes from)."""
        from saetui.sae.features import describe

        loaded = self._require_saes().get(sae)
        feature = loaded.check_feature(feature)
        model = self._require_model()
        index = self.indexes.get(loaded.name)
        acts = counted = None
        if index is None and self.last is not None:  # no index: the max over the last prompt (one forward)
            acts = self.feature_activations(loaded.name, feature)
            counted = [not (tok.special or tok.template) for tok in self.last.tokens]
        with self.lock:
            return describe(model, loaded, feature, k=k, index=index, label=self.labels.get((loaded.name, feature), ""),
                            prompt_activations=acts, prompt_counted=counted)

    def set_label(self, feature: int, label: str, sae: str | None = None) -> str:
        """Label a feature and save it beside the SAE's index (for the bundled demo, whose index is
        package data, in the user's config folder). Returns where it was written."""
        from saetui.sae.search import save_labels_of

        loaded = self._require_saes().get(sae)
        feature = loaded.check_feature(feature)
        label = check_label(label, feature)
        index = self.indexes.get(loaded.name)
        if index is None:
            raise InputError(f"SAE {loaded.name} has no feature index: build one with `saetui index` to keep labels")
        labels = {f: text for f, text in self.labels.of(loaded.name).items() if f != feature}
        if label.strip():
            labels[feature] = label
        where = save_labels_of(index, labels)  # where labels go is the index's own
        self.labels.replace(loaded.name, labels)  # in memory only once saved
        return str(where)

    def add_labels(self, new: dict[int, str], sae: str | None = None, index_dir: str | None = None) -> dict[str, Any]:
        """Merge labels (e.g. from `saetui.inputs.read_labels`) into an SAE's index: the one at
        `index_dir`, else the one the session found (the demo's go to the user's config folder)."""
        from saetui.sae.index import FeatureIndex
        from saetui.sae.search import labels_of, save_labels_of

        loaded = self._require_saes().get(sae)
        if index_dir is not None:
            index = FeatureIndex.load(index_dir, self._require_model(), loaded)  # an index for this very SAE
        elif (index := self.indexes.get(loaded.name)) is None:
            raise InputError(f"SAE {loaded.name} has no feature index: build one with `saetui index` first, or give --index")
        if not isinstance(new, dict):
            raise InputError(f"labels are a dict of feature -> label text, got {type(new).__name__}")
        numbers = {f: as_int(f) for f in new}
        out_of_range = [f for f, n in numbers.items() if n is None or not 0 <= n < loaded.d_sae]
        if out_of_range:
            raise InputError(f"labels for features outside 0..{loaded.d_sae - 1} (whole numbers): {out_of_range[:5]}")
        new = {numbers[f]: check_label(text, f) for f, text in new.items()}  # checked whole before anything is saved
        merged = {**labels_of(index), **new}
        folder = save_labels_of(index, merged)
        if index_dir is None:
            self.labels.replace(loaded.name, merged)
        return {"index": str(index.root), "labels_dir": str(folder), "imported": len(new), "labels": len(merged)}

    def build_index(self, corpus: str | Sequence[str], out: str | None = None, sae: str | None = None, *,
                    field: str = "text", settings: Any = None, resume: bool = False) -> Any:
        """Build (or resume) the feature index of SAE `sae` (default: the last loaded) from a .txt/.jsonl
        corpus into `out` (default: the cache folder the session looks in), and use it. Returns the FeatureIndex."""
        from saetui.sae.index import build_index, default_index_dir

        model = self._require_model()
        loaded = self._require_saes().get(sae) if sae is not None else list(self._require_saes())[-1]
        folder = out or default_index_dir(model, loaded)
        with self.lock:
            index = build_index(model, loaded, corpus, folder, field=field, settings=settings, resume=resume)
            self._attach_index(loaded, index)  # the one just built, wherever `out` put it
        return index

    last_corpus: str | None = None  # the corpus file the app's health screen evaluated last
    last_health: Any = None  # and its EvalResult (a run takes minutes on a real model: shown again on F8)

    def evals(self, corpus: str | list[str], saes: list[str] | None = None, *, field: str = "text",
              max_tokens: int | None = None, batch_size: int | None = None, progress: bool = True) -> Any:
        """SAE health (saetui.sae.evals) of the named SAEs (default: every loaded one) over a .txt/.jsonl corpus or a
        list of texts: reconstruction, sparsity, and the model's loss with each SAE spliced in. Returns an EvalResult."""
        from saetui.sae.evals import EvalSettings, evaluate

        model = self._require_model()
        manager = self._require_saes()
        saes = [saes] if isinstance(saes, str) else saes  # one name as a string
        chosen = [manager.get(name) for name in saes] if saes else list(manager)
        settings = EvalSettings(max_tokens=max_tokens, **({"batch_size": batch_size} if batch_size is not None else {}))
        with self.lock:
            return evaluate(model, chosen, corpus, field=field, settings=settings, progress=progress)

    @staticmethod
    def registry(model: str | None = None) -> list[RegistryEntry]:
        """The sae-lens registry of pretrained SAEs (offline), those for `model` only when given."""
        from saetui.sae.pretrained import list_registry

        return list_registry(model)

    # ------------------------------------------------------------------ chat (instruct models)
    def render_chat(self, messages: Sequence[dict], *, add_generation_prompt: bool | None = None) -> ChatTokens:
        """A whole conversation (a list of {"role", "content"}) as the model's chat template makes it: `.ids`
        (== tokenizer.apply_chat_template(messages, tokenize=True)), `.roles`, `.text`. To continue one after a
        generation, append {"role": "assistant", "content": reply} and pass the list as `chat=` with the next prompt."""
        return self._require_model().render_chat(messages, add_generation_prompt=add_generation_prompt)

    def check_chat_template(self) -> None:
        """A one-line InputError when the loaded model has no chat template (chat mode needs an instruct model)."""
        model = self.model
        if model is not None and not getattr(model.tokenizer, "chat_template", None):
            raise InputError(f"{model.name} has no chat template: chat mode needs an instruct model")
