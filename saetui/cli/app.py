"""The app itself: `saetui` with no command opens it, `saetui snapshot` renders it after its work and writes an SVG."""

from __future__ import annotations

import argparse
from typing import Any

from saetui import inputs
from saetui.cli import common
from saetui.errors import InputError
from saetui.steering.spec import parse_spec


def add_app_options(parser: argparse.ArgumentParser) -> None:
    """The bare `saetui` (the app): what it opens. Their own dests (app_*): a command's --model (None when not given)
    would overwrite a --model given before the command, which was then dropped without a word."""
    parser.add_argument("--model", dest="app_model", type=common.text,
                        help="HF model id or local directory for the app (default: the bundled demo)")
    parser.add_argument("--sae", dest="app_sae", action="append", metavar="SPEC", help="SAE for the app; repeat for several")
    parser.add_argument("--refresh", dest="app_refresh", action="store_true", help=common.REFRESH_HELP)


def app_options(args: argparse.Namespace) -> argparse.Namespace:
    """`args` with the app's options as `run_app` reads them. Given before a command (`saetui --model M analyze`), they
    are refused: the command would run on its own default (the demo) while the user meant M."""
    given = [flag for flag, value in (("--model", args.app_model), ("--sae", args.app_sae), ("--refresh", args.app_refresh))
             if value]
    if args.command is None:
        args.model, args.sae, args.refresh = args.app_model, args.app_sae, args.app_refresh
    elif given:
        raise InputError(f"{given[0]} before the command is the app's option: put it after the command "
                         f"(saetui {args.command} {given[0]} ...)")
    return args


def add_parsers(sub: Any) -> None:
    snap = sub.add_parser("snapshot", help="render the app after its work finishes and write an SVG "
                                           "(on the demo by default; your saved app session is neither read nor changed)")
    snap.add_argument("--prompt", required=True)
    snap.add_argument("--feature", action="append", default=[], metavar="[SAE/]FEATURE:COEF[:MODE]")
    snap.add_argument("--generate", action="store_true", help="also generate baseline and steered text")
    snap.add_argument("--size", default="120x40", help="WIDTHxHEIGHT (default 120x40)")
    snap.add_argument("--out", required=True, help="SVG file to write")
    snap.add_argument("--app-model", dest="snap_model", type=common.text, help="model for the app (default: the demo)")
    snap.add_argument("--app-sae", dest="snap_sae", action="append", help="SAE for the app")
    common.add_chat_options(snap, system=False)
    snap.set_defaults(run=run_snapshot)


def run_app(args: argparse.Namespace) -> int:
    if args.sae and not args.model:
        raise InputError("--sae needs --model (the demo brings its own SAEs)")
    from saetui.tui.app import run

    run(args.model, args.sae, refresh=args.refresh)
    return 0


def run_snapshot(args: argparse.Namespace) -> int:
    from saetui.session import Session
    from saetui.tui.snapshot import snapshot

    inputs.parse_size(args.size)
    inputs.check_out_file(args.out)
    specs = [parse_spec(text, "feature") for text in args.feature]
    if args.snap_sae and not args.snap_model:
        raise InputError("--app-sae needs --app-model (the demo brings its own SAEs)")
    if args.snap_model and not args.snap_sae:  # Session.open's own message names --sae, the other commands' option
        raise InputError("--app-sae is required with --app-model: RELEASE/SAE_ID, a sae-lens directory or params.npz")
    # The session the app will show, loaded here, so a missing model or an unknown feature is an error, not a
    # picture of one; a feature without its SAE steers the SAE the app opens on (the first).
    session = Session.open(args.snap_model, args.snap_sae)
    for spec in specs:
        session.check_spec(spec.on_sae(spec.sae or session.sae_names[0]))
    path = snapshot(args.prompt, args.out, features=args.feature, generate=args.generate, size=args.size,
                    session=session, fail_on_error=True, chat=args.chat)
    print(path)
    return 0
