"""Acceptance tests for the bundled demo: they load the shipped weights (fast) and check what a researcher
opening saetui for the first time relies on: the model knows its facts, both SAEs are good, their features
mean something on sentences a person types, and steering and ablating them works."""

from __future__ import annotations

import re
from collections import Counter

import pytest
import torch

from saetui.demo import SAES, load_demo
from saetui.demo.corpus import CATEGORIES, WORDS, generate_corpus
from saetui.demo.report import (DETECTED, HELDOUT_FRAMES, capitals, detection, heldout_frame_sentences, passes,
                                token_latents, typed_sentences)
from saetui.demo.train import HELDOUT_SEED
from saetui.sae.effects import logit_effects
from saetui.steering.generate import SteeringEngine
from saetui.steering.spec import SteeringSpec

pytestmark = pytest.mark.skipif(not all((s.sae_dir / "cfg.json").is_file() for s in SAES), reason="demo assets not built")
EARLY, LATE = SAES[0].name, SAES[-1].name


@pytest.fixture(scope="module")
def demo():
    return load_demo(device="cpu")


@pytest.fixture(scope="module")
def heldout(demo):
    """Per SAE: latents of every non-special token of 150 held-out documents, with word categories and ids."""
    model, saes = demo
    docs = generate_corpus(150, seed=HELDOUT_SEED)
    return {s.name: token_latents(model, saes.get(s.name), docs) for s in SAES}


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


def test_typed_sentences_are_hand_written_and_cover_the_categories():
    docs = typed_sentences()
    assert len(docs) >= 40
    counts = Counter(c for d in docs for _, _, c in d.spans)
    assert all(counts[c] >= 8 for c in DETECTED), counts
    corpus = " ".join(d.text for d in generate_corpus(2000, seed=HELDOUT_SEED))
    assert not [d.text for d in docs if d.text in corpus]


def _framed(text: str, spans: list) -> str:
    """The text with each category word replaced by its category: the frame the words stand in."""
    out, last = "", 0
    for s, e, c in spans:
        out, last = out + text[last:s] + "{" + c + "}", e
    return (out + text[last:]).lower()


def _frame_tokens(text: str) -> list[str]:
    return re.findall(r"\{\w+\}|[\w']+|[^\w\s]", text)


def test_heldout_frames_are_hand_written_in_frames_the_corpus_never_writes():
    """At least 60 sentences in three kinds of frame, every category with at least 8 words (numbers with at
    least 8 in digits), and no frame from training: neither a sentence's frame nor the three words (or marks)
    on each side of any of its category words, with category words as their categories, occur in the corpus."""
    docs = heldout_frame_sentences()
    assert len(docs) >= 60
    kinds = re.findall(r"^\[(\w+)\]$", HELDOUT_FRAMES.read_text(encoding="utf-8"), flags=re.M)
    assert kinds == ["narrative", "dialogue", "notes"]
    counts = Counter(c for d in docs for _, _, c in d.spans)
    assert all(counts[c] >= 8 for c in DETECTED), counts
    assert sum(d.text[s].isdigit() for d in docs for s, _, c in d.spans if c == "number") >= 8
    corpus = [_framed(d.text, d.spans) for d in generate_corpus(3000, seed=0)]  # the training seed
    joined = "\n".join(corpus)
    assert not [d.text for d in docs if _framed(d.text, d.spans) in joined]
    windows = set()
    for doc in corpus:
        toks = _frame_tokens(doc)
        windows.update(tuple(toks[i : i + 7]) for i in range(len(toks) - 6))
    seen = []
    for d in docs:
        toks = _frame_tokens(_framed(d.text, d.spans))
        seen += [d.text for i, t in enumerate(toks) if t.startswith("{") and tuple(toks[i - 3 : i + 4]) in windows]
    assert not seen, seen


def test_typed_words_are_single_tokens(demo):
    """The tokenizer covers ordinary English: the words of typed sentences, tokenized where they stand
    (sentence-initial ones without a space before them), are single tokens, not bytes."""
    model, _ = demo
    words, split = 0, []
    for doc in typed_sentences():
        offsets = model.tokenizer(doc.text, return_offsets_mapping=True, add_special_tokens=False)["offset_mapping"]
        for m in re.finditer(r"[A-Za-z]+", doc.text):
            pieces = [(s, e) for s, e in offsets if s < m.end() and e > m.start()]
            words += 1
            if len(pieces) > 1:
                split.append(m.group())
    assert 1 - len(split) / words >= 0.9, sorted(set(split))  # 93.8% with the shipped tokenizer
    assert len(model.tokenizer) >= 3000


