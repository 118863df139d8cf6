"""The spec model: one thing to steer, as plain data. A spec is a feature of an SAE (`SteeringSpec`) or a saved
steering vector (`VectorSpec`); both carry a coefficient, a position scope and an on/off switch, and a
feature spec also a mode (add, clamp, ablate), its SAE and a unit (raw, or times the feature's max activation).

Specs are inert: building, toggling or editing them touches nothing in the model. Each kind is told by its
`kind` tag ("feature" or "vector"), and both share one parser (`parse_spec`: `[SAE/]FEATURE:COEF[:MODE]` or
`NAME[@HOOK]:COEF`), one JSON form (`to_dict`, read back strictly by `spec_from_dict`), one validation (in
`__post_init__`, whoever builds the spec) and one line of text (`one_line`). `resolve` checks a feature spec
against the loaded SAEs and turns it into the numbers the steering hook uses (saetui.steering.vectors
resolves a vector spec against the model).
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any, ClassVar, Sequence, Union

from saetui.errors import InputError, SaetuiError
from saetui.inputs import as_int, ascii_float, ascii_int, check_name

if TYPE_CHECKING:
    import torch

    from saetui.sae.manager import LoadedSAE, SAEManager

MODES = ("add", "clamp", "ablate")
UNITS = ("raw", "max")
_SCOPE_RE = re.compile(r"all|prompt|generated|template|([0-9]*):([0-9]*)")
_FEATURE_RE = re.compile(r"[0-9]+")
MAX_COEFFICIENT = 1e4  # far beyond any useful steering strength; larger values overflow the residual stream


def _is_number(value: Any) -> bool:
    try:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    except OverflowError:  # an int too large for a float
        return False


def _check(spec: Spec) -> None:
    """What every spec must be, whatever built it (a parser, saved JSON, the app): a finite coefficient within
    ±MAX_COEFFICIENT, a scope steering can read, an on/off switch."""
    if isinstance(spec.coefficient, numbers.Real) and not isinstance(spec.coefficient, (int, float)):
        object.__setattr__(spec, "coefficient", float(spec.coefficient))  # np.float32 and the like, as a float
    if isinstance(spec.coefficient, bool) or not isinstance(spec.coefficient, (int, float)) or not _is_number(spec.coefficient):
        raise InputError(f"coefficient for {spec.target} must be a finite number, got {spec.coefficient!r:.40}")
    if abs(spec.coefficient) > MAX_COEFFICIENT:
        raise InputError(f"coefficient {spec.coefficient:g} for {spec.target} is too large: steering beyond "
                         f"±{MAX_COEFFICIENT:g} swamps the model's activations (try 1 to 100)")
    check_scope(spec.scope)
    if not isinstance(spec.enabled, bool):
        raise InputError(f"enabled for {spec.target} must be true or false, got {spec.enabled!r}")


class _SpecBase:
    """What both kinds of spec answer; see the module docstring."""

    kind: ClassVar[str]
    coefficient: float
    scope: str
    enabled: bool

    def with_coefficient(self, value: float) -> Any:
        return replace(self, coefficient=float(value))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Any:
        """The spec `to_dict` wrote, of this kind (spec_from_dict reads either kind)."""
        spec = spec_from_dict(data)
        if not isinstance(spec, cls):
            raise InputError(f"not a {cls.kind} spec: {data!r}")
        return spec

    @classmethod
    def parse(cls, text: str, *, scope: str = "all") -> Any:
        """The spec as the CLI takes it (`--feature` / `--vector`), of this kind."""
        return parse_spec(text, cls.kind, scope=scope)


@dataclass(frozen=True)
class SteeringSpec(_SpecBase):
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

    kind: ClassVar[str] = "feature"

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
        number = as_int(self.feature)  # np.argmax's integers too, kept as an int
        if number is None or number < 0:
            raise InputError(f"feature must be a non-negative integer, got {self.feature!r}")
        object.__setattr__(self, "feature", number)
        if self.sae is not None and not isinstance(self.sae, str):
            raise InputError(f"the SAE of feature {self.feature} must be a name, got {self.sae!r}")
        _check(self)

    @property
    def target(self) -> str:
        """What is steered, as the app's table names it: `SAE/FEATURE`."""
        return f"{self.sae}/{self.feature}" if self.sae is not None else f"feature {self.feature}"

    @property
    def relative(self) -> bool:
        """The coefficient is in units of the feature's max activation, not raw activation units."""
        return self.unit == "max"

    def on_sae(self, sae: str) -> SteeringSpec:
        return replace(self, sae=sae)

    def one_line(self) -> str:
        """The spec as `--feature` takes it: `[SAE/]FEATURE:COEF[:MODE]` (`parse_spec` reads it back)."""
        sae = f"{self.sae}/" if self.sae is not None else ""
        mode = "" if self.mode == "add" else f":{self.mode}"
        return f"{sae}{self.feature}:{self.coefficient:g}{mode}"

    def label(self, labels: Any) -> str:
        """Its feature's label, where one is known."""
        return labels.get((self.sae, self.feature), "")


