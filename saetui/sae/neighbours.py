"""Decoder neighbours: the features whose decoder directions point the most like a given feature's.

For feature f of SAE S and a target SAE T (S itself, or another loaded SAE of another width or layer
with the same d_in):

    cosine(f, g) = <W_dec_S[f], W_dec_T[g]> / (|W_dec_S[f]| |W_dec_T[g]|)      for every g of T

the top-k of them (f itself left out when T is S), and f's encoder/decoder cosine
cos(W_enc_S[:, f], W_dec_S[f]) (1 for tied weights; low values mean the feature reads one direction and
writes another). Each SAE's decoder rows are normalised once and the unit rows cached (keyed by the
SAE module, refreshed when its weights change), so a query is one matrix-vector product and a top-k.
Zero decoder rows (dead, pruned) have cosine 0 with everything.
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from saetui.errors import InputError
from saetui.inputs import check_int
from saetui.settings import NeighbourSettings

if TYPE_CHECKING:
    import torch

    from saetui.sae.manager import LoadedSAE

_CACHE: weakref.WeakKeyDictionary[Any, tuple[tuple[int, int, str], Any]] = weakref.WeakKeyDictionary()
_CACHE_LOCK = threading.Lock()


@dataclass
class Neighbour:
    feature: int
    cosine: float
    label: str = ""


@dataclass
class NeighbourResult:
    """The neighbours of `feature` of SAE `sae` among the features of SAE `against`, best first."""

    sae: str
    feature: int
    against: str
    encoder_decoder_cosine: float | None  # None where the SAE has no W_enc of the decoder's shape
    neighbours: list[Neighbour] = field(default_factory=list)
    label: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def unit_decoder(loaded: LoadedSAE) -> torch.Tensor:
    """(d_sae, d_in) W_dec with unit rows (zero rows stay zero), in the decoder's dtype: computed once per SAE."""
    import torch

    w = loaded.sae.W_dec
    key = (w.data_ptr(), w._version, str(w.dtype))
    with _CACHE_LOCK:
        hit = _CACHE.get(loaded.sae)
        if hit is not None and hit[0] == key:
            return hit[1]
    with torch.inference_mode():
        wf = w.detach().float()
        unit = (wf / wf.norm(dim=1, keepdim=True).clamp_min(1e-30)).to(w.dtype).contiguous()
    with _CACHE_LOCK:
        _CACHE[loaded.sae] = (key, unit)
    return unit


def decoder_neighbours(loaded: LoadedSAE, feature: int, against: LoadedSAE | None = None,
                       top_k: int = NeighbourSettings.top_k) -> NeighbourResult:
    """The top_k features of `against` (default: the same SAE) by decoder cosine with `feature`."""
    import torch

    feature = loaded.check_feature(feature)
    top_k = check_int(top_k, "top-k")
    target = loaded if against is None else against
    d_in, d_other = int(loaded.sae.cfg.d_in), int(target.sae.cfg.d_in)
    if d_in != d_other:
        raise InputError(f"SAE {loaded.name} has d_in {d_in} but SAE {target.name} has d_in {d_other}: "
                         "decoder directions of different widths cannot be compared")
    same = target.sae is loaded.sae
    with torch.inference_mode():
        if not bool(loaded.sae.W_dec.detach()[feature].any()):  # no direction: every cosine would be an arbitrary 0
            raise InputError(f"feature {feature} of SAE {loaded.name} is dead: its decoder row is all zeros, "
                             "so it has no direction and no neighbours")
        rows = unit_decoder(target)
        query = unit_decoder(loaded)[feature].to(device=rows.device, dtype=rows.dtype)
        scores = rows @ query  # (d_sae_target,)
        if same:
            scores[feature] = float("-inf")  # not its own neighbour
        k = min(top_k, scores.shape[0] - (1 if same else 0))
        if rows.dtype == torch.float32 or k == 0:
            vals, idx = scores.topk(k)
        else:  # low-precision products: take a margin of candidates, then rank them by fp32 cosines
            cand = scores.topk(min(scores.shape[0] - (1 if same else 0), 4 * k + 16)).indices
            exact = _cosines(loaded, feature, target, cand)
            order = exact.argsort(descending=True, stable=True)[:k]
            vals, idx = exact[order], cand[order]
        neighbours = [Neighbour(int(g), float(c)) for g, c in zip(idx.tolist(), vals.float().tolist())]
    return NeighbourResult(loaded.name, feature, target.name, encoder_decoder_cosine(loaded, feature), neighbours)


def _cosines(loaded: LoadedSAE, feature: int, target: LoadedSAE, cand: torch.Tensor) -> torch.Tensor:
    """fp32 cosines of `feature` with the candidate rows of `target`."""
    q = loaded.sae.W_dec.detach()[feature].float()
    rows = target.sae.W_dec.detach()[cand.to(target.sae.W_dec.device)].float().to(q.device)
    return (rows @ q) / (rows.norm(dim=1) * q.norm()).clamp_min(1e-30)


def encoder_decoder_cosine(loaded: LoadedSAE, feature: int) -> float | None:
    """cos(W_enc[:, f], W_dec[f]) in fp32, or None when the SAE's encoder is not (d_in, d_sae)."""
    import torch

    sae = loaded.sae
    w_enc = getattr(sae, "W_enc", None)
    if not isinstance(w_enc, torch.Tensor) or tuple(w_enc.shape) != (int(sae.cfg.d_in), loaded.d_sae):
        return None
    with torch.inference_mode():
        e = w_enc.detach()[:, feature].float()
        d = sae.W_dec.detach()[feature].float().to(e.device)
        denom = float(e.norm() * d.norm())
        return float(e @ d) / denom if denom > 0 else 0.0