def test_digits_and_category_words_are_single_tokens(demo):
    """Issue 27: every number typed is made of known pieces (one token per digit, as in Gemma's tokenizer),
    and every one-word category word is one token after a space, capitalised or not, and at a text's start."""
    model, _ = demo
    tok = model.tokenizer
    ids = tok("It cost 1,250 in 2019.", add_special_tokens=False)["input_ids"]
    assert [t.lstrip("Ġ") for t in tok.convert_ids_to_tokens(ids)][2:-1] == ["", "1", ",", "2", "5", "0", "in", "", "2", "0", "1", "9"]
    split = [f for ws in WORDS.values() for w in ws if " " not in w
             for f in (w, " " + w, " " + w[0].upper() + w[1:]) if len(tok(f, add_special_tokens=False)["input_ids"]) != 1]
    assert not split, split


@pytest.fixture(scope="module")
def detectors(demo):
    """Per SAE: report.detection (each category's detector chosen on held-out corpus text, measured on
    in-frame text, the typed sentences and the hand-written held-out frames)."""
    model, saes = demo
    return {s.name: detection(model, saes.get(s.name)) for s in SAES}


def test_one_feature_per_category_on_typed_sentences(detectors):
    """For at least 6 categories, the feature chosen on held-out corpus text fires on >= 80% of the
    category's words in the typed sentences and on <= 10% of their other tokens."""
    good = [c for c, r in detectors[EARLY].items() if passes(r["typed"])]
    assert len(good) >= 6, {c: (r["feature"], r["typed"]) for c, r in detectors[EARLY].items()}


def test_one_feature_per_category_in_frames_never_trained_on(detectors):
    """Issue 27's measure: on the hand-written sentences in frames the corpus never writes, at least 6
    categories, country among them, have one feature (chosen on held-out corpus text, the better of the two
    SAEs) on >= 80% of their words and <= 10% of other tokens (10 of 11 with the shipped demo)."""
    good = {c for res in detectors.values() for c, r in res.items() if passes(r["held-out frames"])}
    table = {name: {c: (r["feature"], r["held-out frames"]) for c, r in res.items()} for name, res in detectors.items()}
    assert len(good) >= 6 and "country" in good, table


def test_one_number_feature_in_frames_never_trained_on(detectors):
    """Issue 27: one feature on >= 80% of the numbers of the held-out frames, words and digits, and on >= 80%
    of those written in digits, with <= 10% of other tokens."""
    assert any(passes(res["number"]["held-out frames"]) and res["number"]["digits"]["held-out frames"][0] >= 0.8
               for res in detectors.values()), {name: res["number"] for name, res in detectors.items()}


def test_model_completes_the_capital_facts(demo):
    right, total = capitals(*demo)
    assert right == total == 24


def test_chat_answers_the_capital_questions(demo):
    """Asked in chat format what plain text completes, the model answers at least 20 of the 24 capitals."""
    right, total = capitals(*demo, chat=True)
    assert right >= 20 and total == 24, right


def test_chat_template_works_offline(demo):
    """apply_chat_template renders the demo's format, its markers are special tokens, and the model
    answers in it: a reply in the assistant turn, closed by <|end|>, where generation stops."""
    model, _ = demo
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    text = model.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert text == "<bos><|user|>\nWhat is the capital of France?<|end|>\n<|assistant|>\n"
    ids = model.tokenizer(text, add_special_tokens=False)["input_ids"]
    assert ids[0] == model.tokenizer.bos_token_id and sum(model.is_special(i) for i in ids) == 4
    end = model.tokenizer.convert_tokens_to_ids("<|end|>")
    assert end in model.model.generation_config.eos_token_id
    # The format is learned (a reply, closed by <|end|>); what the replies say is tested on the planted facts
    # (test_chat_answers_the_capital_questions), so here only the shape of the replies is checked.
    for question, shape in [("What is the capital of France?", r"(The capital of [A-Z][a-z]+ is |It is )?[A-Z][a-z]+\.|[A-Z][a-z]+ is the capital of [A-Z][a-z]+\."),
                            ("How do you feel today?", r"[A-Z][\w ,']*[a-z]\."),
                            ("What colour is the car?", r"[A-Z][\w ,']*[a-z]\.")]:
        prompt = model.tokenizer.apply_chat_template([{"role": "user", "content": question}], add_generation_prompt=True)
        prompt_ids = prompt["input_ids"] if hasattr(prompt, "keys") else prompt
        with torch.inference_mode():
            out = model.model.generate(torch.tensor([prompt_ids]), max_new_tokens=16, do_sample=False)
        reply = out[0, len(prompt_ids):].tolist()
        assert reply[-1] == end, model.tokenizer.decode(reply)
        assert re.fullmatch(shape, model.tokenizer.decode(reply[:-1]).strip()), model.tokenizer.decode(reply)


