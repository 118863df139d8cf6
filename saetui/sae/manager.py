"""SAEManager: load SAEs through sae-lens and check that each one fits the loaded model.

A spec is one of
    RELEASE/SAE_ID          from sae-lens's registry (`gemma-scope-2b-pt-res-canonical/layer_12/width_16k/canonical`)
    DIR                     a local sae-lens directory (cfg.json + sae_weights.safetensors)
    DIR_OR_FILE.npz[@HOOK]  a Gemma Scope `params.npz` (hook guessed from `layer_N` in the path if not given)

Every SAE is checked before it is accepted: its hook point exists on the model and its layer is in
range, d_in equals the model's width there, all weights are finite, activation-normalisation
settings are folded or refused (never ignored), and a registry model that differs from the loaded
one gives a warning. Each SAE is moved to the device of the layer it hooks, and its kind
(saetui.sae.kinds: what its architecture can encode, clamp and decode) is decided once, here.
"""

from __future__ import annotations

import json
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Sequence

from saetui.errors import InputError, SAELoadError, SaetuiError, first_line
from saetui.inputs import as_int, ascii_int
from saetui.sae.kinds import SAEKind, kind_of
from saetui.sae.pretrained import check_registry_spec, model_key

if TYPE_CHECKING:
    import torch
    from sae_lens import SAE

    from saetui.models.model import ModelWithHooks

NEURONPEDIA_URL = "https://www.neuronpedia.org/{source}/{feature}"


@dataclass
class LoadedSAE:
    """An SAE accepted for a model: the sae-lens object and where it hooks in."""

    name: str
    spec: str
    sae: SAE
    hook_name: str
    layer: int
    release: str | None = None
    sae_id: str | None = None
    neuronpedia_id: str | None = None
    # (d_sae,) max activation per feature, from a feature index when one is loaded (steering in "max" units)
    max_activations: torch.Tensor | None = None
    # what this SAE's architecture can do (encode single features, clamp, decode linearly): decided once, here
    kind: SAEKind | None = None

    def __post_init__(self) -> None:
        if self.kind is None:
            self.kind = kind_of(self.sae)

    @property
    def d_sae(self) -> int:
        return int(self.sae.cfg.d_sae)

    def check_feature(self, feature: int) -> int:
        """`feature` as an int if this SAE has it (a numpy or tensor integer too), else the one-line error every
        command gives for it."""
        number = as_int(feature)
        if number is None:
            raise InputError(f"feature must be a whole number, got {feature!r}: SAE {self.name} has features "
                             f"0..{self.d_sae - 1}")
        if not 0 <= number < self.d_sae:
            raise InputError(f"feature {number} out of range: SAE {self.name} has features 0..{self.d_sae - 1}")
        return number

    def neuronpedia_url(self, feature: int) -> str | None:
        """The feature's Neuronpedia page, for registry SAEs that have one."""
        if not self.neuronpedia_id:
            return None
        return NEURONPEDIA_URL.format(source=self.neuronpedia_id, feature=int(feature))


