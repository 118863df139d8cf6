"""Why this token? Attribution of a prediction to SAE features (saetui.sae.attribution), checked
against computations written out here by hand: autograd on a hand-made splice, forwards with a
feature removed, a model that is linear after the hook (where attribution is exact), and the state
the model is left in. Also what steering changed: per-token log-probabilities and KL."""

from __future__ import annotations

import json

import pytest
import torch

from saetui.errors import InputError
from saetui.models.synthetic import TINY_ARCHITECTURES
from saetui.sae.attribution import ablation_values, attribute
from saetui.sae.manager import SAEManager

from ..conftest import hook_ids

PROMPT = "The cat sat on the mat and the dog"
HOOK = "blocks.1.hook_resid_post"


def _sae(make_sae, hook: str, seed: int = 0, d_in: int = 64, d_sae: int = 256):
    sae = make_sae(d_in, d_sae, hook)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():  # a different random SAE per seed, still firing sparsely
        w = torch.randn(d_sae, d_in, generator=gen)
        sae.W_dec.copy_(w / w.norm(dim=1, keepdim=True))
        sae.W_enc.copy_(sae.W_dec.T)
        sae.b_dec.copy_(torch.randn(d_in, generator=gen) * 0.05)
    return sae


@pytest.fixture()
def manager(gemma2, make_sae):
    m = SAEManager(gemma2)
    m.add(_sae(make_sae, HOOK), name="one")
    return m


def _module(model, hook):
    point = model.hook_point(hook)
    return model.hook_module(point)


def _tensor(out):
    return out[0] if isinstance(out, tuple) else out


def _replace(out, new):
    return (new, *out[1:]) if isinstance(out, tuple) else new


def hand_attribution(model, loaded, ids, target, versus=None):
    """The issue's splice written out: x = decode(a) + (x - decode(a)).detach(), a a leaf; returns
    a * grad (T, d_sae), the error's e . grad, b_dec . grad and x . grad (sums over positions)."""
    module, side = _module(model, loaded.hook_name)
    assert side == "output"
    sae, box = loaded.sae, {}

    def splice(_m, _args, out):
        x = _tensor(out)
        a = sae.encode(x.detach()).detach().requires_grad_(True)
        d = sae.decode(a)
        new = d + (x - d).detach()
        new.retain_grad()
        box.update(a=a, x=x.detach(), d=d.detach(), new=new)
        return _replace(out, new)

    handle = module.register_forward_hook(splice)
    try:
        logits = model.model(input_ids=ids, use_cache=False).logits[0, -1].float()
    finally:
        handle.remove()
    value = logits[target] - (logits[versus] if versus is not None else 0)
    value.backward()
    a, g = box["a"], box["new"].grad
    x, d = box["x"], box["d"]
    return {"per_pos": (a * a.grad)[0].detach(), "error": float(((x - d) * g).sum()),
            "bias": float((sae.b_dec.detach() * g).sum()), "xg": float((x * g).sum()), "value": float(value.detach())}


def hand_ablation(model, loaded, ids, feature, target, versus=None):
    """value(clean) - value(x - a_f W_dec[f] at every position), from two plain forwards."""
    module, _ = _module(model, loaded.hook_name)
    sae = loaded.sae

    def remove(_m, _args, out):
        x = _tensor(out)
        a_f = sae.encode(x)[..., feature]
        return _replace(out, x - a_f[..., None] * sae.W_dec[feature])

    def value(hooked):
        handle = module.register_forward_hook(remove) if hooked else None
        try:
            with torch.no_grad():
                logits = model.model(input_ids=ids, use_cache=False).logits[0, -1].float()
        finally:
            if handle is not None:
                handle.remove()
        return float(logits[target] - (logits[versus] if versus is not None else 0))

    return value(False) - value(True)


def _ids(model, prompt=PROMPT):
    return model.tokenize(prompt).input_ids[:1]


