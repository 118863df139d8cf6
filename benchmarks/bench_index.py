"""Feature-index building and search, against lower bounds in the same process.

    build       tokens/s of build_index vs a bare loop over the same batches: forward to the SAE's layer
                (early exit) + sae.encode, nothing kept (target >= 0.85x); and vs that loop encoding in the
                index's cache-sized pieces (on CPU the index encodes a batch in pieces: what is left is
                its own bookkeeping)
    memory      peak RSS of a build over ~10k vs ~100k tokens, each in a fresh process (must not grow with the corpus)
    search      ms per query on a 65,536-feature SAE with a label per feature (target <= 30 ms)

Model and SAE: the bundled demo (for search, a random 65k-wide JumpReLU SAE on the demo model), or with
--preset tiny|small|gemma-2-2b the random Gemma-2-shaped model and SAE of bench_analysis.py, or with
--preset gpt2 a random GPT-2-shaped model (d 256, 4 layers, vocab 8192) with a 4,096-wide JumpReLU SAE at
layer 2 (a wide SAE on a cheap forward: the index's own work weighs most), on random token documents
(--docs x --doc-tokens), on --device/--dtype (memory and search are then skipped).

    python benchmarks/bench_index.py [--rounds 3] [--preset gemma-2-2b --device cuda --dtype bfloat16 --batch-size 64]
    python benchmarks/bench_index.py --preset gpt2 --batch-size 32 --rounds 5
"""

from __future__ import annotations

import argparse
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from bench_analysis import PRESETS, build, peak_memory, timed  # noqa: E402

MEMORY = """
import resource, tempfile, sys
from saetui.demo import load_demo
from saetui.demo.corpus import generate_corpus
from saetui.sae.index import IndexSettings, build_index
model, saes = load_demo(device="cpu")
texts = [d.text for d in generate_corpus({docs}, seed=7)]
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
index = build_index(model, saes.get("demo"), texts, tempfile.mkdtemp() + "/i", settings=IndexSettings(batch_size=16), progress=False)
print(index.n_tokens, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)
"""


def build_gpt2(device: str):
    """A random GPT-2-shaped model (d 256, 4 layers) and a JumpReLU SAE of 4,096 at layer 2, calibrated to L0 ~ 64."""
    from transformers import AutoModelForCausalLM

    from saetui.activations.collector import ActivationCollector
    from saetui.models.model import ModelWithHooks
    from saetui.models.synthetic import build_wordlevel_tokenizer, calibrate_threshold, random_jumprelu_sae, tiny_config
    from saetui.sae.manager import SAEManager

    vocab, hook = 8192, "blocks.2.hook_resid_post"
    config = tiny_config("gpt2", vocab_size=vocab, hidden=256, layers=4, heads=4)
    config.n_positions = 1024
    torch.manual_seed(0)
    with torch.device(device):
        hf = AutoModelForCausalLM.from_config(config).eval()
    model = ModelWithHooks(hf, build_wordlevel_tokenizer(vocab), name="gpt2-bench")
    loaded = SAEManager(model).add(random_jumprelu_sae(256, 4096, hook), name="bench")
    sample = model.batch_from_ids(torch.randint(3, vocab, (4, 128), generator=torch.Generator().manual_seed(2)).tolist())
    calibrate_threshold(loaded.sae, ActivationCollector(model).run(sample, [hook])[0][hook].flatten(0, 1), target_l0=64)
    return model, loaded