class SAEManager:
    """The SAEs loaded for one model, by name. Several SAEs at several hook points at once."""

    def __init__(self, model: ModelWithHooks) -> None:
        self.model = model
        self._saes: dict[str, LoadedSAE] = {}

    # ------------------------------------------------------------------ access
    def __iter__(self) -> Iterator[LoadedSAE]:
        return iter(list(self._saes.values()))

    def __len__(self) -> int:
        return len(self._saes)

    def get(self, key: str | int | None = None) -> LoadedSAE:
        """An SAE by name, hook name or layer number (refused where several loaded SAEs have that hook point or layer);
        with one SAE loaded, `None` means that one."""
        if key is None:
            if len(self._saes) == 1:
                return next(iter(self._saes.values()))
            names = ", ".join(self._saes) or "none loaded"
            raise SaetuiError(f"several SAEs are loaded, name one of: {names}")
        text = str(key)
        named = [s for s in self._saes.values() if s.name == text]  # a name first: names are unique
        if named:
            return named[0]
        layer = ascii_int(text) if text.isascii() and text.isdigit() else None  # int('²') raises
        found = [s for s in self._saes.values() if text in (s.hook_name, s.spec) or layer == s.layer]
        if len(found) > 1:  # two SAEs at one hook point: the first would steer or label the wrong one, unseen
            raise SaetuiError(f"{text!r} names several loaded SAEs ({', '.join(s.name for s in found)}): name one")
        if found:
            return found[0]
        names = ", ".join(f"{s.name} ({s.hook_name})" for s in self._saes.values()) or "none loaded"
        raise SaetuiError(f"no loaded SAE named {text!r}; loaded: {names}")

    def remove(self, name: str) -> None:
        self._saes.pop(self.get(name).name)

    # ------------------------------------------------------------------ loading
    def load(self, spec: str, *, name: str | None = None, dtype: str = "float32") -> LoadedSAE:
        """Load an SAE from a registry spec, a local sae-lens directory or a Gemma Scope params.npz."""
        spec = spec.strip()
        if not spec:
            raise SAELoadError("empty SAE spec: give RELEASE/SAE_ID or a local path")
        path_part, _, hook_override = spec.partition("@")
        local = Path(path_part).expanduser()
        release = sae_id = neuronpedia_id = None
        registry = registry_spec(spec)
        if registry is None:
            sae = _load_local(local, hook_override or None, dtype)
            default_name = local.stem if local.is_file() else local.name
        else:
            release, sae_id = registry
            lookup = check_registry_spec(release, sae_id)
            neuronpedia_id = lookup.neuronpedia_id.get(sae_id)
            sae = _load_registry(release, sae_id, dtype)
            registry_model = lookup.model
            if model_key(registry_model) != model_key(self.model.name):
                warnings.warn(f"SAE {spec} was trained on {registry_model}, the loaded model is {self.model.name}", stacklevel=2)
            default_name = sae_id
        return self.add(sae, name=name or default_name, spec=spec, release=release, sae_id=sae_id, neuronpedia_id=neuronpedia_id)

    def add(
        self,
        sae: SAE,
        *,
        name: str | None = None,
        spec: str = "<in memory>",
        release: str | None = None,
        sae_id: str | None = None,
        neuronpedia_id: str | None = None,
    ) -> LoadedSAE:
        """Check an already-built sae-lens SAE against the model and keep it under `name`."""
        hook_name = sae.cfg.metadata.hook_name
        if not hook_name:
            raise SAELoadError(f"SAE {spec}: its config has no hook_name (metadata.hook_name)")
        try:
            point = self.model.hook_point(hook_name)
            self.model.hook_module(point)
        except SaetuiError as exc:
            raise SAELoadError(f"SAE {spec}: {exc}") from exc
        if int(sae.cfg.d_in) != self.model.d_model:
            raise SAELoadError(
                f"SAE {spec} expects d_in={sae.cfg.d_in} at {hook_name}, but {self.model.name} is {self.model.d_model} wide there"
            )
        _check_finite(sae, spec)
        _check_normalization(sae, spec, factor=None)
        sae = sae.to(self.model.layer_device(point.layer))
        sae.eval()
        base = name or hook_name
        unique, n = base, 2
        while unique in self._saes:
            unique, n = f"{base}#{n}", n + 1
        loaded = LoadedSAE(unique, spec, sae, hook_name, point.layer, release, sae_id, neuronpedia_id, kind=kind_of(sae))
        self._saes[unique] = loaded
        return loaded


# ---------------------------------------------------------------------- loaders
def registry_spec(spec: str) -> tuple[str, str] | None:
    """(release, sae_id) when `spec` names a registry SAE; None for a local path that exists. A path that does
    not exist, or text that is neither, is a one-line SAELoadError (before anything asks the Hub)."""
    spec = spec.strip()
    path_part = spec.partition("@")[0]
    if Path(path_part).expanduser().exists():
        return None
    if spec.startswith(("/", "./", "../", "~")) or path_part.endswith((".npz", ".safetensors")):
        raise SAELoadError(f"no SAE at {Path(path_part).expanduser()}: not a file or folder")
    if "/" not in spec:
        raise SAELoadError(f"SAE spec {spec!r} is neither a local path nor RELEASE/SAE_ID")
    release, sae_id = spec.split("/", 1)
    return release, sae_id


def _load_registry(release: str, sae_id: str, dtype: str) -> SAE:
    """A registry SAE: its files made complete in the HF cache (saetui.hub: no request when they are, progress
    when not), then sae-lens's own loader for its release, reading that cache with huggingface_hub offline."""
    from huggingface_hub.errors import LocalEntryNotFoundError
    from sae_lens import SAE

    from saetui import hub

    hub.fetch([hub.sae_target(release, sae_id)])
    try:
        with hub.cache_only():
            # sae-lens folds a known norm factor; an unknown one is left in cfg and refused by add().
            return SAE.from_pretrained(release, sae_id, device="cpu", dtype=dtype)
    except LocalEntryNotFoundError as exc:
        if hub.offline():
            raise SAELoadError(f"cannot load SAE {release}/{sae_id}: its sae-lens loader reads a file that is not in "
                               f"the HF cache and HF_HUB_OFFLINE is set ({first_line(exc)})") from exc
        # a loader that reads beyond the SAE's folder: let it fetch what it reads itself
    except Exception as exc:  # noqa: BLE001 - a corrupt file, a loader that refuses the config...
        raise SAELoadError(f"cannot load SAE {release}/{sae_id}: {first_line(exc)}") from exc
    target = hub.sae_target(release, sae_id)
    try:
        return SAE.from_pretrained(release, sae_id, device="cpu", dtype=dtype)
    except Exception as exc:  # noqa: BLE001
        raise SAELoadError(f"cannot load SAE {release}/{sae_id}: {hub.explain(exc, target)}") from exc


def _load_local(path: Path, hook: str | None, dtype: str) -> SAE:
    """A local sae-lens directory or a Gemma Scope params.npz (file or directory holding one)."""
    from sae_lens import SAE

    npz = path if path.suffix == ".npz" else path / "params.npz"
    if npz.is_file():
        hook = hook or _hook_from_path(npz)
        loader = _npz_loader(hook)
        try:
            return SAE.load_from_disk(npz, device="cpu", dtype=dtype, converter=loader)
        except SaetuiError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise SAELoadError(f"corrupt Gemma Scope SAE {npz}: {first_line(exc)}") from exc
    cfg_path = path / "cfg.json"
    if not cfg_path.is_file():
        raise SAELoadError(f"{path} is not an SAE: expected cfg.json + sae_weights.safetensors, or params.npz")
    try:
        cfg = json.loads(cfg_path.read_text())
        if not isinstance(cfg, dict):
            raise ValueError("cfg.json is not a JSON object")
    except (ValueError, UnicodeDecodeError) as exc:
        raise SAELoadError(f"corrupt SAE config {cfg_path}: {first_line(exc)}") from exc
    if hook:
        cfg.setdefault("metadata", {})["hook_name"] = hook
    try:
        sae = SAE.load_from_disk(path, device="cpu", dtype=dtype, converter=_disk_loader(cfg))
    except Exception as exc:  # noqa: BLE001 - json, safetensors, shape and key errors alike
        raise SAELoadError(f"corrupt SAE at {path}: {first_line(exc)}") from exc
    _check_normalization(sae, str(path), factor=_norm_factor(cfg))
    return sae


def _disk_loader(cfg: dict[str, Any]) -> Any:
    """sae-lens's own disk loader, fed the cfg we already parsed (and possibly gave a hook)."""
    from sae_lens.loading.pretrained_sae_loaders import read_sae_components_from_disk

    def load(path: str | Path, device: str, cfg_overrides: dict[str, Any] | None) -> tuple[dict, dict]:
        cfg_dict = dict(cfg, device=device, **(cfg_overrides or {}))
        weights = Path(path) / "sae_weights.safetensors"
        if not weights.is_file():
            raise FileNotFoundError(f"missing {weights.name}")
        return read_sae_components_from_disk(cfg_dict=cfg_dict, weight_path=weights, device=device)

    return load


