"""SAE health (saetui.sae.evals) against the bare forwards it needs, in one process; and its memory on 10x the corpus.

    ours    evaluate(): every SAE's figures over the corpus, one pass (rows: clean, each SAE spliced in, each
            hook zeroed), batches of --batch-size documents
    bare    the same forwards and nothing else: the batch repeated 1 + SAEs + hooks times, a hook per hook point
            that encodes the clean rows and writes each splice and zero, logits; no figure kept
            (target: ours <= 1.15x bare)
    memory  peak RSS growth of evaluate() over N and 10 N documents, each in a fresh process (must not grow)

Model: the bundled demo and its two SAEs on generated demo documents (default), or with --preset tiny|small|
gemma-2-2b the random Gemma-2-shaped model of bench_analysis.py with its SAE plus a second one two layers later,
on random token documents, on --device/--dtype.

    python benchmarks/bench_evals.py [--rounds 3] [--docs 200] [--preset small --device cuda]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from bench_analysis import PRESETS, build, peak_memory, timed  # noqa: E402

MEMORY = """
import resource
from saetui.demo import load_demo
from saetui.demo.corpus import generate_corpus
from saetui.sae.evals import EvalSettings, evaluate
model, saes = load_demo(device="cpu")
texts = [d.text for d in generate_corpus({docs}, seed=7)]
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
result = evaluate(model, list(saes), texts, settings=EvalSettings(batch_size=8), progress=False)
print(result.tokens, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)
"""


def main() -> None:
    from saetui.demo import load_demo
    from saetui.demo.corpus import generate_corpus
    from saetui.models.hooks import HookSet
    from saetui.models.synthetic import calibrate_threshold, random_jumprelu_sae
    from saetui.sae.evals import EvalSettings, evaluate

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--preset", default="demo", choices=["demo", *PRESETS])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default=None)
    parser.add_argument("--docs", type=int, default=200)
    parser.add_argument("--doc-tokens", type=int, default=64, help="with --preset: tokens per random document")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--no-memory", action="store_true", help="skip the memory check (two subprocesses)")
    args = parser.parse_args()
    torch.manual_seed(0)
    if args.preset == "demo":
        model, manager = load_demo(device=args.device)
        saes = list(manager)
        texts = [d.text for d in generate_corpus(args.docs, seed=5)]
    else:
        model, analyzer, loaded, *_ = build(args.preset, args.device, args.dtype)
        later = f"blocks.{min(loaded.layer + 2, model.n_layers - 1)}.hook_resid_post"
        second = analyzer.saes.add(random_jumprelu_sae(model.d_model, loaded.d_sae, later).to(model.dtype), name="later")
        gen = torch.Generator().manual_seed(5)
        sample = model.batch_from_ids(torch.randint(3, model.config.vocab_size, (4, 128), generator=gen).tolist())
        calibrate_threshold(second.sae, analyzer.collector.run(sample, [later])[0][later].flatten(0, 1), target_l0=64)
        saes = [loaded, second]
        words = torch.randint(3, model.config.vocab_size, (args.docs, args.doc_tokens - 1), generator=gen).tolist()
        texts = [" ".join(f"t{w}" for w in row) for row in words]
    hooks = list(dict.fromkeys(s.hook_name for s in saes))
    groups = 1 + len(saes) + len(hooks)
    bs = args.batch_size
    print(f"device={args.device} dtype={model.dtype} threads={torch.get_num_threads()} preset={args.preset} "
          f"saes={len(saes)} hooks={len(hooks)} rows per document={groups} docs={len(texts)} batch={bs} rounds={args.rounds}")

    def bare() -> int:
        n = 0
        for b in range(0, len(texts), bs):
            batch = model.tokenize(texts[b : b + bs])
            rows = len(batch)
            keep = ((~batch.special_mask) & batch.attention_mask.bool())[..., None]

            def make(hook):
                mine = [(1 + i, s) for i, s in enumerate(saes) if s.hook_name == hook]
                zero = 1 + len(saes) + hooks.index(hook)

                def edit(hidden):
                    x = hidden.reshape(groups, rows, *hidden.shape[1:])
                    out = x.clone()
                    for g, s in mine:
                        recon = s.sae.decode(s.sae.encode(x[0].to(s.sae.dtype))).to(x.dtype)
                        out[g] = torch.where(keep, recon, x[g])
                    out[zero] = torch.where(keep, torch.zeros_like(x[zero]), x[zero])
                    return out.reshape(hidden.shape)

                return edit

            with torch.inference_mode(), HookSet() as hs:
                for hook in hooks:
                    module, side = model.hook_module(model.hook_point(hook))
                    (hs.on_input if side == "input" else hs.on_output)(module, make(hook), where=hook)
                logits = model.model(input_ids=batch.input_ids.repeat(groups, 1),
                                     attention_mask=batch.attention_mask.repeat(groups, 1), use_cache=False).logits
                logits[:, :-1].float().log_softmax(-1)  # the loss needs the log-probabilities: a bare loop computes them too
            n += int(keep.sum())
        return n

    def ours() -> int:
        return evaluate(model, saes, texts, settings=EvalSettings(batch_size=bs), progress=False).tokens

    runs = {"ours": ours, "bare": bare}
    for fn in runs.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in runs}
    tokens: dict[str, int] = {}
    for r in range(args.rounds):
        for name in (list(runs) if r % 2 == 0 else list(runs)[::-1]):
            times[name].append(timed(lambda: tokens.update({name: runs[name]()}), args.device))  # noqa: B023
    ratio = statistics.median(times["ours"]) / statistics.median(times["bare"])
    rate = tokens["ours"] / statistics.median(times["ours"])
    print(f"evals: {rate:.0f} positions/s, {ratio:.2f}x the bare forwards it needs (target <= 1.15x)")
    if args.device.startswith("cuda"):
        print(peak_memory(args.device))
    if args.preset == "demo" and not args.no_memory:
        for docs in (100, 1000):
            n, grew = subprocess.run([sys.executable, "-c", MEMORY.format(docs=docs)], capture_output=True, text=True,
                                     check=True).stdout.split()[-2:]
            print(f"memory: {int(n):>7} positions evaluated, peak RSS grew {int(grew) / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
