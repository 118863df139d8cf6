"""Every use of a transformers detail that changes between versions, in one place.

saetui supports the transformers range pyproject declares; its forward keyword for the KV cache, its
cache classes and its mask builders moved within that range (`past_key_values` -> `cache`,
`create_causal_mask(past_key_values=...)` -> `(cache=...)`). Code elsewhere calls these functions and
never reaches into transformers' modules itself; tests/core/test_hf_compat.py checks each of them
on the installed version (scripts/compat runs the suite at the oldest supported one).
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch


def forward_params(hf_model: Any) -> set[str]:
    """The keyword arguments the model's forward takes."""
    return set(inspect.signature(hf_model.forward).parameters)


def cache_kwarg(hf_model: Any) -> str:
    """The forward keyword for the KV cache: `cache` in newer transformers 5.x, `past_key_values` before."""
    return "cache" if "cache" in forward_params(hf_model) else "past_key_values"


def keeps_last_logits(hf_model: Any) -> bool:
    """Whether the forward takes `logits_to_keep` (computing logits for the last position(s) only)."""
    return "logits_to_keep" in forward_params(hf_model)


def output_cache(out: Any) -> Any:
    """The KV cache a forward returned (`out.cache` or `out.past_key_values`), or None."""
    return getattr(out, "cache", None) or getattr(out, "past_key_values", None)


def can_compile_fullgraph(hf_model: Any) -> bool:
    """Whether the architecture decodes on a static cache in one compiled graph (transformers' own flag)."""
    return bool(getattr(hf_model, "_can_compile_fullgraph", False))


def static_cache(hf_model: Any, max_len: int) -> Any:
    """A KV cache of fixed shape for `max_len` positions, every layer a plain static layer.

    transformers' own `StaticCache` gives sliding-window layers (Gemma 2/3, Mistral) a ring buffer
    whose fill level is a Python int: a compiled step then guards on it and recompiles at every token.
    Here every layer keeps all `max_len` positions at their absolute index, with the fill level as a
    tensor, and the window is applied by the attention mask (transformers builds it from positions),
    so one compiled graph serves every step. Memory: the window's layers hold max_len positions
    instead of min(window, max_len): the same whenever a generation fits in the window.
    """
    from transformers.cache_utils import Cache, StaticLayer

    config = hf_model.config.get_text_config(decoder=True) if hasattr(hf_model.config, "get_text_config") else hf_model.config
    n_layers = int(config.num_hidden_layers)
    return Cache(layers=[StaticLayer(max_cache_len=max_len) for _ in range(n_layers)])


def causal_masks(config: Any, inputs_embeds: torch.Tensor, position_ids: torch.Tensor) -> dict[str, Any]:
    """The attention masks a decoder layer takes, by layer type ("full_attention", "sliding_attention"),
    for a forward without a cache (as the model builds them: benchmarks run layers by hand with these)."""
    from transformers import masking_utils

    builders = {"full_attention": masking_utils.create_causal_mask,
                "sliding_attention": masking_utils.create_sliding_window_causal_mask}
    masks = {}
    for kind, build in builders.items():
        params = inspect.signature(build).parameters
        kw: dict[str, Any] = dict(config=config, inputs_embeds=inputs_embeds, attention_mask=None, position_ids=position_ids)
        kw["cache" if "cache" in params else "past_key_values"] = None
        if "cache_position" in params:  # older 5.x and 4.x take the positions of the cache too
            kw["cache_position"] = position_ids[0]
        masks[kind] = build(**kw)
    return masks
