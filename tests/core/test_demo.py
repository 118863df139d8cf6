"""Acceptance tests for the bundled demo: they load the shipped weights (fast) and check what a researcher
opening saetui for the first time relies on: the model knows its facts, the SAE is good, its features
mean something, and steering them works."""

from __future__ import annotations

import re
from collections import Counter

import pytest
import torch

from saetui.demo import SAE_DIR, load_demo
from saetui.demo.corpus import CATEGORIES, WORDS, capital_prompts, generate_corpus
from saetui.demo.train import HELDOUT_SEED
from saetui.sae.analyzer import SAEAnalyzer
from saetui.sae.effects import logit_effects
from saetui.steering.generate import SteeringEngine
from saetui.steering.hooks import SteeringHooks
from saetui.steering.spec import SteeringSpec, resolve

pytestmark = pytest.mark.skipif(not (SAE_DIR / "cfg.json").is_file(), reason="demo assets not built")


@pytest.fixture(scope="module")
def demo():
    return load_demo(device="cpu")


@pytest.fixture(scope="module")
def heldout_features(demo):
    """Latents of every non-special held-out token, with the category of the word it belongs to."""
    model, saes = demo
    loaded = saes.get("demo")
    docs = generate_corpus(300, seed=HELDOUT_SEED)
    analyzer = SAEAnalyzer(model, saes)
    lats, cats = [], []
    for doc in docs:
        enc = model.tokenizer(doc.text, return_offsets_mapping=True, add_special_tokens=True)
        ids, offsets = enc["input_ids"], enc["offset_mapping"]
        acts = analyzer.collector.collect(model.batch_from_ids([ids]), loaded.hook_name)[loaded.hook_name][0]
        with torch.inference_mode():
            lat = loaded.sae.encode(acts)
        for t, (tok, (s, e)) in enumerate(zip(ids, offsets)):
            if model.is_special(tok):
                continue
            lats.append(lat[t])
            cats.append(doc.category_at(s, e))
    return torch.stack(lats), cats


def feature_purity(lats: torch.Tensor, cats: list, top: int = 20) -> list[tuple[float, str | None, int]]:
    """(purity, majority category, feature) for every feature that fires, over its `top` activations."""
    out = []
    vals, idx = lats.topk(top, dim=0)  # (top, d_sae)
    for f in range(lats.shape[1]):
        if vals[-1, f] <= 0:
            continue
        counts = Counter(cats[i] for i in idx[:, f].tolist())
        cat, n = counts.most_common(1)[0]
        out.append((n / top, cat, f))
    return out


def category_share(texts: list[str], category: str) -> float:
    words = [w for t in texts for w in re.findall(r"[A-Za-z]+", t)]
    vocab = {w.lower() for w in WORDS[category]}
    return sum(w.lower() in vocab for w in words) / max(1, len(words))


def test_model_completes_the_capital_facts(demo):
    model, saes = demo
    engine = SteeringEngine(model, saes)
    right = 0
    for prompt, answer in capital_prompts():
        (out,) = engine.run(prompt, [[]], max_new_tokens=3)
        right += out.text.startswith(answer)
    assert right / len(capital_prompts()) >= 0.9


def test_sae_quality():
    from saetui.demo.report import measure

    r = measure(n_docs=200)
    assert r["ce_increase_fraction"] <= 0.15
    assert r["sae_fvu"] <= 0.15
    assert 5 <= r["sae_mean_l0"] <= 60
    assert r["dead_fraction"] <= 0.20


def test_at_least_ten_features_are_pure_for_one_category(heldout_features):
    lats, cats = heldout_features
    pure = [(p, c, f) for p, c, f in feature_purity(lats, cats) if p >= 0.8 and c is not None]
    assert len(pure) >= 10
    assert len({c for _, c, _ in pure}) >= 5  # and they cover several categories


def _token_ids(model, category: str) -> list[int]:
    """First token of each word of the category, as it appears after a space."""
    return sorted({model.tokenizer(" " + w, add_special_tokens=False)["input_ids"][0] for w in WORDS[category]})


def _promoting_feature(demo, category: str, scale: torch.Tensor, candidates=None) -> int:
    """The feature that pushes hardest toward the category's words: direct logit effect of its decoder
    direction on them (relative to the mean token) times `scale`, its typical activation."""
    model, saes = demo
    effects = logit_effects(model, saes.get("demo"))  # (d_sae, vocab)
    score = (effects[:, _token_ids(model, category)].mean(1) - effects.mean(1)) * scale
    if candidates is not None:
        keep = torch.full_like(score, float("-inf"))
        keep[candidates] = score[candidates]
        score = keep
    return int(score.argmax())


def test_adding_a_color_feature_makes_the_model_write_colors(demo, heldout_features):
    """16 seeded sampled generations, unsteered and steered, side by side in one batch."""
    model, saes = demo
    lats, _ = heldout_features
    max_acts = lats.max(0).values
    f = _promoting_feature(demo, "color", max_acts)
    max_act = float(max_acts[f])
    seeds = list(range(16))
    rows = [[]] * 16 + [[SteeringSpec(f, 2.0 * max_act)]] * 16
    outs = SteeringEngine(model, saes).run("Tom went home.", rows, max_new_tokens=24, temperature=1.0, seeds=seeds + seeds)
    base = category_share([o.text for o in outs[:16]], "color")
    steered = category_share([o.text for o in outs[16:]], "color")
    assert steered >= 3 * max(base, 0.01), (base, steered)


@pytest.mark.parametrize("category, prompts", [
    ("color", ["Anna has a", "Tom painted the door", "Lucy saw a"]),
    ("food", ["Tom likes to eat", "For lunch Anna made"]),
])
def test_ablating_a_category_feature_lowers_its_rate(demo, category, prompts, heldout_features):
    """The category's share of the next-token probability falls when the feature that most promotes it,
    among those active on the prompt's last token, is ablated. (Sampled rates barely move: this model
    is confident, p(category) > 0.99, and redundant, so one feature's removal shifts a few thousandths.)"""
    model, saes = demo
    analyzer = SAEAnalyzer(model, saes)
    ids = _token_ids(model, category)
    for prompt in prompts:
        last = analyzer.latents(prompt)[-1]
        f = _promoting_feature(demo, category, last, candidates=(last > 0).nonzero().flatten().tolist())
        batch = model.tokenize(prompt)
        rates = []
        for specs in ([], [resolve(SteeringSpec(f, 0.0, mode="ablate"), saes)]):
            with torch.inference_mode(), SteeringHooks(model, [specs]):
                probs = model.model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits[0, -1].softmax(-1)
            rates.append(float(probs[ids].sum()))
        assert rates[1] < rates[0], (prompt, f, rates)


def test_the_cli_defaults_to_the_demo(capsys):
    import json

    from saetui.cli import main

    assert main(["analyze", "--prompt", "The capital of France is", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["saes"][0]["name"] == "demo" and data["tokens"][-1]["text"] == " is"
    assert set(CATEGORIES) >= {"color", "capital"}