# ---------------------------------------------------------------------- exactness
def test_attribution_equals_a_times_grad_of_a_hand_written_splice(gemma2, manager):
    loaded = manager.get("one")
    ids = _ids(gemma2)
    result = attribute(gemma2, [loaded], PROMPT, top_k=loaded.d_sae, verify=0)
    hand = hand_attribution(gemma2, loaded, ids, result.target.id)
    per_pos = hand["per_pos"]
    want = per_pos.sum(0)
    assert result.position == ids.shape[1] - 1 and result.target.id == int(gemma2.model(ids).logits[0, -1].argmax())
    got = {f.feature: f for f in result.saes[0].features}
    assert len(got) == int((want != 0).sum()) > 5, "every feature with a non-zero attribution is listed"
    for f, fa in got.items():
        assert fa.attribution == pytest.approx(float(want[f]), abs=1e-5)
        assert [p for p, _ in fa.positions] == per_pos[:, f].nonzero().flatten().tolist()
        for p, share in fa.positions:
            assert share == pytest.approx(float(per_pos[p, f]), abs=1e-5)
    sae_result = result.saes[0]
    assert sae_result.error == pytest.approx(hand["error"], abs=1e-5)
    assert sae_result.bias == pytest.approx(hand["bias"], abs=1e-5)
    # features + error + decoder bias = x . grad: the whole first-order split of the hooked activation
    total = sum(f.attribution for f in sae_result.features) + sae_result.error + sae_result.bias
    assert total == pytest.approx(hand["xg"], abs=1e-4)
    assert result.value == pytest.approx(hand["value"], abs=1e-5) and result.value == result.target.logit
    # sorted by |attribution|, activation the max over positions
    mags = [abs(f.attribution) for f in sae_result.features]
    assert mags == sorted(mags, reverse=True)
    with torch.no_grad():
        lat = loaded.sae.encode(gemma2.model(ids, output_hidden_states=True).hidden_states[2][0])
    for f in sae_result.features[:5]:
        assert f.activation == pytest.approx(float(lat[:, f.feature].max()), abs=1e-5)


def test_ablation_equals_an_independent_forward_with_the_feature_removed(gemma2, manager):
    loaded = manager.get("one")
    ids = _ids(gemma2)
    result = attribute(gemma2, [loaded], PROMPT, top_k=8, verify=5)
    verified = [f for f in result.saes[0].features if f.ablation is not None]
    assert [f.feature for f in verified] == [f.feature for f in result.saes[0].features[:5]]
    for f in verified:
        assert f.ablation == pytest.approx(hand_ablation(gemma2, loaded, ids, f.feature, result.target.id), abs=1e-5)
    # the widened batch and the plain one agree
    rows = [(loaded, f.feature) for f in verified]
    wide = ablation_values(gemma2, ids, rows, result.target.id, widen=True)
    plain = ablation_values(gemma2, ids, rows, result.target.id, widen=False)
    assert wide == pytest.approx(plain, abs=1e-5)


