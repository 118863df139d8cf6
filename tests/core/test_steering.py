"""Steering: the math at the hook point, batching, streaming, cancel, errors."""

from __future__ import annotations

import threading

import pytest
import torch

from saetui.errors import InputError
from saetui.models.model import ModelWithHooks
from saetui.sae.manager import SAEManager
from saetui.steering import hooks as steering_hooks
from saetui.steering.generate import SteeringEngine
from saetui.steering.hooks import SteeringHooks
from saetui.steering.spec import SteeringSpec, resolve
from tests.conftest import hook_ids
from tests.greedy import assert_same_greedy
from tests.tolerance import assert_close_reduction

HOOK = "blocks.1.hook_resid_post"
PROMPT = "The cat sat on the mat"


@pytest.fixture()
def saes(gemma2, make_sae):
    manager = SAEManager(gemma2)
    manager.add(make_sae(64, 256, HOOK), name="s")
    return manager


@pytest.fixture()
def engine(gemma2, saes):
    return SteeringEngine(gemma2, saes)


class Probe:
    """Records what a module outputs after the steering hook ran (forward hooks run in order)."""

    def __init__(self, module):
        self.seen: list[torch.Tensor] = []
        self.handle = module.register_forward_hook(lambda m, i, o: self.seen.append(o.detach().clone()))

    def remove(self):
        self.handle.remove()


def _steered_hidden(gemma2, engine, specs, **kwargs):
    """Generate greedily with probes on layer 1 before and after the steering hook.

    Returns (output, unsteered, steered): layer-1 outputs over all positions fed to the model,
    from the same forwards (prompt, then one cached step per token).
    """
    before = Probe(gemma2.layers[1])  # registered first: sees the output before steering
    steered: list[torch.Tensor] = []
    original_enter, original_exit = SteeringHooks.__enter__, SteeringHooks.__exit__

    def enter(self):  # the hooks are entered once per forward step
        result = original_enter(self)
        self._probe = Probe(gemma2.layers[1])  # registered after the steering hook: sees its result
        return result

    def exit(self, *exc):
        steered.extend(self._probe.seen)
        self._probe.remove()
        return original_exit(self, *exc)

    SteeringHooks.__enter__, SteeringHooks.__exit__ = enter, exit
    try:
        (out,) = engine.run(PROMPT, [specs], **kwargs)
    finally:
        SteeringHooks.__enter__, SteeringHooks.__exit__ = original_enter, original_exit
        before.remove()
    return out, torch.cat(before.seen, dim=1)[0], torch.cat(steered, dim=1)[0]


def _plain_hidden(gemma2, ids):
    probe = Probe(gemma2.layers[1])
    try:
        with torch.inference_mode():
            gemma2.model(input_ids=torch.tensor([ids]))
    finally:
        probe.remove()
    return probe.seen[0][0]


@pytest.mark.parametrize("scope", ["all", "prompt", "generated", "3:9"])
def test_add_changes_the_hooked_output_by_exactly_c_w_dec(gemma2, saes, engine, scope):
    spec = SteeringSpec(feature=7, coefficient=3.5, scope=scope)
    out, clean, steered = _steered_hidden(gemma2, engine, [spec], max_new_tokens=6)
    prompt_ids = gemma2.tokenize(PROMPT).input_ids[0].tolist()
    ids = prompt_ids + out.token_ids
    assert steered.shape[0] == len(ids) - 1  # the last token is generated but never fed back
    direction = 3.5 * saes.get("s").sae.W_dec[7]
    n = len(prompt_ids)
    covered = {"all": range(len(ids)), "prompt": range(n), "generated": range(n, len(ids)), "3:9": range(3, 9)}[scope]
    for p in range(steered.shape[0]):
        if p in covered:  # the hook's table arithmetic may round the sum once more than this one add
            assert_close_reduction(steered[p], clean[p] + direction, n=2, scale=clean[p].abs() + direction.abs())
        else:
            assert torch.equal(steered[p], clean[p])  # untouched: the very tensor the layer produced


def test_coefficient_zero_is_bit_identical_to_no_steering(gemma2, saes, engine):
    batch = gemma2.tokenize(PROMPT)
    with torch.inference_mode():
        clean = gemma2.model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
        with SteeringHooks(gemma2, [[resolve(SteeringSpec(7, 0.0), saes)]]):
            zero = gemma2.model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
    assert torch.equal(clean, zero)
    plain, zeroed = engine.run(PROMPT, [[], [SteeringSpec(7, 0.0)]], max_new_tokens=8)
    assert plain.token_ids == zeroed.token_ids
    (alone,) = engine.run(PROMPT, [[SteeringSpec(7, 0.0)]], max_new_tokens=8)  # batch 1 vs 2: other shapes
    assert_same_greedy(engine.model, engine.saes, [[]], [alone.token_ids], [plain.token_ids])


