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


def cache_length(forward_kwargs: dict[str, Any]) -> int:
    """How many positions the KV cache passed to a forward already holds (0 without a cache)."""
    cache = forward_kwargs.get("cache", forward_kwargs.get("past_key_values"))
    return int(cache.get_seq_length()) if cache is not None and hasattr(cache, "get_seq_length") else 0


#: (module, attribute) of the process-wide "compileable context variables" that forwards read and write:
#: transformers' output recorder, and the kernels package's active kernels (transformers' hub kernels)
_CONTEXT_VARS = (("transformers.utils.output_capturing", "_active_collector"),
                 ("kernels._internals.layer.layer", "_ACTIVE_KERNEL_FUNCS"))


def thread_safe_compile_state() -> None:
    """Let a step compile in one thread while forwards run in another.

    transformers (and the kernels package it uses) keep per-forward state in a ContextVar that, under
    torch.compile, becomes one process-wide variable (`CompileableContextVar`, documented as not
    thread-safe while compiling). Whether to use it is asked of `torch.compiler.is_compiling()`, a
    process-wide flag, so an eager forward in another thread writes and resets that variable while the
    compiler traces, and the compiler's guards then fail. Here only code being traced
    (`torch.compiler.is_dynamo_compiling()`, true inside a trace alone) uses the process-wide value;
    every other forward keeps its own ContextVar. Variables not found are left as they are."""
    import importlib

    for module_name, attr in _CONTEXT_VARS:
        try:
            var = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError):
            continue
        if isinstance(var, _SafeContextVar) or not all(hasattr(var, a) for a in ("context_var", "global_var", "get", "set", "reset")):
            continue
        var.__class__ = _safe_class(type(var))


class _SafeContextVar:
    """Marker base of the classes `_safe_class` makes."""


def _safe_class(base: type) -> type:
    import contextvars

    import torch

    tracing = getattr(torch.compiler, "is_dynamo_compiling", torch.compiler.is_compiling)

    def get(self: Any) -> Any:
        return self.global_var if tracing() else self.context_var.get()

    def set(self: Any, value: Any) -> Any:
        if tracing():
            previous, self.global_var = self.global_var, value
            return previous
        return self.context_var.set(value)

    def reset(self: Any, token: Any) -> None:
        if isinstance(token, contextvars.Token):
            self.context_var.reset(token)
        else:  # what `set` returned while traced: the value before it
            self.global_var = token

    return type(f"ThreadSafe{base.__name__}", (base, _SafeContextVar), {"get": get, "set": set, "reset": reset})


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


def set_cache_length(cache: Any, length: int) -> None:
    """Make a static cache (from `static_cache`) hold `length` positions: the next forward writes at `length`.
    (Its layers keep the fill level in a tensor, advanced in place by every forward; warm-up and CUDA-graph
    capture runs advance it too, and are undone with this.)"""
    for layer in cache.layers:
        layer.cumulative_length.fill_(length)


def causal_masks(config: Any, inputs_embeds: torch.Tensor, position_ids: torch.Tensor,
                 layer_types: Any = ("full_attention", "sliding_attention")) -> dict[str, Any]:
    """The attention masks a decoder layer takes, by layer type ("full_attention", "sliding_attention"),
    for a forward without a cache (as the model builds them: benchmarks run layers by hand with these).
    `layer_types`: the kinds to build (a model without a sliding window cannot build that one)."""
    from transformers import masking_utils

    builders = {"full_attention": masking_utils.create_causal_mask,
                "sliding_attention": masking_utils.create_sliding_window_causal_mask}
    masks = {}
    for kind, build in builders.items():
        if kind not in layer_types:
            continue
        params = inspect.signature(build).parameters
        kw: dict[str, Any] = dict(config=config, inputs_embeds=inputs_embeds, attention_mask=None, position_ids=position_ids)
        kw["cache" if "cache" in params else "past_key_values"] = None
        if "cache_position" in params:  # older 5.x and 4.x take the positions of the cache too
            kw["cache_position"] = position_ids[0]
        masks[kind] = build(**kw)
    return masks


def hidden_after(hf_model: Any, input_ids: torch.Tensor, last_layer: int) -> torch.Tensor:
    """The residual stream after decoder layer `last_layer`, computed by hand as the model's forward does it
    (embeddings, rotary position embeddings, one causal mask per layer type, the layers; no cache): the
    benchmarks' lower bound for a forward that stops at an SAE's layer. For models whose inner module has
    `embed_tokens`, `rotary_emb` and `layers` (the Llama, Gemma, Mistral and Qwen families). A layer's call
    and what it returns (a tensor in 5.x, a tuple before) are transformers details, hence here."""
    import torch

    inner, config = hf_model.model, hf_model.config
    emb = inner.embed_tokens(input_ids)
    pos = torch.arange(emb.shape[1], device=emb.device)[None]
    types = getattr(config, "layer_types", None) or ["full_attention"] * int(config.num_hidden_layers)
    masks = causal_masks(config, emb, pos, set(types[: last_layer + 1]))
    pe = inner.rotary_emb(emb, pos)
    h = emb
    for i in range(last_layer + 1):
        out = inner.layers[i](h, attention_mask=masks[types[i]], position_embeddings=pe, position_ids=pos)
        h = out[0] if isinstance(out, tuple) else out
    return h
