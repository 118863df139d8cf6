"""Search hits say what matched and why (issue 9, defect 8); the feature detail's numbers say where they come
from and its top examples carry exact per-token activations (defect 10). On the bundled demo."""

from __future__ import annotations

import json

import pytest
import torch

from saetui.activations.collector import ActivationCollector
from saetui.errors import InputError
from saetui.sae.effects import logit_effects, unembedding
from saetui.sae.search import SearchHit, SearchResult
from tests.tolerance import assert_close_reduction, assert_ranked_up_to_rounding, reduction_bound


@pytest.fixture(scope="module")
def demo():
    from saetui.session import Session

    session = Session()
    session.load()
    return session


def token_id(session, text):
    ids = session.model.tokenizer(text, add_special_tokens=False)["input_ids"]
    assert len(ids) == 1, (text, ids)
    return ids[0]


def effects_bound(session, token_ids):
    """(d_sae,) how far the search's logit effects on these tokens (W_dec @ a few columns of W_U) may be from the
    test's (the same columns of the full W_dec @ W_U): other matmul shapes, so the rounding of d_model-term sums
    (tests/tolerance.py), averaged over the tokens."""
    w_dec = session.saes.get("demo").sae.W_dec.detach()
    scale = (w_dec.abs() @ unembedding(session.model)[:, token_ids].abs()).mean(1)
    return reduction_bound(scale, w_dec.shape[1] + len(token_ids), torch.float32)


def test_promotes_a_one_token_word_ranks_by_its_real_logit_effect(demo):
    result = demo.search("promotes red", "demo", limit=20)
    assert isinstance(result, SearchResult) and result.kind == "promotes"
    assert all(isinstance(h, SearchHit) for h in result.hits)
    # ' red' and 'red' are both one token: the leading-space form is used, and the note says so and names the other.
    assert "' red'" in result.note and "'red'" in result.note
    effects = logit_effects(demo.model, demo.saes.get("demo"))[:, token_id(demo, " red")]  # (d_sae,) all features
    bound = effects_bound(demo, [token_id(demo, " red")])
    got = [h.feature for h in result.hits]
    assert_ranked_up_to_rounding(got, effects, bound, k=20, what="promotes red")
    assert_close_reduction(torch.tensor([h.score for h in result.hits]), effects[got], bound=bound[got], what="scores")
    for h in result.hits:
        assert h.why.startswith("promotes ' red' ") and f"{h.score:+.2f} logit/act" in h.why
        assert h.label == demo.labels.get(("demo", h.feature), "")  # beside `why`, never instead of it
    assert any(h.label for h in result.hits)
    # Quoting picks a form exactly, with nothing left to explain.
    quoted = demo.search("promotes 'red'", "demo", limit=5)
    assert quoted.note is None and quoted.hits[0].why.startswith("promotes 'red' ")
    red = logit_effects(demo.model, demo.saes.get("demo"))[:, token_id(demo, "red")]
    assert_close_reduction(torch.tensor(quoted.hits[0].score), red.max(), bound=effects_bound(demo, [token_id(demo, "red")]).max())


def test_promotes_prefers_the_one_token_form_and_explains_several_pieces(demo):
    bike = demo.search("promotes bike", "demo")
    assert all("' bike'" in h.why for h in bike.hits)  # not 'b', the first piece of 'bike' without a space
    assert "'b', 'i', 'ke'" in bike.note
    zzzq = demo.search("promotes zzzq", "demo", limit=10)
    import ast

    form = ast.literal_eval(zzzq.note.split(" is ")[0])  # the form it ranked by ('zzzq' or ' zzzq'), named first
    ids = demo.model.tokenizer(form, add_special_tokens=False)["input_ids"]
    n = len(ids)  # 3 with the shipped tokenizer
    assert form.strip() == "zzzq" and n >= 2 and f"is {n} tokens ({', '.join(map(repr, demo.model.token_texts(ids)))})" in zzzq.note
    assert "mean" in zzzq.note
    mean = logit_effects(demo.model, demo.saes.get("demo"))[:, ids].mean(1)
    bound, got = effects_bound(demo, ids), [h.feature for h in zzzq.hits]
    assert_ranked_up_to_rounding(got, mean, bound, k=10, what="promotes zzzq")
    assert_close_reduction(torch.tensor([h.score for h in zzzq.hits]), mean[got], bound=bound[got], what="scores")
    assert all(f"mean over {n} tokens" in h.why for h in zzzq.hits)


@pytest.mark.parametrize("query", ["promotes ", "promotes ''", "promotes \x07", "promotes \ue000"])
def test_promotes_without_a_usable_word_is_one_line_error(demo, query):
    with pytest.raises(InputError) as err:
        demo.search(query, "demo")
    assert "\n" not in str(err.value)


