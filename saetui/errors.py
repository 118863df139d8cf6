"""User-facing errors: each one is a single line that the CLI prints without a traceback.

Raise a `SaetuiError` (or a subclass) for anything the user can fix: a bad model id, an SAE
that does not fit the model, an empty prompt. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class SaetuiError(Exception):
    """A mistake in the user's input, reported as one line (CLI exit code 2)."""

    def __init__(self, message: str) -> None:
        # One line, so nested library messages never spill over several; spaces inside a line are kept, so
        # the user's text quoted in it (repr) reads exactly as it was typed.
        super().__init__(one_line(message))


class ModelLoadError(SaetuiError):
    """The model or tokenizer could not be loaded (unknown id, offline, bad dtype)."""


class HookPointError(SaetuiError):
    """A hook point name does not exist on this model, or its layer is out of range."""


class SAELoadError(SaetuiError):
    """An SAE could not be loaded or does not fit the loaded model."""


class InputError(SaetuiError):
    """A prompt, dataset or option value is unusable (empty prompt, missing field...)."""


def one_line(message: object, default: str = "") -> str:
    """`message` (an exception, or text) on one line: its lines stripped and joined by a space, runs of spaces
    inside a line kept as they are (a quoted user text stays exact; repr never holds a line break)."""
    text = " ".join(line.strip() for line in str(message).splitlines() if line.strip())
    if not text and isinstance(message, BaseException):
        return default or type(message).__name__
    return text or default


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (or its type name), for wrapping library errors. A first line
    that heads a list (`Error(s) in loading state_dict for X:`) comes with the list's first item, and a count of
    the lines left out: cut at its colon, it named no cause."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()] or [type(exc).__name__]
    if not lines[0].endswith(":") or len(lines) == 1:
        return lines[0]
    more = len(lines) - 2
    return f"{lines[0]} {lines[1]}" + (f" (and {more} more line{'s' if more != 1 else ''})" if more else "")