def test_greedy_tokens_equal_with_and_without_kv_cache(engine):
    specs = [SteeringSpec(7, 6.0, scope="generated"), SteeringSpec(11, 2.0, mode="clamp")]
    (cached,) = engine.run(PROMPT, [specs], max_new_tokens=10)
    (uncached,) = engine.run(PROMPT, [specs], max_new_tokens=10, use_cache=False)
    assert len(cached.token_ids) == 10
    assert_same_greedy(engine.model, engine.saes, [specs], [cached.token_ids], [uncached.token_ids])


def test_clamp_sets_the_feature_and_ablate_zeroes_it(gemma2, saes, engine):
    """Re-encoding the steered activation gives f = v. Exact up to float rounding (1e-4) here because the
    test SAE has W_enc[:, f] . W_dec[f] = 1; for other SAEs the clamp sets f's share of the reconstruction."""
    sae = saes.get("s").sae
    x = _plain_hidden(gemma2, gemma2.tokenize(PROMPT).input_ids[0].tolist())
    with torch.inference_mode():
        acts = sae.encode(x)
    active = int(acts[1:].amax(0).argmax())  # a feature that fires somewhere
    for mode, value in (("clamp", 9.0), ("ablate", 0.0)):
        spec = SteeringSpec(active, value, mode=mode)
        _, _, steered = _steered_hidden(gemma2, engine, [spec], max_new_tokens=1)
        with torch.inference_mode():
            again = sae.encode(steered)[:, active]
        torch.testing.assert_close(again, torch.full_like(again, value), atol=1e-4, rtol=0)
    assert acts[:, active].abs().max() > 0


def test_batched_compare_and_sweep_equal_individual_runs(engine):
    spec = SteeringSpec(7, 5.0)
    baseline, steered = engine.compare(PROMPT, [spec], max_new_tokens=12)
    (alone_base,) = engine.run(PROMPT, [[]], max_new_tokens=12)
    (alone_steer,) = engine.run(PROMPT, [[spec]], max_new_tokens=12)
    # a batch of 2 runs other matmul shapes than a batch of 1: equal up to near-ties (tests/greedy.py)
    assert_same_greedy(engine.model, engine.saes, [[], [spec]], [baseline.token_ids, steered.token_ids],
                       [alone_base.token_ids, alone_steer.token_ids])
    assert baseline.token_ids != steered.token_ids
    coefficients = [-4.0, 0.0, 2.0, 8.0]
    rows = engine.sweep(PROMPT, [spec, SteeringSpec(30, 1.0, mode="clamp")], coefficients, max_new_tokens=12)
    for c, row in zip(coefficients, rows):
        specs = [spec.with_coefficient(c), SteeringSpec(30, c, mode="clamp")]
        (alone,) = engine.run(PROMPT, [specs], max_new_tokens=12)
        assert_same_greedy(engine.model, engine.saes, [specs], [row.token_ids], [alone.token_ids])


def test_sampling_uses_a_seed_per_row(engine):
    a = engine.run(PROMPT, [[], []], max_new_tokens=10, temperature=1.0, seeds=[1, 2])
    b = engine.run(PROMPT, [[]], max_new_tokens=10, temperature=1.0, seed=2)
    # batch 2 vs 1: a draw could only change if it landed within rounding (~1e-6) of a cumulative-probability edge
    assert a[1].token_ids == b[0].token_ids
    assert a[0].token_ids != a[1].token_ids


def test_stop_event_stops_within_two_tokens_and_removes_hooks(gemma2, engine):
    before = hook_ids(gemma2.model)
    stop = threading.Event()
    pieces = 0
    for piece in engine.stream(PROMPT, [[SteeringSpec(7, 1.0)]], max_new_tokens=50, stop_event=stop):
        pieces += 1
        if pieces == 5:
            stop.set()
    assert 5 <= pieces <= 7
    assert hook_ids(gemma2.model) == before


def test_an_exception_in_a_hook_reaches_the_consumer_and_no_hook_remains(gemma2, engine, monkeypatch):
    before = hook_ids(gemma2.model)
    calls = {"n": 0}
    original = steering_hooks.HookTables.delta

    def failing(*args):
        calls["n"] += 1
        if calls["n"] == 4:  # the third generated token's forward
            raise RuntimeError("hook blew up")
        return original(*args)

    monkeypatch.setattr(steering_hooks.HookTables, "delta", failing)
    got = []
    with pytest.raises(RuntimeError, match="hook blew up"):
        for piece in engine.stream(PROMPT, [[SteeringSpec(7, 1.0)]], max_new_tokens=20):
            got.append(piece)
    assert len(got) == 3
    assert hook_ids(gemma2.model) == before


