"""SteeringSpec: one feature to add, clamp or ablate at one SAE's hook point, as plain data.

Specs are inert: building, toggling or editing them touches nothing in the model. They serialize
to JSON (presets) and parse from the CLI's `[SAE/]FEATURE:COEF[:MODE]`. `resolve` checks a spec
against the loaded SAEs and turns it into numbers the steering hook can use.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any

from saetui.errors import InputError, SaetuiError

if TYPE_CHECKING:
    from saetui.sae.manager import LoadedSAE, SAEManager

MODES = ("add", "clamp", "ablate")
UNITS = ("raw", "max")
_SCOPE_RE = re.compile(r"all|prompt|generated|template|([0-9]*):([0-9]*)")
_FEATURE_RE = re.compile(r"[0-9]+")
MAX_COEFFICIENT = 1e4  # far beyond any useful steering strength; larger values overflow the residual stream


@dataclass(frozen=True)
class SteeringSpec:
    """Steer `feature` of an SAE.

    feature:     SAE feature index
    coefficient: add: how much of W_dec[f] to add; clamp: the value to hold the feature at;
                 ablate: ignored (clamp to 0)
    mode:        "add" | "clamp" | "ablate"
    sae:         which loaded SAE: its name, hook name or layer number; None when only one is loaded
    scope:       "all" | "prompt" | "generated" | "START:END" (absolute token positions, END exclusive)
    unit:        "raw", or "max": coefficient in units of the feature's max activation (needs a feature index)
    enabled:     disabled specs are kept in presets but never applied
    """

    feature: int
    coefficient: float = 0.0
    mode: str = "add"
    sae: str | None = None
    scope: str = "all"
    unit: str = "raw"
    enabled: bool = True

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise InputError(f"steering mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if self.unit not in UNITS:
            raise InputError(f"steering unit must be raw or max, got {self.unit!r}")
        if not isinstance(self.feature, int) or isinstance(self.feature, bool) or self.feature < 0:
            raise InputError(f"feature must be a non-negative integer, got {self.feature!r}")
        if not math.isfinite(float(self.coefficient)):
            raise InputError(f"coefficient for feature {self.feature} must be a finite number, got {self.coefficient}")
        check_scope(self.scope)

    def with_coefficient(self, value: float) -> SteeringSpec:
        return replace(self, coefficient=float(value))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SteeringSpec:
        if not isinstance(data, dict) or "feature" not in data:
            raise InputError(f"not a steering spec: {data!r}")
        known = {k: data[k] for k in ("feature", "coefficient", "mode", "sae", "scope", "unit", "enabled") if k in data}
        try:
            known["feature"] = int(known["feature"])
            known["coefficient"] = float(known.get("coefficient", 0.0))
        except (TypeError, ValueError) as exc:
            raise InputError(f"not a steering spec: {data!r}") from exc
        return cls(**known)

    @classmethod
    def parse(cls, text: str, *, scope: str = "all") -> SteeringSpec:
        """`[SAE/]FEATURE:COEF[:MODE]`, e.g. `123:4.5`, `12/123:40:clamp`, `layer_6/77:0:ablate`, `77:ablate`."""
        raw = text.strip()
        sae, _, rest = raw.rpartition("/")
        parts = rest.split(":")
        if len(parts) == 2 and parts[1] == "ablate":
            parts = [parts[0], "0", "ablate"]
        if len(parts) not in (2, 3) or not _FEATURE_RE.fullmatch(parts[0].strip()):
            raise InputError(f"cannot read feature spec {text!r}: expected [SAE/]FEATURE:COEF[:MODE], "
                             "FEATURE in ASCII digits")
        try:
            coefficient = float(parts[1])
        except ValueError as exc:
            raise InputError(f"coefficient in {text!r} is not a number: {parts[1]!r}") from exc
        if math.isfinite(coefficient) and abs(coefficient) > MAX_COEFFICIENT:
            raise InputError(f"coefficient {parts[1]} in {text!r} is too large: steering beyond "
                             f"±{MAX_COEFFICIENT:g} swamps the model's activations (try 1 to 100)")
        mode = parts[2] if len(parts) == 3 else "add"
        return cls(int(parts[0]), coefficient, mode, sae or None, scope)


SCOPE_HELP = "all, prompt, generated, template or START:END, or several joined by + (generated+template)"


def check_scope(scope: Any) -> str:
    """A position scope: all | prompt | generated | template (a chat template's prompt tokens) | START:END
    (absolute, END exclusive), or a union of them joined by `+`; else a one-line InputError."""
    parts = scope.split("+") if isinstance(scope, str) else [None]
    for part in parts:
        match = _SCOPE_RE.fullmatch(part) if isinstance(part, str) else None
        if match is None:
            raise InputError(f"scope must be {SCOPE_HELP}, got {scope!r}")
        if match.group(1) and match.group(2) and int(match.group(1)) >= int(match.group(2)):
            raise InputError(f"scope {part} is empty: START must be less than END (END is exclusive)")
    return scope


def chat_scope(scope: str, steer_template: bool = False) -> str:
    """A spec's scope in a chat: `all` (the default) means the reply, the generated tokens; with steer_template
    the chat template's prompt tokens (turn markers, role names, the reply's opener) are steered too."""
    base = "generated" if scope == "all" else scope
    return base + "+template" if steer_template and "template" not in base.split("+") else base


def parse_sweep(text: str, what: str = "--sweep") -> list[float]:
    """`0,4,8.5`: the coefficients of a sweep, finite and within ±MAX_COEFFICIENT."""
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError as exc:
        raise InputError(f"{what} takes numbers separated by commas, got {text!r}") from exc
    if not values or not all(math.isfinite(v) for v in values):
        raise InputError(f"{what} takes finite numbers separated by commas, got {text!r}")
    if any(abs(v) > MAX_COEFFICIENT for v in values):
        raise InputError(f"{what} coefficients must be within ±{MAX_COEFFICIENT:g}, got {text!r}")
    return values


@dataclass(frozen=True)
class ResolvedSpec:
    """A spec checked against its SAE: the numbers the hook needs."""

    spec: SteeringSpec
    sae: LoadedSAE
    value: float  # the coefficient in raw activation units (0 for ablate)

    @property
    def mode(self) -> str:
        return "add" if self.spec.mode == "add" else "clamp"


def resolve(spec: SteeringSpec, saes: SAEManager) -> ResolvedSpec:
    """Check `spec` against the loaded SAEs: known SAE, feature in range, clamp possible, units known."""
    try:
        loaded = saes.get(spec.sae)
    except SaetuiError as exc:
        raise InputError(f"feature {spec.feature}: {exc}") from exc
    if spec.feature >= loaded.d_sae:
        raise InputError(f"feature {spec.feature} out of range: SAE {loaded.name} has features 0..{loaded.d_sae - 1}")
    if loaded.sae.cfg.normalize_activations != "none":
        raise InputError(f"SAE {loaded.name} normalises activations at run time ({loaded.sae.cfg.normalize_activations}); steering it is not supported")
    if spec.mode != "add":
        check_clampable(loaded)
    value = 0.0 if spec.mode == "ablate" else float(spec.coefficient)
    if spec.unit == "max" and spec.mode != "ablate":
        if loaded.max_activations is None:
            raise InputError(f"feature {spec.feature}: coefficient in max-activation units needs a feature index for SAE {loaded.name}")
        value *= float(loaded.max_activations[spec.feature])
    return ResolvedSpec(spec, loaded, value)


def check_clampable(loaded: LoadedSAE) -> None:
    """Clamp/ablate need a feature's own activation a_f(x); the SAE's kind (decided at load) says whether it has one."""
    if not loaded.kind.clamp:
        arch = loaded.sae.cfg.architecture()
        raise InputError(
            f"clamp/ablate needs a JumpReLU SAE (with its threshold), a ReLU SAE or a gated SAE; SAE {loaded.name} is {arch}, "
            f"{loaded.kind.clamp_refusal or 'whose feature activations cannot be computed one feature at a time'}: use add"
        )
