"""The demo training scripts, on a budget of seconds, so they cannot rot: end to end, seeded, loadable."""

from __future__ import annotations

from collections import Counter

import torch
from safetensors.torch import load_file

import pytest

from saetui.demo import SAES
from saetui.demo.corpus import CATEGORIES, CHAT_TOKENS, generate_corpus, render_chat
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


def test_corpus_writes_category_words_in_many_frames_and_numbers_in_digits():
    """Every category word, in any frame: country and city names (100 of each with the capitals), numbers in
    words and in digits (dates, times, prices), and the generator's spans are what mark_categories finds."""
    import re

    from saetui.demo.corpus import CAPITALS, CITIES, COUNTRIES, mark_categories

    assert len(COUNTRIES) == 100 and len(CITIES) + len(CAPITALS) == 100
    docs = generate_corpus(3000, seed=0)
    text = "\n".join(d.text for d in docs)
    numbers = [d.text[s:e] for d in docs for s, e, c in d.spans if c == "number"]
    digits = [n for n in numbers if n[0].isdigit()]
    assert 0.3 <= len(digits) / len(numbers) <= 0.8
    assert any(":" in n for n in digits) and any("." in n for n in digits) and re.search(r"[$£]\d", text)
    seen = Counter(d.text[s:e] for d in docs for s, e, c in d.spans if c in ("country", "city"))
    assert sum(n >= 3 for n in seen.values()) >= 170  # nearly every country and city name
    # every category word keeps its category: the generator marks what mark_categories finds in its text
    for doc in docs:
        found = {(s, e, c) for s, e, c in mark_categories(doc.text) if c != "pronoun"}
        assert found == {(s, e, c) for s, e, c in doc.spans if c != "pronoun"}, doc.text


def test_corpus_has_chat_turns_in_the_template_format():
    docs = generate_corpus(200, seed=0)
    chats = [d.text for d in docs if d.text.startswith("<|")]
    assert 5 <= len(chats) <= 60
    assert all(t.endswith("<|end|>\n") and "<|assistant|>\n" in t for t in chats)
    assert render_chat([{"role": "user", "content": "Hi "}], add_generation_prompt=True) == "<|user|>\nHi<|end|>\n<|assistant|>\n"


def test_the_shipped_lexicon_is_what_the_lexicon_builder_makes():
    """lexicon.json is rebuilt from wordfreq + lemminflect (the train extra) to the same words."""
    pytest.importorskip("wordfreq")
    pytest.importorskip("lemminflect")
    from saetui.demo.lexicon import build_lexicon, load_lexicon

    built, shipped = build_lexicon(), load_lexicon()
    assert {k: built[k] for k in ("nouns", "adjectives", "adverbs", "verbs")} == \
        {k: shipped[k] for k in ("nouns", "adjectives", "adverbs", "verbs")}
    assert len(shipped["nouns"]) + len(shipped["adjectives"]) + len(shipped["verbs"]) >= 2000


@pytest.mark.slow
def test_training_runs_end_to_end_and_is_seeded(tmp_path):
    logs: list[str] = []
    for run in ("a", "b"):
        train_model(tmp_path / run / "model", steps=2, n_docs=150, seed=0, log=logs.append)
        train_sae(tmp_path / run / "model", tmp_path / run / "sae", layer=SAES[-1].layer, steps=3, n_docs=40, width=64,
                  log=logs.append)
    for part, name in (("model", "model.safetensors"), ("sae", "sae_weights.safetensors")):
        first, second = load_file(tmp_path / "a" / part / name), load_file(tmp_path / "b" / part / name)
        assert first.keys() == second.keys()
        assert all(torch.equal(first[k], second[k]) for k in first)  # two runs of the same steps on one thread: the same bits
    model = ModelWithHooks.from_pretrained(str(tmp_path / "a" / "model"))
    assert model.model_type == "gemma2" and 1_000_000 <= sum(p.numel() for p in model.model.parameters()) <= 5_000_000
    loaded = SAEManager(model).load(str(tmp_path / "a" / "sae"))
    assert loaded.hook_name == SAES[-1].hook_name and loaded.d_sae == 64
    assert loaded.sae.cfg.architecture() == "jumprelu" and loaded.sae.cfg.normalize_activations == "none"
    assert any(line.startswith("step") for line in logs)
    tokenizer = model.tokenizer
    assert all(len(tokenizer(t, add_special_tokens=False)["input_ids"]) == 1 for t in CHAT_TOKENS)
    chat = tokenizer.apply_chat_template([{"role": "user", "content": "Hi"}], add_generation_prompt=True, tokenize=False)
    assert chat == "<bos>" + render_chat([{"role": "user", "content": "Hi"}], add_generation_prompt=True)