def test_position_and_versus(gemma2, manager):
    loaded = manager.get("one")
    ids = _ids(gemma2)
    at = 4
    top = int(gemma2.model(ids[:, : at + 1]).logits[0, -1].argmax())
    other = (top + 7) % 300
    result = attribute(gemma2, [loaded], PROMPT, position=at, versus=other, top_k=loaded.d_sae, verify=3)
    assert result.position == at and result.target.id == top and result.versus.id == other
    assert result.value == pytest.approx(result.target.logit - result.versus.logit, abs=1e-5)
    hand = hand_attribution(gemma2, loaded, ids[:, : at + 1], top, other)
    want = hand["per_pos"].sum(0)
    for f in result.saes[0].features:
        assert f.attribution == pytest.approx(float(want[f.feature]), abs=1e-5)
        assert all(p <= at for p, _ in f.positions)
        if f.ablation is not None:
            assert f.ablation == pytest.approx(hand_ablation(gemma2, loaded, ids[:, : at + 1], f.feature, top, other), abs=1e-5)
    assert result.saes[0].error == pytest.approx(hand["error"], abs=1e-5)
    # the difference's attribution is the difference of the two logits' attributions
    alone_t = attribute(gemma2, [loaded], PROMPT, position=at - len(ids[0]), target=top, top_k=loaded.d_sae, verify=0)
    alone_v = attribute(gemma2, [loaded], PROMPT, position=at, target=other, top_k=loaded.d_sae, verify=0)
    t = {f.feature: f.attribution for f in alone_t.saes[0].features}
    v = {f.feature: f.attribution for f in alone_v.saes[0].features}
    for f in result.saes[0].features:
        assert f.attribution == pytest.approx(t.get(f.feature, 0) - v.get(f.feature, 0), abs=1e-5)
    # a text target is the same as its id
    cat = gemma2.tokenizer.encode(" the", add_special_tokens=False)
    assert len(cat) == 1
    by_text = attribute(gemma2, [loaded], PROMPT, position=at, target=" the", verify=0)
    assert by_text.target.id == cat[0] and by_text.to_dict() == attribute(gemma2, [loaded], PROMPT, position=at, target=cat[0], verify=0).to_dict()


def test_predictions_are_the_models_top_next_tokens_and_only_in_the_json_when_asked(gemma2, manager):
    loaded = manager.get("one")
    ids = _ids(gemma2)
    at = 4
    with torch.no_grad():
        logits = gemma2.model(ids[:, : at + 1]).logits[0, -1].float()
    probs = logits.softmax(-1)
    result = attribute(gemma2, [loaded], PROMPT, position=at, verify=0, predictions=5)
    assert [p.id for p in result.predictions] == probs.topk(5).indices.tolist()  # the clean model's ranking
    assert result.predictions[0].id == result.target.id
    for p in result.predictions:
        assert p.prob == pytest.approx(float(probs[p.id]), abs=1e-5) and p.logit == pytest.approx(float(logits[p.id]), abs=1e-4)
        assert p.text == gemma2.token_texts([p.id])[0]
    assert "predictions" in result.to_dict()
    plain = attribute(gemma2, [loaded], PROMPT, position=at, verify=0)
    assert plain.predictions is None and "predictions" not in plain.to_dict()  # `attribute --json` unchanged


@pytest.mark.parametrize("attribution, ablation, factor, kind, push", [
    (1.0, 2.5, 3.0, None, 1),      # same sign, within the factor
    (1.0, 3.5, 3.0, "size", 1),    # the measurement is more than 3x the estimate
    (-2.0, -0.5, 3.0, "size", -1),  # the estimate is more than 3x the measurement
    (-0.7, 0.4, 3.0, "sign", 1),   # attribution says down, zeroing it lowers the value: it pushes up
    (0.7, -0.4, 100.0, "sign", -1),
    (0.5, 0.0, 3.0, "size", 1),    # measured no effect at all: flagged, attribution's sign kept
    (-0.5, None, 3.0, None, -1),   # not verified: nothing to compare, attribution's sign
])
def test_disagreement_and_push_sign(attribution, ablation, factor, kind, push):
    from saetui.sae.attribution import FeatureAttribution

    f = FeatureAttribution(7, attribution, 1.0, ablation, [])
    assert f.disagreement(factor) == kind and f.push_sign() == push


