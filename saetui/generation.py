"""A generation as the CLI and the app ask for it: which rows run side by side in one batch (the baseline, the
steered row, one row per sweep coefficient), what a chat does to their scopes, and a run that streams them and
keeps what each row produced. `plan_rows` is the one place rows are made; `Session.steer` makes a `SteerRun`.

A sweep's coefficients (saetui.inputs.SweepValue) are raw (the spec's own coefficient) or, typed `2x`, times the
feature's max activation; `row_title` names each row the same way in the app and the CLI ("×2 max = 6.3",
"14 = ×4.4 max"), with the row's KL from the baseline (`mean_kl`) once it is known.

Textual-free and torch-free at import: the model work happens in the Session the run belongs to.
"""

from __future__ import annotations

import numbers
import threading
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

from saetui.errors import InputError
from saetui.inputs import SweepValue, parse_sweep
from saetui.models.chat import Chat, is_chat
from saetui.settings import GenerationSettings
from saetui.steering.decode import Room, room_to_generate  # noqa: F401 - the plan's API: how many tokens fit

if TYPE_CHECKING:
    from saetui.models.chat import ChatTokens
    from saetui.models.model import ModelWithHooks
    from saetui.session import Session
    from saetui.steering.generate import Piece


@dataclass(frozen=True)
class Row:
    """One row of a batched generation: `kind` baseline (no specs), steered, or a sweep's variant at `coefficient`
    in `unit` ("raw", or "max": times the feature's max activation), its last `swept` specs set to it (the held
    specs before them)."""

    kind: str
    specs: tuple[Any, ...] = ()
    coefficient: float | None = None
    unit: str = "raw"
    swept: int = 0

    @property
    def label(self) -> str:
        if self.kind != "variant":
            return self.kind
        return f"coefficient {self.coefficient:g}" + (" × max activation" if self.unit == "max" else "")


def swept(spec: Any, value: SweepValue | float) -> Any:
    """`spec` at one coefficient of a sweep: a feature spec takes the value and its unit (a plain float is raw), an
    ablated one is refused; a steering vector's coefficient is already in multiples of its direction, so `2x` is
    refused for it in one line."""
    value = value if isinstance(value, SweepValue) else SweepValue(float(value))
    if spec.kind == "vector":
        if value.unit == "max":
            raise InputError(f"{spec.target} has no max activation: its coefficients are multiples of the saved "
                             f"direction already (type {value.value:g}, not {value})")
        return spec.with_coefficient(value.value)
    if spec.mode == "ablate":  # every row the same text, titled with another coefficient
        raise InputError(f"{spec.target} is ablated: it has no coefficient to sweep (add or clamp it)")
    return replace(spec, coefficient=float(value.value), unit=value.unit)


def sweep_values(sweep: str | Sequence[SweepValue | float | str]) -> list[SweepValue]:
    """A sweep's coefficients as SweepValues: text as the CLI and the app take it (`0,1x,2x`: parse_sweep), or a
    sequence of SweepValues, numbers and such text; anything else is one InputError line."""
    if isinstance(sweep, str):
        return parse_sweep(sweep, "sweep")
    values: list[SweepValue] = []
    for c in sweep:
        if isinstance(c, SweepValue):
            values.append(c)
        elif isinstance(c, str):
            values += parse_sweep(c, "sweep")
        elif isinstance(c, numbers.Real) and not isinstance(c, bool):
            values.append(SweepValue(float(c)))  # the swept spec checks it (finite, within the limit)
        else:
            raise InputError(f"a sweep coefficient is a number, or text like 2x, got {c!r}")
    return values


