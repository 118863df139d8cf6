"""`saetui analyze` (per-token SAE features of a prompt, optionally ranked over a span) and `saetui attribute`
(why this token: the prediction's SAE features, checked by ablation)."""

from __future__ import annotations

import argparse
import json
import warnings
from typing import Any

from saetui import inputs
from saetui.cli import common
from saetui.settings import AnalysisSettings, AttributionSettings


def add_parsers(sub: Any) -> None:
    a = AnalysisSettings()
    analyze = sub.add_parser("analyze", help="per-token SAE features of a prompt")
    common.add_model_options(analyze, sae_help=common.SAE_HELP)
    analyze.add_argument("--prompt", required=True, help="text to analyze")
    analyze.add_argument("--top-k", type=common.positive, default=a.top_k,
                         help=f"features per token and per prompt (default {a.top_k})")
    analyze.add_argument("--predictions", type=common.non_negative, default=0, metavar="N",
                         help="also give the top N next-token predictions after each token (runs the full model)")
    analyze.add_argument("--include-special", action="store_true", help="let BOS/pad/special tokens count in the prompt summary")
    analyze.add_argument("--span", type=common.span, metavar="START:END",
                         help="also rank features over tokens START..END-1 (token positions, BOS is 0)")
    analyze.add_argument("--span-pool", choices=("max", "mean"),
                         help=f"pool over the span (default {a.span_pool})")
    common.add_chat_options(analyze)
    analyze.add_argument("--include-template", action="store_true",
                         help="with --chat: let the template's tokens count in the prompt summary")
    common.add_json_option(analyze)
    analyze.set_defaults(run=run_analyze)

    t = AttributionSettings()
    attr = sub.add_parser("attribute", help="why this token? the prediction's SAE features, checked by ablation")
    common.add_model_options(attr, sae_help="as for analyze; repeat for several (all attributed at once)")
    attr.add_argument("--prompt", required=True, help="text whose next-token prediction is explained")
    attr.add_argument("--position", type=common.whole, metavar="I",
                      help="the token after which the prediction is made, 0-based with BOS (default: the last; negative counts from the end)")
    attr.add_argument("--target", metavar="TOKEN|ID", help="token text (one token) or id (ASCII digits) whose logit is explained "
                                                         "(default: the model's top prediction)")
    attr.add_argument("--versus", metavar="TOKEN|ID", help="explain the logit difference target - versus instead")
    attr.add_argument("--top-k", type=common.positive, default=t.top_k,
                      help=f"features shown per SAE, by |attribution| (default {t.top_k})")
    attr.add_argument("--verify", type=common.non_negative, default=t.verify, metavar="N",
                      help=f"measure the N largest by real ablation, batched (default {t.verify}; 0 = off)")
    common.add_chat_options(attr)
    common.add_json_option(attr)
    attr.set_defaults(run=run_attribute)


def run_analyze(args: argparse.Namespace) -> int:
    if args.span_pool is not None and args.span is None:
        warnings.warn("--span-pool has no effect without --span")
    session = common.open_session(args)
    result = session.analyze(args.prompt, args.top_k, include_special=args.include_special,
                             predictions=args.predictions, chat=args.chat, system=args.system,
                             include_template=args.include_template, span=args.span,
                             span_pool=args.span_pool or AnalysisSettings().span_pool)
    if args.json:
        print(result.to_json())
    else:
        data = result.to_dict()
        print(format_analysis(data))
        if "span" in data:
            print(format_span(data["span"]))
    return 0


def format_analysis(result: dict[str, Any]) -> str:
    """A plain-text table: one line per token, top features per SAE."""
    lines = []
    for sae in result["saes"]:
        lines.append(f"== {sae['name']} ({sae['hook']}, d_sae={sae['d_sae']}) fvu={common.num(sae['fvu'])} "
                     f"mean_l0={common.num(sae['mean_l0'])}")
        for tok, feats in zip(result["tokens"], sae["per_token"]):
            mark = "*" if tok["special"] else ("+" if tok.get("template") else " ")  # + a chat template's token
            shown = "  ".join(f"{f}:{a:.2f}" for f, a in feats[:5])
            lines.append(f"{tok['index']:>4}{mark} {tok['text']!r:<16} {shown}")
        top = ", ".join(f"{f} ({a:.2f} @ {i})" for f, a, i in sae["top_features"])
        lines.append(f"top: {top}")
    return "\n".join(lines)


def format_span(span: dict[str, Any]) -> str:
    lines = [f"span {span['start']}:{span['end']} {''.join(span['tokens'])!r} ({span['pool']} over {span['counted']} tokens)"]
    for sae in span["saes"]:
        shown = ", ".join(f"{r['feature']} ({r['value']:.2f}{'' if r['token_index'] is None else ' @ ' + str(r['token_index'])})"
                          for r in sae["features"])
        lines.append(f"  {sae['name']}: {shown or '(none fire)'}")
    return "\n".join(lines)


def run_attribute(args: argparse.Namespace) -> int:
    target, versus = inputs.target_and_versus(args.target, args.versus)
    session = common.open_session(args)
    result = session.attribute(args.prompt, args.position, target, versus, top_k=args.top_k, verify=args.verify,
                               chat=args.chat, system=args.system)
    if args.json:
        print(json.dumps(result.to_dict()))
    else:
        print(format_attribution(result.to_dict(), session.labels))
    return 0


def format_attribution(result: dict[str, Any], labels: Any = None) -> str:
    """Plain text: the target, then per SAE its error term and top features (ablation where verified, labels where known)."""
    tokens = result["tokens"]
    pos, tgt, vs = result["position"], result["target"], result["versus"]
    head = f"after token {pos} {tokens[pos]['text']!r}: {tgt['text']!r} (id {tgt['id']}) logit {tgt['logit']:.3f}, p {tgt['prob']:.3f}"
    if vs is not None:
        head += f"; versus {vs['text']!r} (id {vs['id']}) logit {vs['logit']:.3f}: difference {result['value']:.3f}"
    lines = [head]
    for sae in result["saes"]:
        lines.append(f"== {sae['name']} ({sae['hook']}) error term {common.num(sae['error'])}, "
                     f"decoder bias {common.num(sae['bias'])}")
        lines.append(f"{'feature':>8} {'attribution':>12} {'ablation':>10} {'activation':>10}  strongest at")
        for f in sae["features"]:
            p, _ = max(f["positions"], key=lambda item: abs(item[1]), default=(None, 0.0))
            at = f"{p} {tokens[p]['text']!r}" if p is not None else ""
            ablation = "" if f["ablation"] is None else f"{f['ablation']:.3f}"
            label = (labels or {}).get((sae["name"], f["feature"]), "")
            lines.append(f"{f['feature']:>8} {f['attribution']:>12.3f} {ablation:>10} {f['activation']:>10.3f}  {at:<16} {label}".rstrip())
    return "\n".join(lines)
