"""Draft: the steering specs being edited, as one immutable value.

Every edit returns a new Draft, so the app can hold it as a reactive (a new value repaints the panel)
and tests compare values. Touches nothing in the model; `saetui.steering.spec.resolve` checks specs
against the loaded SAEs when they are used.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the spec model is imported where a spec is edited: the app's first frame holds an empty Draft
    from saetui.steering.spec import Spec

SCOPES = ("all", "prompt", "generated")


def coefficient_step(spec: Spec, max_activation: float | None) -> float:
    """What one +/- press changes: a quarter of the feature's max activation where an index knows it
    (raw +/-1 is far too small for Gemma Scope, whose activations run to the hundreds), 0.25 for a
    coefficient already in max units or a steering vector (coefficient 1 = the whole saved direction), else 1."""
    if spec.relative:
        return 0.25
    if max_activation is None or not math.isfinite(max_activation) or max_activation <= 0:
        return 1.0
    quarter = max_activation / 4
    digits = 1 - int(math.floor(math.log10(quarter)))  # two significant digits: 0.83, 1.4, 37
    return round(quarter, max(digits, 0))


@dataclass(frozen=True)
class Draft:
    specs: tuple[Spec, ...] = ()  # SteeringSpec, or VectorSpec for a saved steering vector

    def __len__(self) -> int:
        return len(self.specs)

    def index_of(self, sae: str | None, feature: int) -> int | None:
        return next((i for i, s in enumerate(self.specs)
                     if s.kind == "feature" and s.feature == feature and s.sae == sae), None)

    def index_of_vector(self, name: str, hook: str | None = None) -> int | None:
        """The vector `name` at `hook` (the same direction at another hook point is another spec)."""
        return next((i for i, s in enumerate(self.specs)
                     if s.kind == "vector" and s.vector == name and s.hook == hook), None)

    def add(self, spec: Spec) -> Draft:
        """The spec (a SteeringSpec, or a steering vector's VectorSpec) appended; a feature or vector already
        in the draft is not added twice (the draft is returned as is)."""
        there = (self.index_of_vector(spec.vector, spec.hook) if spec.kind == "vector"
                 else self.index_of(spec.sae, spec.feature))
        if there is not None:
            return self
        return Draft(self.specs + (spec,))

    def _with(self, i: int, spec: Spec) -> Draft:
        return Draft(self.specs[:i] + (spec,) + self.specs[i + 1:])

    def toggle(self, i: int) -> Draft:
        return self._with(i, replace(self.specs[i], enabled=not self.specs[i].enabled))

    def set_coefficient(self, i: int, value: float) -> Draft:
        from saetui.steering.spec import MAX_COEFFICIENT

        value = max(-MAX_COEFFICIENT, min(MAX_COEFFICIENT, float(value))) + 0.0  # -0.0 (a nudge down to 0) is 0
        return self._with(i, self.specs[i].with_coefficient(value))

    def nudge(self, i: int, steps: int, step: float) -> Draft:
        # rounded: a few nudges leave no float drift (0.30000000000000004) in the table and saved presets
        return self.set_coefficient(i, round(self.specs[i].coefficient + steps * step, 4))

    def cycle_mode(self, i: int) -> Draft:
        """add -> clamp -> ablate -> add; a steering vector only adds, so it stays as it is."""
        from saetui.steering.spec import MODES

        spec = self.specs[i]
        if spec.kind == "vector":
            return self
        return self._with(i, replace(spec, mode=MODES[(MODES.index(spec.mode) + 1) % len(MODES)]))

    def cycle_scope(self, i: int) -> Draft:
        """all -> prompt -> generated -> all; a START:END scope (from a preset or the CLI) goes to all."""
        spec = self.specs[i]
        nxt = SCOPES[(SCOPES.index(spec.scope) + 1) % len(SCOPES)] if spec.scope in SCOPES else "all"
        return self._with(i, replace(spec, scope=nxt))

    def remove(self, i: int) -> Draft:
        return Draft(self.specs[:i] + self.specs[i + 1:])

    def enabled(self) -> list[Spec]:
        return [s for s in self.specs if s.enabled]
