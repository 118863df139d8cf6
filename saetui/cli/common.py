"""What every command's parser shares: one-line argparse errors, option types that check through saetui.inputs,
the model options (--model, --sae, --device, --dtype, ...), the chat options, and the Session they open."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from typing import TYPE_CHECKING, Any, Callable

from saetui import inputs
from saetui.errors import SaetuiError

if TYPE_CHECKING:
    from saetui.session import Session


class UsageError(Exception):
    """An argparse complaint, turned into one line by `main`."""


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors: no usage block, the subcommand named in the message."""

    def error(self, message: str) -> Any:  # type: ignore[override]
        sub = self.prog.split(" ", 1)[1] if " " in self.prog else ""
        raise UsageError(f"{sub}: {message}" if sub else message)

    def parse_args(self, args: Any = None, namespace: Any = None) -> Any:  # type: ignore[override]
        """As argparse's, with leftover arguments named after the command they were given to (argparse reports
        them from the top parser: `saetui: error: unrecognized arguments: --bogus`, no command)."""
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            command = getattr(parsed, "command", None)
            raise UsageError(f"{command + ': ' if command else ''}unrecognized arguments: {' '.join(extras)}")
        return parsed

    def exit(self, status: int = 0, message: str | None = None) -> Any:  # type: ignore[override]
        if status and message:
            raise UsageError(message.removeprefix(f"{self.prog}: error: "))
        if message:
            self._print_message(message, sys.stderr)
        raise SystemExit(status)


def default(cls: type, name: str) -> Any:
    """A settings dataclass field's default: the settings classes own the numbers, argparse only shows them."""
    (f,) = [f for f in dataclasses.fields(cls) if f.name == name]
    return f.default


def checked(check: Callable[[str], Any], name: str) -> Callable[[str], Any]:
    """An argparse type running `check` (a saetui.inputs function): its one-line error becomes argparse's."""
    def convert(text: str) -> Any:
        try:
            return check(text)
        except SaetuiError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = name  # argparse names the type in its message
    return convert


positive = checked(lambda t: inputs.whole_number(t, 1, "must be a positive whole number"), "integer")
non_negative = checked(lambda t: inputs.whole_number(t, 0, "must be a whole number >= 0"), "integer")
seed = checked(lambda t: inputs.whole_number(t, 0, "must be a whole number from 0 to 2**64-1", 2**64 - 1), "integer")
whole = checked(lambda t: inputs.whole_number(t, -(2**63), "must be a whole number"), "integer")  # ranges: settings
finite_float = checked(inputs.finite_number, "number")
text = checked(inputs.not_blank, "text")  # --model "" ran the demo, --out "" wrote to the default folder
share = checked(lambda t: inputs.share(t), "share")
span = checked(inputs.parse_span, "span")
dtype = checked(inputs.normalize_dtype, "dtype")
device = checked(inputs.check_device_name, "device")

REFRESH_HELP = ("ask the Hub for newer files of the model and SAEs (default: what is complete in the HF cache "
                "loads without the network; only missing files are downloaded)")
SAE_HELP = ("RELEASE/SAE_ID, a sae-lens directory, or params.npz[@HOOK]; repeat for several "
            "(default: the demo's two SAEs, with the demo model)")


def add_model_options(p: argparse.ArgumentParser, sae_help: str = "as for analyze; repeat for several") -> None:
    """--model, --device, --dtype, --trust-remote-code, --refresh and --sae: what `open_session` loads."""
    p.add_argument("--model", type=text, help="HF model id or local directory (default: the bundled demo model)")
    p.add_argument("--device", type=device, help="cuda, cuda:1, mps or cpu (default: best available)")
    p.add_argument("--dtype", type=dtype, help="float32, bfloat16 or float16 (default: bf16 on CUDA, fp32 elsewhere)")
    p.add_argument("--trust-remote-code", action="store_true", help="allow custom model code from the hub")
    p.add_argument("--refresh", action="store_true", help=REFRESH_HELP)
    p.add_argument("--sae", action="append", metavar="SPEC", help=sae_help)


def add_chat_options(p: argparse.ArgumentParser, *, system: bool = True) -> None:
    """--chat (the prompt as a user turn in the model's chat template) and, where it means something, --system."""
    p.add_argument("--chat", action="store_true",
                   help="the prompt is a user turn in the model's own chat template (instruct models)")
    if system:
        p.add_argument("--system", metavar="TEXT", help="with --chat: a system turn first, where the template takes one")


def add_json_option(p: argparse.ArgumentParser, help: str = "print one JSON object") -> None:
    p.add_argument("--json", action="store_true", help=help)


def check_texts(args: argparse.Namespace) -> None:
    """Prompts, queries and chat options are checked before anything loads (from argv, undecodable bytes arrive
    as lone surrogates)."""
    for name in ("prompt", "query"):
        if isinstance(getattr(args, name, None), str):
            inputs.check_text(getattr(args, name), name)
    for name in ("target", "versus"):  # a token: a space is one, so only its bytes are checked here
        if isinstance(getattr(args, name, None), str):
            inputs.check_utf8(getattr(args, name), f"--{name} token")
    inputs.check_chat_options(getattr(args, "chat", False), system=getattr(args, "system", None),
                              include_template=getattr(args, "include_template", False),
                              steer_template=getattr(args, "steer_template", False))


def reports() -> bool:
    """Whether this process reports (prints progress and results): yes, except a torchrun rank other than 0. A RANK
    that is no number was set by something else: this process reports (int() of it failed a finished build)."""
    rank = os.environ.get("RANK", "").strip()
    return not (rank.isascii() and rank.isdigit() and rank.strip("0"))  # digits, not all zeros (of any length)


def open_session(args: argparse.Namespace, *, compile: bool | None = None) -> Session:
    """A Session on the model and SAEs named by --model/--sae (the demo without --model), with their indexes.
    Downloads report on stderr; under torchrun every rank fetches (huggingface_hub's file locks let one download
    each file) and rank 0 reports."""
    from saetui.hub_progress import StderrProgress
    from saetui.session import Session

    progress = StderrProgress() if reports() else (lambda p: None)
    return Session.open(args.model or None, args.sae or None, device=args.device, dtype=args.dtype,
                        trust_remote_code=args.trust_remote_code, refresh=getattr(args, "refresh", False),
                        compile=compile, progress=progress)


def num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"
