"""Named steering vectors: directions in the model's activation space (a contrast's difference of means),
saved under the config folder and steered by beside SAE features.

A vector is a folder `vectors/NAME/` holding `vector.json` (model, width, hooks, norms, where it came
from) and `vector.safetensors` (one (d_model,) float32 tensor per hook point), written as one folder
renamed into place (saetui.files.atomic_folder): a crash never leaves half a vector. A vector folder
that cannot be used is set aside as `NAME.bak-...` with a notice.

Steering by a vector is plain addition at its hook point: x + c * v, for the positions of its scope,
in the same single hook as the SAE features on that module (saetui.steering.hooks). The CLI's form is
`--vector NAME[@HOOK]:COEF`; HOOK (a hook name or layer number) picks one of the vector's hook points
and may be left out when it has one.
"""

from __future__ import annotations

import json
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from saetui.errors import InputError, SaetuiError
from saetui.inputs import check_name
from saetui.steering.spec import VectorSpec  # noqa: F401 - the spec model lives in saetui.steering.spec

if TYPE_CHECKING:
    import torch

    from saetui.models.model import ModelWithHooks
    from saetui.sae.manager import SAEManager
    from saetui.steering.spec import ResolvedSpec, Spec

MANIFEST, WEIGHTS = "vector.json", "vector.safetensors"
_NAME_RE = re.compile(r"[\w.-]{1,64}")
_FORMAT = 1


def check_vector_name(name: str) -> str:
    return check_name(name, "vector")


def vectors_dir(create: bool = False) -> Path:
    from saetui.paths import config_dir

    return config_dir(create=create) / "vectors"


@dataclass
class SteeringVector:
    """A saved vector: one direction per hook point, for a model of width d_model."""

    name: str
    model: str
    d_model: int
    directions: dict[str, torch.Tensor]
    meta: dict[str, Any] = field(default_factory=dict)

    def pick(self, hook: str | None) -> str:
        """The hook point `hook` names (a hook name or layer number), or the only one."""
        hooks = list(self.directions)
        if hook is None:
            if len(hooks) == 1:
                return hooks[0]
            raise InputError(f"vector {self.name} has several hook points; name one as {self.name}@HOOK:COEF: {', '.join(hooks)}")
        for h in hooks:
            if hook == h or (hook.isdigit() and hook.isascii() and re.fullmatch(rf"blocks\.{int(hook)}\..*", h)):
                return h
        raise InputError(f"vector {self.name} has no hook point {hook!r}; it has {', '.join(hooks)}")


def _norm(direction: torch.Tensor) -> float:
    """A direction's L2 norm, summed in float64: finite float32 values near 1e38 overflow a float32 sum (the JSON
    said `Infinity`, which is not JSON)."""
    return float(direction.double().norm())


def save_vector(name: str, directions: dict[str, torch.Tensor], *, model: str, meta: dict[str, Any] | None = None) -> Path:
    """Write `directions` (hook -> (d_model,)) as the vector `name` (replacing one of that name); returns its folder."""
    import torch
    from safetensors.torch import save_file

    from saetui.files import atomic_folder, ensure_dir, notice

    check_vector_name(name)
    if not directions:
        raise InputError("nothing to save: no directions")
    tensors = {h: v.detach().float().cpu().contiguous() for h, v in directions.items()}
    widths = {v.shape for v in tensors.values()}
    if len(widths) != 1 or len(next(iter(widths))) != 1:
        raise InputError(f"vector {name}: every direction must be one (d_model,) tensor, got shapes {sorted(widths)}")
    if not all(bool(torch.isfinite(v).all()) for v in tensors.values()):
        raise InputError(f"vector {name} has non-finite values")
    d = int(next(iter(tensors.values())).shape[0])
    manifest = {"format": _FORMAT, "name": name, "model": model, "d_model": d, "hooks": list(tensors),
                "norms": {h: _norm(v) for h, v in tensors.items()}, "meta": meta or {}}
    folder = ensure_dir(vectors_dir(), "vectors folder") / name
    replaced = folder.exists()
    with atomic_folder(folder) as tmp:
        save_file(tensors, str(tmp / WEIGHTS), metadata={"name": name})
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1, ensure_ascii=False), encoding="utf-8")
    if replaced:  # said: a max-pooled vector replaced by a mean-pooled one of the same name went unnoticed
        notice(f"steering vector {name} replaced the one saved before under that name")
    return folder


_SET_ASIDE_RE = re.compile(r".*\.bak-\d{8}-\d{6}(-\d+)?")  # a damaged vector moved aside (saetui.files.set_aside)


def list_vectors() -> list[str]:
    """The saved vectors' names; a damaged one moved aside (NAME.bak-...) is not one of them."""
    folder = vectors_dir()
    try:
        return sorted(p.name for p in folder.iterdir()
                      if (p / MANIFEST).is_file() and _NAME_RE.fullmatch(p.name) and not _SET_ASIDE_RE.fullmatch(p.name))
    except OSError:
        return []


