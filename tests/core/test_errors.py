"""saetui.errors: the one-line messages library errors are wrapped in."""

from __future__ import annotations

import pytest

from saetui.errors import SAELoadError, first_line


@pytest.mark.parametrize("message, want", [
    ("plain", "plain"),
    ("two\nlines", "two"),
    ("", "ValueError"),
    ("  \n  ", "ValueError"),
    ("Error(s) in loading state_dict for GPT2LMHeadModel:\n\tsize mismatch for wte.weight: copying a param",
     "Error(s) in loading state_dict for GPT2LMHeadModel: size mismatch for wte.weight: copying a param"),
    ("Missing keys:\n  a\n  b\n  c", "Missing keys: a (and 2 more lines)"),
    ("heading:\n  a\n  b", "heading: a (and 1 more line)"),
    ("ends with a colon:", "ends with a colon:"),
])
def test_first_line_keeps_the_cause_a_heading_line_announces(message, want):
    assert first_line(ValueError(message)) == want
    assert "\n" not in str(SAELoadError(f"cannot load SAE x: {first_line(ValueError(message))}"))
