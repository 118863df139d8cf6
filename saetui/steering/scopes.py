"""Position scopes: which absolute token positions a steering spec acts on. The one place the rules live.

A scope is `all`, `prompt`, `generated`, `template` (the positions a chat template wrote in the prompt:
turn markers, role names, the reply's opener), `START:END` (absolute, END exclusive), or a union of
them joined by `+` (`generated+template`, `0:3+generated`). `saetui.steering.spec.check_scope` checks
the text; this module says what it covers.

Steering turns every scope of a forward into one row of a (S, L) mask over absolute positions 0..L-1,
so a hook finds what covers its tokens with one gather by position, whatever the scopes are: the eager
loop, the static-cache decoder and its compiled step all apply the same masks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:
    import torch


def covers(scope: str, length: int, prompt_len: int | None = None, template: Sequence[bool] | None = None) -> list[bool]:
    """Per absolute position 0..length-1: whether `scope` steers it.

    prompt_len: where generated tokens start (None: a plain forward, every position is prompt).
    template:   for a chat prompt, per prompt position whether its chat template wrote it (None: no chat).
    """
    keep = [False] * length
    for part in scope.split("+"):
        if part == "all":
            return [True] * length
        if part in ("prompt", "generated"):
            n = length if prompt_len is None else prompt_len
            for p in range(length):
                keep[p] |= (p < n) if part == "prompt" else (p >= n)
        elif part == "template":  # nothing outside a chat prompt
            for p, wrote in enumerate(list(template or [])[:length]):
                keep[p] |= bool(wrote)
        else:
            start, _, end = part.partition(":")
            lo, hi = int(start or 0), int(end) if end else length
            for p in range(max(lo, 0), min(hi, length)):
                keep[p] = True
    return keep


def scope_masks(scopes: Sequence[str], length: int, prompt_len: int | None, template: Sequence[bool] | None,
                *, rows: int | None = None, dtype: torch.dtype, device: torch.device | str) -> torch.Tensor:
    """(max(rows, len(scopes)), length) float mask: row s is 1 where scopes[s] covers the position; rows
    past the scopes are 0 (padding, so a decoder's tensors keep their shape when the scopes change)."""
    import torch

    out = torch.zeros(max(rows or 0, len(scopes)), length, dtype=dtype)
    for s, scope in enumerate(scopes):
        out[s] = torch.tensor(covers(scope, length, prompt_len, template), dtype=dtype)
    return out.to(device)