def plan_rows(specs: Sequence[Any], *, compare: bool = False, sweep: Sequence[SweepValue | float] | None = None,
              held: Sequence[Any] = ()) -> list[Row]:
    """The rows to generate: the baseline first when `compare`; then the steered row (`held` + `specs`), or with
    `sweep` one row per coefficient, every spec of `specs` set to it (`swept`) and the `held` specs as they are.
    An ablated spec of `specs` has no coefficient: beside others it is held as it is (`--feature 77:20:clamp
    --feature 12:ablate --sweep 0,5` sweeps the clamp); alone it is refused (`swept`)."""
    rows = [Row("baseline")] if compare else []
    if sweep is None:
        rows.append(Row("steered", (*held, *specs)))
        return rows
    fixed = [s for s in specs if s.kind == "feature" and s.mode == "ablate"]
    moving = [s for s in specs if not (s.kind == "feature" and s.mode == "ablate")] or fixed
    held = (*held, *(s for s in fixed if s not in moving))
    for c in sweep_values(sweep):
        rows.append(Row("variant", (*held, *(swept(s, c) for s in moving)), c.value, c.unit, len(moving)))
    return rows


def _num(x: float, digits: int) -> str:
    """`x` to `digits` significant digits, never in exponent form (Gemma Scope's activations run to the hundreds)."""
    return f"{x:.0f}" if abs(x) >= 10 ** digits else f"{x:.{digits}g}"


def coefficient_text(spec: Any, max_activation: float | None) -> str:
    """A spec's strength in both units where both are known: `×2 max = 6.3` (typed in max units), `14 = ×4.4 max`
    (raw, the feature's max known), `coef 14` (raw, no feature index), `×2` (a vector: times its saved direction);
    clamp and ablate are named (`clamp ×2 max = 6.3`: the activation held)."""
    if spec.kind == "vector":
        return f"×{spec.coefficient:g}"
    if spec.mode == "ablate":
        return "ablate"
    mode = "" if spec.mode == "add" else f"{spec.mode} "
    known = max_activation is not None and max_activation > 0
    if spec.unit == "max":
        held = f" = {_num(spec.coefficient * max_activation, 3)}" if known else ""  # in raw units
        return mode + f"×{spec.coefficient:g} max" + held
    if known:
        return mode + f"{spec.coefficient:g} = ×{_num(spec.coefficient / max_activation, 2)} max"
    return mode + f"coef {spec.coefficient:g}"


def mean_kl(kl: Sequence[float] | None) -> float | None:
    """A row's KL from the baseline in one number (nats): the mean over its generated positions of
    KL(steered || unsteered) of the next-token distributions, teacher-forced on the row's own tokens (see
    SteeringEngine.kl). None for a row without specs or without tokens."""
    return sum(kl) / len(kl) if kl else None


def row_title(row: Row, max_of: Callable[[Any], float | None], kl: Sequence[float] | None = None) -> str:
    """A row's title, the same in the app and the CLI: `baseline`, `steered (2 specs)`, or for a sweep's variant
    the swept spec and its coefficient in both units (`demo/5 ×2 max = 6.3`; several swept specs: `coefficient
    2 × max activation`); then ` · KL 0.42` (`mean_kl`) when `kl` is given. `max_of(spec)`: its feature's max
    activation, or None."""
    if row.kind == "baseline":
        title = "baseline"
    elif row.kind == "steered":
        n = len(row.specs)
        title = f"steered ({n} spec{'' if n == 1 else 's'})"
    elif row.swept == 1:
        spec = row.specs[-1]
        title = f"{spec.target} {coefficient_text(spec, max_of(spec) if spec.kind == 'feature' else None)}"
    else:
        title = row.label
    value = mean_kl(kl)
    return title if value is None else f"{title} · KL {_num(value, 2)}"


def chat_rows(rows: Sequence[Sequence[Any]], steer_template: bool = False) -> list[list[Any]]:
    """Rows of specs for a chat: a spec's scope `all` (the default) becomes the reply (`generated`); with
    steer_template every spec also steers the chat template's prompt tokens (`+template`). Explicit scopes
    stay as given (`0:` steers every position, the user's text included)."""
    from saetui.steering.spec import chat_scope

    return [[replace(s, scope=chat_scope(s.scope, steer_template)) for s in row] for row in rows]


