"""Analysis latency: saetui's SAEAnalyzer against a lower bound and two peers, in one process.

Model: a Gemma-2-architecture model built from config with random weights (default preset `small`:
hidden 512, 8 layers, vocab 8192; `--preset gemma-2-2b`: gemma-2-2b's real dimensions, for GPUs),
a JumpReLU SAE (width 8192, or 16k for gemma-2-2b) at the middle layer's hook_resid_post.

    ours   SAEAnalyzer.analyze_batch: forward that stops after the SAE's layer, encode, per-token and
           per-prompt top-k, reconstruction quality (one SAE decode), results as Python objects;
           also without the reconstruction (`reconstruction=False`)
    (a)    full HF forward with a forward hook on the layer + sae.encode
    (b)    lower bound: embeddings, masks, rotary and layers 0..L run by hand + sae.encode
    (c)    sae-lens HookedSAETransformer.run_with_cache_with_saes on a HookedTransformer of the same size

Rounds are interleaved (each round runs every method once, in a rotating order) and the medians
are compared. Ratios are to (b); < 1.05 for `ours` is the target.

    python benchmarks/bench_analysis.py [--preset small|gemma-2-2b] [--rounds 15] [--device cuda]
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable

import torch


PRESETS = ["tiny", "small", "gemma-2-2b"]


def add_device_args(parser: argparse.ArgumentParser, preset: str = "small") -> None:
    """--preset, --device, --dtype: the flags every benchmark takes (benchmarks/gpu_check.sh passes them)."""
    parser.add_argument("--preset", default=preset, choices=PRESETS)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", default=None, help="float32 or bfloat16 (default: bf16 on CUDA, fp32 elsewhere)")


def peak_memory(device: str) -> str:
    """Peak GPU memory since the process started (or the last reset), for the table; '' off CUDA."""
    if not device.startswith("cuda"):
        return ""
    return f"peak GPU memory {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB"


def build(preset: str, device: str, dtype: str | None = None):
    from transformers import AutoModelForCausalLM

    from saetui.models.hf_compat import hidden_after
    from saetui.models.model import ModelWithHooks, pick_dtype
    from saetui.models.synthetic import build_wordlevel_tokenizer, calibrate_threshold, gemma2_config, random_jumprelu_sae
    from saetui.sae.analyzer import SAEAnalyzer
    from saetui.sae.manager import SAEManager

    config = gemma2_config(preset)
    dtype = pick_dtype(device, "gemma2", dtype)
    torch.manual_seed(0)
    with torch.device(device):
        hf = AutoModelForCausalLM.from_config(config, dtype=dtype, attn_implementation="eager").eval()
    model = ModelWithHooks(hf, build_wordlevel_tokenizer(config.vocab_size), name=f"gemma2-{preset}")
    layer = config.num_hidden_layers // 2
    hook = f"blocks.{layer}.hook_resid_post"
    width = {"gemma-2-2b": 16384, "tiny": 1024}.get(preset, 8192)
    sae = random_jumprelu_sae(config.hidden_size, width, hook)
    manager = SAEManager(model)
    loaded = manager.add(sae, name="bench")
    analyzer = SAEAnalyzer(model, manager)
    # A trained SAE fires on ~1% of its features; calibrate the random one to L0 ~ 64 on random text.
    sample = model.batch_from_ids(torch.randint(3, config.vocab_size, (4, 128), generator=torch.Generator().manual_seed(2)).tolist())
    calibrate_threshold(loaded.sae, analyzer.collector.run(sample, [hook])[0][hook].flatten(0, 1), target_l0=64)

    def full_forward(batch):
        box = {}
        handle = model.layers[layer].register_forward_hook(lambda m, i, o: box.update(h=o[0] if isinstance(o, tuple) else o))
        try:
            with torch.inference_mode():
                hf(input_ids=batch.input_ids, attention_mask=batch.attention_mask, use_cache=False)
                return loaded.sae.encode(box["h"])
        finally:
            handle.remove()

    def by_hand(batch):
        with torch.inference_mode():
            return loaded.sae.encode(hidden_after(hf, batch.input_ids, layer))

    return model, analyzer, loaded, full_forward, by_hand, layer, hook


def build_sae_lens_model(preset: str, device: str, dtype: torch.dtype | None = None):
    """A HookedSAETransformer of the same shape (Gemma-2 style: RMS pre/post norms, gated MLP, GQA, soft caps)."""
    from sae_lens import HookedSAETransformer
    from transformer_lens import HookedTransformerConfig

    from saetui.models.synthetic import gemma2_config

    c = gemma2_config(preset)
    cfg = HookedTransformerConfig(
        d_model=c.hidden_size, n_layers=c.num_hidden_layers, n_heads=c.num_attention_heads, d_head=c.head_dim,
        d_mlp=c.intermediate_size, d_vocab=c.vocab_size, n_ctx=1024, act_fn="gelu_pytorch_tanh",
        normalization_type="RMS", positional_embedding_type="rotary", gated_mlp=True,
        n_key_value_heads=c.num_key_value_heads, use_normalization_before_and_after=True,
        attn_scores_soft_cap=c.attn_logit_softcapping, output_logits_soft_cap=c.final_logit_softcapping,
        rotary_dim=c.head_dim, device=device,
        dtype=dtype or (torch.bfloat16 if device.startswith("cuda") else torch.float32),
    )
    torch.manual_seed(0)
    return HookedSAETransformer(cfg).eval()


def build_sae_lens(preset: str, device: str, sae, hook: str, dtype: torch.dtype | None = None):
    """run_with_cache_with_saes on that model, caching only the SAE's feature activations."""
    tl = build_sae_lens_model(preset, device, dtype)
    names = [f"{hook}.hook_sae_acts_post"]

    def run(tokens):
        with torch.inference_mode():
            _, cache = tl.run_with_cache_with_saes(tokens, saes=[sae], names_filter=names)
            return cache[names[0]]

    return run


