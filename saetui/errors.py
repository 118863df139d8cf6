"""User-facing errors: each one is a single line that the CLI prints without a traceback.

Raise a `SaetuiError` (or a subclass) for anything the user can fix: a bad model id, an SAE
that does not fit the model, an empty prompt. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class SaetuiError(Exception):
    """A mistake in the user's input, reported as one line (CLI exit code 2)."""

    def __init__(self, message: str) -> None:
        # Collapse to one line so nested library messages never spill over several.
        super().__init__(" ".join(str(message).split()))


class ModelLoadError(SaetuiError):
    """The model or tokenizer could not be loaded (unknown id, offline, bad dtype)."""


class HookPointError(SaetuiError):
    """A hook point name does not exist on this model, or its layer is out of range."""


class SAELoadError(SaetuiError):
    """An SAE could not be loaded or does not fit the loaded model."""


class InputError(SaetuiError):
    """A prompt, dataset or option value is unusable (empty prompt, missing field...)."""


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (or its type name), for wrapping library errors."""
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]
