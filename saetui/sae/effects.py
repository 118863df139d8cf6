"""Logit effects: which tokens a feature's decoder direction promotes or suppresses.

The direct effect of adding W_dec[f] to the residual stream on the logits is W_dec[f] @ W_U, taken
through the final norm's per-channel weight where the architecture has one (Gemma's RMSNorm
multiplies by 1 + weight). It ignores later layers and the norm's rescaling, like Neuronpedia's
"top positive/negative logits".
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

from saetui.models.architectures import get_attr_path

if TYPE_CHECKING:
    import torch

    from saetui.models.model import ModelWithHooks
    from saetui.sae.manager import LoadedSAE


def unembedding(model: ModelWithHooks) -> torch.Tensor:
    """(d_model, vocab): W_U scaled by the final norm's weight."""
    import torch

    w_u = model.model.get_output_embeddings().weight.detach().T  # (d_model, vocab)
    scale = None
    if model.arch.final_norm is not None:
        norm = get_attr_path(model.model, model.arch.final_norm)
        weight = getattr(norm, "weight", None)
        if isinstance(weight, torch.Tensor):
            scale = weight.detach() + 1 if type(norm).__name__.startswith("Gemma") else weight.detach()
    return w_u * scale[:, None].to(w_u.dtype) if scale is not None else w_u


def logit_effects(model: ModelWithHooks, loaded: LoadedSAE, features: Sequence[int] | None = None,
                  chunk: int = 4096) -> torch.Tensor:
    """(n_features, vocab) direct logit effect of each feature's decoder row (all features if None), in chunks."""
    import torch

    w_dec = loaded.sae.W_dec.detach()
    rows = torch.arange(w_dec.shape[0]) if features is None else torch.as_tensor(list(features))
    w_u = unembedding(model)
    out = []
    with torch.inference_mode():
        for part in rows.split(chunk):
            out.append(w_dec[part.to(w_dec.device)].to(w_u.device, w_u.dtype) @ w_u)
    return torch.cat(out)


def token_effects(model: ModelWithHooks, loaded: LoadedSAE, token_ids: Sequence[int]) -> torch.Tensor:
    """(d_sae, len(token_ids)) direct logit effect of every feature on a few tokens: cheap at any vocab size
    (the full (d_sae, vocab) matrix of a 16k SAE on Gemma's 256k vocabulary would be 16 GB)."""
    import torch

    w_u = unembedding(model)[:, list(token_ids)]  # (d_model, n)
    w_dec = loaded.sae.W_dec.detach()
    with torch.inference_mode():
        return w_dec.to(w_u.device, w_u.dtype) @ w_u
