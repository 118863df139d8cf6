"""Random-weight models built from configs: tiny ones for tests, Gemma-2-shaped ones for benchmarks.

Nothing here downloads anything. `tiny_model_dir(arch, path)` writes a directory that
`ModelWithHooks.from_pretrained(path)` loads through the same code path as a real checkpoint,
with a small byte-level BPE tokenizer trained on a few sentences.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

#: Architectures with a tiny test config; every one is exercised by the test-suite.
TINY_ARCHITECTURES = ("gemma", "gemma2", "gemma3_text", "llama", "mistral", "qwen2", "qwen3", "phi3", "gpt2", "gpt_neox", "opt")

_TOKENIZER_TEXT = [
    "The capital of France is Paris. The capital of Japan is Tokyo.",
    "The cat sat on the mat and the dog ran in the park.",
    "One two three four five six seven eight nine ten.",
    "Red green blue yellow purple orange black white.",
    "She said hello to him and they walked home together.",
]

# Special token ids are fixed by the order the tokenizer trainer sees them.
PAD_ID, BOS_ID, EOS_ID = 0, 1, 2


def build_tokenizer(vocab_size: int = 320, texts: list[str] | None = None) -> Any:
    """A byte-level BPE tokenizer that prepends <bos>, with <pad>=0, <bos>=1, <eos>=2."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<pad>", "<bos>", "<eos>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts or _TOKENIZER_TEXT * 4, trainer)
    tok.post_processor = processors.TemplateProcessing(single="<bos> $A", special_tokens=[("<bos>", BOS_ID)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>")


def tiny_config(arch: str, *, vocab_size: int = 320, hidden: int = 64, layers: int = 4, heads: int = 4) -> Any:
    """A few-hundred-kB config of model type `arch` (see TINY_ARCHITECTURES)."""
    from transformers import AutoConfig

    ids = dict(pad_token_id=PAD_ID, bos_token_id=BOS_ID, eos_token_id=EOS_ID)
    common = dict(
        hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers, num_attention_heads=heads,
        vocab_size=vocab_size, max_position_embeddings=128, **ids,
    )
    head_dim = hidden // heads
    per_arch: dict[str, dict[str, Any]] = {
        "gemma": dict(common, num_key_value_heads=2, head_dim=head_dim),
        "gemma2": dict(common, num_key_value_heads=2, head_dim=head_dim, query_pre_attn_scalar=head_dim, sliding_window=16),
        "gemma3_text": dict(common, num_key_value_heads=2, head_dim=head_dim, query_pre_attn_scalar=head_dim, sliding_window=16),
        "llama": dict(common, num_key_value_heads=2),
        "mistral": dict(common, num_key_value_heads=2),
        "qwen2": dict(common, num_key_value_heads=2),
        "qwen3": dict(common, num_key_value_heads=2, head_dim=head_dim),
        "phi3": dict(common, num_key_value_heads=2),
        "gpt2": dict(n_embd=hidden, n_layer=layers, n_head=heads, vocab_size=vocab_size, n_positions=128, **ids),
        "gpt_neox": dict(common),
        "opt": dict(hidden_size=hidden, ffn_dim=2 * hidden, num_hidden_layers=layers, num_attention_heads=heads,
                    vocab_size=vocab_size, max_position_embeddings=128, word_embed_proj_dim=hidden, **ids),
    }
    if arch not in per_arch:
        raise ValueError(f"no tiny config for {arch!r}; known: {', '.join(per_arch)}")
    return AutoConfig.for_model(arch, **per_arch[arch])


def tiny_model_dir(arch: str, path: str | Path, *, seed: int = 0, **config_kwargs: Any) -> Path:
    """Write a random tiny `arch` model plus tokenizer to `path`, loadable with from_pretrained."""
    import torch
    from transformers import AutoModelForCausalLM

    path = Path(path)
    tokenizer = build_tokenizer()
    config = tiny_config(arch, vocab_size=len(tokenizer), **config_kwargs)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def gemma2_config(preset: str = "small", vocab_size: int | None = None) -> Any:
    """Gemma-2-architecture configs for benchmarks.

    tiny:       hidden 128, 2 layers, vocab 1024 (dry runs of the benchmark scripts)
    small:      hidden 512, 8 layers, vocab 8192 (runs on a laptop CPU)
    gemma-2-2b: gemma-2-2b's real dimensions (hidden 2304, 26 layers, vocab 256000), random weights
    """
    from transformers import AutoConfig

    if preset == "tiny":  # for dry runs of the benchmark scripts (benchmarks/gpu_check.sh on CPU)
        kw = dict(hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, head_dim=32, query_pre_attn_scalar=32, vocab_size=1024,
                  sliding_window=4096, max_position_embeddings=8192)
    elif preset == "small":
        kw = dict(hidden_size=512, intermediate_size=2048, num_hidden_layers=8, num_attention_heads=8,
                  num_key_value_heads=4, head_dim=64, query_pre_attn_scalar=64, vocab_size=8192,
                  sliding_window=4096, max_position_embeddings=8192)
    elif preset == "gemma-2-2b":
        kw = dict(hidden_size=2304, intermediate_size=9216, num_hidden_layers=26, num_attention_heads=8,
                  num_key_value_heads=4, head_dim=256, query_pre_attn_scalar=256, vocab_size=256000,
                  sliding_window=4096, max_position_embeddings=8192)
    else:
        raise ValueError(f"unknown preset {preset!r}: use tiny, small or gemma-2-2b")
    if vocab_size is not None:
        kw["vocab_size"] = vocab_size
    return AutoConfig.for_model("gemma2", pad_token_id=PAD_ID, bos_token_id=BOS_ID, eos_token_id=EOS_ID, **kw)


def random_jumprelu_sae(d_in: int, d_sae: int, hook_name: str, *, seed: int = 0, model_name: str = "random") -> Any:
    """A sae-lens JumpReLUSAE with random weights that fires sparsely on roughly normalised inputs."""
    import torch
    from sae_lens import JumpReLUSAE, JumpReLUSAEConfig

    cfg = JumpReLUSAEConfig(d_in=d_in, d_sae=d_sae, dtype="float32", device="cpu")
    cfg.metadata.hook_name = hook_name
    cfg.metadata.model_name = model_name
    sae = JumpReLUSAE(cfg)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        w = torch.randn(d_sae, d_in, generator=gen)
        sae.W_dec.copy_(w / w.norm(dim=1, keepdim=True))
        sae.W_enc.copy_(sae.W_dec.T)
        sae.b_enc.copy_(torch.randn(d_sae, generator=gen) * 0.1)
        sae.b_dec.zero_()
        sae.threshold.fill_(0.05 * d_in**0.5)
    return sae


def calibrate_threshold(sae: Any, x: Any, target_l0: float) -> None:
    """Set a JumpReLU SAE's threshold so that about `target_l0` features fire per row of x (N, d_in),
    as in a trained SAE; random encoders otherwise fire on half their features."""
    import torch

    with torch.no_grad():
        pre = sae.process_sae_in(x) @ sae.W_enc + sae.b_enc  # (N, d_sae)
        k = max(1, int(target_l0 * pre.shape[0]))
        cut = pre.flatten().float().topk(k).values[-1]
        sae.threshold.fill_(float(cut))


def build_wordlevel_tokenizer(vocab_size: int) -> Any:
    """A tokenizer with exactly `vocab_size` ids (`<pad>`, `<bos>`, `<eos>`, then `t3`, `t4`, ...), for benchmarks."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": PAD_ID, "<bos>": BOS_ID, "<eos>": EOS_ID}
    vocab.update({f"t{i}": i for i in range(3, vocab_size)})
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<eos>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.post_processor = processors.TemplateProcessing(single="<bos> $A", special_tokens=[("<bos>", BOS_ID)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>")
