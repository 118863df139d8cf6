"""`saetui analyze` (per-token SAE features of a prompt, optionally ranked over a span), `saetui attribute`
(why this token: the prediction's SAE features, checked by ablation) and `saetui circuit` (how the features of
several SAEs connect to carry a prediction, checked by ablation)."""

from __future__ import annotations

import argparse
import json
import warnings
from typing import Any

from saetui import inputs
from saetui.cli import common
from saetui.errors import InputError
from saetui.settings import AnalysisSettings, AttributionSettings, CircuitSettings


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

    c = CircuitSettings()
    circ = sub.add_parser("circuit", help="the feature circuit across the SAEs behind a prediction, checked by ablation")
    common.add_model_options(circ, sae_help="as for analyze; repeat for several (nodes of every SAE, edges between consecutive ones)")
    circ.add_argument("--prompt", help="the text whose last-position prediction is explained")
    circ.add_argument("--prompts", metavar="FILE", type=common.text, help="more prompts of the same token length: a .txt file (one a line), "
                      ".jsonl (see --field) or - for stdin; the metric is averaged over them")
    circ.add_argument("--field", default="text", help="the .jsonl field holding the text (default text)")
    circ.add_argument("--target", required=True, metavar="TOKEN|ID", help="the token whose logit is explained (one token, or an id)")
    circ.add_argument("--versus", metavar="TOKEN|ID", help="explain logit(target) - logit(versus) (default: --metric alone)")
    circ.add_argument("--metric", choices=CircuitSettings.METRICS, default=c.metric,
                      help=f"without --versus: log p(target) or logit(target), what `attribute` explains (default {c.metric}); "
                      "with --versus the logit difference either way")
    circ.add_argument("--nodes", type=common.positive, default=c.nodes,
                      help=f"nodes listed, by |effect|; each gets its strongest incoming edges (default {c.nodes})")
    circ.add_argument("--steps", type=common.non_negative, default=c.steps,
                      help=f"integrated-gradient steps (default {c.steps}; 0 = attribution patching)")
    circ.add_argument("--verify", type=common.positive, default=c.verify, metavar="N",
                      help=f"the N largest nodes are ablated one at a time and measured (default {c.verify})")
    circ.add_argument("--edges", type=common.positive, default=c.edges_per_node, metavar="N",
                      help=f"strongest edges kept into each node (default {c.edges_per_node})")
    circ.add_argument("--held-out", type=common.share, default=c.held_out, metavar="SHARE",
                      help=f"with several prompts, the share held out to score the circuit on (default {c.held_out}; 0 = none)")
    common.add_json_option(circ)
    circ.set_defaults(run=run_circuit)


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
    if result.get("predictions"):  # --predictions N: the model's next-token guesses after each token
        lines.append("== next-token predictions")
        for tok, guesses in zip(result["tokens"], result["predictions"]):
            shown = "  ".join(f"{text!r} {p:.1%}" for _, text, p in guesses)
            lines.append(f"{tok['index']:>4}  {tok['text']!r:<16} {shown}")
    return "\n".join(lines)


def format_span(span: dict[str, Any]) -> str:
    lines = [f"span {span['start']}:{span['end']} {''.join(span['tokens'])!r} ({span['pool']} over {span['counted']} tokens)"]
    for sae in span["saes"]:
        shown = ", ".join(f"{r['feature']} ({r['value']:.2f}{'' if r['token_index'] is None else ' @ ' + str(r['token_index'])})"
                          for r in sae["features"])
        none = "(none fire)" if span["counted"] else "(no token counted: special tokens are left out)"
        lines.append(f"  {sae['name']}: {shown or none}")
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
        # `activation` is the max over the tokens; the last column the token with the largest share of attribution
        lines.append(f"{'feature':>8} {'attribution':>12} {'ablation':>10} {'max act':>10}  most attributed at")
        for f in sae["features"]:
            p, _ = max(f["positions"], key=lambda item: abs(item[1]), default=(None, 0.0))
            at = f"{p} {tokens[p]['text']!r}" if p is not None else ""
            ablation = "" if f["ablation"] is None else f"{f['ablation']:.3f}"
            label = (labels or {}).get((sae["name"], f["feature"]), "")
            lines.append(f"{f['feature']:>8} {f['attribution']:>12.3f} {ablation:>10} {f['activation']:>10.3f}  {at:<16} {label}".rstrip())
    return "\n".join(lines)


def run_circuit(args: argparse.Namespace) -> int:
    prompts = [args.prompt] if args.prompt is not None else []
    if args.prompts is not None:  # read (and refused) before any model loads
        prompts += inputs.read_texts(args.prompts, args.field, "prompts file")
    elif args.field != "text":
        warnings.warn("--field has no effect without --prompts")
    if not prompts:
        raise InputError("give --prompt TEXT, --prompts FILE or both")
    if len(prompts) < 2 and args.held_out != CircuitSettings().held_out:
        warnings.warn("--held-out has no effect with one prompt: give more with --prompts FILE")
    target, versus = inputs.target_and_versus(args.target, args.versus)
    settings = CircuitSettings(nodes=args.nodes, steps=args.steps, verify=args.verify, edges_per_node=args.edges,
                               held_out=args.held_out, metric=args.metric)
    session = common.open_session(args)
    result = session.circuit(prompts, target, versus, settings=settings).to_dict()
    print(json.dumps(result) if args.json else format_circuit(result, session.labels, verified=args.verify))
    return 0


def format_circuit(result: dict[str, Any], labels: Any = None, verified: int | None = None) -> str:
    """Plain text: the metric, the nodes by |effect| (measured ablations beside the estimates), the check's
    Spearman correlation, the faithfulness curve(s) and the strongest edges."""
    tokens, metric = result["tokens"], result["metric"]
    held = f", {len(result['held_out'])} held out" if result["held_out"] else ""
    lines = [f"metric {metric['name']} at the last position, over {len(result['prompts'])} prompt(s){held}: "
             f"{metric['full']:.3f}; every feature ablated: {metric['empty']:.3f}",
             f"{'node':<24} {'pos':>3} {'token':<10} {'effect':>9} {'ablated':>9}  label"]
    for n in result["nodes"]:
        name = f"{n['sae']}/{'err' if n['feature'] is None else n['feature']}"
        ablated = "" if n["ablated"] is None else f"{n['ablated']:.3f}"
        label = "" if n["feature"] is None else (labels or {}).get((n["sae"], n["feature"]), "")
        lines.append(f"{name:<24} {n['position']:>3} {tokens[n['position']]!r:<10} {n['effect']:>9.3f} {ablated:>9}  {label}".rstrip())
    if result["spearman"] is not None:
        top = verified or sum(n["ablated"] is not None for n in result["nodes"])  # --verify may reach past the list
        lines.append(f"estimate vs measured ablation, Spearman over the {top} largest: {result['spearman']:.2f}")

    def curve(points: list[dict[str, Any]]) -> str:
        return " · ".join(f"{p['nodes']}: {common.num(p['score'])}" for p in points)

    lines.append(f"faithfulness (top k feature nodes kept): {curve(result['faithfulness'])}")
    if result["held_out_faithfulness"]:
        lines.append(f"  on the held-out prompts: {curve(result['held_out_faithfulness'])}")
    edges = sorted(result["edges"], key=lambda e: -abs(e["weight"]))[:10]
    if edges:
        lines.append("strongest edges: " + "; ".join(f"{e['from']} -> {e['to']} {e['weight']:.3f}" for e in edges))
    return "\n".join(lines)
