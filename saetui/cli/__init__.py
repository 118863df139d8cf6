"""The `saetui` command: the terminal app, and headless subcommands that print JSON (or plain text).

    saetui [--model ID_OR_DIR --sae SPEC ...]         the app (the bundled demo without --model)
    saetui analyze --prompt TEXT [--top-k 10] [--span START:END] [--json]
    saetui steer --prompt TEXT --feature [SAE/]FEATURE:COEF[:MODE] ... [--vector NAME:COEF] [--compare] [--sweep C1,C2]
    saetui attribute --prompt TEXT [--position I] [--target TOKEN|ID] [--versus TOKEN|ID]
    saetui circuit --prompt TEXT [--prompts FILE] --target TOKEN|ID [--versus TOKEN|ID] [--metric logit] [--nodes 50]
    saetui search QUERY | contrast --a TEXT|FILE --b TEXT|FILE | neighbours [SAE/]FEATURE | vectors
    saetui index --corpus FILE | evals --corpus FILE | labels FILE
    saetui saes [--model NAME] | download --model ID [--sae RELEASE/SAE_ID ...]
    saetui snapshot --prompt TEXT --out FILE.svg

One module per command family (analysis, steering, discover, corpus, sources, app), each declaring its parsers
whole and running its commands as parse -> one Session call -> print. Hub models and registry SAEs come from the
HF cache without a request when complete there; what is missing is downloaded with a line per file on stderr.

User mistakes print one line on stderr (`saetui: error: ...`) and exit with code 2, argparse's own
complaints included; options, input files and output paths are checked before any model loads. Warnings print
one line each (`saetui: warning: ...`). Nothing is written to stdout unless the command succeeds.
A bug (any other exception) is one line too, `saetui: error: internal error: ...`, exit code 1, with
the traceback in a log file under saetui.paths.log_dir(); SAETUI_DEBUG=1 re-raises it instead.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import warnings
from typing import Any, Iterator, Sequence

try:  # Ctrl+C in the first moments, before main() can catch it: one line, as at any later point
    from saetui.cli import app, common
    from saetui.errors import SaetuiError, one_line
except KeyboardInterrupt:
    print("saetui: interrupted", file=sys.stderr)
    raise SystemExit(130) from None

EXIT_USAGE = 2
EXIT_INTERNAL = 1


def build_parser() -> argparse.ArgumentParser:
    from saetui.cli import analysis, corpus, discover, sources, steering  # every command's parser

    parser = common.Parser(prog="saetui", description="Look inside a language model through a sparse autoencoder. "
                                          "With no command, opens the terminal app (on the bundled demo unless --model is given).")
    app.add_app_options(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for family in (analysis, steering, discover, corpus, sources, app):
        family.add_parsers(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    own_process = argv is None  # the `saetui` command (the process ends when main returns), not a caller's main([...])
    try:
        code = _main(list(sys.argv[1:] if argv is None else argv))
    except KeyboardInterrupt:  # Ctrl+C at any point, also while the parser is built or transformers is imported
        print("saetui: interrupted", file=sys.stderr)
        code = 130
    if own_process:  # done and said: a Ctrl+C now would only break the exit's cleanup (a traceback from an atexit
        _ignore_more_interrupts()  # handler, or the process killed by the signal with no word)
    return code


def _main(argv: list[str]) -> int:
    if not argv:  # the bare `saetui`, the usual start: the app, without importing every command's parser first
        return app.run_app(argparse.Namespace(model=None, sae=None, refresh=False))
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        common.check_texts(args)
        args = app.app_options(args)
    except (common.UsageError, SaetuiError) as exc:
        print(f"saetui: error: {one_line(exc)}", file=sys.stderr)
        return EXIT_USAGE
    if args.command is None:  # the app: it ends the process itself once its screen is restored
        try:
            return app.run_app(args)
        except SaetuiError as exc:
            print(f"saetui: error: {exc}", file=sys.stderr)
            return EXIT_USAGE
    from saetui.models.model import quiet_hf_output

    quiet_hf_output()
    with warnings.catch_warnings():
        warnings.simplefilter("default")
        for noise in (DeprecationWarning, FutureWarning, PendingDeprecationWarning, ResourceWarning):
            warnings.simplefilter("ignore", noise)  # library internals, not the user's business
        warnings.showwarning = _one_line_warning  # type: ignore[assignment]
        try:
            with _output_errors_said():
                return args.run(args)
        except SaetuiError as exc:
            print(f"saetui: error: {exc}", file=sys.stderr)
            return EXIT_USAGE
        except BrokenPipeError:  # `saetui ... | head`
            sys.stderr.close()
            return 0
        except Exception as exc:
            return _internal_error(exc)


class _OutputError(SaetuiError):
    """stdout could not take the output (`> /dev/full`, a full disk): the user's to fix, not a bug."""


class _GuardedStdout:
    """sys.stdout while a command runs: a write or flush that fails with an OSError (but a closed pipe, which
    `saetui ... | head` answers) becomes _OutputError, said in one line."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise _OutputError(f"cannot write the output: {exc.strerror or exc}") from exc

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise _OutputError(f"cannot write the output: {exc.strerror or exc}") from exc

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


@contextlib.contextmanager
def _output_errors_said() -> Iterator[None]:
    """Run a command with stdout guarded (_GuardedStdout) and flushed at its end, so that a full disk is said here
    and not by the interpreter at exit; after such an error stdout points at /dev/null (nothing more to say)."""
    stream = sys.stdout
    sys.stdout = _GuardedStdout(stream)  # type: ignore[assignment]
    try:
        yield
        sys.stdout.flush()
    except _OutputError:
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, stream.fileno())
            os.close(devnull)
        except (OSError, ValueError, AttributeError):  # no file descriptor (a test's capture): nothing to point
            pass
        raise
    finally:
        sys.stdout = stream


def _ignore_more_interrupts() -> None:
    """A second Ctrl+C while the interrupted process exits would land in an exit handler (a library's temporary
    folder being removed) and print its traceback; the first one has already been answered."""
    import signal

    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    except ValueError:  # not the main thread
        pass


def _internal_error(exc: Exception) -> int:
    """A bug: one line for the user, the traceback in a log file (raised as it is with SAETUI_DEBUG=1)."""
    if os.environ.get("SAETUI_DEBUG", "").strip() not in ("", "0"):
        raise exc
    text = one_line(exc, "(no message)")
    text = text if len(text) <= 300 else text[:297] + "..."
    print(f"saetui: error: internal error: {type(exc).__name__}: {text} ({_log_traceback(exc)})", file=sys.stderr)
    return EXIT_INTERNAL


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


def _one_line_warning(message: Any, category: Any, filename: str, lineno: int, file: Any = None, line: Any = None) -> None:
    print(f"saetui: warning: {one_line(message)}", file=sys.stderr)
