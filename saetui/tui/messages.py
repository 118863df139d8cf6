"""Messages: intents going up from panes and screens to the app, and results posted by workers.

Panes never call the app or each other: they post an intent and the app routes it. State comes back
down as the app's reactives (`analysis`, `sae_name`, `draft`, `labels_rev`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from textual.message import Message


# ------------------------------------------------------------------ intents (bubble up to the app)
@dataclass
class FeatureIntent(Message):
    """Something to do with one feature of one SAE."""

    sae: str
    feature: int


class FeatureChosen(FeatureIntent):
    """Open the feature's detail."""


@dataclass
class SteerFeature(FeatureIntent):
    """Add the feature to the steering draft; `sign` -1 steers it negatively (pushes its effect down)."""

    sign: int = 1
    signed: bool = False  # the sign was chosen (why? screen): a feature already in steering turns to it
    reason: str = ""      # what the sign is for, said in the toast: "to push logit(' Paris') up"


class LabelFeature(FeatureIntent):
    """Edit the feature's label."""


class HeatFeature(FeatureIntent):
    """Show (or hide) the feature's heat line over the prompt's tokens."""


@dataclass
class DraftChanged(Message):
    """The steering panel edited the draft (a new immutable value)."""

    draft: Any  # saetui.steering.draft.Draft


@dataclass
class WhyAsked(Message):
    """Explain the model's prediction after token `position` of the analyzed prompt."""

    position: int


@dataclass
class CircuitAsked(Message):
    """Show the feature circuit of `prompt`'s next token (of its tokens 0..`upto` when given) for logit(target) -
    logit(versus), or without a versus for `metric` ("logprob", "logit": what why? explains; None: the settings');
    target and versus are token ids or texts, checked when the circuit is found."""

    prompt: str
    target: int | str
    versus: int | str | None = None
    upto: int | None = None
    chat: Any = False
    metric: str | None = None


@dataclass
class SpanChanged(Message):
    """The token table's span selection: tokens start..end-1, or None when it ended."""

    span: tuple[int, int] | None


@dataclass
class SaeSwitch(Message):
    """Show the next loaded SAE."""


class DenseToggle(Message):
    """Show dense features in place in the token's side list, or moved after the others (the default)."""


@dataclass
class Notice(Message):
    """A one-line message for the status bar (and a toast when `severity` is not None)."""

    text: str
    severity: str | None = None


@dataclass
class JobFailed(Message):
    """A pane's worker failed: the app shows it in one line and keeps running."""

    group: str
    message: str


# ------------------------------------------------------------------ results (from workers)
@dataclass
class Loaded(Message):
    """The model and SAEs are ready."""

    status: dict[str, Any]
    announce: bool = False  # asked for from the palette: say it is done


@dataclass
class DownloadProgress(Message):
    """The load worker's download moved on (saetui.hub.Progress): file, bytes, rate, ETA. A newer one waiting in
    the queue replaces it: only the latest state is painted."""

    progress: Any

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, DownloadProgress)


@dataclass
class Analyzed(Message):
    result: Any  # saetui.sae.analyzer.AnalysisResult
    prompt: str = ""   # the text analyzed, as typed (in chat mode: the user turn, not the rendered template)
    chat: Any = False  # the conversation it was a turn of (False: plain text)


@dataclass
class GenerationPiece(Message):
    """New text for one generation row (row 0 baseline, 1 steered; or one row per sweep coefficient)."""

    row: int
    text: str
    token_id: int
    run: int = 0  # which generation: pieces of one replaced since are dropped


@dataclass
class GenerationDone(Message):
    stopped: bool
    run: int = 0
    result: Any = None  # the Session's SteerRun (saetui.generation): what steering changed is asked of it
