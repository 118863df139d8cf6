"""The `saetui` command: headless subcommands that print JSON (and, later, the terminal app).

    saetui analyze --model ID_OR_DIR --sae SPEC [--sae SPEC ...] --prompt TEXT [--top-k 10] [--json]
    saetui steer --model ID_OR_DIR --sae SPEC --prompt TEXT --feature [SAE/]FEATURE:COEF[:MODE] ... [--compare] [--sweep C1,C2]
    saetui attribute --model ID_OR_DIR --sae SPEC [--sae SPEC ...] --prompt TEXT [--position I] [--target TOKEN|ID] [--versus TOKEN|ID]
    saetui saes [--model NAME] [--json]
    saetui download --model ID [--sae RELEASE/SAE_ID ...] [--refresh] [--json]   (fetch ahead, for offline starts)

Hub models and registry SAEs come from the HF cache without a request when complete there; what is missing
is downloaded with a line per file on stderr (saetui.hub); --refresh asks the Hub for newer files.

analyze, steer and attribute take --chat (the prompt as a user turn in the model's chat template) and
--system TEXT, snapshot takes --chat; see the README's "Chat models".

User mistakes print one line on stderr (`saetui: error: ...`) and exit with code 2, argparse's own
complaints included; options and output paths are checked before any model loads. Warnings print
one line each (`saetui: warning: ...`). Nothing is written to stdout unless the command succeeds.
A bug (any other exception) is one line too, `saetui: error: internal error: ...`, exit code 1, with
the traceback in a log file under saetui.paths.log_dir(); SAETUI_DEBUG=1 re-raises it instead.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import re
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

from saetui.errors import InputError, SaetuiError

if TYPE_CHECKING:
    from saetui.session import Session

EXIT_USAGE = 2
EXIT_INTERNAL = 1


class _UsageError(Exception):
    """An argparse complaint, turned into one line by `main`."""


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: no usage block, the subcommand named in the message."""

    def error(self, message: str) -> Any:  # type: ignore[override]
        sub = self.prog.split(" ", 1)[1] if " " in self.prog else ""
        raise _UsageError(f"{sub}: {message}" if sub else message)

    def exit(self, status: int = 0, message: str | None = None) -> Any:  # type: ignore[override]
        if status and message:
            raise _UsageError(message.removeprefix(f"{self.prog}: error: "))
        if message:
            self._print_message(message, sys.stderr)
        raise SystemExit(status)


def _default(cls: type, name: str) -> Any:
    """A dataclass field's default: the settings classes own the numbers, argparse only shows them."""
    (f,) = [f for f in dataclasses.fields(cls) if f.name == name]
    return f.default


_ASCII_INT = re.compile(r"[+-]?[0-9]+")


def _int_type(minimum: int, what: str, maximum: int | None = None) -> Callable[[str], int]:
    def parse(text: str) -> int:
        if not _ASCII_INT.fullmatch(text.strip()):
            raise argparse.ArgumentTypeError(f"{what}, got {text!r}")
        value = int(text)
        if value < minimum or (maximum is not None and value > maximum):
            raise argparse.ArgumentTypeError(f"{what}, got {text!r}")
        return value

    parse.__name__ = "integer"
    return parse


_positive = _int_type(1, "must be a positive whole number")
_non_negative = _int_type(0, "must be a whole number >= 0 (0 = off)")
_seed = _int_type(0, "must be a whole number from 0 to 2**64-1", 2**64 - 1)
_whole = _int_type(-(2**63), "must be a whole number")  # range checked by the settings class


def _finite_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


_finite_float.__name__ = "number"


def _checked_by(check_name: str, name: str) -> Callable[[str], str]:
    """An argparse type that runs `saetui.models.model.<check_name>` (imported only when the option is given)."""
    def convert(text: str) -> str:
        from saetui.models import model

        try:
            return getattr(model, check_name)(text)
        except SaetuiError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = name  # argparse names the type in its message
    return convert


_dtype = _checked_by("normalize_dtype", "dtype")
_device = _checked_by("check_device_name", "device")


