"""`saetui steer` (generate with SAE features and saved vectors added, clamped or ablated; baseline and sweeps in
one batch) and `saetui vectors` (the saved steering vectors)."""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from typing import Any

from saetui import inputs
from saetui.cli import common
from saetui.errors import InputError
from saetui.settings import GenerationSettings
from saetui.steering.spec import parse_spec


def add_parsers(sub: Any) -> None:
    gen = GenerationSettings()
    steer = sub.add_parser("steer", help="generate with SAE features added, clamped or ablated")
    common.add_model_options(steer)
    steer.add_argument("--prompt", required=True, help="text to continue")
    # --feature or --vector: at least one (checked in run_steer, argparse cannot say "one of these, repeatable")
    steer.add_argument("--feature", action="append", default=[], metavar="[SAE/]FEATURE:COEF[:MODE]",
                       help="MODE is add (default), clamp or ablate; SAE (name, hook or layer) may be left out with one SAE")
    steer.add_argument("--vector", action="append", default=[], metavar="NAME[@HOOK]:COEF",
                       help="add a saved steering vector (from `contrast --save-vector`); repeat for several")
    steer.add_argument("--scope", default="all", help="positions to steer: all, prompt, generated or START:END (default all)")
    steer.add_argument("--compare", action="store_true", help="also generate the unsteered baseline, in the same batch")
    steer.add_argument("--sweep", metavar="C1,C2,...", type=common.text,
                       help="one variant per coefficient, each feature's coefficient set to it: raw coefficients "
                            "(as in --feature), or 2x for 2 times the feature's max activation (needs its index)")
    steer.add_argument("--max-new-tokens", type=common.whole, default=gen.max_new_tokens,
                       help=f"capped at the model's context (default {gen.max_new_tokens})")
    steer.add_argument("--temperature", type=common.finite_float, default=gen.temperature,
                       help="0 (default) is greedy; otherwise at least 0.001")
    steer.add_argument("--top-p", type=common.finite_float, default=gen.top_p, help="in (0, 1]; sampling only")
    steer.add_argument("--seed", type=common.seed, default=gen.seed, help="the sampling seed; sampling only")
    steer.add_argument("--no-compile", action="store_true",
                       help="decode with the eager loop (default on CUDA: static KV cache and a compiled step)")
    common.add_chat_options(steer)
    steer.add_argument("--steer-template", action="store_true",
                       help="with --chat: also steer the template's tokens in the prompt (default: the reply only)")
    common.add_json_option(steer, "print one JSON object at the end instead of streaming")
    steer.set_defaults(run=run_steer)

    vectors = sub.add_parser("vectors", help="list the saved steering vectors")
    common.add_json_option(vectors, "print a JSON list")
    vectors.set_defaults(run=run_vectors)


def run_steer(args: argparse.Namespace) -> int:
    from saetui.session import Session

    specs = [parse_spec(text, "feature", scope=args.scope) for text in args.feature]
    if not args.feature and not args.vector:
        raise InputError("steer: the following arguments are required: --feature (or --vector)")
    vectors = [parse_spec(text, "vector", scope=args.scope) for text in args.vector]
    Session.check_saved(vectors)  # a vector that is not saved fails before the model loads
    coefficients = inputs.parse_sweep(args.sweep) if args.sweep else None
    settings = dict(max_new_tokens=args.max_new_tokens, temperature=args.temperature, top_p=args.top_p, seed=args.seed)
    GenerationSettings(**settings)  # bad numbers fail before the model loads
    gen = GenerationSettings()  # a value other than the default is one the user gave
    given = [option for option, value, default in (("--top-p", args.top_p, gen.top_p), ("--seed", args.seed, gen.seed))
             if value != default]
    if given and args.temperature == 0:
        warnings.warn(f"{' and '.join(given)} {'has' if len(given) == 1 else 'have'} no effect at --temperature 0 "
                      "(greedy decoding): sample with --temperature 0.7, say")
    session = common.open_session(args, compile=False if args.no_compile else None)
    run = session.steer(args.prompt, [*specs, *vectors], compare=args.compare, sweep=coefficients, chat=args.chat,
                        system=args.system, steer_template=args.steer_template, **settings)
    for note in run.notes("--max-new-tokens"):  # said on stderr; --json also carries a cap as "capped"
        print(f"saetui: warning: {note}", file=sys.stderr)
    if args.json:
        for _ in run.pieces():
            pass
        print(json.dumps(run.to_dict()))
        return 0
    live = len(run.rows) - 1 if coefficients is None else None  # the steered row streams as it is generated
    if live is not None:
        if len(run.rows) > 1:  # every row under its own heading
            print(f"--- {run.rows[live].label} ---")
        print(run.shown, end="", flush=True)
    for piece in run.pieces():
        if piece.row == live:
            print(piece.text, end="", flush=True)
    if live is not None:
        print()
    for i, out in enumerate(run.outputs):
        if i != live:  # a sweep's rows: the coefficient in both units and the row's mean KL from the baseline
            print(f"--- {run.title(i, kl=coefficients is not None)} ---\n{run.shown}{out['text']}")
    return 0


def run_vectors(args: argparse.Namespace) -> int:
    from saetui.session import Session

    rows = Session.saved_vectors()  # a damaged one is set aside with a warning
    if args.json:
        print(json.dumps(rows))
        return 0
    for r in rows:
        print(f"{r['name']}\t{r['model']}\t" + ", ".join(f"{h} |v|={n:.3g}" for h, n in r["hooks"].items()))
    return 0
