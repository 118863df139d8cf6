"""Every default, once: the settings dataclasses the library, the CLI and the app all read.

A default is written here and nowhere else: the library's signatures take them from these classes, the CLI's
options show them (`saetui.cli.common.default`), the app's fields start from them. Where the app deliberately
differs from a command (its search list scrolls, so it asks for more hits than a terminal page), the difference
is a named field of `AppSettings`, not a second number somewhere else.

Ground floor: no torch, no other part of saetui but `errors` and `inputs` (how a number given is read).
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any, ClassVar

from saetui.errors import InputError
from saetui.inputs import as_int


def _int_field(settings: Any, name: str) -> int | None:
    """The field as an int (a numpy or tensor integer is made one in place), or None where it is no whole number."""
    value = as_int(getattr(settings, name))
    if value is not None:
        object.__setattr__(settings, name, value)  # the frozen ones too
    return value


def _real_field(settings: Any, name: str) -> float | None:
    """The field as a finite float (a numpy float too, made one in place), or None where it is not one."""
    value = getattr(settings, name)
    try:
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
            return None
    except OverflowError:  # an int past what a float holds
        return None
    object.__setattr__(settings, name, value if isinstance(value, (int, float)) else float(value))
    return float(value)


@dataclass(frozen=True)
class AnalysisSettings:
    """analyze: features per token and per prompt; next-token predictions per token (0: off, the full model
    is not run); how a span's features are pooled (max or mean over its tokens)."""

    top_k: int = 10
    predictions: int = 0
    span_pool: str = "max"


@dataclass(frozen=True)
class AttributionSettings:
    """attribute: features shown per SAE (by |attribution|); how many of the largest are checked by ablation; the
    top next-token predictions the app's why? screen offers as targets; and the factor beyond which attribution
    (a linear estimate) and ablation (measured) are flagged as disagreeing in size (they are always flagged when
    their signs differ). On the demo, attribution underestimates the measured effect 1-4x for most features."""

    top_k: int = 20
    verify: int = 10
    predictions: int = 8
    disagree: float = 3.0


@dataclass(frozen=True)
class CircuitSettings:
    """circuit: nodes listed (and downstream nodes whose edges are computed); integrated-gradient steps
    (0: attribution patching); top nodes checked by ablating each alone; strongest edges kept into each
    downstream node; with several prompts, the share held out from finding the circuit to score it on; the
    metric without a versus: "logprob" (log p(target)) or "logit" (logit(target), what why? explains)."""

    nodes: int = 50
    steps: int = 10
    verify: int = 20
    edges_per_node: int = 10
    held_out: float = 0.25
    metric: str = "logprob"

    METRICS: ClassVar[tuple[str, ...]] = ("logprob", "logit")

    # each step is a batch row per SAE in the backward pass: 10^8 asked for 150 GB; past a few hundred the
    # integral's estimate no longer moves
    MAX_STEPS: ClassVar[int] = 1000

    def __post_init__(self) -> None:
        for name in ("nodes", "verify", "edges_per_node"):
            value = _int_field(self, name)
            if value is None or value < 1:
                raise InputError(f"--{name.replace('_', '-')} must be a positive integer, got {getattr(self, name)!r}")
        steps = _int_field(self, "steps")
        if steps is None or not 0 <= steps <= self.MAX_STEPS:
            raise InputError(f"--steps must be 0 (attribution patching) to {self.MAX_STEPS} (integrated gradients), "
                             f"got {self.steps!r}")
        held_out = _real_field(self, "held_out")
        if held_out is None or not 0 <= held_out < 1:
            raise InputError(f"--held-out must be a share from 0 up to (not including) 1, got {self.held_out!r}")
        if self.metric not in self.METRICS:
            raise InputError(f"--metric must be one of {', '.join(self.METRICS)}, got {self.metric!r}")

    def split(self, prompts: list[str]) -> tuple[list[str], list[str]]:
        """(found on, held out): the last `held_out` share of the prompts (at least one, and at least one left
        to find the circuit on) is held out; a single prompt is not split."""
        if len(prompts) < 2 or self.held_out == 0:
            return prompts, []
        n = min(len(prompts) - 1, max(1, round(len(prompts) * self.held_out)))
        return prompts[:-n], prompts[-n:]


@dataclass(frozen=True)
class SearchSettings:
    """search: hits returned (best first)."""

    limit: int = 20


@dataclass(frozen=True)
class ContrastSettings:
    """contrast: features listed per side and SAE; per-token (mean) or per-prompt (max) statistics; ranked by the
    difference of means or the effect size; prompts per forward."""

    top_k: int = 20
    pool: str = "mean"
    by: str = "diff"
    batch_size: int = 16


@dataclass(frozen=True)
class NeighbourSettings:
    """neighbours: decoder neighbours listed."""

    top_k: int = 10


@dataclass(frozen=True)
class DetailSettings:
    """A feature's detail (Session.feature_info, the app's detail screen): top examples shown, each recomputed
    over its document's prefix; decoder neighbours listed from its own SAE and from each other loaded SAE."""

    examples: int = 8
    neighbours: int = 8
    other_neighbours: int = 4


