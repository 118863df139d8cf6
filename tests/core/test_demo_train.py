"""The demo training scripts, on a budget of seconds, so they cannot rot: end to end, seeded, loadable."""

from __future__ import annotations

import torch
from safetensors.torch import load_file

from saetui.demo.corpus import CATEGORIES, generate_corpus
from saetui.demo.train import train_model, train_sae
from saetui.models.model import ModelWithHooks
from saetui.sae.manager import SAEManager


def test_corpus_is_seeded_and_keeps_categories():
    a, b = generate_corpus(50, seed=4), generate_corpus(50, seed=4)
    assert [d.text for d in a] == [d.text for d in b]
    assert [d.text for d in a] != [d.text for d in generate_corpus(50, seed=5)]
    seen = set()
    for doc in a:
        for start, end, cat in doc.spans:
            assert doc.text[start:end].strip() and cat in CATEGORIES
            seen.add(cat)
    assert seen == set(CATEGORIES)


def test_training_runs_end_to_end_and_is_seeded(tmp_path):
    logs: list[str] = []
    for run in ("a", "b"):
        train_model(tmp_path / run / "model", steps=2, n_docs=150, seed=0, log=logs.append)
        train_sae(tmp_path / run / "model", tmp_path / run / "sae", steps=3, n_docs=40, width=64, log=logs.append)
    for part, name in (("model", "model.safetensors"), ("sae", "sae_weights.safetensors")):
        first, second = load_file(tmp_path / "a" / part / name), load_file(tmp_path / "b" / part / name)
        assert first.keys() == second.keys()
        assert all(torch.equal(first[k], second[k]) for k in first)
    model = ModelWithHooks.from_pretrained(str(tmp_path / "a" / "model"))
    assert model.model_type == "gemma2" and 1_000_000 <= sum(p.numel() for p in model.model.parameters()) <= 5_000_000
    loaded = SAEManager(model).load(str(tmp_path / "a" / "sae"))
    assert loaded.hook_name == "blocks.2.hook_resid_post" and loaded.d_sae == 64
    assert loaded.sae.cfg.architecture() == "jumprelu" and loaded.sae.cfg.normalize_activations == "none"
    assert any(line.startswith("step") for line in logs)
