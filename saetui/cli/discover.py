"""Finding features: `saetui search` (by number, label, example tokens or `promotes WORD`), `saetui contrast`
(what separates two sets of prompts) and `saetui neighbours` (the closest decoder directions)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from typing import Any

from saetui import inputs
from saetui.cli import common
from saetui.steering.spec import vector_usage
from saetui.settings import ContrastSettings, NeighbourSettings, SearchSettings


def add_parsers(sub: Any) -> None:
    search = sub.add_parser("search", help="search features by number, label, example tokens or `promotes WORD`")
    search.add_argument("query")
    common.add_model_options(search, sae_help="SAE to load (default: the demo's two); every SAE loaded is searched, "
                                                     "each hit tagged with its own")
    search.add_argument("--limit", type=common.positive, default=SearchSettings.limit)
    search.add_argument("--json", action="store_true")
    search.set_defaults(run=run_search)

    c = ContrastSettings()
    contrast = sub.add_parser("contrast", help="features that separate prompts A from prompts B, for every loaded SAE")
    common.add_model_options(contrast)
    contrast.add_argument("--a", action="append", required=True, metavar="TEXT|FILE",
                          help="a prompt of set A, or a file of them (.txt one a line, .jsonl `text`, - for stdin); repeat")
    contrast.add_argument("--b", action="append", required=True, metavar="TEXT|FILE", help="the same for set B")
    contrast.add_argument("--top-k", type=common.positive, default=c.top_k,
                          help=f"features listed per side and SAE (default {c.top_k})")
    contrast.add_argument("--pool", choices=("mean", "max"), default=c.pool,
                          help=f"mean: per-token statistics; max: per-prompt max (default {c.pool})")
    contrast.add_argument("--by", choices=("diff", "effect"), default=c.by,
                          help=f"rank by the difference of means or by the effect size (default {c.by})")
    contrast.add_argument("--batch-size", type=common.positive, default=c.batch_size,
                          help=f"prompts per forward (default {c.batch_size})")
    contrast.add_argument("--include-special", action="store_true", help="count BOS/pad/special tokens too")
    contrast.add_argument("--save-vector", metavar="NAME", help="save A's mean activation minus B's as a steering vector")
    common.add_json_option(contrast)
    contrast.set_defaults(run=run_contrast)

    n = NeighbourSettings()
    neighbours = sub.add_parser("neighbours", help="features whose decoder directions are closest to a feature's")
    neighbours.add_argument("feature", metavar="[SAE/]FEATURE",
                            help="SAE: a loaded SAE's name, hook or layer (default: the first loaded)")
    common.add_model_options(neighbours)
    neighbours.add_argument("--against", metavar="SAE", help="compare with this loaded SAE's features (default: the feature's own SAE)")
    neighbours.add_argument("--top-k", type=common.positive, default=n.top_k, help=f"neighbours listed (default {n.top_k})")
    common.add_json_option(neighbours)
    neighbours.set_defaults(run=run_neighbours)


def run_search(args: argparse.Namespace) -> int:
    session = common.open_session(args)
    result = session.search_all(args.query, limit=args.limit)  # every loaded SAE, each hit tagged with its SAE
    if args.json:
        print(json.dumps({"query": result.query, "kind": result.kind, "note": result.note,
                          "hits": [dataclasses.asdict(h) for h in result.hits]}))
        return 0
    if result.note:
        print(f"note: {result.note}", file=sys.stderr)
    several = len(session.sae_names) > 1
    width = min(30, max((len(h.label) for h in result.hits), default=0))
    names = [f"{h.sae}/{h.feature}" if several else str(h.feature) for h in result.hits]
    room = max((len(n) for n in names), default=0)  # `demo/3` and `demo-late/101` in one column
    for name, h in zip(names, result.hits):
        label = h.label if len(h.label) <= width else h.label[: width - 1] + "…"
        print(f"{name:>{room}}  {h.score:7.2f}  " + (f"{label:<{width}}  " if width else "") + h.why)
    if not result.hits:
        print(f"no features match {result.query!r}", file=sys.stderr)
    return 0


def run_contrast(args: argparse.Namespace) -> int:
    from saetui.inputs import check_name

    a, b = inputs.read_prompt_sets(args.a, args.b)  # bad sets and names fail before the model loads
    if args.save_vector is not None:
        from saetui.files import check_creatable
        from saetui.steering.vectors import vectors_dir

        check_name(args.save_vector, "vector")
        check_creatable(vectors_dir(), "vectors folder")  # where it will be saved, writable
    session = common.open_session(args)
    result = session.contrast(a, b, args.top_k, pool=args.pool, by=args.by, include_special=args.include_special,
                              batch_size=args.batch_size, save_vector=args.save_vector)
    data = result.to_dict()
    if args.json:
        print(json.dumps(data))
        return 0
    (na, nb), (ta, tb) = result.n_prompts, result.n_tokens
    unit = "token" if result.pool == "mean" else "prompt max"
    for sae in data["saes"]:
        print(f"== {sae['name']} ({sae['hook']}, d_sae={sae['d_sae']}) A: {na} prompts, {ta} tokens; "
              f"B: {nb} prompts, {tb} tokens; per {unit}, ranked by {result.by}")
        print(f"{'feature':>7}  {'diff':>7}  {'effect':>6}  {'mean A':>7}  {'mean B':>7}  {'fires A':>7}  {'fires B':>7}  label")
        for row in sae["features"]:
            effect = "n/a" if row["effect"] is None else f"{row['effect']:.2f}"
            print(f"{row['feature']:>7}  {row['diff']:7.3f}  {effect:>6}  {row['mean_a']:7.3f}  {row['mean_b']:7.3f}  "
                  f"{row['freq_a']:7.1%}  {row['freq_b']:7.1%}  {row['label']}")
    if "vector" in data:
        norms = ", ".join(f"{h} |v|={d['norm']:.3g}" for h, d in data["directions"].items())
        usage = vector_usage(args.save_vector, list(data["directions"]))
        print(f"saved steering vector {args.save_vector} ({norms}): saetui steer ... --vector {usage}")
    return 0


def run_neighbours(args: argparse.Namespace) -> int:
    sae, feature = inputs.feature_ref(args.feature)
    session = common.open_session(args)
    result = session.neighbours(feature, sae, args.against, args.top_k)
    if args.json:
        print(json.dumps(result.to_dict()))
        return 0
    cos = "n/a" if result.encoder_decoder_cosine is None else f"{result.encoder_decoder_cosine:.3f}"
    label = f" ({result.label})" if result.label else ""
    print(f"{result.sae}/{result.feature}{label}: encoder/decoder cosine {cos}; decoder neighbours in {result.against}:")
    for n in result.neighbours:
        print(f"{n.feature:>7}  {n.cosine:6.3f}  {n.label}")
    return 0