@dataclass(frozen=True)
class VectorSpec(_SpecBase):
    """Add `coefficient` times the saved steering vector `vector` (saetui.steering.vectors) at its hook point
    (one of them: `hook`, a hook name or layer number); coefficient 1 is the whole saved direction."""

    kind: ClassVar[str] = "vector"

    vector: str
    coefficient: float = 1.0
    hook: str | None = None
    scope: str = "all"
    enabled: bool = True

    def __post_init__(self) -> None:
        check_name(self.vector, "vector")
        if self.hook is not None and not isinstance(self.hook, str):
            raise InputError(f"the hook of vector {self.vector} must be a hook name or layer, got {self.hook!r}")
        _check(self)

    mode: ClassVar[str] = "add"  # a direction is only ever added
    relative: ClassVar[bool] = True  # coefficient 1 = the whole saved direction

    @property
    def target(self) -> str:
        """What is steered, as the app's table names it: `vector NAME[@HOOK]`."""
        return f"vector {self.vector}" + (f"@{self.hook}" if self.hook else "")

    def on_sae(self, sae: str) -> VectorSpec:
        return self  # a vector names its hook point, not an SAE

    def one_line(self) -> str:
        """The spec as `--vector` takes it: `NAME[@HOOK]:COEF` (`parse_spec` reads it back)."""
        return f"{self.vector}{'@' + self.hook if self.hook else ''}:{self.coefficient:g}"

    def label(self, labels: Any) -> str:
        return "A−B direction"


Spec = Union[SteeringSpec, VectorSpec]

# The JSON form: each kind's fields and the type each must have (saved files are read strictly: a feature
# 1.7 or enabled "no" is not a spec).
_STR = lambda v: isinstance(v, str)  # noqa: E731
_STR_OR_NONE = lambda v: v is None or isinstance(v, str)  # noqa: E731
_FIELDS = {
    "feature": {"feature": lambda v: isinstance(v, int) and not isinstance(v, bool), "coefficient": _is_number,
                "mode": _STR, "sae": _STR_OR_NONE, "scope": _STR, "unit": _STR, "enabled": lambda v: isinstance(v, bool)},
    "vector": {"vector": _STR, "coefficient": _is_number, "hook": _STR_OR_NONE, "scope": _STR,
               "enabled": lambda v: isinstance(v, bool)},
}


def vector_usage(name: str, hooks: Sequence[str]) -> str:
    """How `--vector` names the saved vector `name`: `NAME:COEF`, or with several hook points `NAME@HOOK:COEF`
    and the hooks to choose from (a vector of several hooks is refused without one)."""
    if len(hooks) <= 1:
        return f"{name}:COEF"
    return f"{name}@HOOK:COEF, HOOK one of {', '.join(hooks)} (or its layer number)"


