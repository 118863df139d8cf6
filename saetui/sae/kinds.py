"""What an SAE can do, decided once when it is loaded: one entry per sae-lens architecture.

Like sae-lens's one-class-per-architecture registry, each kind names the sae-lens class it serves
and says, for that class only (a subclass that overrides `encode`/`decode` is not that kind):

    columnwise     a_f(x) for a few features can be computed from their encoder columns alone, by the
                   same steps as `sae.encode` (ReLU, JumpReLU, gated; the smaller matmul may round in its
                   last bits like another summation order, see tests/tolerance.py); otherwise
                   `encode_columns` runs the full `sae.encode` and selects the columns (TopK, unknown)
    clamp          clamp/ablate steering is allowed (refused with `clamp_refusal` otherwise)
    linear_decode  `sae.decode(a) == a @ W_dec + b_dec` (so a sparse CSR decode gives the same result)

    kind        sae-lens class        columnwise  clamp  linear_decode
    standard    StandardSAE           yes         yes    yes
    jumprelu    JumpReLUSAE           yes         yes    yes
    gated       GatedSAE              yes         yes    yes
    topk        TopKSAE               no          no     unless rescale_acts_by_decoder_norm
    abstopk     AbsTopKSAE            no          no     unless rescale_acts_by_decoder_norm
    transcoder  Transcoder (+ subs)   no          no     no   (reconstructs another hook)
    temporal    TemporalSAE           no          no     no   (activations depend on earlier tokens)
    unknown     anything else         no          yes    no

Standard/JumpReLU/gated need sae-lens's default ReLU activation_fn, else they are `unknown`. An SAE
whose class is not in the table, or a subclass that overrides encode/decode, gets the `unknown` kind:
full encode then select columns, clamp through that full encode (refused where its parent refuses it),
no linear-decode shortcut.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Sequence

if TYPE_CHECKING:
    import torch

# A column encoder: x (..., d_in) -> (..., m) activations of the m features it was built for.
ColumnEncoder = Callable[["torch.Tensor"], "torch.Tensor"]


@dataclass(frozen=True)
class SAEKind:
    """One architecture's abilities (see the module docstring)."""

    name: str
    columnwise: bool
    clamp: bool
    linear_decode: bool
    # builds the column encoder for (sae, features); None: full encode then select
    _columns: Callable[[Any, "torch.Tensor"], ColumnEncoder] | None = None
    clamp_refusal: str = ""

    @property
    def can_encode_columns(self) -> bool:
        return self.columnwise

    def column_encoder(self, sae: Any, features: Sequence[int] | torch.Tensor) -> ColumnEncoder:
        """A function x (..., d_in) -> (..., len(features)): sae.encode(x)[..., features] (up to rounding, see above).

        The selected weights are sliced once here, so a steering hook can call the result every step.
        """
        import torch

        feats = torch.as_tensor(features, dtype=torch.long, device=sae.W_dec.device)
        if self._columns is not None:
            return self._columns(sae, feats)

        def full(x: torch.Tensor) -> torch.Tensor:
            return sae.encode(x)[..., feats]

        return full

    def encode_columns(self, sae: Any, x: torch.Tensor, features: Sequence[int] | torch.Tensor) -> torch.Tensor:
        """a_f(x) for the given features only: (..., len(features)), as sae.encode(x)[..., features]."""
        return self.column_encoder(sae, features)(x)


# ---------------------------------------------------------------------- column encoders
# Exactness: the elementwise steps are sae-lens's own, so the columns equal sae.encode's whenever the
# matmul of the selected columns rounds like the full one. Whether it does depends on the BLAS kernel a
# shape gets: identical bits on some CPUs (Intel with MKL, for inputs of several rows), up to ~1e-6 apart
# on others (AMD EPYC with MKL), within the rounding bound of a d_in-term sum either way. One column alone
# would take a matrix-vector path on every CPU, so it is computed as two identical columns.
def _cols(w: torch.Tensor) -> torch.Tensor:
    """w (d, m) made at least 2 columns wide (see above); callers keep the first m outputs."""
    import torch

    return torch.cat([w, w], dim=1) if w.shape[1] == 1 else w


def _relu_columns(sae: Any, feats: torch.Tensor) -> ColumnEncoder:
    """StandardSAE.encode: relu(process_sae_in(x) @ W_enc + b_enc), for the selected columns."""
    m = len(feats)
    w_enc = _cols(sae.W_enc.detach()[:, feats])
    b_enc = sae.b_enc.detach()[feats]
    act = sae.activation_fn

    def encode(x: torch.Tensor) -> torch.Tensor:
        return act((sae.process_sae_in(x) @ w_enc)[..., :m] + b_enc)

    return encode