class SteerRun:
    """One generation asked of a Session: its rows, the text the model reads (`shown`), how many tokens it may
    add (`room`: fewer than asked where the context is full), and per row what it produced (`outputs`: text,
    token ids, log-probabilities), filled while `pieces()` streams."""

    def __init__(self, session: Session, prompt: str | None, text: str | ChatTokens, specs: Sequence[Any],
                 rows: Sequence[Row], *, chat: Chat, system: str | None, steer_template: bool,
                 settings: dict[str, Any], room: Room | None = None, held: Sequence[Any] = ()) -> None:
        self._session = session
        self.prompt = prompt
        self.text = text  # the prompt as the model reads it: plain text, or the rendered conversation
        self.specs = list(specs)  # as asked (a sweep's rows hold them at each coefficient)
        self.held = list(held)  # a sweep's specs held as they are in every row (the app's other specs)
        self.rows = list(rows)
        self.chat, self.system, self.steer_template = chat, system, steer_template
        self.settings = settings
        self.room = room
        self.outputs: list[dict[str, Any]] = [{"text": "", "token_ids": [], "logprobs": []} for _ in self.rows]
        self._kl: list[list[float] | None] | None = None
        # what runs it again, as loaded now (an export made later must not name what was loaded since)
        self.model = session.model.name if session.model is not None else None
        self.saes = {}  # each SAE a feature spec uses: its name -> the spec it was loaded from
        for spec in (s for row in self.rows for s in row.specs if s.kind == "feature" and s.enabled):
            loaded = session.saes.get(spec.sae)  # checked already (a disabled one is not, nor applied)
            self.saes[loaded.name] = loaded.spec

    @property
    def shown(self) -> str:
        """The prompt as the model reads it, as text (a chat: the template's rendering)."""
        return self.text if isinstance(self.text, str) else self.text.text

    def _chat(self) -> dict[str, Any]:
        return {"chat": self.chat, "system": self.system, "steer_template": self.steer_template}

    def pieces(self, stop_event: threading.Event | None = None) -> Iterator[Piece]:
        """Every row's tokens as they are chosen (Session.generate); `outputs` fill as they come, and each row's
        text is decoded whole at the end, or where the caller stops (pieces held back for an incomplete character
        included)."""
        session = self._session
        rows = [list(r.specs) for r in self.rows]
        try:
            for piece in session.generate(self.prompt, rows, stop_event=stop_event, **self._chat(), **self.settings):
                out = self.outputs[piece.row]
                out["token_ids"].append(piece.token_id)
                out["logprobs"].append(piece.logprob)
                yield piece
        finally:  # also when the loop over the pieces breaks or raises: the text of the tokens kept
            for out in self.outputs:
                out["text"] = session.decode(out["token_ids"])

    def _scopes(self) -> dict[tuple[str, str], bool]:
        """{(scope as given, as applied): whether it covers a position this generation reads} for every enabled
        spec's scope: the prompt's tokens, then the new ones but the last (never read). In a chat `all` is
        applied as the reply (chat_scope)."""
        from saetui.steering.scopes import covers

        if self.room is None:
            return {}
        rows = [list(r.specs) for r in self.rows]
        chat = is_chat(self.chat)
        applied = chat_rows(rows, self.steer_template) if chat else rows
        pairs = dict.fromkeys((s.scope, a.scope) for row, arow in zip(rows, applied) for s, a in zip(row, arow)
                              if s.enabled)
        n = self.room.used
        length = n + max(self.room.tokens - 1, 0)
        template = self.text.template if chat else None  # type: ignore[union-attr]
        return {pair: any(covers(pair[1], length, n, template)) for pair in pairs}

    def idle_scopes(self) -> list[str]:
        """The scopes (as given) of enabled specs that cover none of the positions this generation reads
        (`--scope 1000:2000` on a short prompt, `template` outside a chat): their specs steer nothing."""
        return list(dict.fromkeys(given for (given, _), covered in self._scopes().items() if not covered))

    def notes(self, option: str = "max new tokens") -> list[str]:
        """What the user should hear before the tokens come, one line each: fewer new tokens than asked (the
        context is full; `option` names the setting), scopes that steer nothing (idle_scopes), and a union's
        `template` part outside a chat."""
        out = [self.room.note(option)] if self.room is not None and self.room.capped else []
        chat = is_chat(self.chat)
        for (given, applied), covered in self._scopes().items():
            assert self.room is not None
            template = "template" in applied.split("+") and not chat
            why = " (template: the tokens a chat template wrote; there are none outside a chat)" if template else ""
            shown = given if applied == given else f"{given} (in a chat: {applied})"
            if not covered:
                last = self.room.used + self.room.tokens - 2
                out.append(f"scope {shown} covers none of positions 0..{last} that this generation reads "
                           f"({self.room.used} prompt tokens, then {self.room.tokens} new){why}: specs with it steer "
                           "nothing")
            elif template:
                out.append(f"scope {shown}: its template part steers nothing outside a chat{why}")
        return [note for note in out if note]

    def kl(self) -> list[list[float] | None]:
        """What steering changed, per generated token of each steered row (None for rows without specs): the
        KL divergence between the steered and the unsteered next-token distributions (Session.steering_kl)."""
        if self._kl is None:
            rows = [list(r.specs) for r in self.rows]
            ids = [out["token_ids"] for out in self.outputs]
            self._kl = self._session.steering_kl(self.prompt, rows, ids, **self._chat())
        return self._kl

    def title(self, i: int, kl: bool = False) -> str:
        """Row i's title (`row_title`: a sweep's coefficient in both units), with its mean KL if `kl`."""
        session = self._session
        return row_title(self.rows[i], lambda s: session.max_activation(s.sae, s.feature),
                         self.kl()[i] if kl else None)

    def to_dict(self) -> dict[str, Any]:
        """`saetui steer --json` (and the app's "Export generation as JSON"): the prompt, the specs (and `held`: those
        a sweep holds in every row, where any), what is needed to run it again (`model`, `saes`: each SAE the specs
        name, by the spec it was loaded from, and the decoding `settings`), the chat (if any), and the baseline, steered or variant rows, each with its text, token ids,
        log-probabilities and (steered rows) KL per token and `kl_mean` (`mean_kl`); a variant also its
        coefficient's `unit` (raw, or max: times the max activation); `capped` (Room.to_dict) when the context
        left fewer new tokens than asked."""
        for out, kl in zip(self.outputs, self.kl()):
            if kl is not None:
                out["kl"] = kl
                out["kl_mean"] = mean_kl(kl)
        specs = self.specs
        data: dict[str, Any] = {"prompt": self.prompt, "specs": [s.to_dict() for s in specs], "model": self.model,
                                "saes": dict(self.saes),
                                "settings": {**asdict(GenerationSettings()), **self.settings}}  # every one, given or not
        if self.room is not None and self.room.capped:
            data["capped"] = self.room.to_dict()
        if self.held:  # steering every row beside the swept specs: the run is not reproduced without them
            data["held"] = [s.to_dict() for s in self.held]
        if is_chat(self.chat):  # the conversation, what the template made of it, and the scopes the specs had there
            data["chat"] = {"messages": self.text.messages, "rendered": self.text.text, "steer_template": self.steer_template}
            data["specs"] = [s.to_dict() for s in chat_rows([specs], self.steer_template)[0]]
            if self.held:
                data["held"] = [s.to_dict() for s in chat_rows([self.held], self.steer_template)[0]]
        for row, out in zip(self.rows, self.outputs):
            if row.kind in ("baseline", "steered"):
                data[row.kind] = out
        variants = [dict(coefficient=r.coefficient, unit=r.unit, **o) for r, o in zip(self.rows, self.outputs)
                    if r.kind == "variant"]
        if variants:
            data["variants"] = variants
        return data

