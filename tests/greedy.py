"""Greedy generations compared across paths that run other kernels on other shapes.

A KV-cached step and a full forward, a row alone and in a batch, a padded static cache and the model's own:
each sums in another order, so logits differ in the last bits (tests/tolerance.py) and greedy tokens agree
only until two candidates' logits are within that rounding. These helpers accept exactly that: equal tokens,
or a first divergence at a near-tie, checked by teacher-forcing the eager model on the common prefix.
"""

from __future__ import annotations

import torch

from saetui.steering.generate import SteeringEngine
from saetui.steering.hooks import SteeringHooks
from saetui.steering.vectors import resolve_any
from tests.tolerance import assert_close_reduction, path_length, reduction_bound

PROMPT = "The cat sat on the mat"


def forward_length(model) -> int:
    """The length of the sums from a token to the logits (tests/tolerance.py): every block and the unembedding."""
    return path_length(model, f"blocks.{model.n_layers - 1}.x") + model.d_model


def steered_logits(model, saes, specs, prompt, tokens) -> torch.Tensor:
    """[len(tokens), vocab] float64: the eager model's logits, teacher-forced on `tokens` after `prompt`, steered by
    `specs` (one row's), for the prediction of each of `tokens`."""
    engine = SteeringEngine(model, saes, compile=False)
    ids, template = engine._prompt(prompt)
    resolved = [resolve_any(spec, saes, model, {}) for spec in specs if spec.enabled]
    seq = torch.tensor([ids + list(tokens)])
    with SteeringHooks(model, [resolved], prompt_len=len(ids), template=template), torch.inference_mode():
        logits = model.model(input_ids=seq).logits[0].double()
    return logits[len(ids) - 1: len(ids) - 1 + len(tokens)]


def assert_same_greedy(model, saes, rows, got, want, prompt=PROMPT) -> None:
    """Greedy tokens of two paths that run other kernels on other shapes (a padded static cache vs the model's own)
    are equal, or first differ where the two tokens' logits are within rounding of each other: teacher-forced on
    the common prefix, with that row's steering, the eager logits of both tokens are that close."""
    for r, (g, w) in enumerate(zip(got, want)):
        if g == w:
            continue
        i = next((j for j, (a, b) in enumerate(zip(g, w)) if a != b), min(len(g), len(w)))
        assert i < len(g) and i < len(w), (r, g, w)  # one stopped and the other did not: not a near-tie
        logits = steered_logits(model, saes, rows[r], prompt, w[: i + 1])[-1]
        gap = abs(float(logits[g[i]] - logits[w[i]]))
        bound = reduction_bound(float(logits.abs().max()), forward_length(model), torch.float32)
        assert gap <= 2 * bound, f"row {r} token {i}: {g[i]} vs {w[i]}, logits {gap:.3g} apart (rounding allows {2 * bound:.3g})"


def assert_close_logprobs(model, saes, rows, got, want, prompt=PROMPT) -> None:
    """Where two paths chose the same tokens, their log-probabilities agree up to rounding: a log-softmax moves each
    by at most twice the logits' rounding bound (the token's logit and the log-sum-exp)."""
    for r, (g, w) in enumerate(zip(got, want)):
        tokens = [t for t, _ in w]
        if [t for t, _ in g] != tokens:
            continue
        scale = float(steered_logits(model, saes, rows[r], prompt, tokens).abs().max())
        bound = 2 * reduction_bound(scale, forward_length(model), torch.float32)
        assert_close_reduction(torch.tensor([p for _, p in g], dtype=torch.float64),
                               torch.tensor([p for _, p in w], dtype=torch.float64), bound=bound, what=f"row {r} logprobs")
