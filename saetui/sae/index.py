"""FeatureIndex: what each SAE feature fires on, built locally from a corpus (no Neuronpedia needed).

Building streams the corpus through the model (the forward stops at the SAE's layer), encodes every
real, non-special token (on CPU in cache-sized pieces), and keeps, on the model's device:

    top_vals, top_pos  (d_sae, K)      running top-K activations and the corpus positions they came from;
                                        only a batch's non-zero latents above the K-th best are merged in
    counts             (d_sae,)        how many tokens the feature fired on (activation > 0)
    hist               (d_sae, B + 1)  bin 0: tokens where it did not fire; bins 1..B: log-spaced activations
    tokens, doc_start                  the indexed token ids, for context windows around top examples

Documents per forward: `--batch-size`, or sized to the free GPU memory (16 on CPU); a batch that runs
out of memory is retried in halves, with one warning, and nothing is lost.

Top-K merging and the counts are associative, so a build can stop after any batch and resume from
its checkpoint to the same result. Files: `index.safetensors` + `manifest.json`, each written atomically
(`saetui.files`); the weights carry a random nonce in their safetensors metadata and the manifest names
it, so a pair from two different saves (a kill between the two writes) is recognised and never used:
`load` refuses it and `--resume` sets both files aside and starts over.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Sequence

from saetui.activations.cache import read_dataset
from saetui.errors import InputError
from saetui.settings import IndexSettings  # noqa: F401 - defaults live in saetui.settings
from saetui.files import atomic_write, check_writable, fingerprint, remove_temporaries, set_aside, write_json_atomic

if TYPE_CHECKING:
    import torch

    from saetui.models.model import ModelWithHooks
    from saetui.sae.manager import LoadedSAE

INDEX_FILE, MANIFEST_FILE = "index.safetensors", "manifest.json"
_VERSION = 1


@dataclass(frozen=True)
class Example:
    """One top example of a feature: a context window with the feature's activation on each of its tokens."""

    value: float  # the feature's activation on the example's firing token, as the index recorded it
    tokens: list[str]  # the window's token texts (special tokens left out: the index never counts them)
    acts: list[float]  # the feature's activation on every token of `tokens`, recomputed with the document's prefix
    at: int  # the index in `tokens` of the firing token
    ids: list[int] = field(default_factory=list)  # the window's token ids (for byte-level display)


def default_index_dir(model: ModelWithHooks, loaded: LoadedSAE) -> Path:
    """Where `saetui index` writes by default: the platformdirs cache, keyed by model and SAE."""
    from saetui.paths import cache_dir

    key = hashlib.sha256(f"{model.name}\0{loaded.spec}".encode()).hexdigest()[:16]
    return cache_dir(create=False) / "index" / key


@dataclass(frozen=True)
class IndexPlace:
    """A folder that may hold an index, and where the user's labels for it are saved (None: beside it).

    A read-only index (one shipped as package data) names a writable `labels_dir` elsewhere."""

    root: Path
    labels_dir: Path | None = None


def find_index(model: ModelWithHooks, loaded: LoadedSAE,
               roots: Sequence[str | Path | IndexPlace] | None = None) -> FeatureIndex | None:
    """The first usable index for this model and SAE among `roots` (default: the one `saetui index`
    writes by default), else None. Unusable ones are skipped. The index's `labels_dir` comes from its place."""
    places = [r if isinstance(r, IndexPlace) else IndexPlace(Path(r))
              for r in (roots if roots is not None else [default_index_dir(model, loaded)])]
    for place in places:
        try:
            if not (place.root / MANIFEST_FILE).is_file():
                continue
            index = FeatureIndex.load(place.root, model, loaded)
        except (InputError, OSError):
            continue
        index.labels_dir = place.labels_dir or index.root
        return index
    return None


def index_identity(model: ModelWithHooks, loaded: LoadedSAE) -> dict[str, Any]:
    """What an index belongs to; loading refuses an index whose identity differs."""
    return {"model": model.name, "sae": loaded.spec, "hook": loaded.hook_name, "d_sae": loaded.d_sae}


