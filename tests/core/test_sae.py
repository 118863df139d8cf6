"""SAEManager loading checks and SAEAnalyzer exactness against sae-lens."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from saetui.activations.collector import ActivationCollector
from saetui.errors import SAELoadError
from saetui.sae.analyzer import SAEAnalyzer
from saetui.sae.manager import SAEManager
from saetui.sae.pretrained import guess_hook, list_registry
from tests.tolerance import assert_close_reduction, assert_ranked_up_to_rounding, path_length, reduction_bound

HOOK = "blocks.1.hook_resid_post"


@pytest.fixture()
def manager(gemma2, sae_dir):
    m = SAEManager(gemma2)
    m.load(str(sae_dir), name="res1")
    return m


def test_latents_and_topk_equal_sae_lens(gemma2, manager):
    prompt = "The capital of France is Paris"
    result = SAEAnalyzer(gemma2, manager).analyze(prompt, top_k=8)
    sae = manager.get("res1").sae
    x = ActivationCollector(gemma2).collect(prompt, HOOK)[HOOK][0]
    with torch.inference_mode():
        expected = sae.encode(x)  # (T, d_sae)
    got = SAEAnalyzer(gemma2, manager).latents(prompt)
    assert torch.equal(got, expected)  # the same encode of the same (T, d) activations: the same bits
    vals, idx = expected.topk(8, dim=-1)
    res = result.sae("res1")
    assert len(res.per_token) == x.shape[0]
    for t, feats in enumerate(res.per_token):
        want = [(int(f), float(v)) for f, v in zip(idx[t], vals[t]) if v > 0]
        assert feats == want
    # Prompt summary: max over non-special tokens (BOS excluded), descending.
    masked = expected[1:].max(0)
    top_vals, top_idx = masked.values.topk(8)
    assert [f for f, _, _ in res.top_features] == top_idx.tolist()
    for f, a, pos in res.top_features:
        assert pos >= 1 and a == pytest.approx(float(expected[pos, f]))


def test_special_tokens_count_only_when_asked(gemma2, manager):
    analyzer = SAEAnalyzer(gemma2, manager)
    res = analyzer.analyze("Hi", top_k=200).sae("res1")
    assert all(pos != 0 for _, _, pos in res.top_features)
    with_bos = analyzer.analyze("Hi", top_k=200, include_special=True).sae("res1")
    assert any(pos == 0 for _, _, pos in with_bos.top_features)


def test_special_token_mid_prompt_is_left_out_of_the_summary(gemma2, manager):
    """A special token between ordinary ones (not one run of counted rows) never becomes a top example."""
    prompt = "The cat<eos> sat on the mat"
    analyzer = SAEAnalyzer(gemma2, manager)
    result = analyzer.analyze(prompt, top_k=300)
    special = [t.index for t in result.tokens if t.special]
    assert len(special) == 2 and special[0] == 0 and special[1] > 1
    lat = analyzer.latents(prompt)
    keep = [t.index for t in result.tokens if not t.special]
    best, where = lat[keep].max(0)
    got = {f: (a, pos) for f, a, pos in result.sae("res1").top_features}
    want = {f: (float(best[f]), keep[int(where[f])]) for f in range(lat.shape[1]) if best[f] > 0}
    assert got.keys() == want.keys()
    for f, (a, pos) in got.items():
        assert a == pytest.approx(want[f][0]) and pos == want[f][1]


def test_reconstruction_stats(gemma2, manager):
    prompt = "One two three four five"
    res = SAEAnalyzer(gemma2, manager).analyze(prompt).sae("res1")
    sae = manager.get("res1").sae
    x = ActivationCollector(gemma2).collect(prompt, HOOK)[HOOK][0]
    with torch.inference_mode():
        lat = sae.encode(x)
        xh = sae.decode(lat)
    t = 2
    mean = x[1:].mean(0)  # non-special tokens
    assert res.reconstruction[t].l0 == int((lat[t] > 0).sum())
    assert res.reconstruction[t].fvu == pytest.approx(float((x[t] - xh[t]).pow(2).sum() / (x[t] - mean).pow(2).sum()), rel=1e-5)
    assert res.reconstruction[t].cosine == pytest.approx(float(torch.cosine_similarity(x[t], xh[t], dim=0)), rel=1e-5)
    total = (x[1:] - xh[1:]).pow(2).sum() / (x[1:] - mean).pow(2).sum()
    assert res.fvu == pytest.approx(float(total), rel=1e-5)
    # BOS is not in the mean, so it has no FVU against it (it changed with the rest of the prompt); L0 and cosine stay
    assert res.reconstruction[0].fvu is None and res.reconstruction[0].cosine is not None
    assert res.reconstruction[0].l0 == int((lat[0] > 0).sum())


def test_batch_equals_single_prompts(gemma2, manager):
    analyzer = SAEAnalyzer(gemma2, manager)
    prompts = ["The cat sat on the mat", "Hi", "Red green blue"]
    batched = analyzer.analyze_batch(prompts, top_k=5)
    loaded = manager.get("res1")
    for p, b in zip(prompts, batched):
        single = analyzer.analyze(p, top_k=5)
        assert [t.id for t in single.tokens] == [t.id for t in b.tokens]
        # 3 padded prompts per forward vs 1: other matmul shapes, so each latent is rounding apart (tests/tolerance.py)
        lat = analyzer.latents(p)
        bound = reduction_bound(float(lat.abs().max()), path_length(gemma2, HOOK, loaded.sae.cfg.d_in), torch.float32)
        for t, b_tok in enumerate(b.saes[0].per_token):
            feats = [f for f, _ in b_tok]
            assert_ranked_up_to_rounding(feats, lat[t], bound, k=5, floor=0.0, what=f"{p!r} token {t}")
            assert_close_reduction(torch.tensor([a for _, a in b_tok]), lat[t, feats], bound=bound, what=f"{p!r} token {t}")


def test_predictions_only_when_asked(gemma2, manager):
    analyzer = SAEAnalyzer(gemma2, manager)
    assert analyzer.analyze("The cat").predictions is None
    res = analyzer.analyze("The cat", predictions=3)
    with torch.inference_mode():
        batch = gemma2.tokenize("The cat")
        probs = gemma2.model(input_ids=batch.input_ids).logits[0].softmax(-1)
    assert len(res.predictions) == len(res.tokens)
    top = probs[-1].topk(3)
    assert [t for t, _, _ in res.predictions[-1]] == top.indices.tolist()
    assert res.predictions[-1][0][2] == pytest.approx(float(top.values[0]))


def test_result_is_json(gemma2, manager):
    data = json.loads(SAEAnalyzer(gemma2, manager).analyze("The cat").to_json())
    assert set(data) >= {"tokens", "saes"}
    assert data["tokens"][0] == {"index": 0, "id": 1, "text": "<bos>", "special": True}


def test_several_saes_at_several_hooks(gemma2, make_sae):
    manager = SAEManager(gemma2)
    manager.add(make_sae(64, 128, "blocks.0.hook_resid_post", seed=1), name="a")
    manager.add(make_sae(64, 256, "blocks.2.hook_mlp_out", seed=2), name="b")
    res = SAEAnalyzer(gemma2, manager).analyze("The cat sat")
    assert [(s.name, s.hook, s.d_sae) for s in res.saes] == [("a", "blocks.0.hook_resid_post", 128), ("b", "blocks.2.hook_mlp_out", 256)]
    assert manager.get(2).name == "b" and manager.get("blocks.0.hook_resid_post").name == "a"


# ---------------------------------------------------------------------- loading and checks
def test_gemma_scope_params_npz(gemma2, make_sae, tmp_path):
    sae = make_sae(64, 128, HOOK)
    folder = tmp_path / "layer_1" / "width_16k" / "average_l0_50"
    folder.mkdir(parents=True)
    np.savez(folder / "params.npz", **{k: v.detach().numpy() for k, v in
             {"W_enc": sae.W_enc, "W_dec": sae.W_dec, "b_enc": sae.b_enc, "b_dec": sae.b_dec, "threshold": sae.threshold}.items()})
    loaded = SAEManager(gemma2).load(str(folder))
    assert loaded.hook_name == HOOK and loaded.sae.cfg.apply_b_dec_to_input is False
    x = torch.randn(5, 64)
    # Gemma Scope does not subtract b_dec on the way in; with b_dec=0 both agree exactly.
    assert torch.equal(loaded.sae.encode(x), sae.encode(x))
    override = SAEManager(gemma2).load(f"{folder / 'params.npz'}@blocks.2.hook_resid_post")
    assert override.layer == 2


def test_d_in_mismatch(gemma2, make_sae, tmp_path):
    make_sae(32, 64, HOOK).save_model(tmp_path / "narrow")
    with pytest.raises(SAELoadError, match="expects d_in=32 .* is 64 wide"):
        SAEManager(gemma2).load(str(tmp_path / "narrow"))


def test_hook_layer_out_of_range(gemma2, make_sae, tmp_path):
    make_sae(64, 64, "blocks.12.hook_resid_post").save_model(tmp_path / "deep")
    with pytest.raises(SAELoadError, match="layer 12 out of range"):
        SAEManager(gemma2).load(str(tmp_path / "deep"))


def test_non_finite_weights_refused(gemma2, make_sae, tmp_path):
    sae = make_sae(64, 64, HOOK)
    with torch.no_grad():
        sae.W_dec[3, 4] = float("nan")
    sae.save_model(tmp_path / "nan")
    with pytest.raises(SAELoadError, match="non-finite values .* W_dec"):
        SAEManager(gemma2).load(str(tmp_path / "nan"))


def test_corrupt_config_and_weights(gemma2, sae_dir):
    (sae_dir / "sae_weights.safetensors").write_bytes(b"\x00garbage" * 10)
    with pytest.raises(SAELoadError, match="corrupt SAE at"):
        SAEManager(gemma2).load(str(sae_dir))
    (sae_dir / "cfg.json").write_text("{not json")
    with pytest.raises(SAELoadError, match="corrupt SAE config"):
        SAEManager(gemma2).load(str(sae_dir))


def test_activation_normalisation_folded_or_refused(gemma2, make_sae, tmp_path):
    sae = make_sae(64, 128, HOOK)
    sae.save_model(tmp_path / "norm")
    cfg = json.loads((tmp_path / "norm" / "cfg.json").read_text())
    cfg["normalize_activations"] = "expected_average_only_in"
    (tmp_path / "norm" / "cfg.json").write_text(json.dumps(cfg))
    with pytest.raises(SAELoadError, match="no norm_scaling_factor"):
        SAEManager(gemma2).load(str(tmp_path / "norm"))
    cfg["norm_scaling_factor"] = 0.25
    (tmp_path / "norm" / "cfg.json").write_text(json.dumps(cfg))
    folded = SAEManager(gemma2).load(str(tmp_path / "norm")).sae
    assert folded.cfg.normalize_activations == "none"
    x = torch.randn(4, 64)
    # The trained SAE saw x * factor; the folded one takes raw x and gives the same features.
    torch.testing.assert_close(folded.encode(x), sae.encode(x * 0.25), atol=1e-5, rtol=1e-5)
    cfg["normalize_activations"] = "covariance_whitening"
    (tmp_path / "norm" / "cfg.json").write_text(json.dumps(cfg))
    with pytest.raises(SAELoadError, match="whitened"):
        SAEManager(gemma2).load(str(tmp_path / "norm"))


def test_registry_names_are_checked_offline_with_suggestions(gemma2):
    with pytest.raises(SAELoadError, match="did you mean gemma-scope-2b-pt-res-canonical"):
        SAEManager(gemma2).load("gemma-scope-2b-pt-res-canonicl/layer_1/width_16k/canonical")
    with pytest.raises(SAELoadError, match="did you mean layer_12/width_16k/canonical"):
        SAEManager(gemma2).load("gemma-scope-2b-pt-res-canonical/layer_12/width_16k/canonicall")


def test_registry_sae_not_cached_offline_is_one_line(gemma2):
    with pytest.raises(SAELoadError, match="HF_HUB_OFFLINE is set and SAE gemma-scope-2b-pt-res-canonical/layer_1") as err:
        SAEManager(gemma2).load("gemma-scope-2b-pt-res-canonical/layer_1/width_16k/canonical")
    assert "\n" not in str(err.value) and "saetui download --sae gemma-scope-2b-pt-res-canonical" in str(err.value)


def test_registry_model_mismatch_warns(gemma2, make_sae, monkeypatch):
    import saetui.sae.manager as manager_mod

    monkeypatch.setattr(manager_mod, "_load_registry", lambda release, sae_id, dtype: make_sae(64, 64, HOOK))
    with pytest.warns(UserWarning, match="trained on gemma-2-2b"):
        loaded = SAEManager(gemma2).load("gemma-scope-2b-pt-res-canonical/layer_1/width_16k/canonical")
    assert loaded.neuronpedia_url(7) == "https://www.neuronpedia.org/gemma-2-2b/1-gemmascope-res-16k/7"


def test_registry_listing():
    entries = list_registry("google/gemma-2-2b")
    canonical = [e for e in entries if e.release == "gemma-scope-2b-pt-res-canonical"]
    assert len(canonical) >= 26
    first = canonical[0]
    assert (first.hook, first.width, first.neuronpedia_id) == ("blocks.0.hook_resid_post", 16384, "gemma-2-2b/0-gemmascope-res-16k")
    assert all(e.model == "gemma-2-2b" for e in entries)
    assert any(e.release == "gpt2-small-res-jb" for e in list_registry("gpt2"))
    assert guess_hook("gpt2-small-res-jb", "blocks.3.hook_resid_pre", "x") == "blocks.3.hook_resid_pre"


def test_a_truncated_params_npz_is_one_error_and_leaves_no_file_open(gemma2, make_sae, tmp_path):
    import gc
    import warnings

    import numpy as np

    from saetui.errors import SaetuiError

    sae = make_sae(64, 32, HOOK)
    folder = tmp_path / "layer_1"
    folder.mkdir()
    np.savez(folder / "params.npz", **{k: v.detach().numpy() for k, v in
             {"W_enc": sae.W_enc, "W_dec": sae.W_dec, "b_enc": sae.b_enc, "b_dec": sae.b_dec, "threshold": sae.threshold}.items()})
    data = (folder / "params.npz").read_bytes()
    (folder / "params.npz").write_bytes(data[: len(data) // 2])
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with pytest.raises(SaetuiError, match=r"corrupt Gemma Scope SAE .*params\.npz") as info:
            SAEManager(gemma2).load(str(folder / "params.npz"))
        message = str(info.value)
        del info  # its traceback would keep a leaked file object alive past the collection
        gc.collect()
    assert "\n" not in message
    assert not [w for w in seen if issubclass(w.category, ResourceWarning)]


def test_registry_entries_whose_yaml_gives_numbers_are_listed(monkeypatch):
    """sae-lens 6.51's registry has a release whose paths YAML reads as ints (`layer_0: 0`): listed as text."""
    from types import SimpleNamespace

    from saetui.sae import pretrained

    lookup = SimpleNamespace(model="gemma-2-2b", saes_map={"layer_3": 3, 7: "layer_7/width_16k"}, neuronpedia_id={})
    monkeypatch.setattr(pretrained, "_directory", lambda: {"some-clt-per-layer": lookup})
    entries = list_registry("gemma-2-2b")
    assert [(e.sae_id, e.width) for e in entries] == [("layer_3", None), ("7", 16384)]
