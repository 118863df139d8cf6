"""SAEAnalyzer: which SAE features fire on which tokens, and how well each SAE reconstructs them.

For every loaded SAE and every token of a prompt it reports the top-k features (descending,
positive activations only) and the reconstruction quality; per prompt it reports the top-k
features by their maximum over tokens, BOS/pad/special tokens excluded by default. Next-token
predictions need the full forward and are only computed when asked; otherwise the forward stops
after the deepest hooked layer. Results are plain dataclasses with `to_dict()` for JSON.

Reconstruction quality, per token t with activation x_t and reconstruction x̂_t:
    l0      number of features with activation > 0
    fvu     ||x_t - x̂_t||² / ||x_t - x̄||², x̄ = mean activation over the prompt's non-special tokens
            (per prompt: the same sums over all non-special tokens)
    cosine  cos(x_t, x̂_t)
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Sequence

from saetui.activations.collector import ActivationCollector

if TYPE_CHECKING:
    import torch

    from saetui.models.model import ModelWithHooks, TokenBatch
    from saetui.sae.manager import LoadedSAE, SAEManager


@dataclass
class TokenInfo:
    index: int
    id: int
    text: str
    special: bool


@dataclass
class Reconstruction:
    l0: int
    fvu: float | None
    cosine: float | None


@dataclass
class SAEResult:
    """One SAE's view of one prompt.

    per_token[i]:   [(feature, activation), ...] for token i, top-k, descending
    top_features:   [(feature, max_activation, token_index), ...] over non-special tokens, descending
    reconstruction: per token; fvu/mean_l0 summarise the non-special tokens
    """

    name: str
    hook: str
    d_sae: int
    per_token: list[list[tuple[int, float]]]
    top_features: list[tuple[int, float, int]]
    reconstruction: list[Reconstruction]
    fvu: float | None
    mean_l0: float | None


@dataclass
class AnalysisResult:
    prompt: str
    tokens: list[TokenInfo]
    saes: list[SAEResult]
    # predictions[i]: the top next tokens after token i, as (token_id, text, probability)
    predictions: list[list[tuple[int, str, float]]] | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def sae(self, name: str) -> SAEResult:
        return next(s for s in self.saes if s.name == name or s.hook == name)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: tuples become lists, NaN becomes null."""
        out = asdict(self)
        if self.predictions is None:
            out.pop("predictions")
        return _clean(out)

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps(self.to_dict(), **kwargs)


class SAEAnalyzer:
    """Per-token and per-prompt SAE feature analysis for a model and the SAEs loaded for it."""

    def __init__(self, model: ModelWithHooks, saes: SAEManager) -> None:
        self.model = model
        self.saes = saes
        self.collector = ActivationCollector(model)

    def analyze(self, prompt: str, *, top_k: int = 10, include_special: bool = False, predictions: int = 0) -> AnalysisResult:
        """Analyze one prompt with every loaded SAE."""
        return self.analyze_batch([prompt], top_k=top_k, include_special=include_special, predictions=predictions)[0]

    def analyze_batch(
        self,
        prompts: Sequence[str] | TokenBatch,
        *,
        top_k: int = 10,
        include_special: bool = False,
        predictions: int = 0,
    ) -> list[AnalysisResult]:
        """Analyze prompts in one padded forward; results are per prompt, for real tokens only."""
        import torch

        from saetui.errors import InputError
        from saetui.models.model import TokenBatch

        if top_k < 1:
            raise InputError(f"top-k must be at least 1, got {top_k}")
        loaded = list(self.saes)
        if not loaded:
            raise InputError("no SAE loaded")
        batch = prompts if isinstance(prompts, TokenBatch) else self.model.tokenize(prompts)
        texts = [""] * len(batch) if isinstance(prompts, TokenBatch) else list(prompts)
        captured, logits = self.collector.run(
            batch, [s.hook_name for s in loaded], stop_early=predictions <= 0, return_logits=predictions > 0
        )
        real = batch.attention_mask.bool()
        special = batch.special_mask[real]  # (N,) over the real tokens of all prompts, prompt after prompt
        counted = torch.ones_like(special) if include_special else ~special
        per_sae = []
        with torch.inference_mode():
            for s in loaded:
                x = captured[s.hook_name][real]  # (N, d_model)
                per_sae.append(_analyze_tokens(s, x, counted.to(x.device), batch.lengths, top_k))
            preds = _predictions(self.model, logits[real], predictions) if logits is not None else None
        del captured, logits
        ids = batch.input_ids.tolist()
        special_rows = batch.special_mask.tolist()
        results, start = [], 0
        for i, n in enumerate(batch.lengths):
            row = ids[i][:n]
            tokens = [TokenInfo(j, t, text, bool(special_rows[i][j])) for j, (t, text) in enumerate(zip(row, self.model.token_texts(row)))]
            results.append(
                AnalysisResult(
                    prompt=texts[i],
                    tokens=tokens,
                    saes=[per[i] for per in per_sae],
                    predictions=preds[start : start + n] if preds is not None else None,
                    meta={"model": self.model.name},
                )
            )
            start += n
        return results

    def latents(self, prompt: str, sae: str | None = None) -> torch.Tensor:
        """(T, d_sae) feature activations of one SAE for every token of `prompt`."""
        loaded = self.saes.get(sae)
        acts = self.collector.collect(prompt, loaded.hook_name)
        import torch

        with torch.inference_mode():
            return loaded.sae.encode(acts[loaded.hook_name][0])


