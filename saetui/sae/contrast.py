"""Contrast: which SAE features separate one set of prompts (A) from another (B).

Both sets go through the model in padded batches (prompts sorted by length, forward stopped after the
deepest hooked layer), every loaded SAE encodes the counted tokens (BOS/pad/special excluded unless
`include_special`), and per set and feature only running moments are kept (float64): the mean, the sum of
squared deviations (merged batch by batch, `_Moments` says why) and the number of units where the feature
fires. A unit is

    pool="mean"   a token: the statistics are over all counted tokens of the set
    pool="max"    a prompt: its value is the feature's max over the prompt's counted tokens

and per feature, with n_A, n_B units, means m_A, m_B and variances s²_A, s²_B (n - 1 in the denominator):

    diff     m_A - m_B
    effect   diff / s_pooled,  s²_pooled = ((n_A - 1) s²_A + (n_B - 1) s²_B) / (n_A + n_B - 2)
             (None when s_pooled is 0 or there are fewer than 3 units)
    freq_A   the fraction of A's units where the feature is non-zero (and freq_B for B)

Each SAE's ranking lists the top_k features with the largest positive score (more in A), then the
top_k with the most negative (more in B), sorted by score descending: the first one separates A from B
best, the last one B from A. The score is `diff` or, with by="effect", the effect size (a feature without one is
not ranked by it).

The same pass sums the hooked activations themselves: `directions[hook]` is the mean activation over
A's counted tokens minus the mean over B's, the contrast direction (difference of means) that SAE
steering is usually compared against; saetui.steering.vectors saves it as a named steering vector.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Sequence

from saetui.errors import InputError
from saetui.files import finite_or_none, json_ready
from saetui.inputs import check_int
from saetui.settings import ContrastSettings

if TYPE_CHECKING:
    import torch

    from saetui.models.model import ModelWithHooks
    from saetui.sae.manager import LoadedSAE, SAEManager

POOLS = ("mean", "max")
RANK_BY = ("diff", "effect")


@dataclass
class ContrastFeature:
    feature: int
    diff: float  # mean_a - mean_b
    effect: float | None  # diff / pooled standard deviation
    mean_a: float
    mean_b: float
    freq_a: float  # fraction of A's units (tokens or prompts) where the feature fires
    freq_b: float
    label: str = ""


@dataclass
class SAEContrast:
    name: str
    hook: str
    d_sae: int
    features: list[ContrastFeature]  # most A-ish first, most B-ish last


@dataclass
class ContrastResult:
    pool: str
    by: str
    n_prompts: tuple[int, int]  # (A, B)
    n_tokens: tuple[int, int]  # counted tokens in A and in B
    saes: list[SAEContrast]
    # hook -> (d_model,) float32 on the CPU: mean activation over A's counted tokens minus B's
    directions: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)
    model: str = ""
    vector: dict[str, str] | None = None  # {"name", "path"} of the steering vector saved from `directions`, if any

    def sae(self, name: str) -> SAEContrast:
        return next(s for s in self.saes if s.name == name or s.hook == name)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready; directions are summarised by their norm (the vectors themselves are saved with save_vector)."""
        out = {"model": self.model, "pool": self.pool, "by": self.by, "n_prompts": list(self.n_prompts),
               "n_tokens": list(self.n_tokens), "saes": [asdict(s) for s in self.saes],
               "directions": {h: {"norm": float(v.norm())} for h, v in self.directions.items()}}
        if self.vector is not None:
            out["vector"] = self.vector
        return json_ready(out)

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps(self.to_dict(), **kwargs)


