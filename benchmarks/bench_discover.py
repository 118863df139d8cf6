"""Discover (issue 12): decoder neighbours and contrast, against a peer and a lower bound in the same process.

    neighbours  ms per query on a random decoder of 65,536 features x d 2304 (gemma-2-2b's width, a 64k
                Gemma Scope SAE's size), after the one-time normalisation (timed too); fp32 and bf16.
                Lower bound: a plain matmul of the already-normalised decoder with the query row + top-k.
                Target <= 50 ms per query.
    contrast    2 x 100 prompts of 64 tokens through `saetui.sae.contrast.contrast` vs analyzing the same
                tokens with SAEAnalyzer.analyze_batch (same batches of 16) and vs the lower bound of
                bench_analysis (layers 0..L by hand + sae.encode). Target <= 1.2x analyze.
                Model and SAE: bench_analysis's `small` preset (Gemma-2 architecture, hidden 512, 8 layers,
                vocab 8192, random weights; JumpReLU SAE width 8192 at blocks.4.hook_resid_post, L0 ~ 64).

Rounds are interleaved (every method once per round, in a rotating order) and medians compared.

    python benchmarks/bench_discover.py [--rounds 15] [--skip-neighbours] [--skip-contrast] [--device cpu]
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import torch

sys.path.insert(0, str(Path(__file__).parent))


def interleaved(methods: dict[str, Callable[[], object]], rounds: int, device: str) -> dict[str, float]:
    """Median seconds per method over `rounds` interleaved rounds."""
    from bench_analysis import timed

    times: dict[str, list[float]] = {name: [] for name in methods}
    names = list(methods)
    for r in range(rounds):
        for name in names[r % len(names):] + names[: r % len(names)]:
            times[name].append(timed(methods[name], device))
    return {name: statistics.median(t) for name, t in times.items()}


def bench_neighbours(rounds: int, device: str, d_sae: int = 65536, d_in: int = 2304) -> None:
    from sae_lens import JumpReLUSAE, JumpReLUSAEConfig

    from saetui.sae.manager import LoadedSAE
    from saetui.sae.neighbours import decoder_neighbours, unit_decoder

    print(f"neighbours: random decoder {d_sae:,} x {d_in}, top-10, {rounds} rounds of 8 queries, device={device}")
    for dtype in (torch.float32, torch.bfloat16):
        cfg = JumpReLUSAEConfig(d_in=d_in, d_sae=d_sae, dtype=str(dtype).replace("torch.", ""), device=device)
        cfg.metadata.hook_name = "blocks.12.hook_resid_post"
        sae = JumpReLUSAE(cfg)
        with torch.no_grad():
            sae.W_dec.copy_(torch.randn(d_sae, d_in, generator=torch.Generator().manual_seed(0)).to(dtype))
        loaded = LoadedSAE("wide", "random", sae, cfg.metadata.hook_name, 12)
        start = time.perf_counter()
        unit = unit_decoder(loaded)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        once = time.perf_counter() - start
        features = torch.randint(0, d_sae, (8,), generator=torch.Generator().manual_seed(1)).tolist()

        def ours() -> None:
            for f in features:
                decoder_neighbours(loaded, f, top_k=10)

        def matmul() -> None:  # the lower bound: the product with the cached unit rows and a top-k, nothing else
            with torch.inference_mode():
                for f in features:
                    (unit @ unit[f]).topk(11)

        ours(), matmul()
        med = interleaved({"ours": ours, "matmul": matmul}, rounds, device)
        per_q = {k: v / len(features) * 1e3 for k, v in med.items()}
        print(f"  {str(dtype).replace('torch.', ''):<9} one-time normalisation {once * 1e3:7.0f} ms; "
              f"per query {per_q['ours']:6.1f} ms (target <= 50) vs plain matmul + top-k {per_q['matmul']:6.1f} ms "
              f"({per_q['ours'] / per_q['matmul']:.2f}x)")
        del sae, loaded, unit
        gc.collect()


def bench_contrast(rounds: int, device: str, n: int = 100, length: int = 64, batch_size: int = 16) -> None:
    from bench_analysis import build

    from saetui.sae.contrast import contrast

    model, analyzer, loaded, _, by_hand, layer, hook = build("small", device)
    gen = torch.Generator().manual_seed(3)
    rows = torch.randint(3, model.config.vocab_size, (2 * n, length), generator=gen)
    rows[:, 0] = model.tokenizer.bos_token_id
    rows = rows.tolist()
    a, b = rows[:n], rows[n:]
    batches = [model.batch_from_ids(rows[i : i + batch_size]) for i in range(0, len(rows), batch_size)]
    saes = analyzer.saes
    print(f"\ncontrast: 2 x {n} prompts of {length} tokens, batches of {batch_size}, d_sae={loaded.d_sae}, "
          f"{rounds} rounds, device={device} dtype={model.dtype}")
    methods = {
        "contrast (mean)": lambda: contrast(model, saes, a, b, top_k=20, batch_size=batch_size),
        "contrast (max)": lambda: contrast(model, saes, a, b, top_k=20, pool="max", batch_size=batch_size),
        "analyze": lambda: [analyzer.analyze_batch(batch, top_k=10) for batch in batches],
        "lower bound": lambda: [by_hand(batch) for batch in batches],
    }
    for fn in methods.values():
        fn()
    med = interleaved(methods, rounds, device)
    for name, t in med.items():
        print(f"  {name:<16} {t * 1e3:8.0f} ms   {t / med['analyze']:5.2f}x analyze   {t / med['lower bound']:5.2f}x lower bound")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--skip-neighbours", action="store_true")
    parser.add_argument("--skip-contrast", action="store_true")
    args = parser.parse_args()
    print(f"threads={torch.get_num_threads()}")
    if not args.skip_neighbours:
        bench_neighbours(args.rounds, args.device)
    if not args.skip_contrast:
        bench_contrast(args.rounds, args.device)


if __name__ == "__main__":
    main()