def _analyze_tokens(s: LoadedSAE, x: torch.Tensor, counted: torch.Tensor, lengths: list[int], top_k: int) -> list[SAEResult]:
    """Encode the real tokens of all prompts (x: (N, d)) and split the summaries per prompt."""
    import torch

    lat = s.sae.encode(x)  # (N, d_sae)
    x_hat = s.sae.decode(lat).to(lat.dtype)
    xf = x.to(lat.dtype)
    k = min(top_k, lat.shape[-1])
    tok_vals, tok_idx = lat.topk(k, dim=-1)  # (N, k)
    l0 = (lat > 0).sum(-1)
    err = (xf - x_hat).pow(2).sum(-1)
    cos = torch.nn.functional.cosine_similarity(xf, x_hat, dim=-1)

    # Per-prompt summaries over counted tokens: max over tokens, then top-k.
    prompt_vals, prompt_idx, prompt_pos, fvu_tok, fvu_all, mean_l0 = [], [], [], [], [], []
    for lat_i, x_i, err_i, l0_i, c_i in zip(*(t.split(lengths) for t in (lat, xf, err, l0, counted))):
        if c_i.any():
            masked = lat_i.masked_fill(~c_i[:, None], float("-inf"))
            mx, arg = masked.max(0)  # (d_sae,)
            v, f = mx.topk(k)
            prompt_vals.append(v), prompt_idx.append(f), prompt_pos.append(arg[f])
            centered = (x_i - x_i[c_i].mean(0)).pow(2).sum(-1)  # (n,)
            fvu_tok.append(err_i / centered)
            fvu_all.append(err_i[c_i].sum() / centered[c_i].sum())
            mean_l0.append(l0_i[c_i].float().mean())
        else:
            empty = lat_i.new_zeros(0)
            prompt_vals.append(empty), prompt_idx.append(empty.long()), prompt_pos.append(empty.long())
            fvu_tok.append(torch.full_like(err_i, float("nan")))
            fvu_all.append(lat_i.new_tensor(float("nan"))), mean_l0.append(lat_i.new_tensor(float("nan")))

    # One transfer to the host for everything.
    tv, ti, l0l, cosl = tok_vals.tolist(), tok_idx.tolist(), l0.tolist(), cos.tolist()
    fvul = torch.cat(fvu_tok).tolist()
    results, start = [], 0
    for p, n in enumerate(lengths):
        rows = range(start, start + n)
        per_token = [[(f, a) for f, a in zip(ti[r], tv[r]) if a > 0] for r in rows]
        top = [(f, a, pos) for f, a, pos in zip(prompt_idx[p].tolist(), prompt_vals[p].tolist(), prompt_pos[p].tolist()) if a > 0]
        recon = [Reconstruction(int(l0l[r]), _finite(fvul[r]), _finite(cosl[r])) for r in rows]
        results.append(SAEResult(s.name, s.hook_name, s.d_sae, per_token, top, recon, _finite(float(fvu_all[p])), _finite(float(mean_l0[p]))))
        start += n
    return results


def _predictions(model: ModelWithHooks, logits: torch.Tensor, n: int) -> list[list[tuple[int, str, float]]]:
    """Top-n next tokens and probabilities after each position. logits: (N, vocab)."""
    probs = logits.float().softmax(-1)
    vals, idx = probs.topk(min(n, probs.shape[-1]), dim=-1)
    out = []
    for row_ids, row_p in zip(idx.tolist(), vals.tolist()):
        out.append([(t, text, p) for t, text, p in zip(row_ids, model.token_texts(row_ids), row_p)])
    return out


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _clean(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj
