"""The sae-lens registry of pre-trained SAE releases, read offline from the yaml sae-lens ships.

`list_registry(model)` answers `saetui saes`; `check_registry_spec` validates RELEASE/SAE_ID before
anything touches the network and suggests close names for typos.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import asdict, dataclass
from typing import Any

from saetui.errors import SAELoadError

_HOOK_IN_NAME = re.compile(r"blocks\.(\d+)\.(hook_resid_pre|hook_resid_post|hook_attn_out|hook_mlp_out)")
_LAYER_IN_NAME = re.compile(r"(?:layer_|layer|l)(\d+)", re.IGNORECASE)
# TransformerLens short names used in the registry -> the HF id's last part.
_MODEL_ALIASES = {"gpt2-small": "gpt2"}


@dataclass(frozen=True)
class RegistryEntry:
    """One SAE in the sae-lens registry. `hook` is read from the id or guessed from the names (None if unknown)."""

    release: str
    sae_id: str
    model: str
    hook: str | None
    width: int | None
    neuronpedia_id: str | None

    @property
    def spec(self) -> str:
        return f"{self.release}/{self.sae_id}"

    def to_dict(self) -> dict[str, Any]:
        return dict(asdict(self), spec=self.spec)


def model_key(name: str) -> str:
    """Comparable model name: `google/gemma-2-2b` and `gemma-2-2b` both give `gemma-2-2b`."""
    key = name.strip().rstrip("/").split("/")[-1].lower()
    return _MODEL_ALIASES.get(key, key)


def _directory() -> dict[str, Any]:
    from sae_lens.loading.pretrained_saes_directory import get_pretrained_saes_directory

    return get_pretrained_saes_directory()


def guess_hook(release: str, sae_id: str, path: str) -> str | None:
    """The hook point an entry most likely sits at, from its id and path (registry yaml has no hook field)."""
    for text in (sae_id, path):
        match = _HOOK_IN_NAME.search(text)
        if match:
            return match.group(0)
    match = _LAYER_IN_NAME.search(sae_id) or _LAYER_IN_NAME.search(path)
    if not match:
        return None
    layer = match.group(1)
    lowered = f"{release} {sae_id}".lower()
    if "mlp" in lowered or "transcoder" in lowered:
        return f"blocks.{layer}.hook_mlp_out"
    if "att" in lowered:
        return None  # attention SAEs usually sit at hook_z, which saetui does not hook
    if "res" in lowered:
        return f"blocks.{layer}.hook_resid_post"
    return None


def _width(sae_id: str, path: str) -> int | None:
    match = re.search(r"width_(\d+)([km]?)", f"{sae_id} {path}")
    if not match:
        return None
    scale = {"": 1, "k": 1024, "m": 1024 * 1024}[match.group(2)]
    return int(match.group(1)) * scale


def list_registry(model: str | None = None) -> list[RegistryEntry]:
    """Every registry entry, or those for `model` (HF id or short name), in registry order."""
    want = model_key(model) if model else None
    entries = []
    for release, lookup in _directory().items():
        if want is not None and model_key(lookup.model) != want:
            continue
        for sae_id, path in lookup.saes_map.items():
            sae_id, path = str(sae_id), str(path)  # YAML may give numbers: sae-lens 6.51 has `layer_0: 0` (a CLT's layers)
            entries.append(
                RegistryEntry(
                    release=release,
                    sae_id=sae_id,
                    model=lookup.model,
                    hook=guess_hook(release, sae_id, path),
                    width=_width(sae_id, path),
                    neuronpedia_id=lookup.neuronpedia_id.get(sae_id),
                )
            )
    return entries


def check_registry_spec(release: str, sae_id: str) -> Any:
    """The registry lookup for RELEASE/SAE_ID, or an SAELoadError suggesting close names."""
    directory = _directory()
    if release not in directory:
        close = difflib.get_close_matches(release, list(directory), n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(close)}?" if close else "; `saetui saes` lists them"
        raise SAELoadError(f"unknown SAE release {release!r}{hint}")
    lookup = directory[release]
    if sae_id not in lookup.saes_map:
        close = difflib.get_close_matches(sae_id, list(lookup.saes_map), n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(close)}?" if close else f"; `saetui saes --model {lookup.model}` lists them"
        raise SAELoadError(f"unknown sae_id {sae_id!r} in release {release!r}{hint}")
    return lookup
