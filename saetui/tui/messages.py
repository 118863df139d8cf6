"""Messages that workers post to the app (thread-safe via post_message)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from textual.message import Message


@dataclass
class Loaded(Message):
    """The model and SAEs are ready."""

    status: dict[str, Any]


@dataclass
class AnalysisDone(Message):
    result: Any  # saetui.sae.analyzer.AnalysisResult


@dataclass
class GenerationPiece(Message):
    """New text for one generation column (row 0 baseline, row 1 steered)."""

    row: int
    text: str
    token_id: int


@dataclass
class GenerationDone(Message):
    stopped: bool
