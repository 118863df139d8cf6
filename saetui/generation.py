"""A generation as the CLI and the app ask for it: which rows run side by side in one batch (the baseline, the
steered row, one row per sweep coefficient), what a chat does to their scopes, and a run that streams them and
keeps what each row produced. `plan_rows` is the one place rows are made; `Session.steer` makes a `SteerRun`.

Textual-free and torch-free at import: the model work happens in the Session the run belongs to.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Iterator, Sequence

from saetui.models.chat import Chat, is_chat

if TYPE_CHECKING:
    from saetui.models.chat import ChatTokens
    from saetui.models.model import ModelWithHooks
    from saetui.session import Session
    from saetui.steering.generate import Piece


@dataclass(frozen=True)
class Row:
    """One row of a batched generation: `kind` baseline (no specs), steered, or a sweep's variant at `coefficient`."""

    kind: str
    specs: tuple[Any, ...] = ()
    coefficient: float | None = None

    @property
    def label(self) -> str:
        return f"coefficient {self.coefficient:g}" if self.kind == "variant" else self.kind


def plan_rows(specs: Sequence[Any], *, compare: bool = False, sweep: Sequence[float] | None = None,
              held: Sequence[Any] = ()) -> list[Row]:
    """The rows to generate: the baseline first when `compare`; then the steered row (`held` + `specs`), or with
    `sweep` one row per coefficient, every spec of `specs` set to it and the `held` specs as they are."""
    rows = [Row("baseline")] if compare else []
    if sweep is None:
        rows.append(Row("steered", (*held, *specs)))
    else:
        rows += [Row("variant", (*held, *(s.with_coefficient(c) for s in specs)), float(c)) for c in sweep]
    return rows


def chat_rows(rows: Sequence[Sequence[Any]], steer_template: bool = False) -> list[list[Any]]:
    """Rows of specs for a chat: a spec's scope `all` (the default) becomes the reply (`generated`); with
    steer_template every spec also steers the chat template's prompt tokens (`+template`). Explicit scopes
    stay as given (`0:` steers every position, the user's text included)."""
    from saetui.steering.spec import chat_scope

    return [[replace(s, scope=chat_scope(s.scope, steer_template)) for s in row] for row in rows]


def room_to_generate(model: ModelWithHooks, text: str | ChatTokens, wanted: int) -> int:
    """At most what fits in the model's context after the prompt (a text is tokenized with BOS), with one
    warning when capped; none fits: a one-line InputError."""
    import warnings

    from saetui.errors import InputError

    context = model.context_length
    if context is None:
        return wanted
    n = len(model.tokenizer(text, add_special_tokens=True)["input_ids"]) if isinstance(text, str) else len(text)
    used = min(n, context)
    room = context - used
    if room < 1:
        raise InputError(f"the prompt fills the model's context of {context} tokens: no room to generate")
    if wanted > room:
        warnings.warn(f"--max-new-tokens {wanted} capped at {room}: the model's context is {context} tokens "
                      f"and the prompt uses {used}")
        return room
    return wanted


class SteerRun:
    """One generation asked of a Session: its rows, the text the model reads (`shown`), and per row what it
    produced (`outputs`: text, token ids, log-probabilities), filled while `pieces()` streams."""

    def __init__(self, session: Session, prompt: str | None, text: str | ChatTokens, specs: Sequence[Any],
                 rows: Sequence[Row], *, chat: Chat, system: str | None, steer_template: bool,
                 settings: dict[str, Any]) -> None:
        self._session = session
        self.prompt = prompt
        self.text = text  # the prompt as the model reads it: plain text, or the rendered conversation
        self.specs = list(specs)  # as asked (a sweep's rows hold them at each coefficient)
        self.rows = list(rows)
        self.chat, self.system, self.steer_template = chat, system, steer_template
        self.settings = settings
        self.outputs: list[dict[str, Any]] = [{"text": "", "token_ids": [], "logprobs": []} for _ in self.rows]
        self._kl: list[list[float] | None] | None = None

    @property
    def shown(self) -> str:
        """The prompt as the model reads it, as text (a chat: the template's rendering)."""
        return self.text if isinstance(self.text, str) else self.text.text

    def _chat(self) -> dict[str, Any]:
        return {"chat": self.chat, "system": self.system, "steer_template": self.steer_template}

    def pieces(self, stop_event: threading.Event | None = None) -> Iterator[Piece]:
        """Every row's tokens as they are chosen (Session.generate); `outputs` fill as they come, and each row's
        text is decoded whole at the end (pieces held back for an incomplete character included)."""
        session = self._session
        rows = [list(r.specs) for r in self.rows]
        for piece in session.generate(self.prompt, rows, stop_event=stop_event, **self._chat(), **self.settings):
            out = self.outputs[piece.row]
            out["token_ids"].append(piece.token_id)
            out["logprobs"].append(piece.logprob)
            yield piece
        for out in self.outputs:
            out["text"] = session.decode(out["token_ids"])

    def kl(self) -> list[list[float] | None]:
        """What steering changed, per generated token of each steered row (None for rows without specs): the
        KL divergence between the steered and the unsteered next-token distributions (Session.steering_kl)."""
        if self._kl is None:
            rows = [list(r.specs) for r in self.rows]
            ids = [out["token_ids"] for out in self.outputs]
            self._kl = self._session.steering_kl(self.prompt, rows, ids, **self._chat())
        return self._kl

    def to_dict(self) -> dict[str, Any]:
        """`saetui steer --json`: the prompt, the specs, the chat (if any), and the baseline, steered or variant
        rows, each with its text, token ids, log-probabilities and (steered rows) KL per token."""
        for out, kl in zip(self.outputs, self.kl()):
            if kl is not None:
                out["kl"] = kl
        specs = self.specs
        data: dict[str, Any] = {"prompt": self.prompt, "specs": [s.to_dict() for s in specs]}
        if is_chat(self.chat):  # the conversation, what the template made of it, and the scopes the specs had there
            data["chat"] = {"messages": self.text.messages, "rendered": self.text.text, "steer_template": self.steer_template}
            data["specs"] = [s.to_dict() for s in chat_rows([specs], self.steer_template)[0]]
        for row, out in zip(self.rows, self.outputs):
            if row.kind in ("baseline", "steered"):
                data[row.kind] = out
        variants = [dict(coefficient=r.coefficient, **o) for r, o in zip(self.rows, self.outputs) if r.kind == "variant"]
        if variants:
            data["variants"] = variants
        return data