def unique_specs(specs: Sequence[str]) -> list[str]:
    """`specs` with each SAE once: a local path typed twice (`./saes/l1` and its absolute path too) or a registry
    spec repeated is loaded once, with a warning (it was loaded again as `l1#2`, and a bare feature number then
    asked which of the two)."""
    seen: dict[tuple[str, str], str] = {}
    unique = []
    for spec in specs:
        path_part, _, hook = str(spec).strip().partition("@")
        local = Path(path_part).expanduser()
        key = (str(local.resolve()) if local.exists() else path_part, hook)
        if key in seen:
            warnings.warn(f"SAE {spec} is given twice (as {seen[key]}): loaded once", stacklevel=2)
            continue
        seen[key] = spec
        unique.append(spec)
    return unique


def _npz_loader(hook: str) -> Any:
    """A sae-lens disk converter for Gemma Scope params.npz (JumpReLU, b_dec not subtracted on input)."""
    import numpy as np
    import torch

    def load(path: str | Path, device: str, cfg_overrides: dict[str, Any] | None) -> tuple[dict, dict]:
        # our own handle: np.load leaks the one it opens when the zip is damaged (it lets go of it before parsing)
        with open(path, "rb") as handle, np.load(handle, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
        missing = {"W_enc", "W_dec", "b_enc", "b_dec", "threshold"} - set(arrays)
        if missing:
            raise KeyError(f"params.npz lacks {', '.join(sorted(missing))}")
        d_in, d_sae = arrays["W_enc"].shape
        cfg = {
            "architecture": "jumprelu", "d_in": int(d_in), "d_sae": int(d_sae), "dtype": "float32", "device": device,
            "hook_name": hook, "apply_b_dec_to_input": False, "normalize_activations": "none",
            "model_name": None, **(cfg_overrides or {}),
        }
        dt = getattr(torch, cfg["dtype"])
        state = {k: torch.from_numpy(np.asarray(v, dtype=np.float32)).to(device=device, dtype=dt) for k, v in arrays.items()}
        return cfg, state

    return load


def _hook_from_path(path: Path) -> str:
    match = re.search(r"layer_(\d+)", str(path))
    if not match:
        raise SAELoadError(f"cannot tell which layer {path} belongs to: add @blocks.L.hook_resid_post to the spec")
    return f"blocks.{match.group(1)}.hook_resid_post"


def _norm_factor(cfg: dict[str, Any]) -> float | None:
    for source in (cfg, cfg.get("metadata") or {}):
        value = source.get("norm_scaling_factor")
        if isinstance(value, (int, float)) and value > 0:
            return float(value)
    return None


def _check_normalization(sae: SAE, spec: str, factor: float | None) -> None:
    """Fold or refuse activation normalisation; sae-lens applies layer_norm/constant_norm_rescale itself."""
    mode = sae.cfg.normalize_activations
    if mode == "expected_average_only_in":
        if factor is None:
            raise SAELoadError(
                f"SAE {spec} expects activations scaled by a norm factor (normalize_activations=expected_average_only_in) "
                "but its config gives no norm_scaling_factor: add it to cfg.json or fold it into the weights"
            )
        sae.fold_activation_norm_scaling_factor(factor)
    elif mode == "covariance_whitening":
        raise SAELoadError(f"SAE {spec} expects whitened activations and the whitening is not in its weights: fold it before loading")
    if sae.cfg.reshape_activations != "none":
        raise SAELoadError(f"SAE {spec} reshapes activations ({sae.cfg.reshape_activations}); saetui hooks the residual stream, attention and MLP outputs only")


def _check_finite(sae: SAE, spec: str) -> None:
    import torch

    for pname, param in sae.named_parameters():
        if not bool(torch.isfinite(param).all()):
            raise SAELoadError(f"SAE {spec} has non-finite values (NaN or inf) in {pname}")