class FeatureIndex:
    """A built index: top examples, frequencies and activation histograms per feature."""

    def __init__(self, root: Path, manifest: dict[str, Any], tensors: dict[str, torch.Tensor]) -> None:
        self.root, self.manifest = root, manifest
        self.labels_dir = root  # where labels for this index are saved; see IndexPlace
        self.top_vals, self.top_pos = tensors["top_vals"], tensors["top_pos"]
        self.counts, self.hist, self.edges = tensors["counts"], tensors["hist"], tensors["edges"]
        self.tokens, self.doc_start = tensors["tokens"], tensors["doc_start"]
        self._top: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None

    @property
    def n_tokens(self) -> int:
        return int(self.manifest["n_tokens"])

    def summary(self) -> dict[str, Any]:
        """Where the index is, what it belongs to, how many tokens it saw and how many features fired (`saetui index`)."""
        return {"index": str(self.root), "tokens": self.n_tokens, "sae": self.manifest["sae"],
                "model": self.manifest["model"], "features_firing": int((self.counts > 0).sum())}

    def top_positions(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(positions (d_sae, K) with -1 as 0, which top examples are real (fired, > 0), their number per
        feature), computed once per index: search looks them up on every query."""
        if self._top is None:
            valid = (self.top_pos >= 0) & (self.top_vals > 0)
            self._top = (self.top_pos.clamp(min=0).long(), valid, valid.sum(1))
        return self._top

    def density(self, feature: int) -> float:
        return float(self.counts[feature]) / max(1, self.n_tokens)

    def max_activation(self) -> torch.Tensor:
        """(d_sae,) the largest activation seen per feature (0 for features that never fired)."""
        return self.top_vals[:, 0].clamp(min=0)

    def examples(self, feature: int, ctx: int | None = None) -> list[tuple[float, list[int], int]]:
        """Top examples: (activation, token ids of the window, index of the firing token in it).

        ctx: window length in tokens (default: the one the index was built with)."""
        return [(val, self.tokens[start:end].tolist(), pos - start) for val, pos, _, start, end in self._windows(feature, ctx)]

    def _windows(self, feature: int, ctx: int | None) -> list[tuple[float, int, int, int, int]]:
        """(activation, corpus position, its document's first position, window start, window end) per top example."""
        import torch

        ctx = ctx or int(self.manifest.get("settings", {}).get("ctx", IndexSettings.ctx))
        out = []
        for val, pos in zip(self.top_vals[feature].tolist(), self.top_pos[feature].tolist()):
            if val <= 0 or pos < 0:
                continue
            doc = int(torch.searchsorted(self.doc_start, torch.tensor(pos), right=True)) - 1
            start = max(int(self.doc_start[doc]), pos - ctx // 2)
            end_doc = int(self.doc_start[doc + 1]) if doc + 1 < len(self.doc_start) else len(self.tokens)
            end = min(end_doc, pos + ctx // 2 + 1)
            out.append((val, pos, int(self.doc_start[doc]), start, end))
        return out

    def histogram(self, feature: int) -> list[tuple[float, float, int]]:
        """(lo, hi, count) bins of the feature's nonzero activations (the counts add up to `counts[feature]`),
        empty bins at both ends left out. The first bin starts at 0; the last open-ended bin ends at the max."""
        edges = [0.0, *self.edges.tolist()]
        counts = self.hist[feature, 1:].tolist()
        top = float(self.top_vals[feature, 0])
        bins = []
        for b, count in enumerate(counts):
            hi = edges[b + 1] if b + 1 < len(edges) else max(top, edges[-1])
            bins.append((edges[b], hi, int(count)))
        nonzero = [i for i, (_, _, c) in enumerate(bins) if c]
        return bins[nonzero[0] : nonzero[-1] + 1] if nonzero else []

    def exact_examples(self, model: ModelWithHooks, loaded: LoadedSAE, feature: int, k: int | None = None,
                       ctx: int | None = None) -> list[Example]:
        """The top `k` examples with the feature's activation on every window token, computed in one batched
        forward over each window's document prefix (from its start, BOS included, to the window's end), so
        every activation is the one the index saw; special tokens are dropped from the windows."""
        import torch

        from saetui.activations.collector import ActivationCollector

        windows = self._windows(feature, ctx)[:k]
        if not windows:
            return []
        batch = model.batch_from_ids([self.tokens[first:end].tolist() for _, _, first, _, end in windows])
        captured, _ = ActivationCollector(model).run(batch, [loaded.hook_name])
        real = batch.attention_mask.bool()
        with torch.inference_mode():  # only this feature's column (the full encode where the SAE kind needs it)
            col = loaded.kind.encode_columns(loaded.sae, captured[loaded.hook_name][real], [feature])[:, 0]
            lat = torch.zeros(real.shape, dtype=torch.float32)
            lat[real.cpu()] = col.float().cpu()
        out = []
        for row, (val, pos, first, start, end) in enumerate(windows):
            keep = [p for p in range(start, end) if p == pos or not model.is_special(int(self.tokens[p]))]
            ids = [int(self.tokens[p]) for p in keep]
            out.append(Example(val, model.token_texts(ids), [float(lat[row, p - first]) for p in keep], keep.index(pos), ids))
        return out

    @classmethod
    def load(cls, root: str | Path, model: ModelWithHooks | None = None, loaded: LoadedSAE | None = None) -> FeatureIndex:
        """Read an index; with model and SAE given, refuse one built for others (with the reason)."""
        root = Path(root)
        manifest, tensors = _read(root)
        if not manifest.get("complete"):
            raise InputError(f"feature index at {root} is unfinished: run `saetui index ... --resume`")
        if model is not None and loaded is not None:
            want = index_identity(model, loaded)
            have = {k: manifest.get(k) for k in want}
            if have != want:
                diff = ", ".join(f"{k}: index has {have[k]!r}, loaded {want[k]!r}" for k in want if have[k] != want[k])
                raise InputError(f"feature index at {root} was built for another model or SAE ({diff})")
        return cls(root, manifest, tensors)


_TENSORS = ("top_vals", "top_pos", "counts", "hist", "edges", "tokens", "doc_start")


def _read(root: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """The manifest and tensors of an index folder, checked to belong together; InputError if not."""
    from safetensors import SafetensorError, safe_open

    try:
        manifest = json.loads((root / MANIFEST_FILE).read_bytes())
        with safe_open(str(root / INDEX_FILE), framework="pt") as fh:
            meta = fh.metadata() or {}
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}
    except FileNotFoundError as exc:
        raise InputError(f"no feature index at {root}") from exc
    except (ValueError, SafetensorError, OSError, RecursionError) as exc:
        raise InputError(f"corrupt feature index at {root}: {type(exc).__name__}: {exc}") from exc
    if (not isinstance(manifest, dict) or not isinstance(manifest.get("n_tokens"), int)
            or not isinstance(manifest.get("settings", {}), dict)):
        raise InputError(f"corrupt feature index at {root}: {MANIFEST_FILE} is not an index manifest")
    if "weights_nonce" in manifest and meta.get("saetui_nonce") != manifest["weights_nonce"]:
        raise InputError(f"corrupt feature index at {root}: {INDEX_FILE} does not belong to {MANIFEST_FILE} "
                         "(a save was interrupted between the two)")
    missing = [k for k in _TENSORS if k not in tensors]
    if missing:
        raise InputError(f"corrupt feature index at {root}: {INDEX_FILE} lacks {', '.join(missing)}")
    return manifest, tensors


class IndexBuilder:
    """Running per-feature statistics; `update` takes one batch of latents at a time.

    Only the batch's non-zero latents are touched (a trained SAE fires on ~1% of its features, so they are
    ~100x fewer than the dense (N, d_sae) block): one `nonzero`, then the histogram and the top-K merge work
    on those entries. Nothing in `update` waits for the device beyond that `nonzero` (its size), so on a
    GPU the batches stay queued. `counts` and the "did not fire" bin are derived from the histogram.
    """

    def __init__(self, d_sae: int, settings: IndexSettings, device: Any) -> None:
        import torch

        self.s = settings
        k = settings.top_k
        self.top_vals = torch.full((d_sae, k), float("-inf"), device=device)
        self.top_pos = torch.full((d_sae, k), -1, dtype=torch.long, device=device)
        self.hist = torch.zeros(d_sae, settings.n_bins + 1, dtype=torch.long, device=device)
        self.edges = torch.logspace(torch.log10(torch.tensor(settings.lo)), torch.log10(torch.tensor(settings.hi)),
                                    settings.n_bins - 1, device=device)
        self.n_tokens = 0

    @property
    def counts(self) -> torch.Tensor:
        """(d_sae,) tokens each feature fired on: the sum of its histogram's firing bins."""
        return self.hist[:, 1:].sum(1)

    def update(self, lat: torch.Tensor, pos: torch.Tensor) -> None:
        """lat: (N, d_sae) activations of N counted tokens; pos: (N,) their corpus positions."""
        self.update_pieces([(lat, pos)])

    def update_pieces(self, pieces: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> None:
        """One batch given as pieces (lat (n_i, d_sae), pos (n_i,)), taken one at a time: a generator can
        encode each piece just before, so its latents are still in the CPU's cache when they are scanned."""
        import torch

        hist_at, fired_at, cand_feats, cand_vals, cand_pos = [], [], [], [], []
        n_total, d = 0, self.hist.shape[0]
        for lat, pos in pieces:
            flat = lat.reshape(-1).nonzero().squeeze(1)  # (nnz,) row-major indices of the non-zero latents
            vals = lat.reshape(-1)[flat].float()
            feats = flat % d
            fired = vals > 0  # an SAE without a ReLU may have negative latents: those did not fire
            # Histogram: bins 1..B by log-spaced edges (bin 0, "did not fire", is filled in by `tensors`).
            hist_at.append(feats * self.hist.shape[1] + torch.bucketize(vals, self.edges) + 1)
            fired_at.append(fired.long())
            # Only entries above their feature's K-th best so far can enter its top-K (after the first
            # batches, few of them).
            new = (fired & (vals > self.top_vals[feats, -1])).nonzero().squeeze(1)  # one lookup for the three
            cand_feats.append(feats[new])
            cand_vals.append(vals[new])
            cand_pos.append(pos[flat[new] // d])
            n_total += lat.shape[0]
        if n_total == 0:
            return
        # Running top-K: sort the candidates by feature, then by value descending, in one sort of an
        # int64 key (a positive float's bits order like the float), rank each within its feature, lay
        # the K best per feature out as a (d_sae, K) block and merge that with what we had.
        feats, vals, pos = torch.cat(cand_feats), torch.cat(cand_vals), torch.cat(cand_pos)
        order = (feats * 2**31 + (2**31 - 1 - vals.view(torch.int32).long())).argsort()
        f_sorted = feats[order]
        rank = torch.arange(len(order), device=feats.device) - torch.searchsorted(f_sorted, f_sorted)
        k = self.s.top_k
        col = rank.clamp(max=k)  # column k collects everything past the K-th and is dropped
        new_vals = torch.full((d, k + 1), float("-inf"), device=feats.device)
        new_pos = torch.full((d, k + 1), -1, dtype=torch.long, device=feats.device)
        new_vals[f_sorted, col] = vals[order]
        new_pos[f_sorted, col] = pos[order]
        merged_vals = torch.cat([self.top_vals, new_vals[:, :k]], dim=1)
        merged_pos = torch.cat([self.top_pos, new_pos[:, :k]], dim=1)
        best, idx = merged_vals.topk(k, dim=1)
        # The state changes only now, after every allocation: a batch that runs out of memory
        # part-way leaves the index as it was, so it can be retried in smaller pieces.
        self.hist.view(-1).index_add_(0, torch.cat(hist_at), torch.cat(fired_at))
        self.top_vals, self.top_pos = best, merged_pos.gather(1, idx)
        self.n_tokens += n_total

    def tensors(self) -> dict[str, torch.Tensor]:
        counts = self.counts
        self.hist[:, 0] = self.n_tokens - counts
        return {"top_vals": self.top_vals, "top_pos": self.top_pos, "counts": counts, "hist": self.hist,
                "edges": self.edges}


def build_index(
    model: ModelWithHooks,
    loaded: LoadedSAE,
    corpus: str | Path | Sequence[str],
    out: str | Path,
    *,
    field: str = "text",
    settings: IndexSettings | None = None,
    resume: bool = False,
    progress: bool = True,
    checkpoint_every: int = 50,
) -> FeatureIndex:
    """Build (or with `resume`, continue) the index of `loaded` over `corpus` into `out`."""
    import torch
    from tqdm.auto import tqdm

    from saetui.activations.collector import ActivationCollector

    settings = settings or IndexSettings()
    if settings.top_k < 1 or (settings.batch_size is not None and settings.batch_size < 1):
        raise InputError("top-k and batch size must be at least 1")
    texts = read_dataset(corpus, field)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} is a file, not a folder")
    world, rank = _distributed(model)
    if world > 1:
        if resume or settings.max_tokens is not None:
            raise InputError("--resume and --max-tokens are not supported under torchrun; run them in one process")
        progress = progress and rank == 0
    identity = index_identity(model, loaded)
    plan = dict(identity, version=_VERSION, corpus_sha256=fingerprint(texts), settings=settings.__dict__)
    builder = IndexBuilder(loaded.d_sae, settings, loaded.sae.W_dec.device)
    tokens: list[torch.Tensor] = []
    doc_start: list[int] = []
    done = 0
    if rank == 0:
        check_writable(out, "index folder")  # before any work, not after it
    if resume and ((out / MANIFEST_FILE).exists() or (out / INDEX_FILE).exists()):
        done, tokens, doc_start = _restore(out, plan, builder)
    elif (out / MANIFEST_FILE).is_file() and not resume:
        raise InputError(f"{out} already holds an index: use --resume to continue it or another --out")
    collector = ActivationCollector(model)
    n_seen = sum(len(t) for t in tokens)
    bs = docs_per_batch(model, loaded, texts, settings, world)
    starts = list(range(done, len(texts), bs))
    if world > 1:
        # Each rank takes a contiguous run of the same batches a single process would run, so every latent
        # comes from the same shapes (bit-identical where its thread count gets the same BLAS kernels, else
        # rounding apart); global positions come from the token counts of the runs before it.
        per = -(-len(starts) // world)  # ceil
        share = [starts[r * per : (r + 1) * per] for r in range(world)]
        first = share[rank][0] if share[rank] else len(texts)
        n_seen = sum(sum(model.tokenize(texts[b : b + bs]).lengths) for b in starts if b < first)
        starts = share[rank]
    bar = tqdm(total=len(texts), initial=done, unit="doc", desc="indexing", disable=not progress)
    piece = bs  # documents per forward; halved for good when the device runs out of memory
    batches = 0
    try:
        for b in starts:
            if settings.max_tokens is not None and n_seen >= settings.max_tokens:
                break
            docs = texts[b : b + bs]
            i = 0
            while i < len(docs):
                try:
                    firsts, ids = _index_docs(model, collector, loaded, builder, docs[i : i + piece], n_seen)
                except _out_of_memory() as exc:
                    piece = _fewer_documents(model, piece, exc)
                    continue
                doc_start.extend(firsts)
                tokens.append(ids)
                n_seen += len(ids)
                i += piece
            done = min(len(texts), b + bs)
            bar.update(len(docs))
            bar.set_postfix(tokens=n_seen)
            batches += 1
            if world == 1 and batches % checkpoint_every == 0:
                _save(out, plan, builder, tokens, doc_start, done, complete=False)
    finally:
        bar.close()
    if world > 1:
        tokens, doc_start = _merge_ranks(builder, tokens, doc_start)
        done = len(texts)
    # A Ctrl+C above leaves the last checkpoint; this line runs only when the corpus is done.
    if rank == 0:
        _save(out, plan, builder, tokens, doc_start, done, complete=True)
    if world > 1:
        import torch.distributed as dist

        dist.barrier()
    return FeatureIndex.load(out, model, loaded)


def _index_docs(model: ModelWithHooks, collector: Any, loaded: LoadedSAE, builder: IndexBuilder, docs: Sequence[str],
                n_seen: int) -> tuple[list[int], torch.Tensor]:
    """Run `docs` (whose first token is corpus position `n_seen`) into `builder`: (their documents' first
    positions, their token ids (int32, still on the device: no copy back per batch)). The builder changes
    last, so a batch that runs out of memory leaves everything as it was."""
    import torch

    batch = model.tokenize(docs)
    captured, _ = collector.run(batch, [loaded.hook_name])
    # Corpus positions: row i's tokens follow the real tokens of the rows before it (right padding).
    first = torch.tensor([0, *batch.lengths[:-1]]).cumsum(0) + n_seen  # (B,)
    dev = batch.input_ids.device
    grid = first.to(dev)[:, None] + torch.arange(batch.input_ids.shape[1], device=dev)  # (B, T)
    counted = (~batch.special_mask).nonzero(as_tuple=True)  # the one lookup both gathers share
    ids = torch.cat([row[:n] for row, n in zip(batch.input_ids, batch.lengths)]).to(torch.int32)
    builder.update_pieces(_encoded(loaded, captured[loaded.hook_name][counted], grid[counted]))
    return first.tolist(), ids


def _out_of_memory() -> type[BaseException]:
    import torch

    return torch.OutOfMemoryError


def _fewer_documents(model: ModelWithHooks, piece: int, exc: BaseException) -> int:
    """After running out of memory with `piece` documents per forward: half as many from now on (one
    warning), or a one-line error when a single document does not fit."""
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    if piece == 1:
        raise InputError(f"out of {model.device.type.upper()} memory indexing a single document with {model.name}: "
                         "use shorter documents, a smaller --dtype or another device") from exc
    warnings.warn(f"out of {model.device.type.upper()} memory with {piece} documents per forward: "
                  f"going on with {piece // 2}", stacklevel=2)
    return piece // 2


def docs_per_batch(model: ModelWithHooks, loaded: LoadedSAE, texts: Sequence[str], settings: IndexSettings,
                   world: int = 1) -> int:
    """Documents per forward: `settings.batch_size`, or when that is None, IndexSettings.CPU_BATCH_SIZE on CPU and on a GPU the power
    of two whose activations (estimated per token from the model's and SAE's widths, for the longest of the
    first 64 documents) fill about 40% of the free memory, at most 512. Under torchrun every rank takes the
    smallest rank's number, so they agree on the batches. Too big an estimate costs one halving (see
    `_fewer_documents`)."""
    import torch

    if settings.batch_size is not None:
        return settings.batch_size
    if model.device.type != "cuda":
        return IndexSettings.CPU_BATCH_SIZE
    free, _ = torch.cuda.mem_get_info(model.device)
    tokens = max(len(r) for r in model.tokenizer(list(texts[:64]))["input_ids"]) if texts else 1
    docs = torch.tensor([estimate_docs(model, loaded.d_sae, tokens, free)], device=model.device)
    if world > 1:
        import torch.distributed as dist

        dist.all_reduce(docs, op=dist.ReduceOp.MIN)
    return int(docs)


def estimate_docs(model: ModelWithHooks, d_sae: int, tokens: int, free_bytes: int) -> int:
    """The power of two (1..512) of `tokens`-token documents whose forward to the SAE's layer plus encode
    fit in 40% of `free_bytes`: per token, about 12 residual-width and 3 MLP-width activations and 4 SAE-width
    ones in the model's dtype, plus the attention scores (fp32, per head, over the document)."""
    cfg = model.config
    d = model.d_model
    mlp = getattr(cfg, "intermediate_size", None) or getattr(cfg, "n_inner", None) or getattr(cfg, "ffn_dim", None) or 4 * d
    heads = getattr(cfg, "num_attention_heads", None) or getattr(cfg, "n_head", None) or 1
    per_token = model.dtype.itemsize * (12 * d + 3 * mlp + 4 * d_sae) + 4 * heads * tokens
    docs = int(0.4 * free_bytes // (per_token * max(1, tokens)))
    return 1 << min(9, max(0, docs.bit_length() - 1))


def piece_rows(d_sae: int, device: Any, n: int) -> int:
    """How many of a batch's `n` tokens to encode at a time: on CPU, pieces of about 2**20 latents (4 MiB
    in fp32) that stay in cache while the index scans them (1.5x faster than one batch-wide encode of a
    4,096-wide SAE on 2 cores); on a GPU the whole batch at once."""
    import torch

    return max(1, n) if torch.device(device).type == "cuda" else max(1, 2**20 // d_sae)


def _encoded(loaded: LoadedSAE, acts: torch.Tensor, pos: torch.Tensor) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(latents, positions) of `acts` (N, d_in) in pieces of `piece_rows` tokens, each encoded when asked for."""
    import torch

    rows = piece_rows(loaded.d_sae, acts.device, len(acts))
    for i in range(0, len(acts), rows):
        with torch.inference_mode():
            lat = loaded.sae.encode(acts[i : i + rows])
        yield lat, pos[i : i + rows].to(lat.device)


def _distributed(model: ModelWithHooks) -> tuple[int, int]:
    """(world size, rank) under torchrun (gloo on CPU, nccl on GPUs), else (1, 0)."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return 1, 0
    import torch
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("nccl" if model.device.type == "cuda" and torch.cuda.is_available() else "gloo")
    return dist.get_world_size(), dist.get_rank()


def _merge_ranks(builder: IndexBuilder, tokens: list, doc_start: list[int]) -> tuple[list, list[int]]:
    """Combine every rank's statistics into `builder` (all ranks end with the same result): counts and
    histograms add up, top-K lists are merged, tokens and document starts are concatenated in rank order."""
    import torch
    import torch.distributed as dist

    dist.all_reduce(builder.hist)  # its "did not fire" column is recomputed from n_tokens when saved
    n = torch.tensor([builder.n_tokens], device=builder.hist.device)
    dist.all_reduce(n)
    builder.n_tokens = int(n)
    world = dist.get_world_size()
    vals = [torch.empty_like(builder.top_vals) for _ in range(world)]
    pos = [torch.empty_like(builder.top_pos) for _ in range(world)]
    dist.all_gather(vals, builder.top_vals)
    dist.all_gather(pos, builder.top_pos)
    best, order = torch.cat(vals, dim=1).topk(builder.s.top_k, dim=1)
    builder.top_vals, builder.top_pos = best, torch.cat(pos, dim=1).gather(1, order)
    gathered: list = [None] * world
    dist.all_gather_object(gathered, (torch.cat([t.cpu() for t in tokens]) if tokens else torch.zeros(0, dtype=torch.int32), doc_start))
    return [g[0] for g in gathered], [d for g in gathered for d in g[1]]


def _save(out: Path, plan: dict, builder: IndexBuilder, tokens: list, doc_start: list[int], done: int, complete: bool) -> None:
    """Weights first, then the manifest naming their nonce: each write is atomic, and a kill between the two
    leaves a pair that `_read` recognises as not belonging together."""
    import torch
    from safetensors.torch import save

    remove_temporaries(out)
    tensors = {k: v.detach().cpu().contiguous() for k, v in builder.tensors().items()}
    tensors["tokens"] = torch.cat([t.cpu() for t in tokens]) if tokens else torch.zeros(0, dtype=torch.int32)
    tensors["doc_start"] = torch.tensor(doc_start, dtype=torch.long)
    nonce = secrets.token_hex(8)
    atomic_write(out / INDEX_FILE, save(tensors, metadata={"saetui_nonce": nonce}))
    write_json_atomic(out / MANIFEST_FILE, dict(plan, n_tokens=builder.n_tokens, docs_done=done, complete=complete,
                                                weights_nonce=nonce))


def _restore(out: Path, plan: dict, builder: IndexBuilder) -> tuple[int, list, list[int]]:
    """Continue from the checkpoint in `out`; a damaged one is set aside (with a notice) and the build starts over."""
    try:
        manifest, t = _read(out)
        if "weights_nonce" not in manifest:
            raise InputError(f"corrupt feature index at {out}: {MANIFEST_FILE} names no weights")
        done = manifest["docs_done"]
        if not isinstance(done, int) or isinstance(done, bool) or done < 0:
            raise InputError(f"corrupt feature index at {out}: bad docs_done")
    except (InputError, KeyError) as exc:
        for name in (MANIFEST_FILE, INDEX_FILE):
            if (out / name).is_file():
                set_aside(out / name, f"is damaged ({exc}); starting the index over")
        return 0, [], []
    if {k: manifest.get(k) for k in plan} != plan:
        raise InputError(f"index at {out} was started with another model, SAE, corpus or settings: use another --out")
    dev = builder.top_vals.device
    builder.top_vals, builder.top_pos = t["top_vals"].to(dev), t["top_pos"].to(dev)
    builder.hist = t["hist"].to(dev)
    builder.n_tokens = int(manifest["n_tokens"])
    return done, [t["tokens"]], t["doc_start"].tolist()
