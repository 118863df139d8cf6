"""ActivationCache: run a dataset through the model and keep its activations on disk, in shards.

Layout of a cache directory:

    manifest.json                    settings, dataset fingerprint, finished shards, `complete`
    shard_00000.tokens.npy           (N,) int32 token ids of the shard's real tokens, prompt after prompt
    shard_00000.offsets.npy          (P+1,) int64 start of each prompt in the shard's token rows
    shard_00000.<hook>.npy           (N, d_model) activations at <hook>, float32 or float16

Only real tokens are stored (no padding). Every file is written atomically (`saetui.files.atomic_write`);
a shard counts as finished only once the manifest lists it, so a build
killed at any point resumes by redoing the one shard in flight. Arrays are read back memory-mapped.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from saetui.errors import InputError
from saetui.files import atomic_write, check_writable, fingerprint, remove_temporaries
from saetui.inputs import read_texts as read_dataset  # the one reader of text inputs: lists, .txt, .jsonl, stdin

if TYPE_CHECKING:
    import numpy as np

    from saetui.models.model import ModelWithHooks

MANIFEST = "manifest.json"
_VERSION = 1


def _safe(hook: str) -> str:
    return hook.replace("/", "_")


class ActivationCache:
    """A directory of activation shards; `build` fills it (resumably), `tokens`/`activations` read it."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser()

    # ------------------------------------------------------------------ reading
    @property
    def manifest(self) -> dict[str, Any]:
        path = self.root / MANIFEST
        if not path.is_file():
            raise InputError(f"no activation cache at {self.root}")
        try:
            data = json.loads(path.read_bytes())
        except (ValueError, RecursionError, OSError) as exc:
            raise InputError(f"corrupt cache manifest {path}: {exc}") from exc
        if not isinstance(data, dict) or not isinstance(data.get("shards"), list) or not isinstance(data.get("hooks"), list):
            raise InputError(f"corrupt cache manifest {path}: not a cache manifest")
        return data

    def tokens(self) -> list[np.ndarray]:
        """Per shard, the (N,) token ids, memory-mapped."""
        return [self._load(f"shard_{s['index']:05d}.tokens.npy") for s in self.manifest["shards"]]

    def offsets(self) -> list[np.ndarray]:
        """Per shard, the (P+1,) start offsets of its prompts."""
        return [self._load(f"shard_{s['index']:05d}.offsets.npy") for s in self.manifest["shards"]]

    def activations(self, hook: str) -> list[np.ndarray]:
        """Per shard, the (N, d_model) activations at `hook`, memory-mapped."""
        if hook not in self.manifest["hooks"]:
            raise InputError(f"cache at {self.root} has no hook {hook!r}; it has {', '.join(self.manifest['hooks'])}")
        return [self._load(f"shard_{s['index']:05d}.{_safe(hook)}.npy") for s in self.manifest["shards"]]

    @property
    def n_tokens(self) -> int:
        return sum(s["n_tokens"] for s in self.manifest["shards"])

    def _load(self, name: str) -> np.ndarray:
        import numpy as np

        return np.load(self.root / name, mmap_mode="r", allow_pickle=False)

    # ------------------------------------------------------------------ building
    def build(
        self,
        model: ModelWithHooks,
        dataset: str | Path | Sequence[str],
        hook_names: str | Sequence[str],
        *,
        field: str = "text",
        batch_size: int = 8,
        prompts_per_shard: int = 64,
        dtype: str = "float32",
        progress: bool = True,
    ) -> ActivationCache:
        """Process `dataset` in batches into shards, skipping shards a previous run finished."""
        import numpy as np
        from tqdm.auto import tqdm

        from saetui.activations.collector import ActivationCollector

        if dtype not in ("float32", "float16"):
            raise InputError(f"cache dtype must be float32 or float16, got {dtype!r}")
        if batch_size < 1 or prompts_per_shard < 1:
            raise InputError("batch size and prompts per shard must be at least 1")
        prompts = read_dataset(dataset, field)
        hooks = list(dict.fromkeys([hook_names] if isinstance(hook_names, str) else hook_names))  # one, or several
        for hook in hooks:
            model.hook_point(hook)
        settings = {
            "version": _VERSION,
            "model": model.name,
            "hooks": hooks,
            "d_model": model.d_model,
            "dtype": dtype,
            "prompts_per_shard": prompts_per_shard,
            "dataset": {"n_prompts": len(prompts), "sha256": fingerprint(prompts)},
        }
        manifest = self._start(settings)
        done = {s["index"] for s in manifest["shards"]}
        n_shards = (len(prompts) + prompts_per_shard - 1) // prompts_per_shard
        collector = ActivationCollector(model)
        bar = tqdm(total=len(prompts), unit="prompt", desc="caching activations", disable=not progress)
        bar.update(sum(s["prompts"][1] - s["prompts"][0] for s in manifest["shards"]))
        cached = sum(s["n_tokens"] for s in manifest["shards"])  # the bar's running count of tokens (a resumed run's too)
        for index in range(n_shards):
            if index in done:
                continue
            start, end = index * prompts_per_shard, min(len(prompts), (index + 1) * prompts_per_shard)
            tokens: list[np.ndarray] = []
            lengths: list[int] = []
            acts: dict[str, list[np.ndarray]] = {h: [] for h in hooks}
            for b in range(start, end, batch_size):
                batch = model.tokenize(prompts[b : min(end, b + batch_size)])
                captured, _ = collector.run(batch, hooks)
                real = batch.attention_mask.bool()
                tokens.append(batch.input_ids[real].cpu().numpy().astype(np.int32))
                lengths.extend(batch.lengths)
                for h in hooks:
                    acts[h].append(captured[h][real].float().cpu().numpy().astype(dtype))
                bar.update(len(batch))
                cached += int(real.sum())
                bar.set_postfix(tokens=cached)  # all so far, as the index's bar counts them (it showed one batch's)
            ids = np.concatenate(tokens)
            offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
            self._save(f"shard_{index:05d}.tokens.npy", ids)
            self._save(f"shard_{index:05d}.offsets.npy", offsets)
            for h in hooks:
                self._save(f"shard_{index:05d}.{_safe(h)}.npy", np.concatenate(acts[h]))
            manifest["shards"].append({"index": index, "prompts": [start, end], "n_tokens": int(sum(lengths))})
            manifest["shards"].sort(key=lambda s: s["index"])
            self._write_manifest(manifest)
        bar.close()
        manifest["complete"] = True
        self._write_manifest(manifest)
        return self

    def _start(self, settings: dict[str, Any]) -> dict[str, Any]:
        """The manifest to continue from: an existing one with the same settings, or a fresh one."""
        check_writable(self.root, "cache folder")
        remove_temporaries(self.root)
        if (self.root / MANIFEST).is_file():
            old = self.manifest
            if {k: old.get(k) for k in settings} != settings:
                raise InputError(
                    f"cache at {self.root} was built with other settings (model, hooks, dataset or shard size); "
                    "use another directory or delete it"
                )
            return old
        for stale in self.root.glob("shard_*"):  # leftovers of a run killed before its first manifest
            stale.unlink()
        manifest = dict(settings, shards=[], complete=False)
        self._write_manifest(manifest)
        return manifest

    def _save(self, name: str, array: np.ndarray) -> None:
        import numpy as np

        atomic_write(self.root / name, lambda fh: np.save(fh, array, allow_pickle=False))

    def _write_manifest(self, manifest: dict[str, Any]) -> None:
        atomic_write(self.root / MANIFEST, json.dumps(manifest, indent=1))

