"""ModelWithHooks: one HuggingFace causal LM and its tokenizer, plus layer and hook-point lookup.

It loads by HF id or local directory, picks device (cuda > mps > cpu) and dtype (bf16 on CUDA,
fp32 elsewhere), tokenizes prompts into right-padded batches with a special-token mask, and
resolves sae-lens hook names (`blocks.L.hook_resid_post`) to the module that carries them.
It never registers hooks itself: that is the collector's and the steering engine's job.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from saetui.errors import HookPointError, InputError, ModelLoadError, first_line
from saetui.inputs import check_device_name, normalize_dtype  # the one place devices and dtypes are checked
from saetui.models.architectures import ArchitectureSpec, HookPoint, get_attr_path, parse_hook_name, resolve_architecture

if TYPE_CHECKING:
    import torch
    import torch.nn as nn

    from saetui.models.chat import ChatTokens

# Families that are numerically unstable in fp16 (activations overflow): bf16 or fp32 only.
_NO_FP16 = ("gemma", "gemma2", "gemma3", "gemma3_text")
# Families whose SDPA path is wrong or slower than eager for soft-capped attention.
_EAGER_ATTENTION = ("gemma2",)


def quiet_hf_output() -> None:
    """No progress bars or info logs of transformers/huggingface_hub's own: they would garble the app's screen
    and bury the CLI's lines. Downloads report through saetui.hub instead (a line per file, and on a terminal
    huggingface_hub's live bar in a group of its own, `saetui.download`). Env vars cover later imports, the
    calls an imported transformers; HF_HUB_DISABLE_PROGRESS_BARS is left to the user (it would stop that bar)."""
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from huggingface_hub.utils import logging as hub_logging
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()  # transformers' bars, and huggingface_hub's (all groups)
    hub_logging.set_verbosity_error()  # no "Retrying in 4s" lines: saetui.hub says what failed, in one line


def offline_mode() -> bool:
    """True when HF_HUB_OFFLINE asks us not to touch the network."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def pick_device(requested: str | None = None) -> str:
    """The device to load on: the requested one (checked), else cuda > mps > cpu."""
    import torch

    if requested:
        return check_device_name(requested)
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def pick_dtype(device: str, model_type: str, requested: str | None = None) -> torch.dtype:
    """bf16 on CUDA, fp32 elsewhere, unless requested; fp16 is refused for Gemma families."""
    import torch

    if requested is None or requested == "auto":
        name = "bfloat16" if device.startswith("cuda") else "float32"
    else:
        name = normalize_dtype(requested)
    if name == "float16" and model_type in _NO_FP16:
        raise ModelLoadError(f"float16 is not supported for {model_type} models (activations overflow): use bfloat16 or float32")
    return getattr(torch, name)


def needs_sharding(n_params: int, bytes_per_param: int, gpu_free_bytes: list[int], headroom: float = 0.85) -> bool:
    """Whether a model must be spread over GPUs with device_map="auto": it does not fit on GPU 0 alone."""
    if len(gpu_free_bytes) < 2:
        return False
    return n_params * bytes_per_param > headroom * gpu_free_bytes[0]


