"""A feature index on disk and in memory: `FeatureIndex` (top examples, densities, histograms per feature, read
back from `index.safetensors` + `manifest.json`), where indexes live (`default_index_dir`, `find_index`) and the
checkpoint a build saves and resumes from (`save`, `restore`).

Both files are written atomically (`saetui.files`); the weights carry a random nonce in their safetensors
metadata and the manifest names it, so a pair from two different saves (a kill between the two writes) is
recognised and never used: `load` refuses it and `--resume` sets both files aside and starts over.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from saetui.errors import InputError, one_line
from saetui.files import atomic_write, notice, remove_temporaries, set_aside, write_json_atomic
from saetui.settings import IndexSettings

if TYPE_CHECKING:
    import torch

    from saetui.models.model import ModelWithHooks
    from saetui.sae.index.stats import IndexBuilder
    from saetui.sae.manager import LoadedSAE

INDEX_FILE, MANIFEST_FILE = "index.safetensors", "manifest.json"
VERSION = 1


@dataclass(frozen=True)
class Example:
    """One top example of a feature: a context window with the feature's activation on each of its tokens."""

    value: float  # the feature's activation on the example's firing token, as the index recorded it
    tokens: list[str]  # the window's token texts (special tokens left out: the index never counts them)
    acts: list[float]  # the feature's activation on every token of `tokens`, recomputed with the document's prefix
    at: int  # the index in `tokens` of the firing token
    ids: list[int] = field(default_factory=list)  # the window's token ids (for byte-level display)


def default_index_dir(model: ModelWithHooks, loaded: LoadedSAE) -> Path:
    """Where `saetui index` writes by default: the platformdirs cache, keyed by model and SAE (`_place_key`)."""
    from saetui.paths import cache_dir

    key = hashlib.sha256(f"{_place_key(model.name)}\0{_place_key(loaded.spec)}".encode()).hexdigest()[:16]
    return cache_dir(create=False) / "index" / key


def _place_key(text: str) -> str:
    """A model or SAE as the default index's key names it: a local path resolved (`./saes/l6` typed in two folders is
    two SAEs, and `saes/l6` and its absolute path are one: keyed as typed, one SAE was given the other's index and
    labels), a Hub id or registry spec as it is. An SAE's `@HOOK` stays part of it."""
    path, at, hook = text.partition("@")
    try:
        local = Path(path).expanduser()
        if path and local.exists():
            return f"{local.resolve()}{at}{hook}"
    except OSError:  # a name too long for the file system: not a path
        pass
    return text


@dataclass(frozen=True)
class IndexPlace:
    """A folder that may hold an index, and where the user's labels for it are saved (None: beside it).

    A read-only index (one shipped as package data) names a writable `labels_dir` elsewhere."""

    root: Path
    labels_dir: Path | None = None


def find_index(model: ModelWithHooks, loaded: LoadedSAE,
               roots: Sequence[str | Path | IndexPlace] | None = None) -> FeatureIndex | None:
    """The first usable index for this model and SAE among `roots` (default: the one `saetui index`
    writes by default), else None. A damaged or unfinished one is skipped with a notice naming it and why, another
    model's or SAE's quietly. The index's `labels_dir` comes from its place."""
    places = [r if isinstance(r, IndexPlace) else IndexPlace(Path(r))
              for r in (roots if roots is not None else [default_index_dir(model, loaded)])]
    for place in places:
        try:
            if not (place.root / MANIFEST_FILE).is_file():
                continue
            index = FeatureIndex.load(place.root)  # a damaged or unfinished one raises
        except (InputError, OSError) as exc:  # said, not skipped unseen: search said 'no index or labels' and no more
            notice(f"{one_line(exc)}; not used (`saetui index --resume` rebuilds it there; its labels are kept)")
            continue
        if index.other_than(model, loaded):
            continue  # another model's or SAE's (every place is tried for every SAE: the demo's two, say)
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
        index = cls(root, manifest, tensors)
        if model is not None and loaded is not None and (diff := index.other_than(model, loaded)):
            raise InputError(f"feature index at {root} was built for another model or SAE ({diff})")
        return index

    def other_than(self, model: ModelWithHooks, loaded: LoadedSAE) -> str:
        """How this index's model and SAE differ from these (`sae: index has 'a', loaded 'b'`); "" if they are its."""
        want = index_identity(model, loaded)
        have = {k: self.manifest.get(k) for k in want}
        return ", ".join(f"{k}: index has {have[k]!r}, loaded {want[k]!r}" for k in want if have[k] != want[k])


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


def save(out: Path, plan: dict, builder: IndexBuilder, tokens: list, doc_start: list[int], done: int, complete: bool) -> None:
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


def restore(out: Path, plan: dict, builder: IndexBuilder) -> tuple[int, list, list[int]]:
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
