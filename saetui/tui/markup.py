"""escape: user text (labels, prompts, tokens, paths, error messages) put into the app's markup, shown as it is.

rich.markup.escape and textual.markup.escape escape only what looks like a whole tag (`[b]`, `[/x]`). Textual's
parser also reads an unclosed `[` as the start of a tag that runs on into the markup after it: a label `[y`
shown before the token box's `[b]recon[/b]` line raised MarkupError and closed the app. Here every `[` is
escaped. Textual markup has no escaped backslash (a `[` after any backslash is text), so a text ending in one
gets a zero-width word joiner after it, lest it escape the tag that follows.
"""

from __future__ import annotations

WORD_JOINER = "\u2060"


def escape(text: str) -> str:
    """`text` as markup that shows exactly `text` (plus an invisible word joiner after a final backslash)."""
    text = text.replace("[", "\\[")
    return text + WORD_JOINER if text.endswith("\\") else text