def main() -> None:
    from saetui.activations.collector import ActivationCollector
    from saetui.demo import load_demo
    from saetui.demo.corpus import generate_corpus
    from saetui.models.synthetic import random_jumprelu_sae
    from saetui.sae.index import IndexSettings, build_index, piece_rows
    from saetui.sae.manager import SAEManager
    from saetui.sae.search import search_features

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--preset", default="demo", choices=["demo", "gpt2", *PRESETS])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default=None)
    parser.add_argument("--docs", type=int, default=400, help="with --preset: random documents")
    parser.add_argument("--doc-tokens", type=int, default=128, help="with --preset: tokens per random document")
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()
    torch.manual_seed(0)
    bs = args.batch_size
    if args.preset == "demo":
        model, saes = load_demo(device=args.device)
        loaded = saes.get("demo")
        texts = [d.text for d in generate_corpus(args.docs, seed=5)]
    elif args.preset == "gpt2":
        model, loaded = build_gpt2(args.device)
    else:
        model, analyzer, loaded, *_ = build(args.preset, args.device, args.dtype)
    if args.preset != "demo":
        gen = torch.Generator().manual_seed(5)
        words = torch.randint(3, model.config.vocab_size, (args.docs, args.doc_tokens - 1), generator=gen).tolist()
        texts = [" ".join(f"t{w}" for w in row) for row in words]
    print(f"device={args.device} dtype={model.dtype} threads={torch.get_num_threads()} preset={args.preset} "
          f"d_sae={loaded.d_sae} docs={len(texts)} batch={bs} rounds={args.rounds}")
    collector = ActivationCollector(model)

    def bare() -> int:
        n = 0
        for b in range(0, len(texts), bs):
            batch = model.tokenize(texts[b : b + bs])
            acts = collector.run(batch, [loaded.hook_name])[0][loaded.hook_name]
            with torch.inference_mode():
                loaded.sae.encode(acts[~batch.special_mask])
            n += int(batch.attention_mask.sum())
        return n

    def bare_pieces() -> int:
        """The same, encoding in the index's cache-sized pieces (saetui.sae.index.piece_rows)."""
        n = 0
        for b in range(0, len(texts), bs):
            batch = model.tokenize(texts[b : b + bs])
            acts = collector.run(batch, [loaded.hook_name])[0][loaded.hook_name][~batch.special_mask]
            rows = piece_rows(loaded.d_sae, acts.device, len(acts))
            with torch.inference_mode():
                for i in range(0, len(acts), rows):
                    loaded.sae.encode(acts[i : i + rows])
            n += int(batch.attention_mask.sum())
        return n

    def ours() -> int:
        out = Path(tempfile.mkdtemp()) / "i"
        return build_index(model, loaded, texts, out, settings=IndexSettings(batch_size=bs), progress=False).n_tokens

    runs = {"ours": ours, "bare": bare, "pieces": bare_pieces}
    for fn in runs.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in runs}
    tokens = {}
    for r in range(args.rounds):
        for name in (list(runs) if r % 2 == 0 else list(runs)[::-1]):
            times[name].append(timed(lambda: tokens.update({name: runs[name]()}), args.device))
    rate = {k: tokens[k] / statistics.median(v) for k, v in times.items()}
    print(f"build: {rate['ours']:.0f} tokens/s vs bare forward+encode {rate['bare']:.0f} tokens/s ({rate['ours'] / rate['bare']:.2f}x); "
          f"vs the same encoding in pieces, nothing kept, {rate['pieces']:.0f} tokens/s ({rate['ours'] / rate['pieces']:.2f}x)")
    if args.device.startswith("cuda"):
        print(peak_memory(args.device))
    if args.preset != "demo":
        return

    for docs in (170, 1700):  # ~10k and ~100k tokens
        n, grew = subprocess.run([sys.executable, "-c", MEMORY.format(docs=docs)], capture_output=True, text=True,
                                 check=True).stdout.split()[-2:]
        print(f"memory: {int(n):>7} tokens indexed, peak RSS grew {int(grew) / 1024:.0f} MiB during the build")

    wide = SAEManager(model).add(random_jumprelu_sae(model.d_model, 65536, loaded.hook_name), name="wide")
    words = ["color", "animal", "number", "name", "capital", "country", "food", "weather", "month", "day", "emotion"]
    rng = random.Random(0)
    labels = {f: f"{rng.choice(words)} {rng.choice(words)}-{f % 97} feature" for f in range(65536)}
    index = build_index(model, wide, texts[:50], Path(tempfile.mkdtemp()) / "w", progress=False)
    queries = ["colour", "animal number", "promotes Paris", "Paris", "1234", "wether"]
    search_features(model, wide, queries[0], labels=labels, index=index)  # builds the label word index once
    per_query = []
    for _ in range(args.rounds):
        for q in queries:
            start = time.perf_counter()
            search_features(model, wide, q, labels=labels, index=index)
            per_query.append(time.perf_counter() - start)
    print(f"search: median {statistics.median(per_query) * 1e3:.1f} ms, max {max(per_query) * 1e3:.1f} ms per query "
          f"on 65,536 labelled features (target <= 30 ms)")


if __name__ == "__main__":
    main()
