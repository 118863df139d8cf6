"""SAE kinds: what each architecture can encode one feature at a time, clamp and decode linearly,
decided once when the SAE is loaded (saetui.sae.kinds), and used by the steering hooks and analyzer."""

from __future__ import annotations

import pytest
import torch

from saetui.errors import InputError
from saetui.sae import kinds
from saetui.sae.analyzer import _sparse_latents
from saetui.sae.manager import SAEManager
from saetui.steering.hooks import build_tables
from saetui.steering.spec import SteeringSpec, resolve
from tests.tolerance import assert_close_reduction, differs_beyond_rounding, reduction_bound

HOOK = "blocks.1.hook_resid_post"
D_IN, D_SAE = 64, 256
FEATURE_SETS = ([5], [3, 200, 7, 255], list(range(0, D_SAE, 3)), list(range(D_SAE)))


def _build(name: str, **cfg_kw):
    """A sae-lens SAE of the given architecture with random weights (b_dec applied to the input, so
    process_sae_in matters; JumpReLU thresholds spread so that some positive pre-activations are cut)."""
    import sae_lens

    classes = {
        "standard": ("StandardSAE", "StandardSAEConfig", {}),
        "jumprelu": ("JumpReLUSAE", "JumpReLUSAEConfig", {}),
        "gated": ("GatedSAE", "GatedSAEConfig", {}),
        "topk": ("TopKSAE", "TopKSAEConfig", {"k": 8}),
        "abstopk": ("AbsTopKSAE", "AbsTopKSAEConfig", {"k": 8}),
    }
    cls_name, cfg_name, extra = classes[name]
    cfg = getattr(sae_lens, cfg_name)(d_in=D_IN, d_sae=D_SAE, dtype="float32", device="cpu",
                                      apply_b_dec_to_input=True, **{**extra, **cfg_kw})
    cfg.metadata.hook_name = HOOK
    sae = getattr(sae_lens, cls_name)(cfg)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for pname, p in sae.named_parameters():
            if pname == "threshold":
                p.copy_(torch.rand(p.shape, generator=gen) * 1.5)
            else:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.2)
    return sae


def _inputs():
    gen = torch.Generator().manual_seed(2)
    return torch.randn(2, 9, D_IN, generator=gen) * 2


def _column_bound(sae, name: str, x, feats) -> torch.Tensor:
    """How far a few columns of the encoder, computed as their own matmul (another shape: another BLAS kernel
    and summation order on some CPUs), may land from the same columns of the full encode: the rounding of
    D_IN-term sums (tests/tolerance.py), through the activation. Where a pre-activation lies within that of a
    jump (JumpReLU's threshold, the gate), either side may fire: there the bound is the value itself (under
    1% of the entries, checked)."""
    with torch.inference_mode():
        sae_in = sae.process_sae_in(x)
        w = sae.W_enc.detach()
        weights = [w] + ([w * sae.r_mag.detach().exp()] if name == "gated" else [])
        scale = torch.stack([(sae_in.abs() @ m.abs())[..., feats] for m in weights]).amax(0)
        bound = reduction_bound(scale, D_IN, torch.float32)
        if name in ("jumprelu", "gated"):
            pre = (sae_in @ w)[..., feats] + (sae.b_enc if name == "jumprelu" else sae.b_gate).detach()[feats]
            edge = sae.threshold.detach()[feats] if name == "jumprelu" else 0.0
            near = (pre - edge).abs() <= bound
            assert float(near.float().mean()) < 0.01, "too many pre-activations at a jump to compare: pick other data"
            ungated = torch.relu(pre if name == "jumprelu" else (sae_in @ weights[1])[..., feats] + sae.b_mag.detach()[feats])
            bound = torch.where(near, ungated + bound, bound)  # fired on one side, not on the other
    return bound


