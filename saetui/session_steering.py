"""The steering half of Session (saetui.session): the specs, generation and saved steering vectors.

`SteeringMethods` is a part of `Session`, not a class of its own: it uses the session's lock, model, SAEs,
specs and `chat_prompt` (see `SessionState`). Kept apart so each file reads as one concern.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, Iterator, Sequence

from saetui.errors import InputError, SaetuiError
from saetui.generation import SteerRun, chat_rows, plan_rows, room_to_generate
from saetui.models.chat import Chat, is_chat
from saetui.session_state import SessionState
from saetui.settings import SteeringSettings
from saetui.steering.spec import as_rows, as_spec, as_specs, parse_spec

if TYPE_CHECKING:
    from saetui.inputs import SweepValue
    from saetui.steering.generate import Piece
    from saetui.steering.spec import SteeringSpec, VectorSpec


class SteeringMethods(SessionState):
    """Session methods: steering specs, generate / steer / steering_kl, and saved vectors."""

    # ------------------------------------------------------------------ steering specs (plain data)
    def add_spec(self, feature: int, coefficient: float = SteeringSettings.coefficient, mode: str = "add", sae: str | None = None) -> SteeringSpec:
        from saetui.steering.spec import SteeringSpec

        loaded = self._require_saes().get(sae)
        spec = SteeringSpec(loaded.check_feature(feature), coefficient, mode, loaded.name)  # a bad one is not kept
        self.specs.append(spec)
        return spec

    def check_spec(self, spec: Any) -> Any:
        """A spec checked against what is loaded (a feature against its SAE, a vector against the model): the
        resolved spec, or a one-line InputError."""
        from saetui.steering.vectors import resolve_any

        return resolve_any(as_spec(spec), self._require_saes(), self._require_model())

    def spec_fits(self, spec: Any) -> bool:
        """Whether a spec (say, one restored from the last session) still applies to the loaded model and SAEs."""
        try:
            self.check_spec(spec)
            return True
        except SaetuiError:
            return False

    def max_activation(self, sae: str | None, feature: int) -> float | None:
        """The feature's max activation from its SAE's feature index (special tokens excluded); None without one."""
        if self.saes is None:
            return None
        try:
            loaded = self.saes.get(sae)
        except SaetuiError:
            return None
        feature = loaded.check_feature(feature)  # a bad number is one line, not None or an IndexError
        acts = loaded.max_activations
        return None if acts is None else float(acts[feature])

    # ------------------------------------------------------------------ generation
    def generate(self, prompt: str | None, rows: list[list[Any]] | None = None, *,
                 stop_event: threading.Event | None = None, chat: Chat = False, system: str | None = None,
                 steer_template: bool = False, **settings: Any) -> Iterator[Piece]:
        """Each row of specs generated side by side in one batch, token by token (default: baseline as
        row 0 and the session's specs as row 1). `settings` are GenerationSettings fields; their
        defaults are the library's, the same the CLI and the app's fields start from.

        chat: True = the prompt as one user turn; a list of messages = continue that conversation (the
        prompt, if given, is its next user turn); the reply follows the template's generation prompt. In a
        chat a spec's scope `all` means the reply (see `chat_rows`); steer_template also steers the
        template's tokens in the prompt."""
        from saetui.steering.generate import GenerationSettings, SteeringEngine

        text = self.chat_prompt(prompt, chat, system, reply=True)
        # the engine refuses a prompt that fills the context and caps max_new_tokens at what it leaves (a warning)
        rows = [list(r.specs) for r in plan_rows(self.specs, compare=True)] if rows is None else as_rows(rows)
        if stop_event is not None and not callable(getattr(stop_event, "is_set", None)):
            raise InputError(f"stop_event is a threading.Event (or has is_set()), got {stop_event!r:.60}")
        if is_chat(chat):
            rows = chat_rows(rows, steer_template)
        with self.lock:
            engine = SteeringEngine(self._require_model(), self._require_saes(), compile=self.compile)
        # The lock is taken per forward step (inside stream), never across a yield: F5 during a
        # generation is answered between two tokens, and a suspended generator holds nothing.
        yield from engine.stream(text, rows, stop_event=stop_event, lock=self.lock, **settings)

    def steer(self, prompt: str | None, specs: Sequence[Any] | None = None, *, compare: bool = False,
              sweep: Sequence[SweepValue | float] | None = None, held: Sequence[Any] = (), chat: Chat = False,
              system: str | None = None, steer_template: bool = False, **settings: Any) -> SteerRun:
        """A generation as `saetui steer` and the app's Ctrl+G/Ctrl+W ask for it, checked before any token: the
        rows `plan_rows(specs, compare=, sweep=, held=)` (specs default: the session's; sweep: SweepValues or raw
        floats), every spec of every row checked against what is loaded (a `2x` coefficient needs its feature's
        max activation), the prompt rendered (a chat: the template's one-line errors), max_new_tokens capped at
        what the model's context leaves (`run.room`: its note says so; a prompt that fills the context is
        refused, never cut). Iterate `run.pieces()` to generate; see SteerRun."""
        from saetui.steering.generate import GenerationSettings

        GenerationSettings(**{k: v for k, v in settings.items() if k != "seeds"})  # bad numbers fail here, in one line
        specs = list(self.specs) if specs is None else as_specs(specs)
        held = as_specs(held, "held")
        rows = plan_rows(specs, compare=compare, sweep=sweep, held=held)
        checked: set[Any] = set()
        for spec in [s for row in rows for s in row.specs]:
            if spec.enabled and spec not in checked:  # a disabled spec is kept, never applied (nor checked)
                self.check_spec(spec)
                checked.add(spec)
        text = self.chat_prompt(prompt, chat, system, reply=True)
        wanted = settings.get("max_new_tokens", GenerationSettings().max_new_tokens)
        room = room_to_generate(self._require_model(), text, wanted)
        settings["max_new_tokens"] = room.tokens
        return SteerRun(self, prompt, text, specs, rows, chat=chat, system=system, steer_template=steer_template,
                        settings=settings, room=room, held=held)

    def steering_kl(self, prompt: str | None, rows: list[list[Any]], token_ids: list[list[int]], *,
                    chat: Chat = False, system: str | None = None, steer_template: bool = False) -> list[list[float] | None]:
        """What steering changed, after a generation: per generated token of each steered row, the KL
        divergence (nats) between the steered and the unsteered model's next-token distributions on
        that row's text (one teacher-forced batched forward; see SteeringEngine.kl). None for rows
        without specs. Each token's log-probability comes with the generation (`Piece.logprob`).
        chat/system/steer_template: as given to `generate`."""
        from saetui.steering.generate import SteeringEngine

        text = self.chat_prompt(prompt, chat, system, reply=True)
        with self.lock:
            engine = SteeringEngine(self._require_model(), self._require_saes())
            rows = as_rows(rows)
            return engine.kl(text, chat_rows(rows, steer_template) if is_chat(chat) else rows, token_ids)

    def vectors(self) -> list[str]:
        """The names of the saved steering vectors."""
        from saetui.steering.vectors import list_vectors

        return list_vectors()

    @staticmethod
    def saved_vectors() -> list[dict[str, Any]]:
        """Every saved steering vector, described (saetui.steering.vectors.describe_saved)."""
        from saetui.steering.vectors import describe_saved

        return describe_saved()

    @staticmethod
    def check_saved(specs: Sequence[Any]) -> None:
        """Vector specs (or their text, `NAME[@HOOK]:COEF`) whose vector is not saved, or has no hook point named by
        the spec, fail here in one line, before any model loads (feature specs need the loaded SAEs: `check_spec`)."""
        from saetui.steering.vectors import load_vector

        if isinstance(specs, str):
            specs = [specs]
        for spec in as_specs([parse_spec(s, "vector") if isinstance(s, str) else s for s in specs or ()]):
            if spec.kind == "vector":
                load_vector(spec.vector).pick(spec.hook)

    def vector_spec(self, name: str, coefficient: float = 1.0, hook: str | None = None, scope: str = "all") -> VectorSpec:
        """A steering spec for a saved vector, checked against the loaded model; pass it in a row to `generate`
        beside feature specs."""
        from saetui.steering.vectors import VectorSpec, resolve_vector

        spec = VectorSpec(name, coefficient, hook, scope)  # the coefficient checked as every spec's
        resolve_vector(spec, self._require_model())
        return spec

    def vector_hook(self, name: str, sae: str) -> str:
        """Where to steer the saved vector `name` when no hook is named: SAE `sae`'s hook, if the vector has it
        among several (saetui.steering.vectors.hook_for)."""
        from saetui.steering.vectors import hook_for

        return hook_for(name, self.sae(sae).hook_name)