def test_label_query_scores_differ_and_say_why(demo):
    result = demo.search("color", "demo", limit=20)
    assert result.kind == "text" and len(result.hits) > 3
    scores = [h.score for h in result.hits]
    assert scores == sorted(scores, reverse=True) and len(set(scores)) > 1
    first = result.hits[0]
    assert first.label == "color words" and first.why.startswith("label 'color words' (exact word 'color'")
    red = demo.search("red", "demo", limit=20)
    fires = [h for h in red.hits if h.why.startswith("fires on ' red'")]
    assert fires and any(h.label for h in fires)  # labelled features found through the index keep their label
    # A label matching every query word ranks above one matching some of them.
    both = demo.search("pronoun you", "demo").hits[0]
    one = next(h for h in demo.search("you", "demo").hits if h.feature == both.feature)
    assert both.label == "pronoun: you" and both.score == pytest.approx(3.0) and one.score < both.score


def test_a_word_being_typed_finds_the_labels_it_begins_in_any_script(demo):
    """Search as you type: 'is-bef' found nothing until 'is-before' was whole, and 'kätz' nothing at all (words were
    ASCII runs: 'kätzchen' read as 'k' and 'tzchen')."""
    from saetui.sae.search import search_features

    loaded = demo.saes.get("demo")
    labels = {5: "is-before city", 6: "kätzchen words", 7: "before"}
    for query, feature, why in [("is-bef", 5, "exact word 'is', 'bef' begins 'before'"),
                                ("kätz", 6, "'kätz' begins 'kätzchen'"), ("kätzchen", 6, "exact word 'kätzchen'")]:
        hit = search_features(demo.model, loaded, query, labels=labels).hits[0]
        assert (hit.feature, why in hit.why) == (feature, True), (query, hit)
    # an exact word in a long label ranks above a typo in short ones ('colour' ~ 'color' outranked it)
    spelled = {1: "color words", 2: "color", 3: "british colour spelling in running text"}
    assert search_features(demo.model, loaded, "colour", labels=spelled, promotes=False).hits[0].feature == 3
    full = search_features(demo.model, loaded, "before", labels=labels).hits
    typed = search_features(demo.model, loaded, "bef", labels=labels).hits
    assert full[0].feature == typed[0].feature == 7 and typed[0].score < full[0].score  # a whole word ranks higher
    assert not [h for h in search_features(demo.model, loaded, "be", labels=labels).hits if h.feature in labels]


def test_a_feature_number_says_so(demo):
    feature, label = next((f, l) for (sae, f), l in sorted(demo.labels.items()) if sae == "demo")
    result = demo.search(str(feature), "demo")
    assert result.kind == "number" and result.note is None
    assert [(h.feature, h.label) for h in result.hits] == [(feature, label)]
    assert result.hits[0].why.startswith("feature number")
    with pytest.raises(InputError, match="out of range"):
        demo.search("99999", "demo")


def test_a_feature_named_as_the_lists_name_it_is_that_saes_feature(demo):
    """`demo-late/416`, as every list and the CLI's --feature write a feature, typed in the search: it found nothing
    (read as text), with no hint."""
    late = demo.saes.get("demo-late")
    number = late.d_sae - 1  # beyond demo's 256 features: only demo-late has it
    result = demo.search_all(f" demo-late/{number} ")
    assert result.kind == "number" and [(h.sae, h.feature) for h in result.hits] == [("demo-late", number)]
    assert [(h.sae, h.feature) for h in demo.search_all("demo/3").hits] == [("demo", 3)]
    with pytest.raises(InputError, match="out of range"):
        demo.search_all(f"demo/{number}")
    typo = demo.search_all(f"demo-lat/{number}")  # no SAE of that name: text, and the note says so
    assert typo.kind == "text" and "no loaded SAE is named 'demo-lat' (demo, demo-late)" in typo.note


def _window_positions(model, index, pos: int, at: int, n: int) -> list[int]:
    """The corpus positions of an example's n tokens, the firing one (pos) at `at`: special tokens are dropped
    from windows (a chat's turn markers), so the others are the nearest non-special ones on each side."""
    from itertools import islice

    real = lambda ps: (p for p in ps if not model.is_special(int(index.tokens[p])))  # noqa: E731
    before = list(islice(real(range(pos - 1, -1, -1)), at))[::-1]
    after = list(islice(real(range(pos + 1, len(index.tokens))), n - at - 1))
    return before + [pos] + after


