"""Does the static decoder (plain and compiled) give the eager loop's tokens on this device? The bundled demo.

A sequence of generations on one model whose specs move between the demo's two SAEs (blocks.1 and
blocks.3), every scope form (unions and a chat template's tokens too), add, clamp and ablate; greedy.
For each: whether the static decoder's tokens equal the eager loop's, and for how many tokens each row
agrees. On a GPU the static step runs other attention kernels (a padded static cache) than the eager loop,
so a near-tie may flip a token after a while; on CPU in fp32 they are equal (tests/core/test_decode.py).

    python benchmarks/check_decode_equal.py [--device cuda] [--compile-backend aot_eager]
"""

from __future__ import annotations

import argparse
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default=None)
    parser.add_argument("--compile-backend", default=None, help="torch.compile backend (default inductor; aot_eager on CPU is quick)")
    parser.add_argument("--new-tokens", type=int, default=24)
    args = parser.parse_args()

    from saetui.demo import load_demo
    from saetui.models.chat import render_chat
    from saetui.steering import static
    from saetui.steering.generate import SteeringEngine
    from saetui.steering.spec import SteeringSpec as S

    if args.compile_backend:
        static.BACKEND = args.compile_backend
    model, saes = load_demo(device=args.device)
    chat = render_chat(model.tokenizer, [{"role": "user", "content": "What colour is the sky?"}])
    prompt = "Tom went to the market and bought"
    cases = [
        ("demo, add", prompt, [[], [S(195, 6.0, sae="demo")]]),
        ("demo + demo-late (a second SAE after the first)", prompt, [[], [S(195, 6.0, sae="demo"), S(195, 6.0, sae="demo-late")]]),
        ("prompt+generated, 0:3+generated", prompt, [[S(40, 8.0, sae="demo", scope="prompt+generated")], [S(40, 8.0, sae="demo-late", scope="0:3+generated")]]),
        ("clamp, ablate, window", prompt, [[S(40, 5.0, mode="clamp", sae="demo")], [S(195, 0.0, mode="ablate", sae="demo-late", scope="2:9")]]),
        ("chat: generated, template", chat, [[S(40, 6.0, sae="demo", scope="generated")], [S(40, 6.0, sae="demo-late", scope="generated+template")]]),
    ]
    eager = SteeringEngine(model, saes, compile=False)
    engine = SteeringEngine(model, saes, compile=True)
    for label, compile in (("static step", False), ("compiled", True)):
        for name, text, rows in cases:
            start = time.perf_counter()
            want = [o.token_ids for o in eager.run(text, rows, max_new_tokens=args.new_tokens)]
            if compile:
                got = [o.token_ids for o in engine.run(text, rows, max_new_tokens=args.new_tokens)]
            else:
                got = _uncompiled(model, saes, text, rows, args.new_tokens)
            agree = [next((i for i, (a, b) in enumerate(zip(g, w)) if a != b), min(len(g), len(w))) for g, w in zip(got, want)]
            print(f"{label:<12} {name:<50} equal={got == want} agree={agree} lengths={[len(w) for w in want]} "
                  f"({time.perf_counter() - start:.1f} s)", flush=True)
    print("decode status:", static.compile_status(model))


def _uncompiled(model, saes, text, rows, new_tokens):
    from saetui.steering import decode, static
    from saetui.steering.generate import GenerationSettings, SteeringEngine
    from saetui.steering.vectors import resolve_any

    engine = SteeringEngine(model, saes, compile=False)
    ids, template = engine._prompt(text)
    resolved = [[resolve_any(s, saes, model, {}) for s in row] for row in rows]
    runner = static.static_runner(model, resolved, list(saes), len(ids) + new_tokens, compile=False,
                                  prompt_len=len(ids), template=template)
    cfg = GenerationSettings(max_new_tokens=new_tokens)
    out: list[list[int]] = [[] for _ in rows]
    for piece in decode.decode(runner, ids, len(rows), cfg, [0] * len(rows), decode.stop_ids(model), model.tokenizer):
        out[piece.row].append(piece.token_id)
    return out


if __name__ == "__main__":
    main()