def test_several_saes_at_once_equal_each_alone(gemma2, make_sae):
    manager = SAEManager(gemma2)
    hooks = ["blocks.0.hook_resid_post", "blocks.1.hook_resid_pre", "blocks.2.hook_mlp_out", "blocks.2.hook_resid_post"]
    for i, hook in enumerate(hooks):
        manager.add(_sae(make_sae, hook, seed=i + 1), name=f"s{i}")
    saes = list(manager)
    together = attribute(gemma2, saes, PROMPT, top_k=12, verify=12)
    assert [s.hook for s in together.saes] == hooks
    verified = sum(f.ablation is not None for s in together.saes for f in s.features)
    assert verified == 12
    for loaded, got in zip(saes, together.saes):
        alone = attribute(gemma2, [loaded], PROMPT, top_k=12, verify=12)
        assert [f.feature for f in got.features] == [f.feature for f in alone.saes[0].features]
        for a, b in zip(got.features, alone.saes[0].features):
            assert a.attribution == pytest.approx(b.attribution, abs=1e-5)
            if a.ablation is not None:  # other SAEs untouched: the same as with this SAE alone
                assert a.ablation == pytest.approx(b.ablation, abs=1e-5)
        assert got.error == pytest.approx(alone.saes[0].error, abs=1e-5)
    # the global top-12 by |attribution| are the verified ones
    everything = sorted((abs(f.attribution), f.ablation is not None) for s in together.saes for f in s.features)
    assert all(v for _, v in everything[-12:]) and not any(v for _, v in everything[:-12])


class _LinearLayer(torch.nn.Module):
    """A decoder layer that is affine in its input and mixes positions causally (running sums)."""

    def __init__(self, d: int, seed: int) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.mix = torch.nn.Linear(d, d)
        with torch.no_grad():
            self.mix.weight.copy_(torch.randn(d, d, generator=gen) * 0.1)
            self.mix.bias.copy_(torch.randn(d, generator=gen) * 0.1)

    def forward(self, hidden_states, *args, **kwargs):
        return hidden_states + self.mix(hidden_states.cumsum(1))


def test_attribution_equals_ablation_where_the_model_is_linear_after_the_hook(gemma2_dir, make_sae):
    """Layers 2 and 3 replaced by affine, position-mixing layers, no final norm, no logit softcap: the
    target is affine in the activations at layers 1 and 2, so a_f * gradient is the ablation effect."""
    from saetui.models.model import ModelWithHooks

    model = ModelWithHooks.from_pretrained(str(gemma2_dir))
    model.model.config.final_logit_softcapping = None
    model.model.model.norm = torch.nn.Identity()
    for i in (2, 3):
        model.layers[i] = _LinearLayer(model.d_model, seed=i)
    manager = SAEManager(model)
    manager.add(_sae(make_sae, "blocks.1.hook_resid_post", seed=3), name="early")
    manager.add(_sae(make_sae, "blocks.2.hook_resid_post", seed=4), name="late")
    ids = _ids(model)
    top = int(model.model(ids).logits[0, -1].argmax())
    for versus in (None, (top + 11) % 300):
        result = attribute(model, list(manager), PROMPT, versus=versus, top_k=10, verify=20)
        checked = [f for s in result.saes for f in s.features]
        assert len(checked) == 20 and all(f.ablation is not None for f in checked)
        for f in checked:
            assert f.ablation == pytest.approx(f.attribution, rel=1e-4, abs=1e-4)
        # and the attribution still equals the hand-written splice of each SAE
        for loaded, got in zip(manager, result.saes):
            want = hand_attribution(model, loaded, ids, result.target.id, versus)["per_pos"].sum(0)
            for f in got.features:
                assert f.attribution == pytest.approx(float(want[f.feature]), abs=1e-5)


def test_topk_sae_is_attributed_through_its_full_encode(gemma2):
    import sae_lens

    cfg = sae_lens.TopKSAEConfig(d_in=64, d_sae=256, k=8, dtype="float32", device="cpu")
    cfg.metadata.hook_name = HOOK
    sae = sae_lens.TopKSAE(cfg)
    with torch.no_grad():
        for p in sae.parameters():
            p.copy_(torch.randn(p.shape, generator=torch.Generator().manual_seed(5)) * 0.2)
    loaded = SAEManager(gemma2).add(sae, name="topk")
    ids = _ids(gemma2)
    result = attribute(gemma2, [loaded], PROMPT, top_k=256, verify=3)
    want = hand_attribution(gemma2, loaded, ids, result.target.id)["per_pos"].sum(0)
    assert result.saes[0].features
    for f in result.saes[0].features:
        assert f.attribution == pytest.approx(float(want[f.feature]), abs=1e-5)
        if f.ablation is not None:
            assert f.ablation == pytest.approx(hand_ablation(gemma2, loaded, ids, f.feature, result.target.id), abs=1e-5)