@dataclass(frozen=True)
class SteeringSettings:
    """A feature added to steering starts at `max_multiple` times its max activation (visible, not overwhelming),
    or at `coefficient` where no feature index knows its max. The app's sweep (Ctrl+W with its box empty) runs
    `sweep`: multiples of the feature's max activation (typed 0,1x,2x,4x), of a steering vector's saved
    direction, or with no feature index of `coefficient` (raw 0,4,8,16)."""

    coefficient: float = 4.0
    max_multiple: float = 2.0
    sweep: tuple[float, ...] = (0.0, 1.0, 2.0, 4.0)

    def start(self, max_activation: float | None) -> float:
        return self.coefficient if max_activation is None else self.times_max(self.max_multiple, max_activation)

    @staticmethod
    def times_max(multiple: float, max_activation: float) -> float:
        """A raw coefficient of `multiple` times a max activation, to the 2 decimals the spec table shows (`a`
        adds a feature at it, the coef box sets `2x` to it)."""
        return round(multiple * max_activation, 2)


MIN_TEMPERATURE = 1e-3


@dataclass(frozen=True)
class GenerationSettings:
    """max_new_tokens > 0; temperature 0 = greedy; top_p in (0, 1]; seed for every row unless `seeds` is given."""

    max_new_tokens: int = 64
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int = 0
    use_cache: bool = True

    def __post_init__(self) -> None:
        tokens = _int_field(self, "max_new_tokens")
        if tokens is None or tokens <= 0:
            raise InputError(f"max new tokens must be a positive integer, got {self.max_new_tokens!r}")
        temperature = _real_field(self, "temperature")
        if temperature is None or temperature < 0:
            raise InputError(f"temperature must be a finite number >= 0 (0 = greedy), got {self.temperature!r}")
        if 0 < temperature < MIN_TEMPERATURE:  # logits / T overflows to inf and the sampler gets NaNs
            raise InputError(f"temperature must be 0 (greedy) or at least {MIN_TEMPERATURE:g}, got {self.temperature}")
        top_p = _real_field(self, "top_p")
        if top_p is None or not 0 < top_p <= 1:
            raise InputError(f"top-p must be in (0, 1], got {self.top_p!r}")
        seed = _int_field(self, "seed")
        if seed is None or not 0 <= seed < 2**64:
            raise InputError(f"seed must be a whole number from 0 to 2**64-1, got {self.seed!r}")


@dataclass
class IndexSettings:
    """A feature index: top examples kept per feature; histogram bins, log-spaced from lo to hi (values beyond go
    to the last bin); documents per forward (None: CPU_BATCH_SIZE on CPU, sized to free memory on a GPU); stop
    after max_tokens; tokens of context shown around a top example. Saved in the index's manifest."""

    top_k: int = 20
    n_bins: int = 24
    lo: float = 1e-3
    hi: float = 1e3
    batch_size: int | None = None
    max_tokens: int | None = None
    ctx: int = 16

    CPU_BATCH_SIZE: ClassVar[int] = 16
    # the builder holds top_k values and contexts per feature: 10^8 asked for 100 GB on the demo's 256 features
    MAX_TOP_K: ClassVar[int] = 1000

    def __post_init__(self) -> None:
        top_k = _int_field(self, "top_k")
        if top_k is None or not 1 <= top_k <= self.MAX_TOP_K:
            raise InputError(f"--top-k must be a whole number from 1 to {self.MAX_TOP_K}, got {self.top_k!r}")
        n_bins, ctx = _int_field(self, "n_bins"), _int_field(self, "ctx")
        if n_bins is None or n_bins < 1:
            raise InputError(f"n_bins must be a positive integer, got {self.n_bins!r}")
        if ctx is None or ctx < 0:
            raise InputError(f"ctx (tokens of context around an example) must be 0 or more, got {self.ctx!r}")
        lo, hi = _real_field(self, "lo"), _real_field(self, "hi")
        if lo is None or hi is None or not 0 < lo < hi:
            raise InputError(f"the histogram's range must be 0 < lo < hi, got lo={self.lo!r}, hi={self.hi!r}")
        for name in ("batch_size", "max_tokens"):  # None: sized to the machine, the whole corpus
            if getattr(self, name) is not None and ((value := _int_field(self, name)) is None or value < 1):
                raise InputError(f"--{name.replace('_', '-')} must be a positive integer, got {getattr(self, name)!r}")


@dataclass
class EvalSettings:
    """max_tokens: stop after documents holding this many positions (None: the whole corpus);
    batch_size: documents per forward (each forward runs 1 + SAEs + hooks copies of them)."""

    max_tokens: int | None = None
    batch_size: int = 4

    def __post_init__(self) -> None:
        if self.max_tokens is not None and ((max_tokens := _int_field(self, "max_tokens")) is None or max_tokens < 1):
            raise InputError(f"--max-tokens must be a positive integer, got {self.max_tokens!r}")
        batch_size = _int_field(self, "batch_size")
        if batch_size is None or batch_size < 1:
            raise InputError(f"--batch-size must be a positive integer, got {self.batch_size!r}")


@dataclass(frozen=True)
class AppSettings:
    """The app: hits in the search list (it scrolls, so more than a command prints); features kept per token and
    SAE (more than `analyze` prints: the side list moves dense features after the others, and the ones behind them
    must be there to show); next-token predictions shown for the highlighted token; analyzed prompts kept in the
    history (Ctrl+Up/Down); positions the health screen (F8) reads from its corpus at most (`saetui evals` reads
    the whole corpus unless --max-tokens says less); seconds a note stays on the status line (what just happened:
    after that the line shows only the model, SAEs and device again, so it never describes an action long past);
    changes to the steering specs `u` can undo; tokens a chat must keep free in the model's context after F6/F7
    keep a reply (for the next user turn and its reply: a kept reply that leaves fewer is refused)."""

    search_limit: int = 50
    top_k: int = 30
    predictions: int = 5
    history: int = 50
    health_max_tokens: int = 100_000
    status_note_s: float = 10.0
    undo: int = 50
    chat_room: int = 16
