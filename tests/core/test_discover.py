"""Discover (issue 12): contrast of two prompt sets, decoder neighbours, spans, steering vectors, several SAEs.

Every ranking is checked against a brute-force computation over per-token latents (one prompt at a
time, no batching); the demo checks use feature categories derived from the demo's own labels.
"""

from __future__ import annotations

import json

import pytest
import torch

from saetui.activations.collector import ActivationCollector
from saetui.errors import InputError
from saetui.inputs import parse_span, read_prompt_set
from saetui.sae.contrast import contrast
from saetui.sae.manager import LoadedSAE, SAEManager
from saetui.sae.neighbours import decoder_neighbours, unit_decoder
from saetui.sae.span import span_features
from saetui.session import Session
from saetui.steering.hooks import SteeringHooks
from saetui.steering.spec import SteeringSpec, resolve
from saetui.steering.vectors import VectorSpec, list_vectors, load_vector, resolve_vector, save_vector
from tests.tolerance import assert_close_reduction, assert_ranked_up_to_rounding, path_length, reduction_bound

A = ["The cat sat on the mat.", "A dog ran home", "Birds sing in the morning light and the sun is warm", "Hi"]
B = ["Paris is the capital of France", "Two plus two is four.", "The stock market fell today"]


@pytest.fixture()
def two_saes(gemma2, make_sae):
    """Two SAEs at two layers and of two widths on the tiny Gemma-2."""
    m = SAEManager(gemma2)
    m.add(make_sae(64, 256, "blocks.1.hook_resid_post", seed=1), name="l1")
    m.add(make_sae(64, 128, "blocks.2.hook_resid_post", seed=2), name="l2")
    return m


def per_prompt_latents(model, loaded, prompts, include_special=False):
    """[(T_i, d_sae)] latents of each prompt's counted tokens, one prompt per forward; and the activations."""
    collector = ActivationCollector(model)
    lats, xs = [], []
    for p in prompts:
        batch = model.tokenize(p)
        x = collector.collect(batch, loaded.hook_name)[loaded.hook_name][0]
        keep = torch.ones(x.shape[0], dtype=torch.bool) if include_special else ~batch.special_mask[0].cpu()
        with torch.inference_mode():
            lats.append(loaded.sae.encode(x[keep]))
        xs.append(x[keep])
    return lats, xs


def brute_force(model, loaded, a, b, pool, by, top_k):
    units = []
    for prompts in (a, b):
        lats, _ = per_prompt_latents(model, loaded, prompts)
        units.append((torch.cat(lats) if pool == "mean" else torch.stack([l.amax(0) for l in lats])).double())
    (ua, ub) = units
    diff = ua.mean(0) - ub.mean(0)
    na, nb = len(ua), len(ub)
    pooled = (((na - 1) * ua.var(0) + (nb - 1) * ub.var(0)) / (na + nb - 2)).sqrt()
    effect = torch.where(pooled > 0, diff / pooled, torch.zeros_like(diff))
    score = diff if by == "diff" else effect
    order = score.argsort(descending=True).tolist()
    pos = [f for f in order if score[f] > 0][:top_k]
    neg = [f for f in order[::-1] if score[f] < 0][:top_k][::-1]
    freq = ((ua != 0).double().mean(0), (ub != 0).double().mean(0))
    return pos + neg, diff, effect, ua.mean(0), ub.mean(0), freq