def build_parser() -> argparse.ArgumentParser:
    from saetui.sae.index import IndexSettings
    from saetui.steering.generate import GenerationSettings

    gen = lambda name: _default(GenerationSettings, name)  # noqa: E731
    idx = lambda name: _default(IndexSettings, name)  # noqa: E731
    parser = _Parser(prog="saetui", description="Look inside a language model through a sparse autoencoder. "
                                     "With no command, opens the terminal app (on the bundled demo unless --model is given).")
    parser.add_argument("--model", help="HF model id or local directory for the app (default: the bundled demo)")
    parser.add_argument("--sae", action="append", metavar="SPEC", help="SAE for the app; repeat for several")
    parser.add_argument("--refresh", action="store_true", help=_REFRESH_HELP)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    analyze = sub.add_parser("analyze", help="per-token SAE features of a prompt")
    _model_args(analyze)
    analyze.add_argument("--sae", action="append", metavar="SPEC",
                         help="RELEASE/SAE_ID, a sae-lens directory, or params.npz[@HOOK]; repeat for several "
                              "(default: the demo's two SAEs, with the demo model)")
    analyze.add_argument("--prompt", required=True, help="text to analyze")
    analyze.add_argument("--top-k", type=_positive, default=10, help="features per token and per prompt (default 10)")
    analyze.add_argument("--predictions", type=_non_negative, default=0, metavar="N",
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
    steer.add_argument("--max-new-tokens", type=_whole, default=gen("max_new_tokens"),
                       help=f"capped at the model's context (default {gen('max_new_tokens')})")
    steer.add_argument("--temperature", type=_finite_float, default=gen("temperature"),
                       help="0 (default) is greedy; otherwise at least 0.001")
    steer.add_argument("--top-p", type=_finite_float, default=gen("top_p"), help="in (0, 1]")
    steer.add_argument("--seed", type=_seed, default=gen("seed"))
    steer.add_argument("--json", action="store_true", help="print one JSON object at the end instead of streaming")
    steer.add_argument("--no-compile", action="store_true",
                       help="decode with the eager loop (default on CUDA: static KV cache and a compiled step)")

    attr = sub.add_parser("attribute", help="why this token? the prediction's SAE features, checked by ablation")
    _model_args(attr)
    attr.add_argument("--sae", action="append", metavar="SPEC", help="as for analyze; repeat for several (all attributed at once)")
    attr.add_argument("--prompt", required=True, help="text whose next-token prediction is explained")
    attr.add_argument("--position", type=_whole, metavar="I",
                      help="the token after which the prediction is made, 0-based with BOS (default: the last; negative counts from the end)")
    attr.add_argument("--target", metavar="TOKEN|ID", help="token text (one token) or id (ASCII digits) whose logit is explained "
                                                         "(default: the model's top prediction)")
    attr.add_argument("--versus", metavar="TOKEN|ID", help="explain the logit difference target - versus instead")
    attr.add_argument("--top-k", type=_positive, default=20, help="features shown per SAE, by |attribution| (default 20)")
    attr.add_argument("--verify", type=_non_negative, default=10, metavar="N",
                      help="measure the N largest by real ablation, batched (default 10; 0 = off)")
    attr.add_argument("--json", action="store_true", help="print one JSON object")

    index = sub.add_parser("index", help="build a feature index (top examples, density, histograms) from a corpus")
    _model_args(index)
    index.add_argument("--sae", action="append", metavar="SPEC", help="the SAE to index (default: the demo's early-layer SAE, demo)")
    index.add_argument("--corpus", required=True, help=".txt (one document a line) or .jsonl")
    index.add_argument("--field", default="text", help="the .jsonl field holding the text (default text)")
    index.add_argument("--max-tokens", type=_positive, default=idx("max_tokens"), help="stop after this many tokens")
    index.add_argument("--batch-size", type=_positive, default=idx("batch_size"),
                       help="documents per forward (default: 16 on CPU; on a GPU sized to its free memory, halved if it runs out)")
    index.add_argument("--top-k", type=_positive, default=idx("top_k"), help=f"top examples kept per feature (default {idx('top_k')})")
    index.add_argument("--ctx", type=_positive, default=idx("ctx"),
                       help=f"tokens of context shown around each top example (default {idx('ctx')})")
    index.add_argument("--out", help="index folder (default: the platformdirs cache, keyed by model and SAE)")
    index.add_argument("--resume", action="store_true", help="continue an interrupted build")

    evals = sub.add_parser("evals", help="SAE health on a corpus: reconstruction, sparsity, the model's loss with each SAE spliced in",
                           description=EVALS_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    _model_args(evals)
    evals.add_argument("--sae", action="append", metavar="SPEC",
                       help="an SAE to evaluate (repeat for several; default: every SAE of the demo)")
    evals.add_argument("--corpus", required=True, help=".txt (one document a line) or .jsonl")
    evals.add_argument("--field", default="text", help="the .jsonl field holding the text (default text)")
    evals.add_argument("--max-tokens", type=_positive, help="stop after documents holding this many positions")
    evals.add_argument("--batch-size", type=_positive, default=4,
                       help="documents per forward (default 4; each forward runs 1 + SAEs + hooks copies of them)")
    evals.add_argument("--json", action="store_true", help="print one JSON object")

    search = sub.add_parser("search", help="search features by number, label, example tokens or `promotes WORD`")
    search.add_argument("query")
    _model_args(search)
    search.add_argument("--sae", action="append", metavar="SPEC", help="the SAE to search (default: the demo's early-layer SAE, demo)")
    search.add_argument("--limit", type=_positive, default=20)
    search.add_argument("--json", action="store_true")

    labels = sub.add_parser("labels", help="import feature labels (Neuronpedia JSON/JSONL or CSV feature,label) into an index")
    labels.add_argument("file")
    _model_args(labels)
    labels.add_argument("--sae", action="append", metavar="SPEC", help="the SAE whose index gets the labels (default: the demo's early-layer SAE, demo)")
    labels.add_argument("--index", help="index folder (default: the one `saetui index` wrote for this model and SAE)")

    snap = sub.add_parser("snapshot", help="render the app after its work finishes and write an SVG")
    snap.add_argument("--prompt", required=True)
    snap.add_argument("--feature", action="append", default=[], metavar="[SAE/]FEATURE:COEF[:MODE]")
    snap.add_argument("--generate", action="store_true", help="also generate baseline and steered text")
    snap.add_argument("--size", default="120x40", help="WIDTHxHEIGHT (default 120x40)")
    snap.add_argument("--out", required=True, help="SVG file to write")
    snap.add_argument("--app-model", dest="snap_model", help="model for the app (default: the demo)")
    snap.add_argument("--app-sae", dest="snap_sae", action="append", help="SAE for the app")

    download = sub.add_parser("download", help="fetch a Hub model and registry SAEs into the HF cache for later "
                                               "starts without network (HF_HUB_OFFLINE=1), and say where they are")
    download.add_argument("--model", help="HF model id: config, generation config, tokenizer, chat template, weights")
    download.add_argument("--sae", action="append", metavar="SPEC", help="RELEASE/SAE_ID of the sae-lens registry; repeat")
    download.add_argument("--refresh", action="store_true", help="ask the Hub for newer files even where the cache is complete")
    download.add_argument("--json", action="store_true", help="print one JSON object (progress stays on stderr)")

    saes = sub.add_parser("saes", help="list SAEs in the sae-lens registry (offline)")
    saes.add_argument("--model", help="only SAEs for this model (HF id or short name)")
    saes.add_argument("--json", action="store_true", help="print a JSON list")
    _discover_parsers(sub)
    _chat_parsers(sub)
    return parser


def _chat_parsers(sub: Any) -> None:
    """--chat and its companions on analyze, steer, attribute and snapshot (issue 13)."""
    for name in ("analyze", "steer", "attribute", "snapshot"):
        p = sub.choices[name]
        p.add_argument("--chat", action="store_true",
                       help="the prompt is a user turn in the model's own chat template (instruct models)")
        if name != "snapshot":
            p.add_argument("--system", metavar="TEXT", help="with --chat: a system turn first, where the template takes one")
    sub.choices["analyze"].add_argument("--include-template", action="store_true",
                                        help="with --chat: let the template's tokens count in the prompt summary")
    sub.choices["steer"].add_argument("--steer-template", action="store_true",
                                      help="with --chat: also steer the template's tokens in the prompt (default: the reply only)")


def _check_chat(args: argparse.Namespace) -> None:
    """Chat options that need --chat, refused before anything loads."""
    if getattr(args, "chat", False):
        return
    for option, given in (("--system", getattr(args, "system", None) is not None),
                          ("--include-template", getattr(args, "include_template", False)),
                          ("--steer-template", getattr(args, "steer_template", False))):
        if given:
            raise InputError(f"{option} needs --chat")


def _discover_parsers(sub: Any) -> None:
    """contrast, neighbours and vectors (issue 12); analyze's --span and steer's --vector are added here too."""
    contrast = sub.add_parser("contrast", help="features that separate prompts A from prompts B, for every loaded SAE")
    _model_args(contrast)
    contrast.add_argument("--sae", action="append", metavar="SPEC", help="as for analyze; repeat for several")
    contrast.add_argument("--a", action="append", required=True, metavar="TEXT|FILE",
                          help="a prompt of set A, or a file of them (.txt one a line, .jsonl `text`); repeat")
    contrast.add_argument("--b", action="append", required=True, metavar="TEXT|FILE", help="the same for set B")
    contrast.add_argument("--top-k", type=_positive, default=20, help="features listed per side and SAE (default 20)")
    contrast.add_argument("--pool", choices=("mean", "max"), default="mean",
                          help="mean: per-token statistics; max: per-prompt max (default mean)")
    contrast.add_argument("--by", choices=("diff", "effect"), default="diff",
                          help="rank by the difference of means or by the effect size (default diff)")
    contrast.add_argument("--batch-size", type=_positive, default=16, help="prompts per forward (default 16)")
    contrast.add_argument("--include-special", action="store_true", help="count BOS/pad/special tokens too")
    contrast.add_argument("--save-vector", metavar="NAME", help="save A's mean activation minus B's as a steering vector")
    contrast.add_argument("--json", action="store_true", help="print one JSON object")

    neighbours = sub.add_parser("neighbours", help="features whose decoder directions are closest to a feature's")
    neighbours.add_argument("feature", metavar="[SAE/]FEATURE",
                            help="SAE: a loaded SAE's name, hook or layer (default: the first loaded)")
    _model_args(neighbours)
    neighbours.add_argument("--sae", action="append", metavar="SPEC", help="as for analyze; repeat for several")
    neighbours.add_argument("--against", metavar="SAE", help="compare with this loaded SAE's features (default: the feature's own SAE)")
    neighbours.add_argument("--top-k", type=_positive, default=10, help="neighbours listed (default 10)")
    neighbours.add_argument("--json", action="store_true", help="print one JSON object")

    vectors = sub.add_parser("vectors", help="list the saved steering vectors")
    vectors.add_argument("--json", action="store_true", help="print a JSON list")

    analyze = sub.choices["analyze"]
    analyze.add_argument("--span", type=_span, metavar="START:END",
                         help="also rank features over tokens START..END-1 (token positions, BOS is 0)")
    analyze.add_argument("--span-pool", choices=("max", "mean"), default="max", help="pool over the span (default max)")
    steer = sub.choices["steer"]
    steer.add_argument("--vector", action="append", default=[], metavar="NAME[@HOOK]:COEF",
                       help="add a saved steering vector (from `contrast --save-vector`); repeat for several")
    for action in steer._actions:  # --feature or --vector: at least one, checked in cmd_steer
        if action.dest == "feature":
            action.required, action.default = False, []


def _span(text: str) -> tuple[int, int]:
    from saetui.sae.span import parse_span

    try:
        return parse_span(text)
    except SaetuiError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


_span.__name__ = "span"


def _model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", help="HF model id or local directory (default: the bundled demo model)")
    p.add_argument("--device", type=_device, help="cuda, cuda:1, mps or cpu (default: best available)")
    p.add_argument("--dtype", type=_dtype, help="float32, bfloat16 or float16 (default: bf16 on CUDA, fp32 elsewhere)")
    p.add_argument("--trust-remote-code", action="store_true", help="allow custom model code from the hub")
    p.add_argument("--refresh", action="store_true", help=_REFRESH_HELP)


_REFRESH_HELP = ("ask the Hub for newer files of the model and SAEs (default: what is complete in the HF cache "
                 "loads without the network; only missing files are downloaded)")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        _check_text(args)
    except (_UsageError, SaetuiError) as exc:
        print(f"saetui: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return EXIT_USAGE
    if args.command is None:
        if args.sae and not args.model:
            print("saetui: error: --sae needs --model (the demo brings its own SAEs)", file=sys.stderr)
            return EXIT_USAGE
        from saetui.tui.app import run

        run(args.model, args.sae, refresh=args.refresh)
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
                        "index": cmd_index, "search": cmd_search, "labels": cmd_labels,
                        "contrast": cmd_contrast, "neighbours": cmd_neighbours, "vectors": cmd_vectors,
                        "attribute": cmd_attribute, "evals": cmd_evals, "download": cmd_download}
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
        except Exception as exc:  # a bug: one line for the user, the traceback in a log file
            if os.environ.get("SAETUI_DEBUG", "").strip() not in ("", "0"):
                raise
            print(f"saetui: error: internal error: {type(exc).__name__}: {_one_line(exc)} ({_log_traceback(exc)})",
                  file=sys.stderr)
            return EXIT_INTERNAL


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or "(no message)"
    return text if len(text) <= 300 else text[:297] + "..."


def _log_traceback(exc: BaseException) -> str:
    """Write the traceback to a log file; say where (or why not) for the error line."""
    import time
    import traceback

    try:
        from saetui.paths import log_dir

        path = log_dir() / f"error-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
        path.write_text("".join(traceback.format_exception(type(exc), exc, exc.__traceback__)), encoding="utf-8")
        return f"details in {path}; SAETUI_DEBUG=1 shows the traceback"
    except Exception:  # an unwritable log folder must not hide the error itself
        return "no log written; SAETUI_DEBUG=1 shows the traceback"


def _check_text(args: argparse.Namespace) -> None:
    """Prompts and queries are checked before anything loads (from argv, undecodable bytes arrive as lone surrogates)."""
    from saetui.session import check_text

    for name in ("prompt", "query"):
        if isinstance(getattr(args, name, None), str):
            check_text(getattr(args, name), name)
    if isinstance(getattr(args, "system", None), str):
        check_text(args.system, "system prompt")
    _check_chat(args)


def _target_sae(args: argparse.Namespace, manager: Any) -> Any:
    """The SAE a one-SAE command works on: the last --sae given (a demo SAE by its name), else the demo's first SAE."""
    if not args.sae:
        return list(manager)[0]
    named = [s for s in manager if s.name == args.sae[-1]]
    return named[0] if named else list(manager)[-1]


def _session(args: argparse.Namespace) -> Session:
    """A Session on the model and SAEs named by --model/--sae (the demo without --model), with their indexes."""
    from saetui.session import Session

    if not args.model and args.dtype not in (None, "auto", "float32"):
        raise InputError(f"the bundled demo runs in float32 only; --dtype {args.dtype} needs --model")
    if args.model and not args.sae:
        raise InputError("--sae is required with --model: RELEASE/SAE_ID, a sae-lens directory or params.npz")
    from saetui.hub import StderrProgress

    session = Session()
    # under torchrun every rank fetches (huggingface_hub's file locks let one download each file); rank 0 reports
    progress = StderrProgress() if os.environ.get("RANK", "0") == "0" else (lambda p: None)
    session.load(args.model or None, args.sae or None, device=args.device, dtype=args.dtype,
                 trust_remote_code=args.trust_remote_code, refresh=getattr(args, "refresh", False),
                 progress=progress)
    return session


def cmd_download(args: argparse.Namespace) -> int:
    """Everything a later start of the same --model/--sae reads, in the HF cache; what is where, and its size."""
    from saetui.hub import StderrProgress, human_bytes
    from saetui.session import Session

    report = Session().download(args.model, args.sae, refresh=args.refresh, progress=StderrProgress())
    if args.json:
        print(json.dumps(report.to_dict()))
        return 0
    for item in report.items:
        if item["source"] != "hub":
            print(f"{item['kind']} {item['name']}: {item['path']} (not from the Hub: nothing to download)")
            continue
        fetched = (f"fetched {item['fetched_files']} file(s), {human_bytes(item['fetched_bytes'])}"
                   if item["fetched_files"] else "already in the cache")
        print(f"{item['kind']} {item['name']}: {item['files']} files, {human_bytes(item['bytes'])} ({fetched}) "
              f"in {item['path']}")
    again = " ".join([f"--model {args.model}"] * bool(args.model) + [f"--sae {s}" for s in args.sae or []])
    print(f"total {human_bytes(report.bytes)} in the HF cache {report.cache}; offline from now on: "
          f"HF_HUB_OFFLINE=1 saetui {again}")
    return 0


def cmd_analyze(args: argparse.Namespace) -> int:
    session = _session(args)
    span = None
    if args.span is not None:  # first: a span beyond the prompt fails before any output
        span = session.span(args.prompt, *args.span, pool=args.span_pool, top_k=args.top_k,
                            include_special=args.include_special, chat=args.chat, system=args.system).to_dict()
        span.pop("prompt")
    result = session.analyze(args.prompt, args.top_k, include_special=args.include_special,
                             predictions=args.predictions, chat=args.chat, system=args.system,
                             include_template=args.include_template)
    if args.json:
        print(result.to_json() if span is None else json.dumps({**result.to_dict(), "span": span}))
    else:
        print(_format_analysis(result.to_dict()))
        if span is not None:
            print(_format_span(span))
    return 0


def cmd_steer(args: argparse.Namespace) -> int:
    from saetui.steering.generate import GenerationSettings
    from saetui.steering.spec import SteeringSpec, parse_sweep, resolve

    specs = [SteeringSpec.parse(text, scope=args.scope) for text in args.feature]
    vector_specs = _vector_specs(args)
    coefficients = parse_sweep(args.sweep) if args.sweep else None
    settings = dict(max_new_tokens=args.max_new_tokens, temperature=args.temperature, top_p=args.top_p, seed=args.seed)
    GenerationSettings(**settings)  # bad numbers fail before the model loads
    session = _session(args)
    if args.no_compile:
        session.compile = False
    model = session.model
    for spec in specs:
        resolve(spec, session.saes)
    specs = [*specs, *(session.vector_spec(v.vector, v.coefficient, v.hook, v.scope) for v in vector_specs)]
    chat = dict(chat=args.chat, system=args.system, steer_template=args.steer_template)
    prompt = session.chat_prompt(args.prompt, args.chat, args.system, reply=True)  # a chat: rendered, one-line errors
    shown = prompt if isinstance(prompt, str) else prompt.text  # what the model reads
    n_prompt = None if isinstance(prompt, str) else len(prompt)
    settings["max_new_tokens"] = _cap_new_tokens(model, args.prompt, args.max_new_tokens, n_prompt)
    labels, rows = [], []
    if args.compare:
        labels.append("baseline"), rows.append([])
    if coefficients is None:
        labels.append("steered"), rows.append(specs)
    else:
        for c in coefficients:
            labels.append(f"coefficient {c:g}"), rows.append([s.with_coefficient(c) for s in specs])
    outputs: list[dict[str, Any]] = [{"text": "", "token_ids": [], "logprobs": []} for _ in rows]
    live = len(rows) - 1 if coefficients is None else None  # the steered row streams as it is generated
    if live is not None and not args.json:
        if len(rows) > 1:  # every row under its own heading
            print(f"--- {labels[live]} ---")
        print(shown, end="", flush=True)
    for piece in session.generate(args.prompt, rows, **chat, **settings):
        outputs[piece.row]["token_ids"].append(piece.token_id)
        outputs[piece.row]["logprobs"].append(piece.logprob)
        if piece.row == live and not args.json:
            print(piece.text, end="", flush=True)
    for out in outputs:
        out["text"] = model.tokenizer.decode(out["token_ids"], skip_special_tokens=True)
    if args.json:
        # what steering changed: KL(steered || unsteered) per token of every steered row (one batched forward)
        for out, kl in zip(outputs, session.steering_kl(args.prompt, rows, [o["token_ids"] for o in outputs], **chat)):
            if kl is not None:
                out["kl"] = kl
        data: dict[str, Any] = {"prompt": args.prompt, "specs": [s.to_dict() for s in specs]}
        if args.chat:  # the conversation, what the template made of it, and the scopes the specs had there
            from saetui.session import chat_rows

            data["chat"] = {"messages": prompt.messages, "rendered": prompt.text, "steer_template": args.steer_template}
            data["specs"] = [s.to_dict() for s in chat_rows([specs], args.steer_template)[0]]
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
            print(f"--- {label} ---\n{shown}{out['text']}")
    return 0


def _cap_new_tokens(model: Any, prompt: str, wanted: int, n_prompt: int | None = None) -> int:
    """At most what fits in the model's context after the prompt (n_prompt tokens, default: the prompt
    tokenized with BOS), with one warning line when capped."""
    context = model.context_length
    if context is None:
        return wanted
    n = n_prompt if n_prompt is not None else len(model.tokenizer(prompt, add_special_tokens=True)["input_ids"])
    used = min(n, context)
    room = context - used
    if room < 1:
        raise InputError(f"the prompt fills the model's context of {context} tokens: no room to generate")
    if wanted > room:
        warnings.warn(f"--max-new-tokens {wanted} capped at {room}: the model's context is {context} tokens "
                      f"and the prompt uses {used}")
        return room
    return wanted


def cmd_attribute(args: argparse.Namespace) -> int:
    target, versus = _token_arg(args.target, "--target"), _token_arg(args.versus, "--versus")
    if target is not None and target == versus:
        raise InputError(f"--versus is --target itself ({args.target!r}): the difference would be 0")
    session = _session(args)
    result = session.attribute(args.prompt, args.position, target, versus, top_k=args.top_k, verify=args.verify,
                               chat=args.chat, system=args.system)
    if args.json:
        print(json.dumps(result.to_dict()))
    else:
        print(_format_attribution(result.to_dict(), session.labels))
    return 0


def _token_arg(text: str | None, option: str) -> int | str | None:
    """--target/--versus: ASCII digits are a token id, anything else a token's text (checked against the tokenizer later)."""
    if text is None:
        return None
    if text == "":
        raise InputError(f"{option} is empty: give a token's text or its id")
    return int(text) if text.isascii() and text.isdigit() else text


def _format_attribution(result: dict[str, Any], labels: dict[tuple[str, int], str] | None = None) -> str:
    """Plain text: the target, then per SAE its error term and top features (ablation where verified, labels where known)."""
    tokens = result["tokens"]
    pos, tgt, vs = result["position"], result["target"], result["versus"]
    head = f"after token {pos} {tokens[pos]['text']!r}: {tgt['text']!r} (id {tgt['id']}) logit {tgt['logit']:.3f}, p {tgt['prob']:.3f}"
    if vs is not None:
        head += f"; versus {vs['text']!r} (id {vs['id']}) logit {vs['logit']:.3f}: difference {result['value']:.3f}"
    lines = [head]
    for sae in result["saes"]:
        lines.append(f"== {sae['name']} ({sae['hook']}) error term {_num(sae['error'])}, decoder bias {_num(sae['bias'])}")
        lines.append(f"{'feature':>8} {'attribution':>12} {'ablation':>10} {'activation':>10}  strongest at")
        for f in sae["features"]:
            p, _ = max(f["positions"], key=lambda item: abs(item[1]), default=(None, 0.0))
            at = f"{p} {tokens[p]['text']!r}" if p is not None else ""
            ablation = "" if f["ablation"] is None else f"{f['ablation']:.3f}"
            label = (labels or {}).get((sae["name"], f["feature"]), "")
            lines.append(f"{f['feature']:>8} {f['attribution']:>12.3f} {ablation:>10} {f['activation']:>10.3f}  {at:<16} {label}".rstrip())
    return "\n".join(lines)


def cmd_index(args: argparse.Namespace) -> int:
    from saetui.sae.index import IndexSettings

    if not Path(args.corpus).is_file():
        raise InputError(f"no dataset file at {args.corpus}: --corpus takes a .txt or .jsonl file")
    if args.out:
        _check_out_dir(Path(args.out))
    settings = IndexSettings(top_k=args.top_k, batch_size=args.batch_size, max_tokens=args.max_tokens, ctx=args.ctx)
    session = _session(args)
    loaded = _target_sae(args, session.saes)
    index = session.build_index(args.corpus, args.out, loaded.name, field=args.field, settings=settings, resume=args.resume)
    if int(os.environ.get("RANK", "0")) != 0:
        return 0  # under torchrun, rank 0 reports
    print(json.dumps({"index": str(index.root), "tokens": index.n_tokens, "sae": loaded.spec, "model": session.model.name,
                      "features_firing": int((index.counts > 0).sum())}))
    return 0


EVALS_HELP = """Every loaded SAE's health over your corpus, in one pass (clean, each SAE spliced in, each hook zeroed):

  positions       each document's non-special tokens (each document tokenized alone, cut to the context)
  l0              mean count of latents > 0
  fvu             sum |x - x_hat|^2 / sum |x - mean x|^2 (mean over the corpus's positions)
  cosine          mean cos(x, x_hat)
  ce_loss_*       mean next-token cross-entropy over every predicted token: clean; spliced (the hook's
                  activation replaced by the SAE's reconstruction at the positions); zero (replaced by 0)
  ce_recovered    (zero - spliced) / (zero - clean)
  kl_spliced      mean KL(p_clean || p_spliced)
  dead_fraction   latents never > 0;  dense_fraction: latents > 0 on more than 10% of positions
  density_histogram  log10 firing rates in half-decade bins, and the dead count
"""


def cmd_evals(args: argparse.Namespace) -> int:
    from saetui.files import json_ready
    from saetui.sae.evals import health_line

    if not Path(args.corpus).is_file():
        raise InputError(f"no dataset file at {args.corpus}: --corpus takes a .txt or .jsonl file")
    session = _session(args)
    # with --model every --sae given is loaded and evaluated; on the demo, --sae names which of its SAEs
    names = list(dict.fromkeys(args.sae)) if args.sae and not args.model else None
    result = session.evals(args.corpus, names, field=args.field, max_tokens=args.max_tokens, batch_size=args.batch_size,
                           progress=sys.stderr.isatty())
    if args.json:
        print(json.dumps(json_ready(result.to_dict())))
    else:
        print(f"{result.corpus}: {result.documents} documents, {result.tokens} positions")
        for health in result.saes:
            print(health_line(health))
    return 0


def _check_out_dir(out: Path) -> None:
    """An index folder we can create or write into, checked before the model loads."""
    from saetui.files import check_writable

    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} is a file, not a folder")
    check_writable(out, "index folder")


def cmd_labels(args: argparse.Namespace) -> int:
    from saetui.sae.search import import_labels

    new = import_labels(args.file)  # a bad file fails before the model loads
    session = _session(args)
    print(json.dumps(session.add_labels(new, _target_sae(args, session.saes).name, args.index)))
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    session = _session(args)
    result = session.search_all(args.query, limit=args.limit)  # every loaded SAE, each hit tagged with its SAE
    if args.json:
        print(json.dumps({"query": result.query, "kind": result.kind, "note": result.note,
                          "hits": [dataclasses.asdict(h) for h in result.hits]}))
        return 0
    if result.note:
        print(f"note: {result.note}", file=sys.stderr)
    several = len(session.saes) > 1
    width = min(30, max((len(h.label) for h in result.hits), default=0))
    for h in result.hits:
        label = h.label if len(h.label) <= width else h.label[: width - 1] + "…"
        name = f"{h.sae}/{h.feature}" if several else str(h.feature)
        print(f"{name:>7}  {h.score:7.2f}  " + (f"{label:<{width}}  " if width else "") + h.why)
    if not result.hits:
        print(f"no features match {result.query!r}", file=sys.stderr)
    return 0


# ---------------------------------------------------------------------- discover (issue 12)
def cmd_contrast(args: argparse.Namespace) -> int:
    from saetui.sae.contrast import read_prompt_set
    from saetui.steering.vectors import check_vector_name

    a, b = read_prompt_set(args.a, "A"), read_prompt_set(args.b, "B")  # bad sets and names fail before loading
    if args.save_vector is not None:
        check_vector_name(args.save_vector)
    session = _session(args)
    result = session.contrast(a, b, args.top_k, pool=args.pool, by=args.by, include_special=args.include_special,
                              batch_size=args.batch_size)
    data = result.to_dict()
    if args.save_vector is not None:
        data["vector"] = {"name": args.save_vector, "path": session.save_vector(args.save_vector, result)}
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
        print(f"saved steering vector {args.save_vector} ({norms}): saetui steer ... --vector {args.save_vector}:COEF")
    return 0


def _feature_ref(text: str) -> tuple[str | None, int]:
    """`[SAE/]FEATURE` with FEATURE in ASCII digits."""
    sae, _, number = text.strip().rpartition("/")
    if not (number.isascii() and number.isdigit()):
        raise InputError(f"cannot read feature {text!r}: expected [SAE/]FEATURE, FEATURE in ASCII digits")
    return sae or None, int(number)


def cmd_neighbours(args: argparse.Namespace) -> int:
    sae, feature = _feature_ref(args.feature)
    session = _session(args)
    result = session.neighbours(feature, sae if sae is not None else list(session.saes)[0].name, args.against, args.top_k)
    if args.json:
        print(json.dumps(result.to_dict()))
        return 0
    cos = "n/a" if result.encoder_decoder_cosine is None else f"{result.encoder_decoder_cosine:.3f}"
    label = f" ({result.label})" if result.label else ""
    print(f"{result.sae}/{result.feature}{label}: encoder/decoder cosine {cos}; decoder neighbours in {result.against}:")
    for n in result.neighbours:
        print(f"{n.feature:>7}  {n.cosine:6.3f}  {n.label}")
    return 0


def cmd_vectors(args: argparse.Namespace) -> int:
    from saetui.steering.vectors import list_vectors, load_vector

    rows = []
    for name in list_vectors():
        try:
            v = load_vector(name)
        except SaetuiError as exc:  # a damaged one is set aside; say so and go on
            warnings.warn(str(exc))
            continue
        rows.append({"name": name, "model": v.model, "d_model": v.d_model,
                     "hooks": {h: float(d.norm()) for h, d in v.directions.items()}, "meta": v.meta})
    if args.json:
        print(json.dumps(rows))
        return 0
    for r in rows:
        print(f"{r['name']}\t{r['model']}\t" + ", ".join(f"{h} |v|={n:.3g}" for h, n in r["hooks"].items()))
    return 0


def _vector_specs(args: argparse.Namespace) -> list[Any]:
    """steer's --vector specs, read and checked against the saved vectors before any model loads."""
    from saetui.steering.vectors import VectorSpec, load_vector

    if not args.feature and not args.vector:
        raise InputError("steer: the following arguments are required: --feature (or --vector)")
    specs = [VectorSpec.parse(text, scope=args.scope) for text in args.vector]
    for spec in specs:
        load_vector(spec.vector).pick(spec.hook)
    return specs


def _format_span(span: dict[str, Any]) -> str:
    lines = [f"span {span['start']}:{span['end']} {''.join(span['tokens'])!r} ({span['pool']} over {span['counted']} tokens)"]
    for sae in span["saes"]:
        shown = ", ".join(f"{r['feature']} ({r['value']:.2f}{'' if r['token_index'] is None else ' @ ' + str(r['token_index'])})"
                          for r in sae["features"])
        lines.append(f"  {sae['name']}: {shown or '(none fire)'}")
    return "\n".join(lines)


def cmd_snapshot(args: argparse.Namespace) -> int:
    from saetui.steering.spec import SteeringSpec, resolve
    from saetui.tui.snapshot import check_out_file, parse_size, snapshot

    parse_size(args.size)
    check_out_file(Path(args.out))
    specs = [SteeringSpec.parse(text) for text in args.feature]
    if args.snap_sae and not args.snap_model:
        raise InputError("--app-sae needs --app-model (the demo brings its own SAEs)")
    # Load what the app will load, so a missing model or unknown feature is an error, not a picture of one.
    app_args = argparse.Namespace(model=args.snap_model, sae=args.snap_sae, device=None, dtype=None, trust_remote_code=False)
    session = _session(app_args)
    default = list(session.saes)[0].name
    for spec in specs:
        resolve(spec if spec.sae else dataclasses.replace(spec, sae=default), session.saes)
    del session
    path = snapshot(args.prompt, args.out, features=args.feature, generate=args.generate, size=args.size,
                    model=args.snap_model, saes=args.snap_sae, fail_on_error=True, chat=args.chat)
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
            mark = "*" if tok["special"] else ("+" if tok.get("template") else " ")  # + a chat template's token
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
