"""The `saetui` command: headless subcommands that print JSON (and, later, the terminal app).

    saetui analyze --model ID_OR_DIR --sae SPEC [--sae SPEC ...] --prompt TEXT [--top-k 10] [--json]
    saetui steer --model ID_OR_DIR --sae SPEC --prompt TEXT --feature [SAE/]FEATURE:COEF[:MODE] ... [--compare] [--sweep C1,C2]
    saetui saes [--model NAME] [--json]

User mistakes print one line on stderr (`saetui: error: ...`) and exit with code 2; warnings print
one line each (`saetui: warning: ...`). Nothing is written to stdout unless the command succeeds.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from pathlib import Path
from typing import Any, Sequence

from saetui.errors import InputError, SaetuiError

EXIT_USAGE = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="saetui", description="Look inside a language model through a sparse autoencoder. "
                                     "With no command, opens the terminal app (on the bundled demo unless --model is given).")
    parser.add_argument("--model", help="HF model id or local directory for the app (default: the bundled demo)")
    parser.add_argument("--sae", action="append", metavar="SPEC", help="SAE for the app; repeat for several")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    analyze = sub.add_parser("analyze", help="per-token SAE features of a prompt")
    _model_args(analyze)
    analyze.add_argument("--sae", action="append", metavar="SPEC",
                         help="RELEASE/SAE_ID, a sae-lens directory, or params.npz[@HOOK]; repeat for several "
                              "(default: the demo SAE, with the demo model)")
    analyze.add_argument("--prompt", required=True, help="text to analyze")
    analyze.add_argument("--top-k", type=int, default=10, help="features per token and per prompt (default 10)")
    analyze.add_argument("--predictions", type=int, default=0, metavar="N",
                         help="also give the top N next-token predictions after each token (runs the full model)")
    analyze.add_argument("--include-special", action="store_true", help="let BOS/pad/special tokens count in the prompt summary")
    analyze.add_argument("--json", action="store_true", help="print one JSON object")

    steer = sub.add_parser("steer", help="generate with SAE features added, clamped or ablated")
    _model_args(steer)
    steer.add_argument("--sae", action="append", metavar="SPEC", help="as for analyze; repeat for several")
    steer.add_argument("--prompt", required=True, help="text to continue")
    steer.add_argument("--feature", action="append", required=True, metavar="[SAE/]FEATURE:COEF[:MODE]",
                       help="MODE is add (default), clamp or ablate; SAE (name, hook or layer) may be left out with one SAE")
    steer.add_argument("--scope", default="all", help="positions to steer: all, prompt, generated or START:END (default all)")
    steer.add_argument("--compare", action="store_true", help="also generate the unsteered baseline, in the same batch")
    steer.add_argument("--sweep", metavar="C1,C2,...", help="one variant per coefficient, each feature's coefficient set to it")
    steer.add_argument("--max-new-tokens", type=int, default=64)
    steer.add_argument("--temperature", type=float, default=0.0, help="0 (default) is greedy")
    steer.add_argument("--top-p", type=float, default=1.0)
    steer.add_argument("--seed", type=int, default=0)
    steer.add_argument("--json", action="store_true", help="print one JSON object at the end instead of streaming")

    index = sub.add_parser("index", help="build a feature index (top examples, density, histograms) from a corpus")
    _model_args(index)
    index.add_argument("--sae", action="append", metavar="SPEC", help="the SAE to index (default: the demo SAE)")
    index.add_argument("--corpus", required=True, help=".txt (one document a line) or .jsonl")
    index.add_argument("--field", default="text", help="the .jsonl field holding the text (default text)")
    index.add_argument("--max-tokens", type=int, help="stop after this many tokens")
    index.add_argument("--batch-size", type=int, default=16)
    index.add_argument("--top-k", type=int, default=20, help="top examples kept per feature (default 20)")
    index.add_argument("--ctx", type=int, default=16, help="tokens of context shown around each top example (default 16)")
    index.add_argument("--out", help="index folder (default: the platformdirs cache, keyed by model and SAE)")
    index.add_argument("--resume", action="store_true", help="continue an interrupted build")

    search = sub.add_parser("search", help="search features by number, label, example tokens or `promotes WORD`")
    search.add_argument("query")
    _model_args(search)
    search.add_argument("--sae", action="append", metavar="SPEC", help="the SAE to search (default: the demo SAE)")
    search.add_argument("--limit", type=int, default=20)
    search.add_argument("--json", action="store_true")

    labels = sub.add_parser("labels", help="import feature labels (Neuronpedia JSON/JSONL or CSV feature,label) into an index")
    labels.add_argument("file")
    _model_args(labels)
    labels.add_argument("--sae", action="append", metavar="SPEC", help="the SAE whose index gets the labels (default: the demo SAE)")
    labels.add_argument("--index", help="index folder (default: the one `saetui index` wrote for this model and SAE)")

    snap = sub.add_parser("snapshot", help="render the app after its work finishes and write an SVG")
    snap.add_argument("--prompt", required=True)
    snap.add_argument("--feature", action="append", default=[], metavar="[SAE/]FEATURE:COEF[:MODE]")
    snap.add_argument("--generate", action="store_true", help="also generate baseline and steered text")
    snap.add_argument("--size", default="120x40", help="WIDTHxHEIGHT (default 120x40)")
    snap.add_argument("--out", required=True, help="SVG file to write")
    snap.add_argument("--app-model", dest="snap_model", help="model for the app (default: the demo)")
    snap.add_argument("--app-sae", dest="snap_sae", action="append", help="SAE for the app")

    saes = sub.add_parser("saes", help="list SAEs in the sae-lens registry (offline)")
    saes.add_argument("--model", help="only SAEs for this model (HF id or short name)")
    saes.add_argument("--json", action="store_true", help="print a JSON list")
    return parser


def _model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", help="HF model id or local directory (default: the bundled demo model)")
    p.add_argument("--device", help="cuda, cuda:1, mps or cpu (default: best available)")
    p.add_argument("--dtype", help="float32, bfloat16 or float16 (default: bf16 on CUDA, fp32 elsewhere)")
    p.add_argument("--trust-remote-code", action="store_true", help="allow custom model code from the hub")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        if args.sae and not args.model:
            print("saetui: error: --sae needs --model (the demo brings its own SAE)", file=sys.stderr)
            return EXIT_USAGE
        from saetui.tui.app import run

        run(args.model, args.sae)
        return 0
    from saetui.models.model import quiet_hf_output

    quiet_hf_output()
    with warnings.catch_warnings():
        warnings.simplefilter("default")
        for noise in (DeprecationWarning, FutureWarning, PendingDeprecationWarning):
            warnings.simplefilter("ignore", noise)  # library internals, not the user's business
        warnings.showwarning = _one_line_warning  # type: ignore[assignment]
        try:
            commands = {"analyze": cmd_analyze, "steer": cmd_steer, "saes": cmd_saes, "snapshot": cmd_snapshot,
                        "index": cmd_index, "search": cmd_search, "labels": cmd_labels}
            return commands[args.command](args)
        except SaetuiError as exc:
            print(f"saetui: error: {exc}", file=sys.stderr)
            return EXIT_USAGE
        except BrokenPipeError:  # `saetui ... | head`
            sys.stderr.close()
            return 0
        except KeyboardInterrupt:
            print("saetui: interrupted", file=sys.stderr)
            return 130


def _load(args: argparse.Namespace) -> tuple[Any, Any]:
    """The model and its SAEs from --model/--sae, after the checks that need neither."""
    from saetui.models.model import ModelWithHooks
    from saetui.sae.manager import SAEManager

    from saetui import demo

    if not args.model:  # the bundled demo, loaded like any local model
        model, manager = demo.load_demo(device=args.device)
        for spec in args.sae or []:
            manager.load(spec)
        return model, manager
    if not args.sae:
        raise InputError("--sae is required with --model: RELEASE/SAE_ID, a sae-lens directory or params.npz")
    model = ModelWithHooks.from_pretrained(args.model, device=args.device, dtype=args.dtype, trust_remote_code=args.trust_remote_code)
    manager = SAEManager(model)
    for spec in args.sae:
        manager.load(spec)
    return model, manager


def _require_prompt(args: argparse.Namespace) -> None:
    if not args.prompt.strip():
        raise InputError("empty prompt: give --prompt some text")


def cmd_analyze(args: argparse.Namespace) -> int:
    from saetui.sae.analyzer import SAEAnalyzer

    _require_prompt(args)
    model, manager = _load(args)
    result = SAEAnalyzer(model, manager).analyze(
        args.prompt, top_k=args.top_k, include_special=args.include_special, predictions=args.predictions
    )
    if args.json:
        print(result.to_json())
    else:
        print(_format_analysis(result.to_dict()))
    return 0


def cmd_steer(args: argparse.Namespace) -> int:
    from saetui.steering.generate import GenerationSettings, SteeringEngine
    from saetui.steering.spec import SteeringSpec, resolve

    _require_prompt(args)
    specs = [SteeringSpec.parse(text, scope=args.scope) for text in args.feature]
    coefficients = _parse_sweep(args.sweep) if args.sweep else None
    settings = dict(max_new_tokens=args.max_new_tokens, temperature=args.temperature, top_p=args.top_p, seed=args.seed)
    GenerationSettings(**settings)  # bad numbers fail before the model loads
    model, manager = _load(args)
    for spec in specs:
        resolve(spec, manager)
    labels, rows = [], []
    if args.compare:
        labels.append("baseline"), rows.append([])
    if coefficients is None:
        labels.append("steered"), rows.append(specs)
    else:
        for c in coefficients:
            labels.append(f"coefficient {c:g}"), rows.append([s.with_coefficient(c) for s in specs])
    engine = SteeringEngine(model, manager)
    outputs = [{"text": "", "token_ids": []} for _ in rows]
    live = len(rows) - 1 if coefficients is None else None  # the steered row streams as it is generated
    if live is not None and not args.json:
        print(args.prompt, end="", flush=True)
    for piece in engine.stream(args.prompt, rows, **settings):
        outputs[piece.row]["token_ids"].append(piece.token_id)
        if piece.row == live and not args.json:
            print(piece.text, end="", flush=True)
    for out in outputs:
        out["text"] = model.tokenizer.decode(out["token_ids"], skip_special_tokens=True)
    if args.json:
        data: dict[str, Any] = {"prompt": args.prompt, "specs": [s.to_dict() for s in specs]}
        if args.compare:
            data["baseline"] = outputs[0]
        if coefficients is None:
            data["steered"] = outputs[-1]
        else:
            first = 1 if args.compare else 0
            data["variants"] = [dict(coefficient=c, **o) for c, o in zip(coefficients, outputs[first:])]
        print(json.dumps(data))
        return 0
    if live is not None:
        print()
    for label, out, i in zip(labels, outputs, range(len(rows))):
        if i != live:
            print(f"--- {label} ---\n{args.prompt}{out['text']}")
    return 0


def _parse_sweep(text: str) -> list[float]:
    import math

    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError as exc:
        raise InputError(f"--sweep takes numbers separated by commas, got {text!r}") from exc
    if not values or not all(math.isfinite(v) for v in values):
        raise InputError(f"--sweep takes finite numbers separated by commas, got {text!r}")
    return values


def cmd_index(args: argparse.Namespace) -> int:
    from saetui.sae.index import IndexSettings, build_index, default_index_dir

    model, manager = _load(args)
    loaded = list(manager)[-1]
    out = Path(args.out) if args.out else default_index_dir(model, loaded)
    settings = IndexSettings(top_k=args.top_k, batch_size=args.batch_size, max_tokens=args.max_tokens, ctx=args.ctx)
    index = build_index(model, loaded, args.corpus, out, field=args.field, settings=settings, resume=args.resume)
    if int(os.environ.get("RANK", "0")) != 0:
        return 0  # under torchrun, rank 0 reports
    print(json.dumps({"index": str(out), "tokens": index.n_tokens, "sae": loaded.spec, "model": model.name,
                      "features_firing": int((index.counts > 0).sum())}))
    return 0


def cmd_labels(args: argparse.Namespace) -> int:
    from saetui.sae.index import FeatureIndex, default_index_dir
    from saetui.sae.search import import_labels, load_labels, save_labels

    new = import_labels(args.file)
    model, manager = _load(args)
    loaded = list(manager)[-1]
    root = Path(args.index) if args.index else default_index_dir(model, loaded)
    FeatureIndex.load(root, model, loaded)  # the labels go beside an index for this very SAE
    out_of_range = [f for f in new if not 0 <= f < loaded.d_sae]
    if out_of_range:
        raise InputError(f"labels for features outside 0..{loaded.d_sae - 1}: {out_of_range[:5]}")
    merged = {**load_labels(root), **new}
    save_labels(root, merged)
    print(json.dumps({"index": str(root), "imported": len(new), "labels": len(merged)}))
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    from saetui.session import Session

    session = Session()
    session.attach(*_load(args))
    manager = session.saes
    hits = session.search(args.query, list(manager)[-1].name, limit=args.limit)
    if args.json:
        print(json.dumps([{"feature": f, "about": about, "score": score} for f, about, score in hits]))
    else:
        for f, about, score in hits:
            print(f"{f:>7}  {score:5.2f}  {about}")
    return 0


def cmd_snapshot(args: argparse.Namespace) -> int:
    from saetui.tui.snapshot import snapshot

    _require_prompt(args)
    path = snapshot(args.prompt, args.out, features=args.feature, generate=args.generate, size=args.size,
                    model=args.snap_model, saes=args.snap_sae)
    print(path)
    return 0


def cmd_saes(args: argparse.Namespace) -> int:
    from saetui.sae.registry import list_registry

    entries = list_registry(args.model)
    if args.model and not entries:
        raise InputError(f"no registry SAEs for model {args.model!r}; `saetui saes` lists every model")
    if args.json:
        print(json.dumps([e.to_dict() for e in entries]))
        return 0
    for e in entries:
        width = str(e.width) if e.width else "?"
        print(f"{e.spec}\t{e.hook or '?'}\t{width}\t{e.neuronpedia_id or ''}")
    return 0


def _format_analysis(result: dict[str, Any]) -> str:
    """A plain-text table: one line per token, top features per SAE."""
    lines = []
    for sae in result["saes"]:
        lines.append(f"== {sae['name']} ({sae['hook']}, d_sae={sae['d_sae']}) fvu={_num(sae['fvu'])} mean_l0={_num(sae['mean_l0'])}")
        for tok, feats in zip(result["tokens"], sae["per_token"]):
            mark = "*" if tok["special"] else " "
            shown = "  ".join(f"{f}:{a:.2f}" for f, a in feats[:5])
            lines.append(f"{tok['index']:>4}{mark} {tok['text']!r:<16} {shown}")
        top = ", ".join(f"{f} ({a:.2f} @ {i})" for f, a, i in sae["top_features"])
        lines.append(f"top: {top}")
    return "\n".join(lines)


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _one_line_warning(message: Any, category: Any, filename: str, lineno: int, file: Any = None, line: Any = None) -> None:
    text = " ".join(str(message).split())
    print(f"saetui: warning: {text}", file=sys.stderr)


if __name__ == "__main__":
    raise SystemExit(main())