def spec_from_dict(data: Any) -> Spec:
    """A spec from its JSON form (`to_dict`): a dict with `vector` is a vector spec, one with `feature` a feature
    spec; every field it has must be of its type; a one-line InputError otherwise."""
    kind = "vector" if isinstance(data, dict) and "vector" in data else "feature"
    if not isinstance(data, dict) or kind not in data:
        raise InputError(f"not a steering spec: {data!r}")
    fields = _FIELDS[kind]
    bad = [k for k, ok in fields.items() if k in data and not ok(data[k])]
    if bad:
        raise InputError(f"not a steering spec ({', '.join(bad)}): {data!r}")
    known = {k: data[k] for k in fields if k in data}
    return (VectorSpec if kind == "vector" else SteeringSpec)(**known)


def as_spec(value: Any) -> Spec:
    """A spec a script hands over: a SteeringSpec or VectorSpec as it is, text as the CLI's --feature reads it
    (`demo/416:6`, parse_spec); anything else is one InputError line (it was an AttributeError deep in steering)."""
    if isinstance(value, (SteeringSpec, VectorSpec)):
        return value
    if isinstance(value, str):
        return parse_spec(value, "feature")
    raise InputError(f"a steering spec is a SteeringSpec, a VectorSpec or text like 'demo/416:6', got {value!r:.60}")


def as_specs(values: Any, what: str = "specs") -> list[Spec]:
    """A list of specs a script hands over, each as `as_spec` reads it; one spec (an object or its text) alone is a
    list of one, not its letters."""
    if isinstance(values, (str, SteeringSpec, VectorSpec)):
        return [as_spec(values)]
    if not isinstance(values, Iterable):
        raise InputError(f"{what} is a list of steering specs, got {values!r:.60}")
    return [as_spec(v) for v in values]


def as_rows(rows: Any) -> list[list[Spec]]:
    """Rows of specs a script hands over (`generate`, `steering_kl`): a list of rows, each a list of specs as
    `as_spec` reads them (`[[], ["demo/416:6"]]`: baseline and one steered row); else one InputError line."""
    if isinstance(rows, (str, SteeringSpec, VectorSpec)) or not isinstance(rows, Iterable):
        raise InputError(f"rows is a list of rows, each a list of specs (e.g. [[], ['demo/416:6']]), got {rows!r:.60}")
    rows = list(rows)
    for row in rows:
        if isinstance(row, (str, SteeringSpec, VectorSpec)) or not isinstance(row, Iterable):
            raise InputError(f"each row is a list of specs (e.g. [[], ['demo/416:6']]), got the row {row!r:.60}")
    return [[as_spec(s) for s in row] for row in rows]


def parse_spec(text: str, kind: str, *, scope: str = "all") -> Spec:
    """The one parser of specs as typed: kind "feature" reads `[SAE/]FEATURE:COEF[:MODE]` (`123:4.5`,
    `12/123:40:clamp`, `layer_6/77:0:ablate`, `77:ablate`); kind "vector" reads `NAME[@HOOK]:COEF` (`formal:4`,
    `formal@blocks.2.hook_resid_post:-2`, `formal@2:8`)."""
    raw = text.strip()
    if kind == "vector":
        head, sep, coef = raw.rpartition(":")
        name, _, hook = head.partition("@")
        if not sep or not name:
            raise InputError(f"cannot read vector spec {text!r}: expected NAME[@HOOK]:COEF")
        return VectorSpec(name, _coefficient(coef, text), hook or None, scope)
    sae, _, rest = raw.rpartition("/")
    parts = rest.split(":")
    if len(parts) == 2 and parts[1] == "ablate":
        parts = [parts[0], "0", "ablate"]
    if len(parts) not in (2, 3) or not _FEATURE_RE.fullmatch(parts[0].strip()):
        raise InputError(f"cannot read feature spec {text!r}: expected [SAE/]FEATURE:COEF[:MODE], "
                         "FEATURE in ASCII digits")
    mode = parts[2] if len(parts) == 3 else "add"
    return SteeringSpec(ascii_int(parts[0]), _coefficient(parts[1], text), mode, sae or None, scope)


def _coefficient(word: str, text: str) -> float:
    try:
        return ascii_float(word)
    except ValueError:
        raise InputError(f"coefficient in {text!r} is not a number: {word!r}") from None


