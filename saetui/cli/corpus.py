"""Commands that read a corpus or a file of labels: `saetui index` (a feature index: top examples, density,
histograms), `saetui evals` (SAE health on a corpus) and `saetui labels` (import labels into an index)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from saetui import inputs
from saetui.cli import common
from saetui.settings import EvalSettings, IndexSettings

CORPUS_HINT = "--corpus takes a .txt, .jsonl or .json file, or - for standard input"

EVALS_HELP = """Every loaded SAE's health over your corpus, in one pass (clean, each SAE spliced in, each hook zeroed):

  positions       each document's non-special tokens (each document tokenized alone, cut to the context)
  l0              mean count of latents > 0
  fvu             sum |x - x_hat|^2 / sum |x - mean x|^2 (mean over the corpus's positions)
  cosine          mean cos(x, x_hat)
  ce_loss_*       mean next-token cross-entropy over every predicted token: clean; spliced (the hook's
                  activation replaced by the SAE's reconstruction at the positions); zero (replaced by 0)
  ce_recovered    (zero - spliced) / (zero - clean); null where zeroing does not raise the loss
  kl_spliced      mean KL(p_clean || p_spliced)
  dead_fraction   latents never > 0;  dense_fraction: latents > 0 on more than 10% of positions
  density_histogram  log10 firing rates in half-decade bins, and the dead count
"""


def add_parsers(sub: Any) -> None:
    idx = IndexSettings()
    index = sub.add_parser("index", help="build a feature index (top examples, density, histograms) from a corpus")
    common.add_model_options(index, sae_help="the SAE to index (default: the demo's early-layer SAE, demo)")
    index.add_argument("--corpus", required=True, help=".txt (one document a line), .jsonl, or .json (an array)")
    index.add_argument("--field", default="text", help="the .jsonl/.json field holding the text (default text)")
    index.add_argument("--max-tokens", type=common.positive, default=idx.max_tokens, help="stop after this many tokens")
    index.add_argument("--batch-size", type=common.positive, default=idx.batch_size,
                       help=f"documents per forward (default: {IndexSettings.CPU_BATCH_SIZE} on CPU; on a GPU sized to "
                            "its free memory, halved if it runs out)")
    index.add_argument("--top-k", type=common.positive, default=idx.top_k, help=f"top examples kept per feature (default {idx.top_k})")
    index.add_argument("--ctx", type=common.positive, default=idx.ctx,
                       help=f"tokens of context shown around each top example (default {idx.ctx})")
    index.add_argument("--out", type=common.text, help="index folder (default: the platformdirs cache, keyed by model and SAE)")
    index.add_argument("--resume", action="store_true", help="continue an interrupted build")
    index.set_defaults(run=run_index)

    ev = EvalSettings()
    evals = sub.add_parser("evals", help="SAE health on a corpus: reconstruction, sparsity, the model's loss with each SAE spliced in",
                           description=EVALS_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    common.add_model_options(evals, sae_help="an SAE to evaluate (repeat for several; default: every SAE of the demo)")
    evals.add_argument("--corpus", required=True, help=".txt (one document a line), .jsonl, or .json (an array)")
    evals.add_argument("--field", default="text", help="the .jsonl/.json field holding the text (default text)")
    evals.add_argument("--max-tokens", type=common.positive, default=ev.max_tokens,
                       help="stop after documents holding this many positions")
    evals.add_argument("--batch-size", type=common.positive, default=ev.batch_size,
                       help=f"documents per forward (default {ev.batch_size}; each forward runs 1 + SAEs + hooks copies of them)")
    common.add_json_option(evals)
    evals.set_defaults(run=run_evals)

    labels = sub.add_parser("labels", help="import feature labels (Neuronpedia JSON/JSONL or CSV feature,label) into an index")
    labels.add_argument("file")
    common.add_model_options(labels, sae_help="the SAE whose index gets the labels (default: the demo's early-layer SAE, demo)")
    labels.add_argument("--index", help="index folder (default: the one `saetui index` wrote for this model and SAE)")
    labels.set_defaults(run=run_labels)


def run_index(args: argparse.Namespace) -> int:
    inputs.check_input_file(args.corpus, "dataset file", CORPUS_HINT)
    if args.out:
        inputs.check_out_dir(args.out)
    else:  # the default place (keyed by model and SAE, known once loaded) is in the cache folder: checked now
        from saetui.files import check_creatable
        from saetui.paths import cache_dir

        check_creatable(cache_dir(create=False) / "index", "index folder")
    settings = IndexSettings(top_k=args.top_k, batch_size=args.batch_size, max_tokens=args.max_tokens, ctx=args.ctx)
    session = common.open_session(args)
    index = session.build_index(args.corpus, args.out, session.chosen_sae(args.sae).name, field=args.field,
                                settings=settings, resume=args.resume)
    if not common.reports():
        return 0  # under torchrun, rank 0 reports
    print(json.dumps(index.summary()))
    return 0


def run_evals(args: argparse.Namespace) -> int:
    from saetui.files import json_ready
    from saetui.sae.evals import health_line

    inputs.check_input_file(args.corpus, "dataset file", CORPUS_HINT)
    session = common.open_session(args)
    # with --model every --sae given is loaded and evaluated; on the demo, --sae names which of its SAEs
    names = list(dict.fromkeys(args.sae)) if args.sae and not args.model else None
    result = session.evals(args.corpus, names, field=args.field, max_tokens=args.max_tokens, batch_size=args.batch_size,
                           progress=sys.stderr.isatty())
    if args.json:
        print(json.dumps(json_ready(result.to_dict())))
    else:
        n = result.documents
        print(f"{result.corpus}: {n} document{'s' if n != 1 else ''}, {result.tokens} positions")
        for health in result.saes:
            print(health_line(health))
    return 0


def run_labels(args: argparse.Namespace) -> int:
    new = inputs.read_labels(args.file)  # a bad file fails before the model loads
    session = common.open_session(args)
    print(json.dumps(session.add_labels(new, session.chosen_sae(args.sae).name, args.index)))
    return 0