def test_top_examples_carry_exact_activations_for_every_window_token(demo):
    loaded, index = demo.saes.get("demo"), demo.indexes["demo"]
    feature = demo.search("color words", "demo").hits[0].feature
    info = demo.feature_info(feature, "demo")
    assert info.top_examples and info.max_activation == pytest.approx(info.top_examples[0].value)
    valid = [(v, p) for v, p in zip(index.top_vals[feature].tolist(), index.top_pos[feature].tolist()) if v > 0 and p >= 0]
    for example, (value, pos) in zip(info.top_examples, valid):
        assert len(example.tokens) == len(example.acts) == len(example.ids)
        assert example.value == pytest.approx(value)
        # Independently: the whole document prefix, alone (no batch), through the full sae.encode.
        doc = int(torch.searchsorted(index.doc_start, torch.tensor(pos), right=True)) - 1
        first = int(index.doc_start[doc])
        positions = _window_positions(demo.model, index, pos, example.at, len(example.ids))
        assert index.tokens[positions].tolist() == example.ids
        assert example.tokens == demo.model.token_texts(example.ids)
        assert not any(demo.model.is_special(t) for t in example.ids)
        batch = demo.model.batch_from_ids([index.tokens[first : positions[-1] + 1].tolist()])
        x = ActivationCollector(demo.model).run(batch, [loaded.hook_name])[0][loaded.hook_name][0]
        with torch.inference_mode():
            want = loaded.sae.encode(x)[:, feature][[p - first for p in positions]]
        assert example.acts == pytest.approx(want.tolist(), abs=1e-5)
        assert example.acts[example.at] == pytest.approx(example.value, abs=1e-5)
        # Nothing indexed is above the feature's max (another top example may sit in the window, above `value`).
        assert max(example.acts) <= info.max_activation + 1e-5
    top = info.top_examples[0]
    assert top.acts[top.at] == pytest.approx(max(top.acts), abs=1e-6)


def test_detail_says_where_its_numbers_come_from(demo):
    index = demo.indexes["demo"]
    feature = demo.search("capital words", "demo").hits[0].feature
    info = demo.feature_info(feature, "demo")
    assert "index" in info.max_source and "special tokens" in info.max_source and f"{index.n_tokens:,}" in info.max_source
    assert info.density == pytest.approx(float(index.counts[feature]) / index.n_tokens)
    assert sum(count for _, _, count in info.histogram) == int(index.counts[feature])
    assert info.histogram[0][2] > 0 and info.histogram[-1][2] > 0  # empty bins at the ends trimmed
    assert all(lo < hi for lo, hi, _ in info.histogram)
    assert all(a[1] == pytest.approx(b[0]) for a, b in zip(info.histogram, info.histogram[1:]))
    assert info.histogram[-1][0] < info.max_activation <= info.histogram[-1][1] + 1e-6


def test_without_an_index_the_max_is_over_the_prompt_without_special_tokens(gemma2, make_sae):
    from saetui.sae.manager import SAEManager
    from saetui.session import Session

    manager = SAEManager(gemma2)
    manager.add(make_sae(64, 128, "blocks.1.hook_resid_post"), name="s", spec="test-sae")
    session = Session()
    session.attach(gemma2, manager)
    before = session.feature_info(3)
    assert before.max_activation is None and "no analyzed prompt" in before.max_source
    result = session.analyze("The cat sat on the mat")
    acts = session.feature_activations("s", 3)
    info = session.feature_info(3)
    assert "this prompt" in info.max_source and "special tokens" in info.max_source
    assert info.max_activation == pytest.approx(max(a for a, t in zip(acts, result.tokens) if not t.special))
    assert info.histogram == [] and info.top_examples == [] and info.density is None
    text = session.search("cat")
    assert text.kind == "text" and "no feature index or labels" in text.note


def test_cli_search_prints_score_label_why_and_the_note(capsys):
    from saetui.cli import main

    assert main(["search", "promotes zzzq", "--limit", "3"]) == 0
    out, err = capsys.readouterr()
    assert "note:" in err and "zzzq' is 3 tokens" in err
    lines = out.splitlines()
    assert len(lines) == 3 and all("logit/act" in line for line in lines)
    assert main(["search", "color", "--json", "--limit", "5"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["query"] == "color" and data["kind"] == "text" and data["note"] is None
    top = data["hits"][0]
    assert top["label"] == "color words" and top["score"] == pytest.approx(2.95) and top["sae"] in ("demo", "demo-late")
    assert top["why"] == "label 'color words' (exact word 'color'; 1 of 2 label words)"
    assert main(["search", "color", "--limit", "2"]) == 0
    first = capsys.readouterr().out.splitlines()[0].split()
    assert first[0] == f"{top['sae']}/{top['feature']}" and first[1:4] == ["2.95", "color", "words"] and "label" in first[4]


def test_a_label_index_is_kept_out_of_pythons_full_collections():
    """A 65k-label word index scanned by every full garbage collection made one query in six take 300 ms."""
    import gc

    from saetui.sae.search import _label_index

    gc.unfreeze()
    labels = {f: f"label {f} word{f % 500}" for f in range(5000)}
    try:
        index = _label_index(labels)
        assert gc.get_freeze_count() > len(index.words)  # its sets and strings are in the permanent generation
        assert not any(o is index.words for o in gc.get_objects())
    finally:
        gc.unfreeze()