def timed(fn: Callable[[], object], device: str) -> float:
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_device_args(parser)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--no-sae-lens", action="store_true", help="skip the HookedSAETransformer peer")
    args = parser.parse_args()

    model, analyzer, loaded, full_forward, by_hand, layer, hook = build(args.preset, args.device, args.dtype)
    peer = None if args.no_sae_lens else build_sae_lens(args.preset, args.device, loaded.sae, hook, model.dtype)
    print(f"device={args.device} dtype={model.dtype} threads={torch.get_num_threads()} preset={args.preset} "
          f"layer={layer}/{model.n_layers} d_sae={loaded.d_sae} rounds={args.rounds}")
    gen = torch.Generator().manual_seed(1)
    for batch_size in (1, 8):
        rows = torch.randint(3, model.config.vocab_size, (batch_size, 128), generator=gen)
        rows[:, 0] = model.tokenizer.bos_token_id
        batch = model.batch_from_ids(rows.tolist())
        tokens = batch.input_ids
        methods = {
            "ours": lambda: analyzer.analyze_batch(batch, top_k=10),
            "ours, no reconstruction": lambda: analyzer.analyze_batch(batch, top_k=10, reconstruction=False),
            "(a) full forward + encode": lambda: full_forward(batch),
            "(b) lower bound": lambda: by_hand(batch),
        }
        if peer is not None:
            methods["(c) sae-lens run_with_cache_with_saes"] = lambda: peer(tokens)
        for fn in methods.values():  # warm-up
            fn(), fn()
        times: dict[str, list[float]] = {name: [] for name in methods}
        names = list(methods)
        for r in range(args.rounds):
            order = names[r % len(names):] + names[: r % len(names)]
            for name in order:
                times[name].append(timed(methods[name], args.device))
        base = statistics.median(times["(b) lower bound"])
        print(f"\nbatch {batch_size}x128")
        for name in names:
            med = statistics.median(times[name])
            print(f"  {name:<40} {med * 1e3:9.2f} ms   {med / base:5.2f}x lower bound")
        ours = statistics.median(times["ours"])
        print(f"  ours is {statistics.median(times['(a) full forward + encode']) / ours:.2f}x faster than (a)", end="")
        if peer is not None:
            print(f", {statistics.median(times['(c) sae-lens run_with_cache_with_saes']) / ours:.2f}x faster than (c)")
        else:
            print()
    if args.device.startswith("cuda"):
        print(peak_memory(args.device))


if __name__ == "__main__":
    main()
