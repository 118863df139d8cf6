"""ActivationCollector: run the model with hooks at sae-lens hook points and keep what they saw.

The forward stops right after the deepest requested hook point has fired (later layers and the LM
head never run), unless logits are asked for. Hooks live in a HookSet and are gone when a call
returns or raises. Everything runs under `torch.inference_mode()` in the calling thread.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence, Union

from saetui.errors import InputError
from saetui.inputs import as_int
from saetui.models.hooks import HookSet

if TYPE_CHECKING:
    import torch

    from saetui.models.model import ModelWithHooks, TokenBatch

Positions = Union[str, Sequence[int]]  # "all", "last", or token positions (negative counts from the end)


class _StopForward(Exception):
    """Raised by the last hook to fire, to skip the rest of the forward."""


@dataclass
class Activations:
    """Activations at each hook point, for real (non-pad) tokens only.

    token_ids[i]:   the real token ids of prompt i
    positions[i]:   which of those positions were kept
    acts[hook][i]:  (len(positions[i]), d_model) tensor for prompt i
    """

    token_ids: list[list[int]]
    positions: list[list[int]]
    acts: dict[str, list[torch.Tensor]]

    def __getitem__(self, hook_name: str) -> list[torch.Tensor]:
        return self.acts[hook_name]


class ActivationCollector:
    """Collect residual/attention/MLP activations from a ModelWithHooks."""

    def __init__(self, model: ModelWithHooks) -> None:
        self.model = model

    def run(
        self,
        batch: TokenBatch,
        hook_names: Sequence[str],
        *,
        stop_early: bool = True,
        return_logits: bool = False,
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
        """One forward over `batch`; returns {hook: (B, T, d)} and the logits (B, T, vocab) if asked.

        With `stop_early` (and no logits) the forward ends once every hook has fired.
        Pad positions hold whatever the model computed there; use `batch.lengths` to drop them.
        """
        import torch

        points = [self.model.hook_point(name) for name in dict.fromkeys(hook_names)]
        if not points and not return_logits:
            raise InputError("no hook points requested")
        captured: dict[str, torch.Tensor] = {}
        batch_shape = tuple(batch.input_ids.shape)
        stop = stop_early and not return_logits
        logits = None
        with HookSet() as hooks, torch.inference_mode():
            for point in points:
                def keep(hidden: torch.Tensor, name: str = point.name) -> None:
                    # Some MLPs (OPT's fc2) work on flattened (B*T, d) rows.
                    captured[name] = hidden.reshape(*batch_shape, -1) if hidden.dim() == 2 else hidden
                    if stop and len(captured) == len(points):
                        raise _StopForward

                hooks.at(self.model, point, keep)
            try:
                out = self.model.model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, use_cache=False)
                logits = out.logits if return_logits else None
            except _StopForward:
                pass
        missing = [p.name for p in points if p.name not in captured]
        if missing:  # a module that never ran: the architecture table is wrong for this model
            raise InputError(f"hook points never fired: {', '.join(missing)}")
        return captured, logits

    def collect(
        self,
        prompts: str | Sequence[str] | TokenBatch,
        hook_names: str | Sequence[str],
        *,
        positions: Positions = "all",
        stop_early: bool = True,
    ) -> Activations:
        """Activations at `hook_names` for the real tokens of each prompt, at `positions`."""
        import torch

        from saetui.models.model import TokenBatch

        if isinstance(hook_names, str):
            hook_names = [hook_names]
        batch = prompts if isinstance(prompts, TokenBatch) else self.model.tokenize(prompts)
        captured, _ = self.run(batch, hook_names, stop_early=stop_early)
        kept = [select_positions(n, positions) for n in batch.lengths]
        ids = batch.input_ids.tolist()
        with torch.inference_mode():
            acts = {name: [captured[name][i, pos] for i, pos in enumerate(kept)] for name in dict.fromkeys(hook_names)}
        return Activations([row[:n] for row, n in zip(ids, batch.lengths)], kept, acts)


def select_positions(length: int, positions: Positions) -> list[int]:
    """Absolute positions among `length` real tokens for "all", "last" or a list (negatives from the end)."""
    if positions == "all":
        return list(range(length))
    if positions == "last":
        return [length - 1]
    if isinstance(positions, str):
        raise InputError(f"positions must be 'all', 'last' or a list of integers, got {positions!r}")
    out = []
    for p in positions:
        if as_int(p) is None:  # int() read 2.9 as 2 and -0.5 as 0 (not from the end), '1' as 1
            raise InputError(f"positions must be 'all', 'last' or a list of integers, got the position {p!r}")
        q = as_int(p) + length if as_int(p) < 0 else as_int(p)  # type: ignore[operator]
        if not 0 <= q < length:
            raise InputError(f"position {p} out of range for a prompt of {length} tokens")
        out.append(q)
    return out
