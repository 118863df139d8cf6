"""Where each architecture keeps its decoder layers, and how sae-lens hook names map onto HF modules.

sae-lens names hook points the TransformerLens way (`blocks.L.hook_resid_post`). A HuggingFace model
has no such names, so each supported hook kind maps to one module and one side of it:

    hook_resid_pre   input of decoder layer L            (forward pre-hook)
    hook_resid_post  output of decoder layer L           (forward hook)
    hook_attn_out    output of the attention block, as added to the residual stream
    hook_mlp_out     output of the MLP block, as added to the residual stream

For Gemma 2/3 the attention and MLP outputs pass through a post-norm before they are added, and
TransformerLens hooks them after that norm, so we do too. Nothing here imports transformers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from saetui.errors import HookPointError

if TYPE_CHECKING:
    import torch.nn as nn

HOOK_KINDS = ("hook_resid_pre", "hook_resid_post", "hook_attn_out", "hook_mlp_out")
# Order of the hook kinds inside one block, used to find the deepest requested hook point.
_KIND_ORDER = {kind: i for i, kind in enumerate(("hook_resid_pre", "hook_attn_out", "hook_mlp_out", "hook_resid_post"))}
_HOOK_RE = re.compile(r"^blocks\.(\d+)\.(" + "|".join(HOOK_KINDS) + r")$")


@dataclass(frozen=True)
class ArchitectureSpec:
    """Module paths for one model family. Paths are dotted attribute paths.

    layers:     from the CausalLM to the ModuleList of decoder layers
    attn_out:   inside a layer, the module whose output is the attention contribution
    mlp_out:    inside a layer, the module whose output is the MLP contribution
    final_norm: from the CausalLM to the norm applied before the unembedding (None if absent)
    """

    layers: str
    attn_out: str | None
    mlp_out: str | None
    final_norm: str | None


_LLAMA_LIKE = ArchitectureSpec("model.layers", "self_attn", "mlp", "model.norm")
_GEMMA2_LIKE = ArchitectureSpec("model.layers", "post_attention_layernorm", "post_feedforward_layernorm", "model.norm")

#: model_type (from config.json) -> where things are. Checked against tiny models of each in the tests.
ARCHITECTURES: dict[str, ArchitectureSpec] = {
    "gemma": _LLAMA_LIKE,
    "gemma2": _GEMMA2_LIKE,
    "gemma3_text": _GEMMA2_LIKE,
    "llama": _LLAMA_LIKE,
    "mistral": _LLAMA_LIKE,
    "qwen2": _LLAMA_LIKE,
    "qwen3": _LLAMA_LIKE,
    "phi3": _LLAMA_LIKE,
    "gpt2": ArchitectureSpec("transformer.h", "attn", "mlp", "transformer.ln_f"),
    "gpt_neox": ArchitectureSpec("gpt_neox.layers", "attention", "mlp", "gpt_neox.final_layer_norm"),
    "opt": ArchitectureSpec("model.decoder.layers", "self_attn", "fc2", "model.decoder.final_layer_norm"),
}

# Child names tried, in order, when an unknown architecture is resolved by the fallback.
_FALLBACK_ATTN = ("self_attn", "attn", "attention")
_FALLBACK_MLP = ("mlp", "feed_forward", "ffn")
_FALLBACK_NORM = ("model.norm", "transformer.ln_f", "model.final_layernorm", "norm")


@dataclass(frozen=True)
class HookPoint:
    """A parsed sae-lens hook name, e.g. `blocks.6.hook_resid_post` -> layer 6, kind hook_resid_post."""

    name: str
    layer: int
    kind: str

    @property
    def depth(self) -> tuple[int, int]:
        """Sort key: later layers, and later points within a block, are deeper."""
        return (self.layer, _KIND_ORDER[self.kind])


def parse_hook_name(name: str) -> HookPoint:
    """Parse a sae-lens hook name; raise HookPointError naming the supported forms otherwise."""
    match = _HOOK_RE.match(name.strip())
    if not match:
        raise HookPointError(
            f"unsupported hook point {name!r}: expected blocks.L.<kind> with kind one of {', '.join(HOOK_KINDS)}"
        )
    return HookPoint(name.strip(), int(match.group(1)), match.group(2))


def get_attr_path(root: object, path: str) -> object:
    """Follow a dotted attribute path (`model.layers`) from root; AttributeError if any step is missing."""
    obj = root
    for part in path.split("."):
        obj = getattr(obj, part)
    return obj


def resolve_architecture(model: nn.Module, model_type: str, num_layers: int | None) -> ArchitectureSpec:
    """The ArchitectureSpec for `model`: from the table, else found by looking at the module tree.

    The fallback takes the one nn.ModuleList whose length equals `num_hidden_layers`; if there is
    not exactly one, it raises a HookPointError naming every ModuleList it saw.
    """
    import torch.nn as nn

    spec = ARCHITECTURES.get(model_type)
    if spec is not None:
        try:
            get_attr_path(model, spec.layers)
            return spec
        except AttributeError:
            pass  # a variant with another layout (e.g. a multimodal wrapper): look at the tree
    module_lists = [(name, len(mod)) for name, mod in model.named_modules() if isinstance(mod, nn.ModuleList)]
    matches = [name for name, length in module_lists if num_layers is not None and length == num_layers]
    if len(matches) != 1:
        seen = ", ".join(f"{name} ({length})" for name, length in module_lists) or "none"
        raise HookPointError(
            f"cannot find the decoder layers of model type {model_type!r}: expected one ModuleList of length "
            f"num_hidden_layers={num_layers}; found ModuleLists: {seen}"
        )
    first_layer = get_attr_path(model, matches[0])[0]  # type: ignore[index]
    children = {name for name, _ in first_layer.named_children()}
    attn = next((n for n in _FALLBACK_ATTN if n in children), None)
    mlp = next((n for n in _FALLBACK_MLP if n in children), None)
    norm = None
    for path in _FALLBACK_NORM:
        try:
            get_attr_path(model, path)
            norm = path
            break
        except AttributeError:
            continue
    return ArchitectureSpec(matches[0], attn, mlp, norm)