def describe_saved() -> list[dict[str, Any]]:
    """Every saved vector: name, model, width, each hook point's norm, where it came from (`saetui vectors`).
    A damaged one is set aside with a warning and left out."""
    rows = []
    for name in list_vectors():
        try:
            v = load_vector(name)
        except SaetuiError as exc:
            warnings.warn(str(exc))
            continue
        rows.append({"name": name, "model": v.model, "d_model": v.d_model,
                     "hooks": {h: _norm(d) for h, d in v.directions.items()}, "meta": v.meta})
    return rows


def hook_for(name: str, shown_hook: str) -> str:
    """The hook point to steer vector `name` at when none is named: `shown_hook` (the SAE on screen), where the
    vector has several hook points and that is one of them; else "" (its only one, or the spec must name one)."""
    points = load_vector(name).directions
    return shown_hook if len(points) > 1 and shown_hook in points else ""


def load_vector(name: str) -> SteeringVector:
    """The saved vector `name`; a missing one is an InputError naming the saved ones, a damaged one is set aside."""
    import torch

    from saetui.files import json_ready, set_aside

    check_vector_name(name)
    folder = vectors_dir() / name
    if not (folder / MANIFEST).is_file():
        raise InputError(f"no steering vector named {name!r}; saved: {', '.join(list_vectors()) or 'none'} "
                         "(save one with `saetui contrast ... --save-vector NAME`, or in the app a contrast "
                         "then the palette's `save vector NAME`)")
    try:
        from safetensors.torch import load_file

        manifest = json.loads((folder / MANIFEST).read_bytes().decode("utf-8"))
        tensors = load_file(str(folder / WEIGHTS))
        hooks, d = manifest["hooks"], int(manifest["d_model"])
        if not isinstance(hooks, list) or sorted(hooks) != sorted(tensors) or not hooks:
            raise ValueError("its hook points and tensors differ")
        tensors = {h: v.float() for h, v in tensors.items()}  # checked as used: float64's 1e300 is inf in float32
        for v in tensors.values():
            if v.shape != (d,) or not bool(torch.isfinite(v).all()):
                raise ValueError(f"a tensor is not ({d},) finite float32 values")
        model = str(manifest.get("model", ""))
        meta = json_ready(manifest.get("meta")) if isinstance(manifest.get("meta"), dict) else {}  # JSON's NaN: None
    except Exception as exc:  # noqa: BLE001 - json, safetensors and our checks raise many kinds on damaged files
        # one line: what is wrong, where the folder went, what to do (no notice before it: that would be two)
        backup = set_aside(folder, f"could not be read ({type(exc).__name__})", quiet=True)
        what = " ".join(str(exc).split())[:120]
        kept = f"moved aside to {backup}" if backup != folder else f"left at {folder}"
        raise InputError(f"steering vector {name!r} is damaged ({type(exc).__name__}{': ' + what if what else ''}); "
                         f"{kept}: delete it, or save the vector again with `saetui contrast ... --save-vector {name}`") from None
    return SteeringVector(name, model, d, {h: tensors[h] for h in hooks}, meta)


@dataclass(frozen=True)
class ResolvedVector:
    """A vector spec checked against the model: what the steering hook adds (value * vector at hook_name)."""

    kind: ClassVar[str] = "vector"
    mode: ClassVar[str] = "add"
    owner: ClassVar[None] = None  # no SAE: a direction is added, never encoded

    spec: VectorSpec
    hook_name: str
    vector: torch.Tensor  # (d_model,) float32, on the hooked layer's device
    value: float

    def direction(self) -> torch.Tensor:
        """What one unit of `value` adds: the saved direction."""
        return self.vector


def resolve_vector(spec: VectorSpec, model: ModelWithHooks, cache: dict[str, SteeringVector] | None = None) -> ResolvedVector:
    """Check a vector spec against the loaded model: the vector exists, its hook point is on the model, widths match."""
    vec = cache.get(spec.vector) if cache is not None else None
    if vec is None:
        vec = load_vector(spec.vector)
        if cache is not None:
            cache[spec.vector] = vec
    hook = vec.pick(spec.hook)
    if vec.d_model != model.d_model:
        raise InputError(f"vector {vec.name} is {vec.d_model} wide but {model.name} is {model.d_model} wide")
    try:
        point = model.hook_point(hook)
        model.hook_module(point)
    except SaetuiError as exc:
        raise InputError(f"vector {vec.name}: {exc}") from None
    if vec.model and vec.model != model.name:
        warnings.warn(f"vector {vec.name} was made on {vec.model}, the loaded model is {model.name}", stacklevel=2)
    direction = vec.directions[hook].to(model.layer_device(point.layer))
    return ResolvedVector(spec, hook, direction, float(spec.coefficient))


def resolve_any(spec: Spec, saes: SAEManager, model: ModelWithHooks,
                cache: dict[str, SteeringVector] | None = None) -> ResolvedSpec | ResolvedVector:
    """A feature spec against the SAEs, a vector spec against the model."""
    from saetui.steering.spec import resolve

    if spec.kind == "vector":
        return resolve_vector(spec, model, cache)
    return resolve(spec, saes)
