"""Steered generation throughput against plain generation and two peers, in one process.

Same Gemma-2-architecture model and JumpReLU SAE as bench_analysis.py (random weights, SAE at the
middle layer's hook_resid_post, calibrated to L0 ~ 64). Greedy decoding of 64 new tokens from a
32-token prompt, KV cache on. Rounds are interleaved; medians of tokens/s are compared.

    plain HF        model.generate, no hooks                                  (the reference)
    ours, add       SteeringEngine, one feature added          target >= 0.98x plain
    ours, clamp     SteeringEngine, one feature clamped        (report)
    ours, 2 rows    baseline + steered in one batch vs the two generated one after the other (target >= 1.6x)
    static          with --compile: the decoding core's static decoder (saetui.steering.static): a static KV
                    cache, the model's own step (captured in a CUDA graph on CUDA), then the same with a
                    torch.compile'd step; also the first steer as the app makes it on CUDA (compile=None, on any
                    device: first token, its rate, a second steer's rate while the step compiles in the background,
                    and when that compile is done) and the memory-bandwidth bound (weights read once
                    per token at the device-to-device copy rate measured here)
    naive replace   HF generate with a hook replacing x by decode(edit(encode(x))) (report)
    sae-lens        HookedSAETransformer.generate with the same additive hook (report)

    python benchmarks/bench_steering.py [--preset tiny|small|gemma-2-2b] [--rounds 7] [--device cuda]
                                        [--dtype bfloat16] [--compile] [--new-tokens 64]
                                        [--only-compiled | --first-steer-only]
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from bench_analysis import add_device_args, build, build_sae_lens_model, peak_memory, timed  # noqa: E402


def bandwidth_bound(model, device: str) -> float | None:
    """Tokens/s if every weight is read once per token at the device-to-device copy rate (bytes read + written)
    measured now; None off CUDA."""
    if not device.startswith("cuda"):
        return None
    weights = sum(p.numel() * p.element_size() for p in model.model.parameters())
    buf = torch.empty(2**30, dtype=torch.uint8, device=device)
    out = torch.empty_like(buf)
    out.copy_(buf)
    times = []
    for _ in range(10):
        times.append(timed(lambda: out.copy_(buf), device))  # noqa: B023 - used at once
    rate = 2 * buf.numel() / statistics.median(times)
    return rate / weights


def where_the_step_goes(model, device: str, prompt_ids: list[int], settings, tokenizer) -> None:
    """Print where a token's time goes on the compiled batch-1 decoder: one step as it runs (a CUDA graph
    replayed, where captured), the kernels of its compiled step (count and GPU time, from torch.profiler;
    off CUDA the ops and their CPU time) and the decode loop around the step alone (a runner whose step
    returns fixed logits: argmax, log-probs, text, per token). Never stops the benchmark."""
    from saetui.steering import decode, static

    try:
        decoder = next(d for d in reversed(static._pool(model).decoders) if d.compiled and d.n == 1 and d.ready and not d.failed)
    except StopIteration:
        print("  step profile: no compiled batch-1 decoder")
        return
    try:
        with torch.inference_mode():
            ids = torch.tensor([prompt_ids], device=decoder.device)
            logits = decoder.prefill(ids)
            tok, pos = logits.argmax(-1), len(prompt_ids)
            step = statistics.median(timed(lambda: decoder.step(tok, pos), device) for _ in range(20))
            from torch.profiler import ProfilerActivity, profile

            cuda = device.startswith("cuda")
            acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
            decoder._fn(decoder, decoder._ids, decoder._pos)  # the compiled step itself, outside any graph
            with profile(activities=acts) as prof:
                for _ in range(5):
                    decoder._fn(decoder, decoder._ids, decoder._pos)
                if cuda:
                    torch.cuda.synchronize()
        from collections import Counter

        from torch.autograd import DeviceType

        if cuda:  # every kernel (FunctionEvent.time_range: the same field in every torch of the range)
            items = [(e.name, e.time_range.elapsed_us()) for e in prof.events() if e.device_type == DeviceType.CUDA]
        else:  # aten ops not called by another aten op
            items = [(e.name, e.time_range.elapsed_us()) for e in prof.events() if e.name.startswith("aten::")
                     and not (e.cpu_parent is not None and e.cpu_parent.name.startswith("aten::"))]
        spent, calls = Counter(), Counter()
        for name, us in items:
            spent[name] += us
            calls[name] += 1
        count, total = len(items) / 5, sum(spent.values()) / 5 / 1000
        top = ", ".join(f"{name[:40]} x{calls[name] // 5} {us / 5 / 1000:.3f} ms" for name, us in spent.most_common(5))
        what = "kernels" if cuda else "aten ops"
        print(f"  step profile (batch 1): {step * 1000:.2f} ms a step as decoded (cuda_graph: "
              f"{'captured' if decoder._graph is not None else decoder.graph_error or 'off'}); the compiled step's "
              f"{count:.0f} {what} take {total:.2f} ms (top: {top})")

        class Fixed:  # the decode loop around a step that costs nothing
            device = decoder.device

            def prefill(self, _ids):
                return logits

            def step(self, _tok, _pos):
                return logits

            def close(self):
                pass

        n = 1000  # long enough to show a cost that grows with the reply's length
        long = dataclasses.replace(settings, max_new_tokens=n)
        loop = statistics.median(timed(lambda: sum(1 for _ in decode.decode(Fixed(), prompt_ids, 1, long, [0], set(), tokenizer)), device)
                                 for _ in range(5))
        print(f"  decode loop alone: {loop / n * 1000:.3f} ms a token over {n} tokens (vocab {logits.shape[-1]}; "
              "argmax, log-probs, text)")
    except Exception as exc:  # noqa: BLE001 - a profile that fails must not hide the rows above
        print(f"  step profile failed: {type(exc).__name__}: {exc}")


def compiler_caches() -> str:
    """Inductor's FX graph cache hits and misses so far in this process (its on-disk cache outlives the process:
    a restarted app's compile loads the graphs a first run compiled). torch's own counters: report only."""
    try:
        from torch._dynamo.utils import counters

        found = counters["inductor"]
        return f"inductor graph cache: {found['fxgraph_cache_hit']} hit, {found['fxgraph_cache_miss']} missed"
    except Exception:  # noqa: BLE001 - a counter moved in another torch: the line goes on without it
        return "inductor graph cache: unknown"


def main() -> None:
    from saetui.steering import decode, static
    from saetui.steering.generate import GenerationSettings, SteeringEngine
    from saetui.steering.spec import SteeringSpec, resolve

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_device_args(parser)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--no-sae-lens", action="store_true")
    parser.add_argument("--compile", action="store_true", help="add rows for the compiled static-cache path")
    parser.add_argument("--only-compiled", action="store_true", help="with --compile: plain HF, eager and compiled rows only")
    parser.add_argument("--first-steer-only", action="store_true",
                        help="with --compile: the first steer's line alone (run again in a new process: a restarted "
                             "app's compile, on the compiler's on-disk caches)")
    args = parser.parse_args()
    if args.first_steer_only and not args.compile:
        parser.error("--first-steer-only goes with --compile")
    NEW_TOKENS = args.new_tokens

    model, analyzer, loaded, _, _, layer, hook = build(args.preset, args.device, args.dtype)
    engine = SteeringEngine(model, analyzer.saes, compile=False)
    fast = SteeringEngine(model, analyzer.saes, compile=True)
    sae = loaded.sae
    gen = torch.Generator().manual_seed(3)
    words = torch.randint(3, model.config.vocab_size, (31,), generator=gen).tolist()
    prompt = " ".join(f"t{w}" for w in words)
    ids = model.tokenize(prompt).input_ids
    feature, coef = 11, 8.0
    add = [SteeringSpec(feature, coef)]
    clamp = [SteeringSpec(feature, coef, mode="clamp")]
    hf = model.model
    direction = (coef * sae.W_dec[feature]).to(model.dtype)

    def hf_generate(hook_fn=None):
        handle = model.layers[layer].register_forward_hook(hook_fn) if hook_fn else None
        try:
            with torch.inference_mode():
                out = hf.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=NEW_TOKENS,
                                  min_new_tokens=NEW_TOKENS, do_sample=False)
            return out.shape[1] - ids.shape[1]
        finally:
            if handle:
                handle.remove()

    def naive(_module, _inp, out):
        x = out[0] if isinstance(out, tuple) else out
        acts = sae.encode(x)
        acts[..., feature] += coef
        return sae.decode(acts).to(x.dtype)

    def ours(rows, eng=engine):
        return sum(1 for _ in eng.stream(prompt, rows, max_new_tokens=NEW_TOKENS))

    prompt_ids = ids[0].tolist()
    settings = GenerationSettings(max_new_tokens=NEW_TOKENS)

    def static_pieces(rows, compile):
        """The decoding core's pieces on a static decoder (compile False: the model's step; True: compiled; None: as
        the app on CUDA, uncompiled until a background compile is ready); the decoder is chosen and loaded now."""
        resolved = [[resolve(s, analyzer.saes) for s in row] for row in rows]
        runner = static.static_runner(model, resolved, list(analyzer.saes), len(prompt_ids) + NEW_TOKENS, compile=compile,
                                      prompt_len=len(prompt_ids), template=None)
        return decode.decode(runner, prompt_ids, len(rows), settings, [0] * len(rows), set(), model.tokenizer)

    def on_static(rows, compile):
        return sum(1 for _ in static_pieces(rows, compile))

    if args.compile:  # the first steer as the app makes it on CUDA, before anything is compiled or captured
        def timeline():
            """Seconds from now to each token of one steer on the static path with compile=None."""
            t0 = time.perf_counter()
            return [time.perf_counter() - t0 for _ in static_pieces([add], None)]

        start = time.perf_counter()
        first = timeline()  # uncompiled; the compile starts when it ends
        during = timeline() if static.compile_status(model) == "compiling" else []
        static.wait_compiled(model)
        ready = time.perf_counter() - start
        overlap = (f"a second steer during the compile {len(during) / during[-1]:.1f} tokens/s" if during
                   else "the compile was done before a second steer")
        print(f"  first steer: first token {first[0]:.2f} s after the model was loaded, {len(first)} tokens in {first[-1]:.2f} s "
              f"({len(first) / first[-1]:.1f} tokens/s); {overlap}; compiled step ready {ready:.1f} s "
              f"({static.compile_status(model)}; {compiler_caches()})")
        if args.first_steer_only:
            return

    methods = {
        "plain HF generate": lambda: hf_generate(),
        "ours, no steering": lambda: ours([[]]),
        "ours, add": lambda: ours([add]),
        "ours, clamp": lambda: ours([clamp]),
        "ours, baseline+steered batched": lambda: ours([[], add]),
        "ours, baseline then steered": lambda: ours([[]]) + ours([add]),
        "naive encode-edit-decode (HF)": lambda: hf_generate(naive),
    }
    if args.compile:
        methods["ours, add, static step (no compile)"] = lambda: on_static([add], False)
        methods["ours, add, compiled"] = lambda: on_static([add], True)
        methods["ours, clamp, compiled"] = lambda: on_static([clamp], True)
        methods["ours, baseline+steered batched, compiled"] = lambda: on_static([[], add], True)
        methods["ours, baseline then steered, compiled"] = lambda: on_static([[]], True) + on_static([add], True)
        if args.only_compiled:
            for name in ("ours, no steering", "ours, clamp", "naive encode-edit-decode (HF)"):
                del methods[name]
    if not args.no_sae_lens:
        tl = build_sae_lens_model(args.preset, args.device, model.dtype)
        tl_dir = direction.to(tl.cfg.dtype)

        def tl_generate():
            with torch.inference_mode(), tl.hooks(fwd_hooks=[(hook, lambda x, hook: x + tl_dir)]):
                out = tl.generate(ids, max_new_tokens=NEW_TOKENS, do_sample=False, verbose=False, stop_at_eos=False)
            return out.shape[1] - ids.shape[1]

        methods["sae-lens HookedSAETransformer.generate"] = tl_generate

    print(f"device={args.device} dtype={model.dtype} threads={torch.get_num_threads()} preset={args.preset} "
          f"layer={layer}/{model.n_layers} d_sae={loaded.d_sae} new_tokens={NEW_TOKENS} rounds={args.rounds}")
    for fn in methods.values():
        fn()
    times: dict[str, list[float]] = {n: [] for n in methods}
    tokens: dict[str, int] = {}
    names = list(methods)
    for r in range(args.rounds):
        for name in names[r % len(names):] + names[: r % len(names)]:
            box = {}
            times[name].append(timed(lambda: box.update(n=methods[name]()), args.device))
            tokens[name] = box["n"]
    rate = {n: tokens[n] / statistics.median(times[n]) for n in names}
    base = rate["plain HF generate"]
    bound = bandwidth_bound(model, args.device)
    for name in names:
        share = f"   {rate[name] / bound:5.1%} of the bandwidth bound" if bound else ""
        print(f"  {name:<42} {rate[name]:8.1f} tokens/s   {rate[name] / base:5.2f}x plain HF{share}")
    if bound:
        print(f"  bandwidth bound: {bound:.0f} tokens/s (weights read once per token at the copy rate measured here)")
    pair = statistics.median(times["ours, baseline then steered"]) / statistics.median(times["ours, baseline+steered batched"])
    print(f"  batched baseline+steered is {pair:.2f}x faster than two sequential runs")
    if args.compile:
        pair = statistics.median(times["ours, baseline then steered, compiled"]) / statistics.median(times["ours, baseline+steered batched, compiled"])
        print(f"  compiled: batched baseline+steered is {pair:.2f}x faster than two sequential compiled runs; "
              f"compiled add is {rate['ours, add, compiled'] / rate['ours, add']:.2f}x eager add")
        eager_ids = [o.token_ids for o in engine.run(prompt, [[], add], max_new_tokens=NEW_TOKENS)]
        for label, eng in (("compiled", fast), ("static step", SteeringEngine(model, analyzer.saes, compile=None))):
            got = [o.token_ids for o in eng.run(prompt, [[], add], max_new_tokens=NEW_TOKENS)]
            agree = [next((i for i, (a, b) in enumerate(zip(g, w)) if a != b), min(len(g), len(w))) for g, w in zip(got, eager_ids)]
            print(f"  {label} greedy tokens identical to eager: {got == eager_ids} (rows agree for {agree} tokens)")
        for d in static.describe(model):
            print(f"  decoder: {d}")
        where_the_step_goes(model, args.device, prompt_ids, settings, model.tokenizer)
    if args.device.startswith("cuda"):
        print(" ", peak_memory(args.device))


if __name__ == "__main__":
    main()
