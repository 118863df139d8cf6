"""Where models and SAEs come from: `saetui saes` (the sae-lens registry, offline) and `saetui download` (fetch a
Hub model and registry SAEs into the HF cache, for later starts without network)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from saetui.cli import common
from saetui.errors import InputError


def add_parsers(sub: Any) -> None:
    download = sub.add_parser("download", help="fetch a Hub model and registry SAEs into the HF cache for later "
                                               "starts without network (HF_HUB_OFFLINE=1), and say where they are")
    download.add_argument("--model", type=common.text, help="HF model id: config, generation config, tokenizer, chat template, weights")
    download.add_argument("--sae", action="append", metavar="SPEC", help="RELEASE/SAE_ID of the sae-lens registry; repeat")
    download.add_argument("--refresh", action="store_true", help="ask the Hub for newer files even where the cache is complete")
    common.add_json_option(download, "print one JSON object (progress stays on stderr)")
    download.set_defaults(run=run_download)

    saes = sub.add_parser("saes", help="list SAEs in the sae-lens registry (offline)")
    saes.add_argument("--model", type=common.text, help="only SAEs for this model (HF id or short name)")
    common.add_json_option(saes, "print a JSON list")
    saes.set_defaults(run=run_saes)


def run_download(args: argparse.Namespace) -> int:
    """Everything a later start of the same --model/--sae reads, in the HF cache; what is where, and its size."""
    from saetui.hub_progress import StderrProgress, human_bytes
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


def run_saes(args: argparse.Namespace) -> int:
    from saetui.session import Session

    entries = Session.registry(args.model)
    if args.model and not entries:
        raise InputError(f"no registry SAEs for model {args.model!r}; `saetui saes` lists every model")
    if args.json:
        print(json.dumps([e.to_dict() for e in entries]))
        return 0
    for e in entries:
        width = str(e.width) if e.width else "?"
        print(f"{e.spec}\t{e.hook or '?'}\t{width}\t{e.neuronpedia_id or ''}")
    return 0