SCOPE_HELP = "all, prompt, generated, template or START:END, or several joined by + (generated+template)"


def check_scope(scope: Any) -> str:
    """A position scope: all | prompt | generated | template (a chat template's prompt tokens) | START:END
    (absolute, END exclusive), or a union of them joined by `+`; else a one-line InputError."""
    parts = scope.split("+") if isinstance(scope, str) else [None]
    for part in parts:
        match = _SCOPE_RE.fullmatch(part) if isinstance(part, str) else None
        if match is None:
            raise InputError(f"scope must be {SCOPE_HELP}, got {scope!r}")
        start, end = (ascii_int(g) if g else None for g in (match.group(1), match.group(2)))  # each checked (length)
        if start is not None and end is not None and start >= end:
            raise InputError(f"scope {part} is empty: START must be less than END (END is exclusive)")
    return scope


def chat_scope(scope: str, steer_template: bool = False) -> str:
    """A spec's scope in a chat: `all` (the default) means the reply, the generated tokens; with steer_template
    the chat template's prompt tokens (turn markers, role names, the reply's opener) are steered too."""
    base = "generated" if scope == "all" else scope
    return base + "+template" if steer_template and "template" not in base.split("+") else base


@dataclass(frozen=True)
class ResolvedSpec:
    """A spec checked against its SAE: the numbers the hook needs."""

    kind: ClassVar[str] = "feature"

    spec: SteeringSpec
    sae: LoadedSAE
    value: float  # the coefficient in raw activation units (0 for ablate)

    @property
    def mode(self) -> str:
        return "add" if self.spec.mode == "add" else "clamp"

    @property
    def owner(self) -> LoadedSAE:
        """The SAE whose features this steers (clamps are encoded with it)."""
        return self.sae

    @property
    def hook_name(self) -> str:
        return self.sae.hook_name

    def direction(self) -> torch.Tensor:
        """What one unit of `value` adds: the feature's decoder row."""
        return self.sae.sae.W_dec.detach()[self.spec.feature]


def resolve(spec: SteeringSpec, saes: SAEManager) -> ResolvedSpec:
    """Check `spec` against the loaded SAEs: known SAE, feature in range, clamp possible, units known."""
    try:
        loaded = saes.get(spec.sae)
    except SaetuiError as exc:
        raise InputError(f"feature {spec.feature}: {exc}") from exc
    loaded.check_feature(spec.feature)
    if loaded.sae.cfg.normalize_activations != "none":
        raise InputError(f"SAE {loaded.name} normalises activations at run time ({loaded.sae.cfg.normalize_activations}); steering it is not supported")
    if spec.mode != "add":
        check_clampable(loaded)
    value = 0.0 if spec.mode == "ablate" else float(spec.coefficient)
    if spec.unit == "max" and spec.mode != "ablate":
        if loaded.max_activations is None:
            raise InputError(f"feature {spec.feature}: coefficient in max-activation units needs a feature index for SAE {loaded.name}")
        value *= float(loaded.max_activations[spec.feature])
        if abs(value) > MAX_COEFFICIENT:  # the limit is on what is added, not on the multiple typed
            raise InputError(f"{spec.target} at {spec.coefficient:g}x its max activation is {value:g}: steering "
                             f"beyond ±{MAX_COEFFICIENT:g} swamps the model's activations (try 1x to 10x)")
    return ResolvedSpec(spec, loaded, value)


def check_clampable(loaded: LoadedSAE) -> None:
    """Clamp/ablate need a feature's own activation a_f(x); the SAE's kind (decided at load) says whether it has one."""
    if not loaded.kind.clamp:
        arch = loaded.sae.cfg.architecture()
        raise InputError(
            f"clamp/ablate needs a JumpReLU SAE (with its threshold), a ReLU SAE or a gated SAE; SAE {loaded.name} is {arch}, "
            f"{loaded.kind.clamp_refusal or 'whose feature activations cannot be computed one feature at a time'}: use add"
        )