@pytest.mark.parametrize("name", [s.name for s in SAES])
def test_sae_quality(demo, name):
    from saetui.demo.report import _measure, heldout_texts

    model, saes = demo
    r = _measure(model, saes.get(name), heldout_texts(60))
    assert r["ce_increase_fraction"] <= 0.05
    assert r["sae_fvu"] <= 0.15
    assert 5 <= r["sae_mean_l0"] <= 60
    assert r["dead_fraction"] <= 0.20


def test_at_least_ten_features_are_pure_for_one_category(heldout):
    lats, cats, _ = heldout[EARLY]
    pure = [(p, c, f) for p, c, f in feature_purity(lats, cats) if p >= 0.8 and c is not None]
    assert len(pure) >= 10
    assert len({c for _, c, _ in pure}) >= 5  # and they cover several categories


def _token_ids(model, category: str) -> list[int]:
    """First token of each word of the category, as it appears after a space."""
    return sorted({model.tokenizer(" " + w, add_special_tokens=False)["input_ids"][0] for w in WORDS[category]})


def _promotion(demo, category: str) -> torch.Tensor:
    """Per late-SAE feature: the direct logit effect of its decoder direction on the category's words,
    relative to the mean token, in units of the spread of its effects over the vocabulary (a z-score:
    a feature that lowers every token alike does not count as promoting the category)."""
    model, saes = demo
    effects = logit_effects(model, saes.get(LATE))  # (d_sae, vocab)
    return (effects[:, _token_ids(model, category)].mean(1) - effects.mean(1)) / effects.std(1)


def test_adding_a_color_feature_makes_the_model_write_colors(demo, heldout):
    """16 seeded sampled generations, unsteered and steered, side by side in one batch."""
    model, saes = demo
    lats, _, _ = heldout[LATE]
    max_acts = lats.max(0).values
    f = int(_promotion(demo, "color").masked_fill(max_acts <= 0, float("-inf")).argmax())
    rows = [[]] * 16 + [[SteeringSpec(f, 2.0 * float(max_acts[f]), sae=LATE)]] * 16
    seeds = list(range(16))
    outs = SteeringEngine(model, saes).run("Tom went home.", rows, max_new_tokens=24, temperature=1.0, seeds=seeds + seeds)
    base = category_share([o.text for o in outs[:16]], "color")
    steered = category_share([o.text for o in outs[16:]], "color")
    assert steered >= 3 * max(base, 0.01), (base, steered)


def _category_features(demo, category: str, prompt: str, n: int = 5) -> list[int]:
    """The late SAE's features active on the prompt's last token that push hardest toward the category
    (activation times the z-scored direct logit effect), at most n."""
    from saetui.sae.analyzer import SAEAnalyzer

    model, saes = demo
    last = SAEAnalyzer(model, saes).latents(prompt, sae=LATE)[-1]
    score = last * _promotion(demo, category)
    top = score.topk(n)
    return [int(f) for f, s in zip(top.indices, top.values) if s > 0]


@pytest.mark.parametrize("category, prompt", [
    ("color", "My favourite colours are red, blue and"),
    ("food", "For lunch Tom ate some"),
    ("animal", "The farm has a cow, a horse and a"),
])
def test_ablating_a_category_s_features_halves_its_sampled_words(demo, category, prompt):
    """In a context that calls for the category, 32 sampled next words: the category's share drops by
    at least half when its features (at most five, on the late SAE) are ablated. (Not in every context:
    after "Anna painted the door" five ablated features take colors from 100% only to 72%.)"""
    model, saes = demo
    feats = _category_features(demo, category, prompt)
    assert feats
    ablate = [SteeringSpec(f, 0.0, mode="ablate", sae=LATE) for f in feats]
    seeds = list(range(32))
    outs = SteeringEngine(model, saes).run(prompt, [[]] * 32 + [ablate] * 32, max_new_tokens=2, temperature=1.0,
                                           seeds=seeds + seeds)
    vocab = {w.lower() for w in WORDS[category]}
    first = [(re.findall(r"[A-Za-z]+", o.text) or [""])[0].lower() for o in outs]
    base = sum(w in vocab for w in first[:32]) / 32
    ablated = sum(w in vocab for w in first[32:]) / 32
    assert base >= 0.5 and ablated <= base / 2, (feats, base, ablated)


def test_both_saes_load_with_their_indexes_and_labels():
    from saetui.session import Session

    session = Session()
    session.load()
    assert [s.name for s in session.saes] == [s.name for s in SAES]
    for s in SAES:
        index = session.indexes[s.name]
        assert index.root == s.index_dir
        assert any(name == s.name for name, _ in session.labels), s.name


def test_the_cli_defaults_to_the_demo(capsys):
    import json

    from saetui.cli import main

    assert main(["analyze", "--prompt", "The capital of France is", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [s["name"] for s in data["saes"]] == [s.name for s in SAES] and data["tokens"][-1]["text"] == " is"
    assert set(CATEGORIES) >= {"color", "capital"}
