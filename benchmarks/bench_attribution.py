"""Attribution cost: saetui's `attribute` against one forward of the same prompt, in one process.

Model and SAE as in bench_analysis.py (Gemma-2 architecture from config, random weights; preset
`small`: hidden 512, 8 layers, vocab 8192; JumpReLU SAE width 8192 at blocks.4.hook_resid_post,
calibrated to L0 ~ 64). One prompt of --tokens tokens (default 32 and 128).

    (f)  one full HF forward of the prompt (logits at every position) + sae.encode at the hook
    (g)  one full HF forward of the prompt
    target      attribute(..., verify=0): spliced forward + backward, every feature's attribution,
                top-20, the result objects                                     target <= 3x (f)
    verify-10   the 10 ablations, batched: one forward of 11 rows, widened at the hooked layer
                (rows share layers 0..3)                                       target <= 2x (g)
    verify-10, plain batch   the same without the widening (every row runs every layer)
    verify-10, one by one    10 + 1 forwards of one row (what batching saves)

Rounds are interleaved (each round runs every method once, in a rotating order) and medians compared.

    python benchmarks/bench_attribution.py [--preset small|gemma-2-2b] [--rounds 15] [--tokens 32,128] [--device cuda]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_analysis import build, timed  # noqa: E402  (same model, SAE and timer)


def main() -> None:
    from saetui.sae.attribution import ablation_values, attribute

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="small", choices=["small", "gemma-2-2b"])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--tokens", default="32,128", help="prompt lengths, comma-separated")
    args = parser.parse_args()

    model, _analyzer, loaded, full_forward, _by_hand, layer, hook = build(args.preset, args.device)
    hf = model.model
    print(f"device={args.device} dtype={model.dtype} threads={torch.get_num_threads()} preset={args.preset} "
          f"layer={layer}/{model.n_layers} d_sae={loaded.d_sae} rounds={args.rounds}")
    gen = torch.Generator().manual_seed(1)
    for n_tokens in (int(t) for t in args.tokens.split(",")):
        ids = torch.randint(3, model.config.vocab_size, (n_tokens - 1,), generator=gen).tolist()
        prompt = " ".join(f"t{i}" for i in ids)  # the word-level tokenizer: one token a word, plus BOS
        batch = model.tokenize(prompt)
        assert batch.input_ids.shape[1] == n_tokens
        first = attribute(model, [loaded], prompt, top_k=20, verify=10)
        rows = [(loaded, f.feature) for f in first.saes[0].features[:10]]
        target = first.target.id

        def forward():
            with torch.inference_mode():
                hf(input_ids=batch.input_ids, attention_mask=batch.attention_mask, use_cache=False)

        def one_by_one():
            ablation_values(model, batch.input_ids, [], target)
            for row in rows:
                ablation_values(model, batch.input_ids, [row], target)

        methods = {
            "(f) full forward + encode": lambda: full_forward(batch),
            "(g) full forward": forward,
            "target (attribute, verify=0)": lambda: attribute(model, [loaded], prompt, top_k=20, verify=0),
            "verify-10, batched (widened)": lambda: ablation_values(model, batch.input_ids, rows, target, widen=True),
            "verify-10, plain batch": lambda: ablation_values(model, batch.input_ids, rows, target, widen=False),
            "verify-10, one by one": one_by_one,
        }
        for fn in methods.values():  # warm-up
            fn(), fn()
        times: dict[str, list[float]] = {name: [] for name in methods}
        names = list(methods)
        for r in range(args.rounds):
            order = names[r % len(names):] + names[: r % len(names)]
            for name in order:
                times[name].append(timed(methods[name], args.device))
        med = {name: statistics.median(t) for name, t in times.items()}
        f, g = med["(f) full forward + encode"], med["(g) full forward"]
        print(f"\nprompt of {n_tokens} tokens")
        for name in names:
            print(f"  {name:<32} {med[name] * 1e3:9.2f} ms   {med[name] / f:5.2f}x (f)   {med[name] / g:5.2f}x (g)")
        print(f"  target: {med['target (attribute, verify=0)'] / f:.2f}x (f) (goal <= 3x); "
              f"verify-10: {med['verify-10, batched (widened)'] / g:.2f}x (g) (goal <= 2x); "
              f"attribute with verify=10 in all: {(med['target (attribute, verify=0)'] + med['verify-10, batched (widened)']) / f:.2f}x (f)")


if __name__ == "__main__":
    main()