EXPECTED = {  # name -> (columnwise, clamp, linear_decode)
    "standard": (True, True, True),
    "jumprelu": (True, True, True),
    "gated": (True, True, True),
    "topk": (False, False, True),
    "abstopk": (False, False, True),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_architecture_gets_its_kind_and_encodes_columns_exactly(name):
    sae = _build(name)
    kind = kinds.kind_of(sae)
    assert kind.name == name
    assert (kind.can_encode_columns, kind.clamp, kind.linear_decode) == EXPECTED[name]
    x = _inputs()
    with torch.inference_mode():
        full = sae.encode(x)
        assert 0 < int((full != 0).sum()) < full.numel()  # the data exercises both firing and silent features
        for feats in FEATURE_SETS:
            cols = kind.encode_columns(sae, x, feats)
            assert cols.shape == (2, 9, len(feats))
            assert_close_reduction(cols, full[..., feats], bound=_column_bound(sae, name, x, feats), what=f"{name} {len(feats)} columns")
            # one column encoder, built once, called on another input (as the steering hook does each step)
            enc = kind.column_encoder(sae, feats)
            y = x.flip(1)[:, :3]
            assert_close_reduction(enc(y), sae.encode(y)[..., feats], bound=_column_bound(sae, name, y, feats), what=f"{name} reused")


def test_jumprelu_columns_apply_the_threshold():
    """The data tells JumpReLU from ReLU: computing a JumpReLU SAE's columns as plain ReLU would fail."""
    sae = _build("jumprelu")
    x, feats = _inputs(), list(range(D_SAE))
    with torch.inference_mode():
        as_relu = kinds._relu_columns(sae, torch.tensor(feats))(x)
        assert differs_beyond_rounding(as_relu, sae.encode(x), n=D_IN)
        # every column, in their own order: the same matmul shape as the full encode, so the same bits
        assert torch.equal(kinds.kind_of(sae).encode_columns(sae, x, feats), sae.encode(x))


def test_the_manager_decides_the_kind_once_at_load(gemma2):
    manager = SAEManager(gemma2)
    for name in EXPECTED:
        loaded = manager.add(_build(name), name=name)
        assert loaded.kind.name == name
    assert manager.get("jumprelu").kind is not manager.get("standard").kind


def test_topk_rescaled_by_decoder_norm_has_no_linear_decode(gemma2):
    kind = kinds.kind_of(_build("topk", rescale_acts_by_decoder_norm=True))
    assert (kind.name, kind.linear_decode) == ("topk", False)
    loaded = SAEManager(gemma2).add(_build("topk", rescale_acts_by_decoder_norm=True))
    with torch.inference_mode():
        lat = loaded.sae.encode(_inputs()[0])
    assert _sparse_latents(loaded, lat) is None  # the analyzer decodes through sae.decode
    plain = SAEManager(gemma2).add(_build("topk"))
    assert _sparse_latents(plain, lat) is not None


# ---------------------------------------------------------------------- unknown architectures
class _DoubledSAE:
    """Mixed in to a sae-lens class: an encode the kinds table cannot know (twice the parent's)."""

    def encode(self, x):
        return 2 * super().encode(x)


def _unknown(parent: str):
    sae = _build(parent)
    sae.__class__ = type(f"Doubled{type(sae).__name__}", (_DoubledSAE, type(sae)), {})
    return sae


def test_a_subclass_that_overrides_encode_falls_back_to_the_full_encode():
    sae = _unknown("jumprelu")
    kind = kinds.kind_of(sae)
    assert kind.name.startswith("unknown")
    assert (kind.can_encode_columns, kind.clamp, kind.linear_decode) == (False, True, False)
    x = _inputs()
    with torch.inference_mode():
        for feats in FEATURE_SETS:  # the full encode, then the columns: the same op on both sides, the same bits
            assert torch.equal(kind.encode_columns(sae, x, feats), sae.encode(x)[..., feats])
        # the parent's column formula would be wrong for it
        assert differs_beyond_rounding(kinds._jumprelu_columns(sae, torch.arange(D_SAE))(x), sae.encode(x), n=D_IN)


def test_a_class_outside_sae_lens_is_unknown():
    class Custom(torch.nn.Module):
        W_dec = torch.zeros(4, 2)

        def encode(self, x):
            return torch.relu(x @ torch.ones(2, 4))

    sae = Custom()
    kind = kinds.kind_of(sae)
    assert kind is kinds.UNKNOWN
    assert (kind.name, kind.can_encode_columns, kind.clamp, kind.linear_decode) == ("unknown", False, True, False)
    x = torch.randn(3, 2)
    assert torch.equal(kinds.UNKNOWN.encode_columns(sae, x, [1, 3]), sae.encode(x)[..., [1, 3]])


def test_a_topk_subclass_stays_refused_for_clamp():
    kind = kinds.kind_of(_unknown("topk"))
    assert kind.name.startswith("unknown") and not kind.clamp and not kind.linear_decode


# ---------------------------------------------------------------------- steering asks the kind
@pytest.mark.parametrize("name", ["standard", "jumprelu", "gated", "unknown"])
def test_clamp_delta_uses_the_kinds_activation(gemma2, name):
    """The hook adds (v - a_f(x)) W_dec[f], with a_f exactly sae.encode's, for every clampable kind."""
    sae = _unknown("standard") if name == "unknown" else _build(name)
    manager = SAEManager(gemma2)
    loaded = manager.add(sae, name="s")
    x = _inputs()[:1]
    with torch.inference_mode():
        acts = sae.encode(x)
    feats = sorted([int(acts[0].amax(0).argmax()), 11])  # the plan keeps its features sorted
    values = torch.tensor([3.0, 0.0])
    specs = [resolve(SteeringSpec(f, float(v), mode="clamp"), manager) for f, v in zip(feats, values)]
    tables = build_tables([specs])
    with torch.inference_mode():
        delta = tables.hooks[loaded.hook_name].delta(x, torch.ones(1, x.shape[1], 1))  # one scope, covering every position
        expected = (values - acts[..., feats]) @ sae.W_dec[feats]
        # a_f from the kind's columns differs from the full encode's by rounding at most (the same op for "unknown");
        # the final product has the same shape on both sides, so only that difference is carried through it
        bound_a = torch.zeros(()) if name == "unknown" else _column_bound(sae, name, x, feats)
        bound = bound_a @ sae.W_dec.detach()[feats].abs() if name != "unknown" else 0.0
    assert_close_reduction(delta, expected, bound=bound, what=name)
    assert acts[..., feats].abs().max() > 0


@pytest.mark.parametrize("name", ["topk", "abstopk"])
def test_topk_kinds_refuse_clamp_in_one_line_and_allow_add(gemma2, name):
    manager = SAEManager(gemma2)
    manager.add(_build(name), name="t")
    for mode in ("clamp", "ablate"):
        with pytest.raises(InputError, match=rf"^clamp/ablate needs a JumpReLU SAE.*is {name}, .*: use add$") as info:
            resolve(SteeringSpec(3, 1.0, mode=mode), manager)
        assert "\n" not in str(info.value)
    assert resolve(SteeringSpec(3, 1.0), manager).value == 1.0


def test_tokens_left_out_of_a_summary_never_win_it_even_for_signed_activations():
    """AbsTopK activations can be negative: a left-out token must not win a feature's max with 0."""
    from saetui.sae.analyzer import _counted_rows

    lat = torch.tensor([[5.0, -1.0], [-2.0, -3.0], [9.0, 9.0], [-4.0, -0.5]])
    counted = torch.tensor([False, True, False, True])  # not one run: rows 1 and 3 count
    rows, offset = _counted_rows(lat, counted)
    v, f = rows.amax(0).topk(2)
    assert v.tolist() == [-0.5, -2.0] and f.tolist() == [1, 0]
    assert (rows[:, f].argmax(0) + offset).tolist() == [3, 1]


@pytest.mark.parametrize("cls", ["Transcoder", "SkipTranscoder", "JumpReLUTranscoder"])
def test_transcoders_refuse_clamp(cls):
    """A transcoder reconstructs another hook's activation: clamping at its input hook would be wrong."""
    import sae_lens

    sae = getattr(sae_lens, cls)(getattr(sae_lens, f"{cls}Config")(
        d_in=8, d_sae=16, d_out=8, dtype="float32", device="cpu", apply_b_dec_to_input=False))
    kind = kinds.kind_of(sae)
    assert not kind.clamp and not kind.linear_decode and "hook_name_out" in kind.clamp_refusal
