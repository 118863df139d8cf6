"""The KL of a steered row from the baseline, computed independently of SteeringEngine.kl: two plain forwards of the
model teacher-forced on the row's own tokens (one with the row's steering hooks, tests/greedy.steered_logits) and
torch's kl_div in float64, with the float32 rounding bound the engine's batched forward may differ by."""

from __future__ import annotations

from typing import Any, Sequence

import torch

from tests.greedy import forward_length, steered_logits
from tests.tolerance import reduction_bound


def kl_bound(model: Any, logits: torch.Tensor, p_steer: torch.Tensor, p_base: torch.Tensor) -> torch.Tensor:
    """(n,) per position: how far the engine's float32 KL (a batched, padded forward) may lie from the float64 one.

    Each logit may differ by b (a forward of another batch shape: tests/tolerance.py); a log-softmax moves a
    log-probability by at most 2b plus the rounding of its log-sum-exp over the vocabulary (V terms). KL =
    sum_i p_i (lp_i - lq_i) moves by at most delta * (2 + sum_i p_i |lp_i - lq_i|) for log-probabilities
    off by delta (its derivatives: p_i (1 + lp_i - lq_i) and -p_i), plus the rounding of its own float32 sum.
    logits: (2n, V) both rows' logits; p_steer, p_base: (n, V) log-probabilities."""
    vocab = logits.shape[-1]
    top = float(logits.abs().max())
    delta = 2 * reduction_bound(top, forward_length(model), torch.float32) + reduction_bound(top, vocab, torch.float32)
    terms = p_steer.exp() * (p_steer - p_base)  # (n, V)
    spread = (p_steer.exp() * (p_steer - p_base).abs()).sum(-1)
    return delta * (2 + spread) + reduction_bound(terms.abs().sum(-1), vocab, torch.float32)


def independent_kl(model: Any, saes: Any, specs: Sequence[Any], prompt: Any,
                   tokens: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """(KL(steered || unsteered) per generated position (n,), its rounding bound (n,)) for a row steered by
    `specs` that generated `tokens` after `prompt`: the distributions that chose each of them."""
    steer = steered_logits(model, saes, specs, prompt, tokens)  # (n, V) float64
    base = steered_logits(model, saes, [], prompt, tokens)
    p_steer, p_base = steer.log_softmax(-1), base.log_softmax(-1)
    kl = torch.nn.functional.kl_div(p_base, p_steer, log_target=True, reduction="none").sum(-1)  # KL(steer || base)
    return kl, kl_bound(model, torch.cat([steer, base]), p_steer, p_base)