@pytest.mark.parametrize("arch", TINY_ARCHITECTURES)
def test_widened_ablation_batch_equals_the_plain_batch_on_every_family(model_dirs, make_sae, arch):
    from saetui.models.model import ModelWithHooks

    model = ModelWithHooks.from_pretrained(str(model_dirs(arch)))
    manager = SAEManager(model)
    mlp = manager.add(_sae(make_sae, "blocks.2.hook_mlp_out", seed=1), name="mlp")
    res = manager.add(_sae(make_sae, "blocks.1.hook_resid_post", seed=2), name="res")
    pre = manager.add(_sae(make_sae, "blocks.1.hook_resid_pre", seed=3), name="pre")
    ids = _ids(model)
    rows = [(res, 3), (mlp, 5), (pre, 7), (res, 11), (mlp, 0)]
    for loaded, _ in rows:  # make sure these features fire, so their removal changes something
        with torch.no_grad():
            loaded.sae.b_enc[[3, 5, 7, 11, 0]] = 5.0
    wide = ablation_values(model, ids, rows, 10, 20, widen=True)
    plain = ablation_values(model, ids, rows, 10, 20, widen=False)
    assert wide == pytest.approx(plain, abs=1e-5)
    assert len(set(round(v, 4) for v in plain)) > 1


# ---------------------------------------------------------------------- state left behind
def _state(model, saes):
    params = [*model.model.parameters(), *(p for s in saes for p in s.sae.parameters())]
    return hook_ids(model.model), [p.requires_grad for p in params], [p.grad is None for p in params]


def test_no_hooks_grads_or_flags_left_and_outputs_equal_a_fresh_model(gemma2_dir, make_sae):
    from saetui.models.model import ModelWithHooks

    model = ModelWithHooks.from_pretrained(str(gemma2_dir))
    fresh = ModelWithHooks.from_pretrained(str(gemma2_dir))
    manager = SAEManager(model)
    manager.add(_sae(make_sae, HOOK), name="one")
    manager.add(_sae(make_sae, "blocks.2.hook_mlp_out", seed=2), name="two")
    saes = list(manager)
    next(model.model.parameters()).requires_grad_(False)  # a mix of flags, restored as found
    before = _state(model, saes)
    assert any(before[1]) and not all(before[1])
    attribute(model, saes, PROMPT, verify=5)
    assert _state(model, saes) == before
    ids = _ids(model)
    with torch.no_grad():  # the same weights, the same input: the same kernels, so the same bits unless a change was left
        assert torch.equal(model.model(ids).logits, fresh.model(ids).logits)

    # errors: after the forward (versus = the top prediction), in a splice hook, in the ablation batch
    top = attribute(model, saes, PROMPT, verify=0).target.id
    with pytest.raises(InputError, match="top prediction itself"):
        attribute(model, saes, PROMPT, versus=top)
    assert _state(model, saes) == before
    def broken(original, where):
        def encode(x):
            if where == "attribution" or torch.is_inference_mode_enabled():  # the ablation batch runs in inference mode
                raise RuntimeError("encode broke")
            return original(x)
        return encode

    for where in ("attribution", "ablation"):
        for s in saes:
            s.sae.encode = broken(type(s.sae).encode.__get__(s.sae), where)
        try:
            with pytest.raises(RuntimeError, match="encode broke"):
                attribute(model, saes, PROMPT, verify=5)
        finally:
            for s in saes:
                del s.sae.encode
        assert _state(model, saes) == before
    with torch.no_grad():
        assert torch.equal(model.model(ids).logits, fresh.model(ids).logits)


