"""Search hits say what matched and why (issue 9, defect 8). On the bundled demo."""

from __future__ import annotations

import json

import pytest

from saetui.errors import InputError
from saetui.sae.effects import logit_effects
from saetui.sae.search import SearchHit, SearchResult


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


def test_promotes_a_one_token_word_ranks_by_its_real_logit_effect(demo):
    result = demo.search("promotes red", limit=20)
    assert isinstance(result, SearchResult) and result.kind == "promotes"
    assert all(isinstance(h, SearchHit) for h in result.hits)
    # ' red' and 'red' are both one token: the leading-space form is used, and the note says so and names the other.
    assert "' red'" in result.note and "'red'" in result.note
    effects = logit_effects(demo.model, demo.saes.get("demo"))[:, token_id(demo, " red")]  # (d_sae,) all features
    want = effects.topk(20)
    assert [h.feature for h in result.hits] == want.indices.tolist()
    assert [h.score for h in result.hits] == pytest.approx(want.values.tolist(), abs=1e-5)
    for h in result.hits:
        assert h.why.startswith("promotes ' red' ") and f"{h.score:+.2f} logit/act" in h.why
        assert h.label == demo.labels.get(("demo", h.feature), "")  # beside `why`, never instead of it
    assert any(h.label for h in result.hits)
    # Quoting picks a form exactly, with nothing left to explain.
    quoted = demo.search("promotes 'red'", limit=5)
    assert quoted.note is None and quoted.hits[0].why.startswith("promotes 'red' ")
    assert quoted.hits[0].score == pytest.approx(float(logit_effects(demo.model, demo.saes.get("demo"))[:, token_id(demo, "red")].max()), abs=1e-5)


def test_promotes_prefers_the_one_token_form_and_explains_several_pieces(demo):
    blue = demo.search("promotes blue")
    assert all("' blue'" in h.why for h in blue.hits)  # not 'b', the first piece of 'blue' without a space
    assert "'b', 'l', 'ue'" in blue.note
    zzzq = demo.search("promotes zzzq", limit=10)
    assert "4 tokens ('z', 'z', 'z', 'q')" in zzzq.note and "mean" in zzzq.note
    ids = demo.model.tokenizer("zzzq", add_special_tokens=False)["input_ids"]
    mean = logit_effects(demo.model, demo.saes.get("demo"))[:, ids].mean(1)
    assert [h.feature for h in zzzq.hits] == mean.topk(10).indices.tolist()
    assert [h.score for h in zzzq.hits] == pytest.approx(mean.topk(10).values.tolist(), abs=1e-5)
    assert all("mean over 4 tokens" in h.why for h in zzzq.hits)


@pytest.mark.parametrize("query", ["promotes ", "promotes ''", "promotes \x07", "promotes \ue000"])
def test_promotes_without_a_usable_word_is_one_line_error(demo, query):
    with pytest.raises(InputError) as err:
        demo.search(query)
    assert "\n" not in str(err.value)


def test_label_query_scores_differ_and_say_why(demo):
    result = demo.search("red", limit=20)
    assert result.kind == "text" and len(result.hits) > 3
    scores = [h.score for h in result.hits]
    assert scores == sorted(scores, reverse=True) and len(set(scores)) > 2
    first = result.hits[0]
    assert first.label == "color: red" and first.why.startswith("label 'color: red' (exact word 'red'")
    fires = [h for h in result.hits if h.why.startswith("fires on ' red'")]
    assert fires and any(h.label for h in fires)  # labelled features found through the index keep their label
    # A label matching every query word ranks above one matching some of them.
    both = demo.search("capital paris").hits[0]
    one = next(h for h in demo.search("paris").hits if h.feature == both.feature)
    assert both.label == "capital: paris" and both.score == pytest.approx(3.0) and one.score == pytest.approx(2.75)


def test_a_feature_number_says_so(demo):
    result = demo.search("223")
    assert result.kind == "number" and result.note is None
    assert [(h.feature, h.label) for h in result.hits] == [(223, "color: red")]
    assert result.hits[0].why.startswith("feature number")
    with pytest.raises(InputError, match="out of range"):
        demo.search("99999")


def test_cli_search_prints_score_label_why_and_the_note(capsys):
    from saetui.cli import main

    assert main(["search", "promotes zzzq", "--limit", "3"]) == 0
    out, err = capsys.readouterr()
    assert "note: 'zzzq' is 4 tokens" in err
    lines = out.splitlines()
    assert len(lines) == 3 and all("logit/act" in line for line in lines)
    assert main(["search", "red", "--json", "--limit", "5"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["query"] == "red" and data["kind"] == "text" and data["note"] is None
    assert data["hits"][0] == {"feature": 223, "score": pytest.approx(2.75), "label": "color: red",
                               "why": "label 'color: red' (exact word 'red'; 1 of 2 label words)"}
    assert main(["search", "red", "--limit", "2"]) == 0
    first = capsys.readouterr().out.splitlines()[0].split()
    assert first[:4] == ["223", "2.75", "color:", "red"] and "label" in first[4]