def _jumprelu_columns(sae: Any, feats: torch.Tensor) -> ColumnEncoder:
    """JumpReLUSAE.encode: relu(pre) * (pre > threshold), for the selected columns."""
    m = len(feats)
    w_enc = _cols(sae.W_enc.detach()[:, feats])
    b_enc = sae.b_enc.detach()[feats]
    threshold = sae.threshold.detach()[feats]
    act = sae.activation_fn

    def encode(x: torch.Tensor) -> torch.Tensor:
        pre = (sae.process_sae_in(x) @ w_enc)[..., :m] + b_enc
        base = act(pre)
        return base * (pre > threshold).to(base.dtype)

    return encode


def _gated_columns(sae: Any, feats: torch.Tensor) -> ColumnEncoder:
    """GatedSAE.encode: (x W_enc + b_gate > 0) * relu(x (W_enc * exp(r_mag)) + b_mag), selected columns."""
    m = len(feats)
    w_enc = sae.W_enc.detach()
    w_gate = _cols(w_enc[:, feats])
    w_mag = _cols((w_enc * sae.r_mag.detach().exp())[:, feats])  # the same product sae-lens forms, then sliced
    b_gate = sae.b_gate.detach()[feats]
    b_mag = sae.b_mag.detach()[feats]
    act = sae.activation_fn

    def encode(x: torch.Tensor) -> torch.Tensor:
        sae_in = sae.process_sae_in(x)
        active = ((sae_in @ w_gate)[..., :m] + b_gate > 0).to(sae.dtype)
        return active * act((sae_in @ w_mag)[..., :m] + b_mag)

    return encode


# ---------------------------------------------------------------------- the table
_TOPK_REFUSAL = "whose feature activations depend on every other feature's (only the top k fire)"


def _sae_lens_table() -> list[tuple[Any, Callable[[Any], SAEKind]]]:
    """(sae-lens class, sae -> its kind), most specific class first."""
    import torch
    from sae_lens import GatedSAE, JumpReLUSAE, StandardSAE, TopKSAE

    def relu_only(sae: Any) -> bool:  # encode's activation_fn is elementwise ReLU (sae-lens's default)
        return isinstance(sae.activation_fn, torch.nn.ReLU)

    def topk(name: str) -> Callable[[Any], SAEKind]:
        def make(sae: Any) -> SAEKind:
            linear = not bool(getattr(sae.cfg, "rescale_acts_by_decoder_norm", False))
            return SAEKind(name, columnwise=False, clamp=False, linear_decode=linear, clamp_refusal=_TOPK_REFUSAL)

        return make

    table: list[tuple[Any, Callable[[Any], SAEKind]]] = []
    try:
        from sae_lens import AbsTopKSAE

        table.append((AbsTopKSAE, topk("abstopk")))
    except ImportError:  # older sae-lens
        pass
    def refuse(name: str, why: str) -> Callable[[Any], SAEKind]:
        return lambda sae: SAEKind(name, columnwise=False, clamp=False, linear_decode=False, clamp_refusal=why)

    try:  # full encode works for reading them, but clamping by it would be wrong
        from sae_lens import TemporalSAE, Transcoder

        table += [
            (Transcoder, refuse("transcoder", "which reconstructs another hook's activation (hook_name_out)")),
            (TemporalSAE, refuse("temporal", "whose activations depend on earlier tokens")),
        ]
    except ImportError:  # older sae-lens
        pass
    table += [
        (TopKSAE, topk("topk")),
        (JumpReLUSAE, lambda sae: SAEKind("jumprelu", True, True, True, _jumprelu_columns) if relu_only(sae) else UNKNOWN),
        (StandardSAE, lambda sae: SAEKind("standard", True, True, True, _relu_columns) if relu_only(sae) else UNKNOWN),
        (GatedSAE, lambda sae: SAEKind("gated", True, True, True, _gated_columns) if relu_only(sae) else UNKNOWN),
    ]
    return table


UNKNOWN = SAEKind("unknown", columnwise=False, clamp=True, linear_decode=False)


def kind_of(sae: Any) -> SAEKind:
    """The kind of a sae-lens SAE: its exact class's entry, or UNKNOWN.

    A subclass only gets its parent's kind when it keeps the parent's encode and decode: anything
    it overrides could compute activations differently, so it falls back to the full encode.
    """
    for cls, make in _sae_lens_table():
        if isinstance(sae, cls):
            kind = make(sae)
            if type(sae).encode is cls.encode and type(sae).decode is cls.decode:
                return kind
            # computes differently from its parent: full encode, no decode shortcut, and no clamp if the parent has none
            return SAEKind(f"unknown ({type(sae).__name__})", columnwise=False, clamp=kind.clamp,
                           linear_decode=False, clamp_refusal=kind.clamp_refusal)
    return UNKNOWN