@dataclass
class TokenBatch:
    """A right-padded batch of tokenized prompts.

    input_ids:      (B, T) long
    attention_mask: (B, T) long, 1 for real tokens
    special_mask:   (B, T) bool, True for BOS/EOS/pad and other special tokens
    lengths:        number of real tokens per row
    template_mask:  (B, T) bool, True for the tokens a chat template wrote (None: not a chat prompt)
    roles:          per row, per real token: "system" | "user" | "assistant" | "template" (None: not a chat prompt)
    full_lengths:   per row, its length before a prompt longer than the context was cut to its first tokens
                    (None: nothing was cut)
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    special_mask: torch.Tensor
    lengths: list[int]
    template_mask: torch.Tensor | None = None
    roles: list[list[str]] | None = None
    full_lengths: list[int] | None = None

    def __len__(self) -> int:
        return len(self.lengths)


class ModelWithHooks:
    """A causal LM, its tokenizer, and the map from hook names to its modules."""

    def __init__(self, model: nn.Module, tokenizer: Any, name: str | None = None) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.config = model.config
        self.model_type: str = getattr(self.config, "model_type", "unknown")
        self.name: str = name or getattr(self.config, "_name_or_path", "") or self.model_type
        self.n_layers: int = self._num_layers()
        self.arch: ArchitectureSpec = resolve_architecture(model, self.model_type, self.n_layers)
        self.layers: nn.ModuleList = get_attr_path(model, self.arch.layers)  # type: ignore[assignment]
        self.n_layers = len(self.layers)
        if self.tokenizer.pad_token_id is None:
            # Batching needs a pad id; the mask keeps pads out of every result.
            self.tokenizer.pad_token = self.tokenizer.eos_token or self.tokenizer.unk_token
        self._special_ids = set(self.tokenizer.all_special_ids)

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str,
        *,
        device: str | None = None,
        dtype: str | None = None,
        trust_remote_code: bool = False,
        device_map: str | None = None,
    ) -> ModelWithHooks:
        """Load a causal LM by HF id or local directory.

        A Hub id loads from its snapshot in the HF cache, which saetui.hub fills first where it is incomplete
        (with progress; no request at all when it is complete); honours HF_HUB_OFFLINE. `trust_remote_code` stays
        False unless the user asks (None would make transformers prompt on the terminal). Gemma 2 runs on eager attention.
        On several GPUs, a model too large for one is spread with device_map="auto".
        """
        from_hub = hub_model_id(name_or_path) is not None
        source = str(hub_source(name_or_path))  # before torch's import: an unreachable Hub fails fast
        import torch
        from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

        common: dict[str, Any] = {"trust_remote_code": bool(trust_remote_code)}
        if offline_mode() or from_hub:
            common["local_files_only"] = True  # a Hub snapshot is complete: transformers never goes online
        try:
            config = AutoConfig.from_pretrained(source, **common)
        except Exception as exc:  # noqa: BLE001 - transformers raises OSError/ValueError/HF errors
            where = " (HF_HUB_OFFLINE is set: only local files and the HF cache are searched)" if offline_mode() else ""
            raise ModelLoadError(f"cannot load model {name_or_path!r}{where}: {first_line(exc)}") from exc
        model_type = getattr(config, "model_type", "unknown")
        target = pick_device(device)
        torch_dtype = pick_dtype(target, model_type, dtype)
        kwargs: dict[str, Any] = dict(common, dtype=torch_dtype)
        if model_type in _EAGER_ATTENTION:
            kwargs["attn_implementation"] = "eager"
        if device_map is None and target.startswith("cuda") and torch.cuda.device_count() > 1:
            n_params = _count_params(config, common)
            free = [torch.cuda.mem_get_info(i)[0] for i in range(torch.cuda.device_count())]
            if needs_sharding(n_params, torch.empty((), dtype=torch_dtype).element_size(), free):
                device_map = "auto"
        if device_map is not None:
            kwargs["device_map"] = device_map
        try:
            tokenizer = AutoTokenizer.from_pretrained(source, **common)
            model = AutoModelForCausalLM.from_pretrained(source, config=config, **kwargs)
        except torch.cuda.OutOfMemoryError as exc:
            raise ModelLoadError(f"out of GPU memory loading {name_or_path!r}: try --dtype bfloat16 or a smaller model") from exc
        except Exception as exc:  # noqa: BLE001
            raise ModelLoadError(f"cannot load model {name_or_path!r}: {first_line(exc)}") from exc
        if len(tokenizer) < 0.5 * int(getattr(config, "vocab_size", 0) or 0):
            # a folder without tokenizer files: transformers builds an empty one (5 tokens for a Gemma config), and
            # every prompt became a single <unk>
            raise ModelLoadError(f"cannot load model {name_or_path!r}: its tokenizer has {len(tokenizer)} tokens for "
                                 f"a vocabulary of {config.vocab_size} (are the tokenizer files missing?)")
        if device_map is None:
            model = model.to(target)
        _say_if_unreadable(Path(str(source)) / "generation_config.json")
        return cls(model, tokenizer, name=name_or_path)

    # ------------------------------------------------------------------ facts
    def _num_layers(self) -> int:
        for attr in ("num_hidden_layers", "n_layer", "num_layers"):
            value = getattr(self.config, attr, None)
            if isinstance(value, int):
                return value
        text_config = getattr(self.config, "text_config", None)
        return getattr(text_config, "num_hidden_layers", 0) if text_config is not None else 0

    @property
    def d_model(self) -> int:
        """Width of the residual stream."""
        for attr in ("hidden_size", "n_embd", "d_model"):
            value = getattr(self.config, attr, None)
            if isinstance(value, int):
                return value
        return int(self.model.get_input_embeddings().weight.shape[1])

    @property
    def device(self) -> torch.device:
        """Device of the input embeddings (where input ids must go)."""
        return self.model.get_input_embeddings().weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.model.get_input_embeddings().weight.dtype

    @property
    def context_length(self) -> int | None:
        for attr in ("max_position_embeddings", "n_positions", "max_sequence_length"):
            value = getattr(self.config, attr, None)
            if isinstance(value, int) and value > 0:
                return value
        return None

    @property
    def vocab_size(self) -> int:
        """Token ids the model scores: the rows of its output embedding (Gemma pads them past the tokenizer's)."""
        weight = getattr(self.model.get_output_embeddings(), "weight", None)
        return int(weight.shape[0]) if weight is not None else int(self.config.vocab_size)

    def layer_device(self, layer: int) -> torch.device:
        """Device that holds decoder layer `layer` (differs per layer under device_map="auto")."""
        return next(self.layers[layer].parameters()).device

    # ------------------------------------------------------------------ hook points
    def hook_point(self, name: str) -> HookPoint:
        """Parse and range-check a sae-lens hook name against this model."""
        point = parse_hook_name(name)
        if not 0 <= point.layer < self.n_layers:
            raise HookPointError(f"hook {name!r}: layer {point.layer} out of range, {self.name} has layers 0..{self.n_layers - 1}")
        return point

    def hook_module(self, point: HookPoint) -> tuple[nn.Module, str]:
        """The module carrying `point` and which side of it: "input" (pre-hook) or "output" (forward hook)."""
        layer = self.layers[point.layer]
        if point.kind == "hook_resid_pre":
            return layer, "input"
        if point.kind == "hook_resid_post":
            return layer, "output"
        path = self.arch.attn_out if point.kind == "hook_attn_out" else self.arch.mlp_out
        if path is None:
            children = ", ".join(name for name, _ in layer.named_children())
            raise HookPointError(f"hook {point.name!r}: no {point.kind[5:]} module known for {self.model_type}; layer children: {children}")
        return get_attr_path(layer, path), "output"  # type: ignore[return-value]

    # ------------------------------------------------------------------ tokens
    def tokenize(self, prompts: str | Sequence[str], *, max_length: int | None = None) -> TokenBatch:
        """Tokenize prompts (with the tokenizer's BOS) into a right-padded batch on the model's device.

        Prompts longer than the context are cut to their first `context` tokens, with a warning and the lengths
        before the cut in `full_lengths`; empty prompts are refused.
        """
        if isinstance(prompts, str):
            prompts = [prompts]
        if not prompts:
            raise InputError("no prompt given")
        for prompt in prompts:
            if not isinstance(prompt, str):  # token ids, a tensor: not an empty prompt, as it was called
                raise InputError(f"the prompt must be text, got {type(prompt).__name__}")
            if not prompt.strip():
                raise InputError("empty prompt: type some text to analyze")
        limit = max_length or self.context_length
        rows = self.tokenizer(list(prompts), add_special_tokens=True)["input_ids"]
        full = None
        if limit is not None and any(len(r) > limit for r in rows):
            full = [len(r) for r in rows]
            warnings.warn(f"prompt cut to its first {limit} of {max(full)} tokens (the model's context is {limit})",
                          stacklevel=2)
            rows = [r[:limit] for r in rows]
        batch = self.batch_from_ids(rows)
        batch.full_lengths = full
        return batch

    def batch_from_ids(self, rows: Sequence[Sequence[int]]) -> TokenBatch:
        """Build a right-padded TokenBatch from lists of token ids."""
        import torch

        lengths = [len(r) for r in rows]
        if min(lengths) == 0:
            raise InputError("empty prompt: it has no tokens")
        width = max(lengths)
        pad = int(self.tokenizer.pad_token_id)
        ids = torch.full((len(rows), width), pad, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = torch.as_tensor(list(r), dtype=torch.long)
            mask[i, : len(r)] = 1
        special = torch.isin(ids, torch.tensor(sorted(self._special_ids), dtype=torch.long)) | (mask == 0)
        dev = self.device
        return TokenBatch(ids.to(dev), mask.to(dev), special.to(dev), lengths)

    def render_chat(self, messages: Sequence[Any], *, add_generation_prompt: bool | None = None) -> ChatTokens:
        """A conversation rendered with this model's chat template (see saetui.models.chat): ids, roles, text.

        Refused in one line, naming the model: no chat template, a template that rejects the conversation,
        a conversation longer than the context (a cut template would lose the turn the model answers).
        """
        from saetui.models.chat import render_chat

        chat = render_chat(self.tokenizer, messages, name=self.name, add_generation_prompt=add_generation_prompt)
        limit = self.context_length
        if limit is not None and len(chat) > limit:
            raise InputError(f"the conversation has {len(chat)} tokens with {self.name}'s chat template, more than "
                             f"the context of {limit}")
        if not chat.ids:
            raise InputError("empty prompt: the chat template rendered no tokens")
        return chat

    def batch_from_chat(self, chat: ChatTokens) -> TokenBatch:
        """A one-row TokenBatch of a rendered conversation, with its template mask and roles."""
        import torch

        batch = self.batch_from_ids([chat.ids])
        batch.template_mask = torch.tensor([chat.template], dtype=torch.bool, device=batch.input_ids.device)
        batch.roles = [list(chat.roles)]
        return batch

    def token_texts(self, ids: Sequence[int]) -> list[str]:
        """Each token's own text, as the tokenizer decodes it alone (leading spaces kept); a token holding
        part of a UTF-8 character (which decodes to `\ufffd` alone) as its bytes, e.g. `<0xF0><0x9F>`."""
        from saetui.models.token_text import byte_text

        texts = self.tokenizer.batch_decode([[int(i)] for i in ids], skip_special_tokens=False)
        return [byte_text(self.tokenizer, int(i)) or t if "\ufffd" in t else t for i, t in zip(ids, texts)]

    def is_special(self, token_id: int) -> bool:
        return int(token_id) in self._special_ids


def hub_model_id(name_or_path: str) -> str | None:
    """The Hub id `name_or_path` names, or None for an existing local folder; a path that does not exist is a
    one-line error (a typo in a path must not become a Hub request)."""
    local = Path(name_or_path).expanduser()
    if local.exists():
        return None
    if name_or_path.startswith((".", "/", "~")) or name_or_path.count("/") > 1:
        raise ModelLoadError(f"no model directory at {name_or_path!r}")
    return name_or_path


def hub_source(name_or_path: str) -> Path:
    """Where a model loads from: its local folder, or the snapshot of a Hub id in the HF cache (saetui.hub.fetch:
    nothing requested when the cache is complete, the missing files fetched with progress otherwise)."""
    repo_id = hub_model_id(name_or_path)
    if repo_id is None:
        return Path(name_or_path).expanduser()
    from saetui import hub

    (stored,) = hub.fetch([hub.model_target(repo_id)])
    return stored.path


def _count_params(config: Any, common: dict[str, Any]) -> int:
    """Parameter count from the config alone (built on the meta device, no memory used)."""
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        skeleton = AutoModelForCausalLM.from_config(config, trust_remote_code=common.get("trust_remote_code", False))
    return sum(p.numel() for p in skeleton.parameters())


def _say_if_unreadable(generation_config: Path) -> None:
    """A notice where a model folder's generation_config.json is there but cannot be read: transformers goes on
    without it, so a chat reply no longer stops at the model's own end-of-turn ids (steering.decode.stop_ids)."""
    import json

    from saetui.files import notice

    try:
        if generation_config.is_file():
            json.loads(generation_config.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        notice(f"{generation_config} could not be read ({type(exc).__name__}): generation stops at the tokenizer's "
               "end token only, not at the model's own stop tokens")