class _Moments:
    """Running float64 moments over units, merged batch by batch (Chan et al.): n, mean, M2 (the sum of squared
    deviations), non-zero count; (d,) each.

    Not sums of squares: `ss - n * mean²` cancels, and a feature equal in every unit of a set (one that fires on
    a prefix all its prompts share) kept a remainder of rounding for a variance; its effect size came out in the
    thousands, ranked first by `by="effect"`, where it is undefined (None). Deviations from each batch's mean
    are exactly zero for such a feature, and so is the variance."""

    def __init__(self, sparse: bool = True) -> None:
        self.sparse = sparse  # values mostly zero (SAE latents), not activations
        self.n = 0
        self.mean: torch.Tensor | None = None
        self.m2: torch.Tensor | None = None
        self.nz: torch.Tensor | None = None

    def add(self, v: torch.Tensor) -> None:
        """v: (units, d) values."""
        import torch

        n_b = v.shape[0]
        if n_b == 0:
            return
        if self.sparse and n_b >= 64:  # token latents are sparse: one pass finds the non-zeros, the sums take only those
            idx = v.nonzero()
            col = idx[:, 1]
            vals = v[idx[:, 0], col].double()
            d = v.shape[1]
            nz = torch.bincount(col, minlength=d)
            mean = torch.bincount(col, vals, minlength=d) / n_b
            # the non-zeros' squared deviations, and the zeros' (n_b - nz of them, each mean² away)
            m2 = torch.bincount(col, (vals - mean[col]).square(), minlength=d) + (n_b - nz) * mean.square()
        else:
            x = v.double()
            mean = x.mean(0)
            m2 = (x - mean).square().sum(0)
            nz = (v != 0).sum(0)
        if self.mean is None:
            self.mean, self.m2, self.nz = mean, m2, nz
        else:
            n = self.n + n_b
            delta = mean - self.mean
            self.mean = self.mean + delta * (n_b / n)
            self.m2 = self.m2 + m2 + delta.square() * (self.n * n_b / n)
            self.nz += nz
        self.n += n_b

    def stats(self, d: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(mean, variance with n - 1, frequency), float64 on the CPU."""
        import torch

        if self.mean is None:
            zero = torch.zeros(d, dtype=torch.float64)
            return zero, zero.clone(), zero.clone()
        n = self.n
        return self.mean.cpu(), (self.m2.cpu() / max(n - 1, 1)).clamp_min(0), self.nz.cpu().double() / n


def contrast(
    model: ModelWithHooks,
    saes: SAEManager,
    a: Sequence[str] | Sequence[Sequence[int]],
    b: Sequence[str] | Sequence[Sequence[int]],
    *,
    top_k: int = ContrastSettings.top_k,
    pool: str = ContrastSettings.pool,
    by: str = ContrastSettings.by,
    include_special: bool = False,
    batch_size: int = ContrastSettings.batch_size,
) -> ContrastResult:
    """Rank every loaded SAE's features by how they separate prompts `a` from prompts `b` (see module doc).

    Prompts are texts, or token ids (lists of ints) for pre-tokenized sets."""
    import torch

    from saetui.activations.collector import ActivationCollector

    if pool not in POOLS:
        raise InputError(f"pool must be mean or max, got {pool!r}")
    if by not in RANK_BY:
        raise InputError(f"rank by diff or effect, got {by!r}")
    top_k, batch_size = check_int(top_k, "top-k"), check_int(batch_size, "batch size")
    for which, prompts in (("A", a), ("B", b)):
        if not prompts:
            raise InputError(f"set {which} is empty: give at least one prompt")
    loaded = list(saes)
    if not loaded:
        raise InputError("no SAE loaded")
    hooks = list(dict.fromkeys(s.hook_name for s in loaded))
    collector = ActivationCollector(model)
    feats = {s.name: (_Moments(), _Moments()) for s in loaded}
    acts = {h: (_Moments(sparse=False), _Moments(sparse=False)) for h in hooks}  # only the means are used
    counted_tokens = [0, 0]
    for side, prompts in enumerate((a, b)):
        rows = _token_rows(model, prompts)
        rows.sort(key=len)  # less padding; the sums do not depend on the order
        for start in range(0, len(rows), batch_size):
            batch = model.batch_from_ids(rows[start : start + batch_size])
            captured, _ = collector.run(batch, hooks)
            real = batch.attention_mask.bool()
            counted = real if include_special else real & ~batch.special_mask
            n_counted = counted.sum(1).tolist()  # per prompt
            counted_tokens[side] += sum(n_counted)
            with torch.inference_mode():
                xs = {h: captured[h][counted] for h in hooks}  # (N, d), prompt after prompt
                del captured
                for h in hooks:
                    acts[h][side].add(xs[h])
                for s in loaded:
                    lat = s.sae.encode(xs[s.hook_name].to(s.sae.W_dec.device))  # (N, d_sae)
                    if pool == "max":
                        lat = torch.stack([p.amax(0) for p in lat.split(n_counted) if p.shape[0] > 0]) if lat.shape[0] else lat
                    feats[s.name][side].add(lat)
                    del lat
    for which, n in zip("AB", counted_tokens):
        if n == 0:
            raise InputError(f"set {which} has no tokens to count: its prompts are special tokens only")
    results = []
    for s in loaded:
        results.append(_rank(s, *feats[s.name], top_k=top_k, by=by))
    directions = {}
    for h in hooks:
        directions[h] = (acts[h][0].stats(model.d_model)[0] - acts[h][1].stats(model.d_model)[0]).float()
    return ContrastResult(pool, by, (len(a), len(b)), (counted_tokens[0], counted_tokens[1]), results, directions,
                          model=model.name)


def _token_rows(model: ModelWithHooks, prompts: Sequence[str] | Sequence[Sequence[int]]) -> list[list[int]]:
    """Token ids of each prompt (BOS included), truncated to the model's context like ModelWithHooks.tokenize.
    Prompts given as token ids (lists of ints, BOS included where wanted) are used as they are."""
    if all(isinstance(p, (list, tuple)) for p in prompts):
        vocab, context = model.vocab_size, model.context_length
        rows = [[check_int(t, "a token id", 0, vocab - 1) for t in p] for p in prompts]  # not torch's IndexError
        if any(not r for r in rows):
            raise InputError("empty prompt: a prompt given as token ids has none")
        longest = max(len(r) for r in rows)
        if context is not None and longest > context:
            raise InputError(f"a prompt given as token ids has {longest} tokens: the model's context is {context}")
        return rows
    for p in prompts:
        if not isinstance(p, str) or not p.strip():
            raise InputError("empty prompt: every prompt of a set needs some text")
    batch = model.tokenize(list(prompts))
    ids = batch.input_ids.tolist()
    return [row[:n] for row, n in zip(ids, batch.lengths)]


def _rank(s: LoadedSAE, ma: _Moments, mb: _Moments, *, top_k: int, by: str) -> SAEContrast:
    import torch

    d = s.d_sae
    mean_a, var_a, freq_a = ma.stats(d)
    mean_b, var_b, freq_b = mb.stats(d)
    diff = mean_a - mean_b
    dof = ma.n + mb.n - 2
    if dof > 0:
        pooled = (((ma.n - 1) * var_a + (mb.n - 1) * var_b) / dof).sqrt()
        effect = torch.where(pooled > 0, diff / pooled.clamp_min(1e-300), torch.full_like(diff, float("nan")))
    else:
        effect = torch.full_like(diff, float("nan"))
    score = diff if by == "diff" else torch.nan_to_num(effect, nan=0.0)
    k = min(top_k, d)
    up_v, up_i = score.topk(k)
    down_v, down_i = (-score).topk(k)
    chosen = [i for v, i in zip(up_v.tolist(), up_i.tolist()) if v > 0]
    low = [i for v, i in zip(down_v.tolist(), down_i.tolist()) if v > 0 and i not in set(chosen)]
    chosen += low[::-1]  # ascending -score reversed: the most B-ish last
    cols = [diff, effect, mean_a, mean_b, freq_a, freq_b]
    values = [c[chosen].tolist() for c in cols] if chosen else [[] for _ in cols]
    rows = [ContrastFeature(f, dv, finite_or_none(ev), a_, b_, fa, fb)
            for f, dv, ev, a_, b_, fa, fb in zip(chosen, *values)]
    return SAEContrast(s.name, s.hook_name, d, rows)
