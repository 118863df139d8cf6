"""Span: the features that fire over a stretch of a prompt's tokens, for every loaded SAE.

One forward (stopped after the deepest hooked layer) collects every SAE's hook point; each SAE encodes
the tokens START..END-1 (absolute token positions, BOS is 0, END exclusive, as in steering scopes) and
ranks its features by their max or mean over the span's counted tokens (BOS/pad/special excluded
unless `include_special`). Positive values only, descending; with pool="max" each feature also gives
the token where it peaks.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from saetui.errors import InputError
from saetui.inputs import check_int
from saetui.settings import AnalysisSettings

if TYPE_CHECKING:
    from saetui.models.chat import ChatTokens
    from saetui.models.model import ModelWithHooks
    from saetui.sae.manager import SAEManager



@dataclass
class SpanFeature:
    feature: int
    value: float  # max or mean over the span's counted tokens
    token_index: int | None  # where it peaks (pool="max")
    label: str = ""


@dataclass
class SAESpan:
    name: str
    hook: str
    d_sae: int
    features: list[SpanFeature]


@dataclass
class SpanResult:
    prompt: str
    start: int
    end: int
    pool: str
    tokens: list[str]  # the span's token texts
    counted: int  # how many of them take part (special tokens excluded)
    saes: list[SAESpan]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps(self.to_dict(), **kwargs)


def span_features(model: ModelWithHooks, saes: SAEManager, prompt: str | ChatTokens, start: int, end: int, *,
                  pool: str = AnalysisSettings.span_pool, top_k: int = AnalysisSettings.top_k,
                  include_special: bool = False) -> SpanResult:
    """Every loaded SAE's top_k features over tokens start..end-1 of `prompt` (see the module doc); a rendered
    conversation (ChatTokens) is spanned over its ids, its template's tokens left out as special ones are."""
    import torch

    from saetui.activations.collector import ActivationCollector
    from saetui.models.chat import ChatTokens

    if pool not in ("max", "mean"):
        raise InputError(f"span pool must be max or mean, got {pool!r}")
    top_k = check_int(top_k, "top-k")
    start, end = check_int(start, "span start", 0), check_int(end, "span end", 0)  # no counting from the end
    if not start < end:
        raise InputError(f"span {start}:{end} is empty: START must be less than END (END is exclusive)")
    loaded = list(saes)
    if not loaded:
        raise InputError("no SAE loaded")
    if isinstance(prompt, ChatTokens):
        batch, text = model.batch_from_chat(prompt), prompt.text
    else:
        batch, text = model.tokenize(prompt), prompt
    n = batch.lengths[0]
    if end > n:
        raise InputError(f"span {start}:{end} goes beyond the prompt's {n} tokens (positions 0..{n - 1})")
    captured, _ = ActivationCollector(model).run(batch, [s.hook_name for s in loaded])
    skip = batch.special_mask[0, start:end]
    if batch.template_mask is not None:
        skip = skip | batch.template_mask[0, start:end]
    keep = torch.ones(end - start, dtype=torch.bool) if include_special else ~skip.cpu()
    positions = torch.arange(start, end)[keep]
    out = []
    with torch.inference_mode():
        for s in loaded:
            features: list[SpanFeature] = []
            if len(positions):
                x = captured[s.hook_name][0, positions.to(captured[s.hook_name].device)]
                lat = s.sae.encode(x.to(s.sae.W_dec.device))  # (m, d_sae)
                pooled = lat.amax(0) if pool == "max" else lat.mean(0)
                vals, idx = pooled.topk(min(top_k, pooled.shape[0]))
                peak = positions[lat[:, idx].argmax(0).cpu()].tolist() if pool == "max" else [None] * len(idx)
                features = [SpanFeature(f, v, p) for f, v, p in zip(idx.tolist(), vals.tolist(), peak) if v > 0]
            out.append(SAESpan(s.name, s.hook_name, s.d_sae, features))
    ids = batch.input_ids[0, start:end].tolist()
    return SpanResult(text, start, end, pool, model.token_texts(ids), int(keep.sum()), out)