# ---------------------------------------------------------------------- contrast
@pytest.mark.parametrize("pool, by", [("mean", "diff"), ("max", "diff"), ("mean", "effect"), ("max", "effect")])
def test_contrast_equals_brute_force_over_per_token_latents(gemma2, two_saes, pool, by):
    result = contrast(gemma2, two_saes, A, B, top_k=7, pool=pool, by=by, batch_size=2)
    assert [s.name for s in result.saes] == ["l1", "l2"]
    for s in two_saes:
        want, diff, effect, mean_a, mean_b, (fa, fb) = brute_force(gemma2, s, A, B, pool, by, 7)
        got = result.sae(s.name).features
        # contrast runs 2 prompts per forward, brute force one: other matmul shapes, so each latent is rounding
        # apart (b, tests/tolerance.py); a difference of means 2b, an effect d/s (s moves by at most 2b with them)
        b = reduction_bound(max(float(mean_a.abs().max()), float(mean_b.abs().max()), 1.0),
                            path_length(gemma2, s.hook_name, s.sae.cfg.d_in), torch.float32)
        pooled = torch.where(effect != 0, diff / effect, torch.full_like(diff, float("inf")))
        bounds = {"diff": torch.full_like(diff, 2 * b), "effect": 2 * b * (1 + effect.abs()) / pooled}
        score, bound = (diff, bounds["diff"]) if by == "diff" else (effect, bounds["effect"])
        feats = [r.feature for r in got]
        n_pos = sum(1 for f in want if score[f] > 0)
        assert len(feats) == len(want) and n_pos == 7  # both ends full: 7 with A ahead, then B's
        assert_ranked_up_to_rounding(feats[:n_pos], score, bound, k=7, floor=0.0, what=f"{s.name} A ahead")
        assert_ranked_up_to_rounding(feats[n_pos:][::-1], -score, bound, k=7, floor=0.0, what=f"{s.name} B ahead")
        for r in got:
            f = r.feature
            assert_close_reduction(torch.tensor(r.diff), diff[f], bound=bounds["diff"][f], what=f"diff {f}")
            assert_close_reduction(torch.tensor(r.effect), effect[f], bound=bounds["effect"][f], what=f"effect {f}")
            assert (r.mean_a, r.mean_b) == (pytest.approx(float(mean_a[f]), abs=1e-5), pytest.approx(float(mean_b[f]), abs=1e-5))
            assert (r.freq_a, r.freq_b) == (pytest.approx(float(fa[f])), pytest.approx(float(fb[f])))
        scores = [r.diff if by == "diff" else r.effect for r in got]
        assert scores == sorted(scores, reverse=True)
    # the contrast direction: mean hooked activation over A's counted tokens minus B's
    for hook in ("blocks.1.hook_resid_post", "blocks.2.hook_resid_post"):
        loaded = next(s for s in two_saes if s.hook_name == hook)
        xa, xb = (torch.cat(per_prompt_latents(gemma2, loaded, p)[1]) for p in (A, B))
        torch.testing.assert_close(result.directions[hook], xa.mean(0) - xb.mean(0), rtol=1e-5, atol=1e-5)
    assert result.n_prompts == (len(A), len(B))
    assert result.n_tokens == tuple(sum(len(x) for x in per_prompt_latents(gemma2, two_saes.get("l1"), p)[1]) for p in (A, B))
    json.loads(result.to_json())


def test_contrast_does_not_depend_on_batch_size(gemma2, two_saes):
    one = contrast(gemma2, two_saes, A, B, top_k=5, batch_size=1)
    many = contrast(gemma2, two_saes, A, B, top_k=5, batch_size=16)
    for s1, s2 in zip(one.saes, many.saes):
        assert [r.feature for r in s1.features] == [r.feature for r in s2.features]