def test_one_hook_per_hooked_module(gemma2, saes):
    before = hook_ids(gemma2.model)
    specs = [resolve(SteeringSpec(f, 1.0, mode=m), saes) for f, m in ((1, "add"), (2, "add"), (3, "clamp"), (4, "ablate"))]
    with SteeringHooks(gemma2, [specs]):
        during = hook_ids(gemma2.model)
        added = {name: (len(f) - len(before[name][0]), len(p) - len(before[name][1])) for name, (f, p) in during.items()}
        assert {k: v for k, v in added.items() if v != (0, 0)} == {"model.layers.1": (1, 0), "": (0, 1)}
    assert hook_ids(gemma2.model) == before


def test_bf16_model_with_fp32_sae_keeps_bf16_activations(gemma2_dir, make_sae):
    model = ModelWithHooks.from_pretrained(str(gemma2_dir), dtype="bfloat16")
    manager = SAEManager(model)
    manager.add(make_sae(64, 256, HOOK), name="s")
    assert manager.get("s").sae.W_dec.dtype == torch.float32
    probe = Probe(model.layers[1])
    try:
        (out,) = SteeringEngine(model, manager).run(PROMPT, [[SteeringSpec(7, 3.0), SteeringSpec(9, 1.0, mode="clamp")]], max_new_tokens=3)
    finally:
        probe.remove()
    assert len(out.token_ids) == 3
    assert all(t.dtype == torch.bfloat16 for t in probe.seen)


@pytest.mark.parametrize(
    "make, pattern",
    [
        (lambda: SteeringSpec(256, 1.0), "feature 256 out of range"),
        (lambda: SteeringSpec(3, 1.0, sae="nope"), "no loaded SAE named 'nope'"),
        (lambda: SteeringSpec(3, float("nan")), "finite number"),
        (lambda: SteeringSpec(3, float("inf")), "finite number"),
        (lambda: SteeringSpec(3, 1.0, mode="boost"), "mode must be one of"),
        (lambda: SteeringSpec(3, 1.0, unit="max"), "needs a feature index"),
    ],
)
def test_bad_specs(engine, make, pattern):
    with pytest.raises(InputError, match=pattern):
        list(engine.generate(PROMPT, [make()], max_new_tokens=2))


def test_bad_generation_settings(engine):
    with pytest.raises(InputError, match="max new tokens must be a positive integer"):
        list(engine.generate(PROMPT, [], max_new_tokens=0))
    with pytest.raises(InputError, match="temperature"):
        list(engine.generate(PROMPT, [], temperature=-1))


def test_clamp_needs_a_per_feature_activation(gemma2):
    from sae_lens import TopKSAE, TopKSAEConfig

    cfg = TopKSAEConfig(d_in=64, d_sae=128, k=8)
    cfg.metadata.hook_name = HOOK
    manager = SAEManager(gemma2)
    manager.add(TopKSAE(cfg), name="topk")
    with pytest.raises(InputError, match="clamp/ablate needs a JumpReLU SAE.*topk"):
        resolve(SteeringSpec(3, 1.0, mode="clamp"), manager)
    assert resolve(SteeringSpec(3, 1.0), manager).value == 1.0  # add works on any SAE


def test_spec_parsing_and_json():
    assert SteeringSpec.parse("12:4.5") == SteeringSpec(12, 4.5)
    assert SteeringSpec.parse("layer_6/w/77:-2:clamp") == SteeringSpec(77, -2.0, "clamp", "layer_6/w")
    assert SteeringSpec.parse("3/77:ablate") == SteeringSpec(77, 0.0, "ablate", "3")
    assert SteeringSpec.parse("12:-2e1") == SteeringSpec(12, -20.0) and SteeringSpec.parse("12:.5").coefficient == 0.5
    for bad in ("x:1", "12", "12:abc", "12:1:boost", "12:1_0", "12:\u0661"):  # float() reads `1_0` and Arabic digits
        with pytest.raises(InputError):
            SteeringSpec.parse(bad)
    spec = SteeringSpec(5, 2.0, "clamp", "s", "2:", "raw", False)
    assert SteeringSpec.from_dict(spec.to_dict()) == spec
    with pytest.raises(InputError, match="scope"):
        SteeringSpec(5, 1.0, scope="middle")
