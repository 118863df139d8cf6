"""Feature circuits (saetui.sae.circuit): time and memory of a whole circuit, against the passes it cannot avoid.

Model: the random Gemma-2-shaped model of bench_analysis.py (--preset tiny|small|gemma-2-2b) with a random
JumpReLU SAE (L0 ~ 64) at every layer's hook_resid_post (gemma-2-2b: 26 SAEs of 16k, as Gemma Scope's residual
release), a --tokens-token prompt of random words; the target is the model's own top next token, the versus its
second.

    ours    find_circuit: integrated gradients (--steps, a batch per SAE), edges (a forward per SAE pair and a
            backward per listed downstream node), the top nodes ablated one by one, the faithfulness curve
    bound   the integrated-gradient passes alone: for each SAE, one forward and backward of the --steps rows with
            every SAE spliced in and nothing kept (the rest of the circuit is on top of this)

    python benchmarks/bench_circuit.py [--preset gemma-2-2b --device cuda] [--tokens 32] [--steps 10] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from bench_analysis import add_device_args, build, peak_memory, timed  # noqa: E402


def main() -> None:
    from saetui.models.synthetic import calibrate_threshold, random_jumprelu_sae
    from saetui.sae.circuit import CircuitSettings, _Metric, _Plan, _run, find_circuit

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_device_args(parser, preset="tiny")
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--nodes", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    model, analyzer, first, *_ = build(args.preset, args.device, args.dtype)
    manager = analyzer.saes
    gen = torch.Generator().manual_seed(4)
    sample = model.batch_from_ids(torch.randint(3, model.config.vocab_size, (4, 64), generator=gen).tolist())
    for layer in range(model.n_layers):
        hook = f"blocks.{layer}.hook_resid_post"
        if hook == first.hook_name:
            continue
        loaded = manager.add(random_jumprelu_sae(model.d_model, first.d_sae, hook, seed=layer).to(model.dtype), name=f"L{layer}")
        calibrate_threshold(loaded.sae, analyzer.collector.run(sample, [hook])[0][hook].flatten(0, 1), target_l0=64)
    saes = sorted(manager, key=lambda s: s.layer)
    words = torch.randint(3, model.config.vocab_size, (args.tokens - 1,), generator=gen).tolist()
    prompt = " ".join(f"t{w}" for w in words)
    ids = model.tokenize(prompt).input_ids
    with torch.inference_mode():
        top = model.model(input_ids=ids).logits[0, -1].topk(2).indices.tolist()
    settings = CircuitSettings(nodes=args.nodes, steps=args.steps)
    metric = _Metric(top[0], top[1])

    def ours() -> None:
        find_circuit(model, saes, [prompt], top[0], top[1], settings=settings)

    def bound() -> None:
        rows = ids.expand(max(args.steps, 1), -1)
        for _ in saes:
            m, _ = _run(model, saes, rows, _Plan(), metric, grad=True)
            m.sum().backward()

    if args.device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    for p in model.model.parameters():
        p.requires_grad_(False)
    for fn in (ours, bound):  # warm-up
        fn()
    times: dict[str, list[float]] = {"ours": [], "bound": []}
    for r in range(args.rounds):
        for name, fn in ((("ours", ours), ("bound", bound)) if r % 2 == 0 else (("bound", bound), ("ours", ours))):
            times[name].append(timed(fn, args.device))
    ours_s, bound_s = statistics.median(times["ours"]), statistics.median(times["bound"])
    print(f"device={args.device} dtype={model.dtype} preset={args.preset} saes={len(saes)} d_sae={first.d_sae} "
          f"tokens={ids.shape[1]} steps={args.steps} nodes={args.nodes} rounds={args.rounds}")
    print(f"circuit: {ours_s:.2f} s, {ours_s / bound_s:.2f}x its integrated-gradient passes alone ({bound_s:.2f} s)")
    if args.device.startswith("cuda"):
        print(peak_memory(args.device))


if __name__ == "__main__":
    main()