def test_running_sums_sparse_and_dense_agree():
    from saetui.sae.contrast import _Moments

    gen = torch.Generator().manual_seed(0)
    v = torch.relu(torch.randn(300, 50, generator=gen) - 1.5)  # sparse enough for the non-zero path
    sparse, dense = _Moments(), _Moments(sparse=False)
    for part in v.split([100, 120, 80]):
        sparse.add(part)
        dense.add(part)
    vd = v.double()
    for moments in (sparse, dense):  # both in fp64, from deviations: as torch's two-pass variance to rounding
        torch.testing.assert_close(moments.stats(50)[0], vd.mean(0), rtol=1e-12, atol=1e-15)
        torch.testing.assert_close(moments.stats(50)[1], vd.var(0), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("sparse", [True, False])
def test_a_value_equal_in_every_unit_has_variance_exactly_zero(sparse):
    """A feature equal in every prompt of a set (it fires on the prefix they share): variance 0, not the rounding
    that sums of squares left (its effect size came out in the thousands and ranked first)."""
    from saetui.sae.contrast import _Moments

    v = torch.zeros(300, 4)
    v[:, 1] = 1.0316348  # constant, not a power of two
    v[::3, 2] = 2.2062084  # a third of the units: not constant
    moments = _Moments(sparse=sparse)
    for part in v.split([100, 120, 80]):
        moments.add(part)
    mean, var, freq = moments.stats(4)
    assert var[0] == 0 and var[1] == 0 and var[2] > 0
    assert mean[1] == torch.tensor(1.0316348, dtype=torch.float32).double()


def test_contrast_of_sets_of_one_prompt_repeated_has_no_effect_size():
    """Every feature is constant within each set (pool="max": a prompt is a unit): diff is defined, the effect size
    is not (None), and ranking by it ranks nothing (before: rounding left effects in the thousands, ranked first)."""
    from saetui.session import Session

    s = Session()
    s.load()
    a, b = ["Look at the red."] * 3, ["Look at the cat."] * 3
    rows = [r for sae in s.contrast(a, b, top_k=5, pool="max", by="diff").saes for r in sae.features]
    assert rows and all(r.effect is None for r in rows)
    assert all(not sae.features for sae in s.contrast(a, b, top_k=5, pool="max", by="effect").saes)


def test_contrast_refuses_empty_sets_and_bad_options(gemma2, two_saes):
    with pytest.raises(InputError, match="set A is empty"):
        contrast(gemma2, two_saes, [], B)
    with pytest.raises(InputError, match="set B is empty"):
        contrast(gemma2, two_saes, A, [])
    with pytest.raises(InputError, match="pool must be"):
        contrast(gemma2, two_saes, A, B, pool="median")
    with pytest.raises(InputError, match="empty prompt"):
        contrast(gemma2, two_saes, A, ["  "])


def test_prompt_sets_from_text_and_files(tmp_path):
    f = tmp_path / "a.txt"
    f.write_text("first prompt\n\nsecond prompt\n", encoding="utf-8")
    j = tmp_path / "b.jsonl"
    j.write_text('{"text": "from json"}\n', encoding="utf-8")
    assert read_prompt_set([str(f), "inline text", str(j)]) == ["first prompt", "second prompt", "inline text", "from json"]
    (tmp_path / "empty.txt").write_text("\n  \n", encoding="utf-8")
    (tmp_path / "bad.txt").write_bytes(b"ok\n\xff\n")
    for values, pattern in [([], "set A is empty"), ([str(tmp_path / "empty.txt")], "holds no prompts"),
                            ([str(tmp_path / "none.txt")], "no file at"), ([str(tmp_path)], "is a folder"),
                            ([str(tmp_path / "bad.txt")], "bad.txt:2: not valid UTF-8")]:
        with pytest.raises(InputError, match=pattern):
            read_prompt_set(values)


def demo_category(session: Session, feature: int) -> str | None:
    """A demo feature's category, from its label ("color words", "color: red" -> "color")."""
    label = session.labels.get(("demo", feature))
    return label.split(":")[0].split()[0] if label else None


def test_demo_color_versus_animal_sentences():
    from saetui.demo.corpus import WORDS

    session = Session()
    session.load()
    a = [f"Look at the {w}." for w in WORDS["color"]]
    b = [f"Look at the {w}." for w in WORDS["animal"]]
    features = session.contrast(a, b, 10, pool="max").sae("demo").features
    assert demo_category(session, features[0].feature) == "color", features[:3]
    assert features[0].label.startswith("color") and features[0].freq_a > 0.5 > features[0].freq_b
    assert features[-1].diff < 0 < features[0].diff
    # The animal side's top feature may be unlabelled (the index labels a feature only when 80% of its top examples
    # share a category): checked instead as a detector in a frame the contrast never saw, the demo report's rule.
    for feature, category in ((features[0].feature, "color"), (features[-1].feature, "animal")):
        on_words, on_others = _fires_in_a_new_frame(session, feature, category)
        assert on_words >= 0.8 and on_others <= 0.1, (feature, category, on_words, on_others)


def _fires_in_a_new_frame(session: Session, feature: int, category: str) -> tuple[float, float]:
    """(share of the category's words, share of the other non-special tokens) that demo `feature` fires on, in
    "Yesterday I saw the WORD near the house." (every category word is one token in the demo's tokenizer)."""
    from saetui.demo.corpus import WORDS

    hits = others = n_others = 0
    for word in WORDS[category]:
        result = session.analyze(f"Yesterday I saw the {word} near the house.", 1)
        acts = session.feature_activations("demo", feature)
        (at,) = [t.index for t in result.tokens if t.text.strip() == word]
        hits += acts[at] > 0
        rest = [i for i, t in enumerate(result.tokens) if i != at and not t.special]
        others += sum(acts[i] > 0 for i in rest)
        n_others += len(rest)
    return hits / len(WORDS[category]), others / n_others


# ---------------------------------------------------------------------- neighbours
# Cosines of unit rows (|terms| sum to at most 1) by another op than cosine_similarity's: norms, then the
# d_in-term dot product, so they agree to the rounding of ~3 d_in-term sums (tests/tolerance.py).
COSINE = reduction_bound(1.0, 3 * 64, torch.float32)


def assert_neighbours(got, cos, k, what):
    """`got` lists the k features of highest cosine (up to rounding), with their cosines."""
    feats = [n.feature for n in got]
    assert_ranked_up_to_rounding(feats, cos, COSINE, k=k, what=what)
    assert_close_reduction(torch.tensor([n.cosine for n in got]), cos[feats], bound=COSINE, what=what)


def test_neighbours_equal_brute_force_cosine(gemma2, two_saes):
    l1, l2 = two_saes.get("l1"), two_saes.get("l2")
    w1, w2 = l1.sae.W_dec.detach(), l2.sae.W_dec.detach()
    for f in (0, 17, 255):
        got = decoder_neighbours(l1, f, top_k=6)
        cos = torch.nn.functional.cosine_similarity(w1[f][None], w1, dim=1)
        cos[f] = -2
        assert len(got.neighbours) == 6 and f not in [n.feature for n in got.neighbours]
        assert_neighbours(got.neighbours, cos, 6, f"l1/{f}")
        # the random SAE's encoder is W_dec.T
        assert_close_reduction(torch.tensor(got.encoder_decoder_cosine), torch.tensor(1.0), bound=COSINE)
        other = decoder_neighbours(l1, f, l2, top_k=4)
        cos2 = torch.nn.functional.cosine_similarity(w1[f][None], w2, dim=1)
        assert other.against == "l2" and len(other.neighbours) == 4
        assert_neighbours(other.neighbours, cos2, 4, f"l1/{f} in l2")


def test_neighbours_in_bf16_are_rescored_in_fp32(gemma2, make_sae):
    sae = make_sae(64, 512, "blocks.1.hook_resid_post", seed=3).to(torch.bfloat16)
    loaded = LoadedSAE("b", "mem", sae, "blocks.1.hook_resid_post", 1)
    w = sae.W_dec.detach().float()
    cos = torch.nn.functional.cosine_similarity(w[5][None], w, dim=1)
    cos[5] = -2
    got = decoder_neighbours(loaded, 5, top_k=8)
    assert len(got.neighbours) == 8
    assert_neighbours(got.neighbours, cos, 8, "bf16")


def test_encoder_decoder_cosine_and_the_cache(gemma2, make_sae):
    sae = make_sae(64, 32, "blocks.1.hook_resid_post", seed=4)
    loaded = LoadedSAE("c", "mem", sae, "blocks.1.hook_resid_post", 1)
    with torch.no_grad():
        sae.W_enc[:, 3] = torch.randn(64, generator=torch.Generator().manual_seed(0))
    e, d = sae.W_enc.detach()[:, 3], sae.W_dec.detach()[3]
    want = float(e @ d / (e.norm() * d.norm()))
    assert_close_reduction(torch.tensor(decoder_neighbours(loaded, 3).encoder_decoder_cosine), torch.tensor(want), bound=COSINE)
    first = unit_decoder(loaded)
    assert unit_decoder(loaded) is first  # normalised once
    with torch.no_grad():
        sae.W_dec[0] *= 2  # weights changed in place: normalised again
    assert unit_decoder(loaded) is not first


def test_neighbours_refuse_other_widths_and_bad_features(gemma2, two_saes, make_sae):
    wide = LoadedSAE("w", "mem", make_sae(32, 16, "blocks.1.hook_resid_post"), "blocks.1.hook_resid_post", 1)
    with pytest.raises(InputError, match="d_in 64 but SAE w has d_in 32"):
        decoder_neighbours(two_saes.get("l1"), 0, wide)
    with pytest.raises(InputError, match="feature 256 out of range"):
        decoder_neighbours(two_saes.get("l1"), 256)
    session = Session()
    session.attach(gemma2, two_saes)
    with pytest.raises(Exception, match="no loaded SAE named 'nope'"):
        session.neighbours(1, "l1", "nope")
    result = session.neighbours(1, "l1", "l2", top_k=3)
    assert (result.sae, result.against, len(result.neighbours)) == ("l1", "l2", 3)
    dead = make_sae(64, 16, "blocks.1.hook_resid_post")
    with torch.no_grad():
        dead.W_dec[5] = 0.0
    loaded = LoadedSAE("d", "mem", dead, "blocks.1.hook_resid_post", 1)
    with pytest.raises(InputError, match="feature 5 of SAE d is dead: its decoder row is all zeros"):
        decoder_neighbours(loaded, 5)
    assert len(decoder_neighbours(loaded, 4, top_k=3).neighbours) == 3  # a live feature next to it is fine


# ---------------------------------------------------------------------- spans
@pytest.mark.parametrize("pool", ["max", "mean"])
def test_span_equals_brute_force(gemma2, two_saes, pool):
    prompt = "The cat sat on the mat and looked around"
    result = span_features(gemma2, two_saes, prompt, 2, 6, pool=pool, top_k=5)
    assert result.tokens == gemma2.token_texts(gemma2.tokenize(prompt).input_ids[0, 2:6].tolist())
    for s in two_saes:
        x = ActivationCollector(gemma2).collect(prompt, s.hook_name)[s.hook_name][0]
        with torch.inference_mode():
            lat = s.sae.encode(x)[2:6]
            # the span's rows are encoded on their own (4 rows, not the prompt's T): other matmul shapes, so
            # rounding apart, each latent by the rounding of its d_in-term sum (tests/tolerance.py)
            each = reduction_bound(s.sae.process_sae_in(x[2:6]).abs() @ s.sae.W_enc.detach().abs(), s.sae.cfg.d_in, torch.float32)
        pooled = lat.amax(0) if pool == "max" else lat.mean(0)
        bound = each.amax(0)
        got = next(r for r in result.saes if r.name == s.name).features
        feats = [r.feature for r in got]
        assert feats and len(feats) <= 5
        assert_ranked_up_to_rounding(feats, pooled, bound, k=5, floor=0.0, what=s.name)
        assert_close_reduction(torch.tensor([r.value for r in got]), pooled[feats], bound=bound[feats], what=s.name)
        for r in got:
            if pool == "max":  # the peak is a token where the feature reaches its max over the span (up to rounding)
                assert pooled[r.feature] - lat[r.token_index - 2, r.feature] <= 2 * bound[r.feature]


def test_span_leaves_out_special_tokens_and_checks_its_range(gemma2, two_saes):
    only_bos = span_features(gemma2, two_saes, "Hello there", 0, 1)
    assert only_bos.counted == 0 and all(s.features == [] for s in only_bos.saes)
    assert span_features(gemma2, two_saes, "Hello there", 0, 1, include_special=True).counted == 1
    n = gemma2.tokenize("Hello there").lengths[0]
    with pytest.raises(InputError, match=f"beyond the prompt's {n} tokens"):
        span_features(gemma2, two_saes, "Hello there", 0, n + 1)
    for text, pattern in [("3:3", "is empty"), ("5:2", "is empty"), ("x", "START:END"), ("-1:3", "START:END"), ("²:3", "START:END")]:
        with pytest.raises(InputError, match=pattern):
            parse_span(text)


# ---------------------------------------------------------------------- steering vectors
def _hand_hook(model, hook, vector):
    """A hand-written forward hook adding `vector` at the module of `hook` (sae-lens hook name)."""
    module, side = model.hook_module(model.hook_point(hook))
    assert side == "output"

    def add(mod, args, out):
        if isinstance(out, tuple):
            return (out[0] + vector, *out[1:])
        return out + vector

    return module.register_forward_hook(add)


def test_saved_contrast_vector_steers_exactly_like_a_hand_written_hook(gemma2, two_saes):
    session = Session()
    session.attach(gemma2, two_saes)
    result = session.contrast(A, B)
    folder = session.save_vector("ab")
    assert session.vectors() == ["ab"] and folder.endswith("ab")
    saved = load_vector("ab")
    assert set(saved.directions) == {"blocks.1.hook_resid_post", "blocks.2.hook_resid_post"}
    for hook, v in result.directions.items():
        assert torch.equal(saved.directions[hook], v)
    with pytest.raises(InputError, match="several hook points"):
        session.vector_spec("ab", 2.0)
    spec = session.vector_spec("ab", 2.5, hook="2")  # a layer number picks blocks.2...
    batch = gemma2.tokenize(["The cat sat on the mat", "Hi"])
    run = lambda: gemma2.model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits  # noqa: E731
    with torch.inference_mode():
        clean = run()
        with SteeringHooks(gemma2, [[resolve_vector(spec, gemma2)]]):
            ours = run()
        handle = _hand_hook(gemma2, "blocks.2.hook_resid_post", 2.5 * saved.directions["blocks.2.hook_resid_post"])
        try:
            hand = run()
        finally:
            handle.remove()
        # the same forward with the same elementwise add of the same vector: the same bits
        assert torch.equal(ours, hand) and not torch.equal(ours, clean)
        # beside an SAE feature on the same module: one hook adds both
        feat = SteeringSpec(7, 3.0, sae="l2")
        w = two_saes.get("l2").sae.W_dec.detach()[7]
        with SteeringHooks(gemma2, [[resolve(feat, two_saes), resolve_vector(spec, gemma2)]]):
            both = run()
        handle = _hand_hook(gemma2, "blocks.2.hook_resid_post", 3.0 * w + 2.5 * saved.directions["blocks.2.hook_resid_post"])
        try:
            hand = run()
        finally:
            handle.remove()
        assert torch.equal(both, hand)
    # generation: coefficient 0 is the baseline, and the rows of one batch differ only by their specs
    rows = [[], [spec.with_coefficient(0.0)], [spec]]
    out: dict[int, list[int]] = {0: [], 1: [], 2: []}
    for piece in session.generate("The cat", rows, max_new_tokens=6):
        out[piece.row].append(piece.token_id)
    assert out[0] == out[1]


def test_vector_specs_parse_and_check():
    assert VectorSpec.parse("formal:4") == VectorSpec("formal", 4.0)
    assert VectorSpec.parse("formal@blocks.2.hook_resid_post:-2.5") == VectorSpec("formal", -2.5, "blocks.2.hook_resid_post")
    assert VectorSpec.from_dict(VectorSpec("x", 2.0, "3").to_dict()) == VectorSpec("x", 2.0, "3")
    for text, pattern in [("formal", "cannot read vector spec"), (":3", "cannot read vector spec"), ("a b:1", "vector name"),
                          ("v:nan", "finite number"), ("v:1e9", "too large"), ("v:x", "not a number"), ("../x:1", "vector name")]:
        with pytest.raises(InputError, match=pattern):
            VectorSpec.parse(text)
    with pytest.raises(InputError, match="scope"):
        VectorSpec("v", 1.0, scope="middle")



def test_a_vector_at_two_hook_points_is_two_specs_and_at_one_is_one():
    """`steer vector v@7` with v@3 in steering said 'already in steering': one copy of a vector, whatever its hook."""
    from saetui.steering.draft import Draft

    draft = Draft().add(VectorSpec("v", 1.0, "3")).add(VectorSpec("v", 1.0, "7")).add(VectorSpec("v", 2.0, "3"))
    assert [(s.vector, s.hook, s.coefficient) for s in draft.specs] == [("v", "3", 1.0), ("v", "7", 1.0)]
    assert draft.index_of_vector("v", "7") == 1 and draft.index_of_vector("v") is None


def test_vector_files_missing_and_damaged(gemma2):
    with pytest.raises(InputError, match="no steering vector named 'nope'; saved: none"):
        load_vector("nope")
    from saetui.files import take_notices

    take_notices()
    folder = save_vector("v1", {"blocks.1.hook_resid_post": torch.ones(64)}, model=gemma2.name)
    assert list_vectors() == ["v1"] and not list(folder.parent.glob(".*tmp")) and take_notices() == []
    save_vector("v1", {"blocks.1.hook_resid_post": torch.full((64,), 2.0)}, model=gemma2.name)  # replaced whole
    assert take_notices() == ["steering vector v1 replaced the one saved before under that name"]  # and said
    assert torch.equal(load_vector("v1").directions["blocks.1.hook_resid_post"], torch.full((64,), 2.0))
    with pytest.raises(InputError, match="is 32 wide"):
        save_vector("v2", {"blocks.1.hook_resid_post": torch.ones(32)}, model="x")
        resolve_vector(VectorSpec("v2"), gemma2)
    (folder / "vector.safetensors").write_bytes(b"garbage")
    with pytest.raises(InputError, match=r"is damaged .*moved aside to .*v1\.bak-.*: delete it, or save the vector again") as info:
        load_vector("v1")
    assert "\n" not in str(info.value)
    assert list_vectors() == ["v2"]  # neither v1 nor the folder set aside (it still holds its vector.json)
    with pytest.raises(InputError, match="no steering vector named 'v1'; saved: v2 "):
        load_vector("v1")
    with pytest.raises(InputError, match="non-finite"):
        save_vector("v3", {"blocks.1.hook_resid_post": torch.full((64,), float("nan"))}, model="x")


@pytest.mark.parametrize("damage", ["bad json", "manifest a list", "nan", "wrong shape", "missing weights", "no hooks"])
def test_a_damaged_vector_is_one_error_line_and_nothing_on_stdout(gemma2, capsys, damage):
    """Damaged on disk: `steer --vector` prints one line (what is wrong, where it went, what to do), no warning first."""
    import json as _json

    from safetensors.torch import save_file

    from saetui.cli import main
    from saetui.files import take_notices

    folder = save_vector("v1", {"blocks.1.hook_resid_post": torch.ones(128)}, model="saetui-demo")
    manifest = folder / "vector.json"
    if damage == "bad json":
        manifest.write_text("{not json")
    elif damage == "manifest a list":
        manifest.write_text("[1, 2]")
    elif damage == "nan":
        save_file({"blocks.1.hook_resid_post": torch.full((128,), float("nan"))}, str(folder / "vector.safetensors"))
    elif damage == "wrong shape":
        save_file({"blocks.1.hook_resid_post": torch.ones(3, 128)}, str(folder / "vector.safetensors"))
    elif damage == "missing weights":
        (folder / "vector.safetensors").unlink()
    else:
        manifest.write_text(_json.dumps({**_json.loads(manifest.read_text()), "hooks": []}))
    take_notices()
    code = main(["steer", "--prompt", "Tom went", "--vector", "v1:2", "--max-new-tokens", "2", "--json"])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("saetui: error: steering vector 'v1' is damaged"), err
    assert "delete it, or save the vector again" in err and not take_notices()


# ---------------------------------------------------------------------- CLI, several SAEs
@pytest.fixture()
def extra_demo_sae(tmp_path, make_sae):
    """A second SAE for the demo model (width 128) at another layer, as a local sae-lens directory."""
    from saetui.demo import load_demo

    model, _ = load_demo()
    sae = make_sae(model.d_model, 256, "blocks.1.hook_resid_post", seed=5)
    sae.save_model(tmp_path / "extra")
    return str(tmp_path / "extra")


def run(capsys, *argv):
    from saetui.cli import main

    code = main(list(argv))
    out, err = capsys.readouterr()
    assert code == 0, err
    return out


def test_cli_contrast_save_vector_then_steer_with_it(capsys, tmp_path, extra_demo_sae):
    colors = tmp_path / "colors.txt"
    colors.write_text("Look at the red.\nLook at the blue.\nLook at the green.\n", encoding="utf-8")
    data = json.loads(run(capsys, "contrast", "--a", str(colors), "--b", "Look at the cat.", "--b", "Look at the dog.",
                          "--sae", extra_demo_sae, "--top-k", "3", "--pool", "max", "--save-vector", "red", "--json"))
    assert [s["name"] for s in data["saes"]] == ["demo", "demo-late", "extra"] and data["n_prompts"] == [3, 2]
    first = data["saes"][0]["features"][0]
    assert set(first) == {"feature", "diff", "effect", "mean_a", "mean_b", "freq_a", "freq_b", "label"}
    assert data["vector"]["name"] == "red" and set(data["directions"]) == {s["hook"] for s in data["saes"]}
    vectors = json.loads(run(capsys, "vectors", "--json"))
    assert [v["name"] for v in vectors] == ["red"] and vectors[0]["model"] == "saetui-demo"
    out = json.loads(run(capsys, "steer", "--prompt", "Tom went home.", "--vector", "red@1:4", "--feature", "demo/3:0",
                         "--compare", "--max-new-tokens", "4", "--json"))
    assert out["specs"][1] == {"vector": "red", "coefficient": 4.0, "hook": "1", "scope": "all", "enabled": True}
    assert len(out["steered"]["token_ids"]) == 4
    text = run(capsys, "contrast", "--a", "Look at the red.", "--b", "Look at the cat.", "--top-k", "2")
    assert text.startswith("== demo (blocks.1.hook_resid_post, d_sae=256) A: 1 prompts")


def test_a_vector_with_huge_finite_values_is_listed_with_a_finite_norm_and_one_beyond_float32_is_refused(capsys):
    import math

    from saetui.cli import main

    import torch

    from saetui.steering.vectors import save_vector

    direction = torch.full((64,), 1e38)
    assert not math.isfinite(float(direction.norm()))  # a float32 sum overflows
    save_vector("huge", {"blocks.1.hook_resid_post": direction}, model="saetui-demo")

    def not_json(name):
        raise AssertionError(f"{name} is not JSON")

    (listed,) = json.loads(run(capsys, "vectors", "--json"), parse_constant=not_json)
    assert listed["name"] == "huge" and math.isclose(listed["hooks"]["blocks.1.hook_resid_post"], 8e38, rel_tol=1e-6)

    # written by hand: float64 values beyond float32 (inf once used) and NaN in its meta (JSON readers take it)
    from safetensors.torch import save_file

    from saetui.steering.vectors import vectors_dir

    folder = vectors_dir() / "huge"
    manifest = json.loads((folder / "vector.json").read_text())
    (folder / "vector.json").write_text(json.dumps(dict(manifest, meta={"x": float("nan"), "y": 1})))
    assert main(["vectors", "--json"]) == 0
    (listed,) = json.loads(capsys.readouterr().out, parse_constant=not_json)
    assert listed["meta"] == {"x": None, "y": 1}
    save_file({"blocks.1.hook_resid_post": torch.full((64,), 1e300, dtype=torch.float64)}, str(folder / "vector.safetensors"))
    assert main(["steer", "--prompt", "The cat", "--vector", "huge@1:1", "--max-new-tokens", "2", "--json"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("saetui: error: steering vector 'huge' is damaged") and "finite float32" in err


def test_cli_neighbours_span_and_search_cover_every_sae(capsys, extra_demo_sae):
    data = json.loads(run(capsys, "neighbours", "3", "--top-k", "3", "--json"))
    assert data["sae"] == data["against"] == "demo" and len(data["neighbours"]) == 3
    across = json.loads(run(capsys, "neighbours", "demo/3", "--sae", extra_demo_sae, "--against", "extra", "--json"))
    assert across["against"] == "extra" and len(across["neighbours"]) == 10
    text = run(capsys, "neighbours", "3", "--top-k", "2")
    assert text.startswith("demo/3 ") and "encoder/decoder cosine" in text
    analysis = json.loads(run(capsys, "analyze", "--prompt", "The capital of France is", "--sae", extra_demo_sae,
                              "--span", "1:4", "--span-pool", "mean", "--json"))
    assert [s["name"] for s in analysis["saes"]] == ["demo", "demo-late", "extra"]
    span = analysis["span"]
    assert (span["start"], span["end"], span["pool"]) == (1, 4, "mean") and [s["name"] for s in span["saes"]] == ["demo", "demo-late", "extra"]
    hits = json.loads(run(capsys, "search", "5", "--sae", extra_demo_sae, "--json"))["hits"]
    assert {h["sae"] for h in hits} == {"demo", "demo-late", "extra"} and all(h["feature"] == 5 for h in hits)
    hits = json.loads(run(capsys, "search", "color", "--json"))["hits"]  # the demo's two SAEs: each hit tagged
    assert hits and {h["sae"] for h in hits} == {"demo", "demo-late"} and set(hits[0]) == {"feature", "score", "label", "why", "sae"}


def test_a_span_of_a_chat_prompt_is_over_the_rendered_conversation_without_its_template():
    """Spans were refused in chat mode. Positions are those analyze(chat=True) gives; a one-token span's
    max equals that token's analysis, and the template's tokens are not counted unless asked."""
    session = Session()
    session.load()  # the demo: its tokenizer has a chat template
    prompt = "What is the capital of France?"
    analysis = session.analyze(prompt, top_k=5, chat=True)
    roles = [t.template for t in analysis.tokens]
    assert any(roles) and not all(roles)
    i = roles.index(False)  # the first token the user wrote
    one = session.span(prompt, i, i + 1, chat=True, top_k=5)
    assert one.prompt == analysis.prompt and one.counted == 1
    for got in one.saes:
        want = analysis.sae(got.name).per_token[i]
        assert [(r.feature, round(r.value, 5)) for r in got.features] == [(f, round(a, 5)) for f, a in want]
    n = len(analysis.tokens)
    whole = session.span(prompt, 0, n, chat=True)
    assert whole.counted == roles.count(False)  # BOS and the template's tokens left out
    assert session.span(prompt, 0, n, chat=True, include_special=True).counted == n