def test_works_inside_no_grad_and_inference_mode(gemma2, manager):
    want = attribute(gemma2, list(manager), PROMPT, verify=2).to_dict()
    with torch.no_grad():
        assert attribute(gemma2, list(manager), PROMPT, verify=2).to_dict() == want
    with torch.inference_mode():
        assert attribute(gemma2, list(manager), PROMPT, verify=2).to_dict() == want


# ---------------------------------------------------------------------- bad inputs
@pytest.mark.parametrize("kwargs, pattern", [
    (dict(position=99), "position 99 out of range: the prompt has"),
    (dict(position=-99), "position -99 out of range"),
    (dict(target=10**6), "target id 1000000 out of range"),
    (dict(target=-1), "target id -1 out of range"),
    (dict(target="xyzzy plugh"), "tokens ("),
    (dict(target=""), "target is empty"),
    (dict(versus="xyzzy plugh"), "versus 'xyzzy plugh' is"),
    (dict(target=5, versus=5), "versus is the target itself"),
    (dict(top_k=0), "top-k must be at least 1"),
    (dict(verify=-1), "verify must be at least 0"),
    (dict(target=1.5), "token id or a token's text"),
])
def test_bad_inputs_are_one_line_errors(gemma2, manager, kwargs, pattern):
    with pytest.raises(InputError) as exc:
        attribute(gemma2, list(manager), PROMPT, **kwargs)
    assert pattern in str(exc.value) and "\n" not in str(exc.value)


def test_a_transcoder_is_refused_in_one_line(gemma2):
    import sae_lens

    cfg = sae_lens.TranscoderConfig(d_in=64, d_sae=32, d_out=64, dtype="float32", device="cpu", apply_b_dec_to_input=False)
    cfg.metadata.hook_name = HOOK
    cfg.metadata.hook_name_out = "blocks.1.hook_mlp_out"
    loaded = SAEManager(gemma2).add(sae_lens.Transcoder(cfg), name="tc")
    with pytest.raises(InputError, match="cannot attribute through SAE tc \\(transcoder\\)"):
        attribute(gemma2, [loaded], PROMPT)


# ---------------------------------------------------------------------- session and CLI (the demo)
def test_session_attribute_json_shape_and_cli(capsys):
    from saetui.cli import main
    from saetui.session import Session

    session = Session()
    session.load()
    result = session.attribute("The capital of France is", top_k=5, verify=3)
    data = result.to_dict()
    assert set(data) >= {"prompt", "position", "target", "versus", "saes"}
    assert set(data["target"]) == {"id", "text", "logit", "prob"} and data["target"]["text"] == " Paris"
    assert data["versus"] is None
    sae = data["saes"][0]
    assert set(sae) >= {"name", "hook", "error", "features"}
    assert set(sae["features"][0]) == {"feature", "attribution", "activation", "ablation", "positions"}
    assert sum(f["ablation"] is not None for s in data["saes"] for f in s["features"]) == 3  # the top 3 over all SAEs
    assert json.loads(json.dumps(data)) == data
    # it takes the session lock, like analyze: a call from another thread waits for the holder
    import threading

    done = threading.Event()
    worker = threading.Thread(target=lambda: (session.attribute("The cat", verify=0), done.set()))
    with session.lock:
        worker.start()
        assert not done.wait(0.5)
    worker.join(120)
    assert done.is_set()

    code = main(["attribute", "--prompt", "The capital of France is", "--top-k", "5", "--verify", "3", "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert json.loads(out) == data  # the CLI prints the Session's result
    code = main(["attribute", "--prompt", "The capital of France is", "--target", str(data["target"]["id"]),
                 "--versus", " Tokyo", "--top-k", "3", "--verify", "2"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "' Paris'" in out and "versus ' Tokyo'" in out and "error term" in out


# ---------------------------------------------------------------------- what steering changed
@pytest.fixture()
def engine(gemma2, make_sae):
    from saetui.steering.generate import SteeringEngine

    manager = SAEManager(gemma2)
    manager.add(_sae(make_sae, HOOK), name="one")
    return SteeringEngine(gemma2, manager)


def _teacher_forced_logprobs(model, prompt_ids, tokens, rows=None):
    """log p(token i | prompt + tokens[:i]) from one plain forward (with steering hooks if rows)."""
    from saetui.steering.hooks import SteeringHooks

    ids = torch.tensor([prompt_ids + tokens[:-1]])
    with torch.no_grad():
        if rows is None:
            logits = model.model(input_ids=ids).logits[0]
        else:
            with SteeringHooks(model, rows, prompt_len=len(prompt_ids)):
                logits = model.model(input_ids=ids).logits[0]
    logp = logits[len(prompt_ids) - 1:].float().log_softmax(-1)
    return logp, logp.gather(-1, torch.tensor(tokens)[:, None])[:, 0]


def test_logprobs_equal_an_independent_forward_and_kl_is_zero_at_coefficient_zero(gemma2, engine):
    from saetui.steering.spec import SteeringSpec, resolve

    spec = SteeringSpec(feature=3, coefficient=8.0, sae="one")
    rows = [[], [spec], [spec.with_coefficient(0.0)]]
    outputs = engine.run("The cat", rows, max_new_tokens=8)
    kl = engine.kl("The cat", rows, [o.token_ids for o in outputs])
    assert kl[0] is None and len(kl[1]) == len(outputs[1].token_ids) and len(kl[2]) == len(outputs[2].token_ids)
    assert kl[2] == [0.0] * len(kl[2])  # coefficient 0 changes nothing
    assert max(kl[1]) > 1e-3 and min(kl[1]) >= 0
    prompt_ids = gemma2.tokenize("The cat").input_ids[0].tolist()
    resolved = [resolve(spec, engine.saes)]
    for out, row in zip(outputs, [None, [resolved], None]):
        _, want = _teacher_forced_logprobs(gemma2, prompt_ids, out.token_ids, row)
        assert out.logprobs == pytest.approx(want.tolist(), abs=1e-4)
    # KL from two separate forwards
    p_steer, _ = _teacher_forced_logprobs(gemma2, prompt_ids, outputs[1].token_ids, [resolved])
    p_base, _ = _teacher_forced_logprobs(gemma2, prompt_ids, outputs[1].token_ids)
    want = (p_steer.exp() * (p_steer - p_base)).sum(-1)
    assert kl[1] == pytest.approx(want.tolist(), abs=1e-4)


def test_steer_json_rows_carry_logprobs_and_kl(capsys):
    from saetui.cli import main

    from tests.demo_facts import color_feature

    sae, feature = color_feature()
    code = main(["steer", "--prompt", "Tom went home.", "--feature", f"{sae}/{feature}:14", "--compare", "--max-new-tokens", "5", "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    data = json.loads(out)
    base, steered = data["baseline"], data["steered"]
    assert "kl" not in base and len(base["logprobs"]) == len(base["token_ids"])
    assert len(steered["logprobs"]) == len(steered["kl"]) == len(steered["token_ids"])
    assert all(lp <= 0 for lp in base["logprobs"] + steered["logprobs"]) and max(steered["kl"]) > 0.1
    code = main(["steer", "--prompt", "Tom went home.", "--feature", f"{sae}/{feature}:14", "--sweep", "0,14", "--max-new-tokens", "4", "--json"])
    data = json.loads(capsys.readouterr()[0])
    zero, full = data["variants"]
    assert zero["kl"] == [0.0] * len(zero["token_ids"]) and max(full["kl"]) > 0.1
