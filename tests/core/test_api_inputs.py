"""The Python API as a script calls it: a bad value is a one-line InputError that keeps nothing (no label, no
spec, no index swapped), and the integers researchers hold (np.argmax's, a tensor's) are taken as ints. On the
bundled demo."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from saetui.errors import InputError
from saetui.settings import EvalSettings, GenerationSettings, IndexSettings
from saetui.steering.spec import SteeringSpec

PROMPT = "Tom has a red cat."


@pytest.fixture(scope="module")
def demo():
    from saetui.session import Session

    session = Session()
    session.load()
    return session


def test_a_bad_label_is_refused_and_keeps_nothing(demo):
    """set_label(9, 5) was saved as `"9": 5` and broke every search after it; a feature out of range was saved; a
    feature given as "3" broke every later set_label."""
    before = dict(demo.labels.of("demo"))
    for feature, label, says in [(9, 5, "a label is text"), (10**6, "huge", "out of range"),
                                 ("3", "x", "must be a whole number"), (-1, "x", "out of range")]:
        with pytest.raises(InputError, match=says):
            demo.set_label(feature, label, "demo")
        assert demo.labels.of("demo") == before
    where = demo.set_label(np.int64(10), "fine", "demo")  # np.argmax's integer: a label like any
    saved = json.loads(next(Path(where).rglob("*.json")).read_text())
    assert demo.labels.of("demo")[10] == "fine" and all(isinstance(v, str) for v in saved.values())
    assert demo.search("fine", "demo").hits[0].feature == 10  # search still works
    demo.set_label(10, "line1\nfake/99   9.99  \x1b[31minjected", "demo")  # one line, no terminal sequence
    assert demo.labels.of("demo")[10] == "line1 fake/99   9.99   [31minjected"
    demo.set_label(10, "", "demo")  # an empty label removes it
    assert 10 not in demo.labels.of("demo")


def test_feature_numbers_are_checked_where_the_api_takes_them(demo):
    demo.analyze(PROMPT)
    with pytest.raises(InputError, match="out of range"):
        demo.feature_activations("demo", -1)  # read feature 255's values
    with pytest.raises(InputError, match="whole number"):
        demo.feature_activations("demo", 3.0)
    assert demo.feature_activations("demo", np.int64(3)) == demo.feature_activations("demo", 3)
    specs = list(demo.specs)
    with pytest.raises(InputError, match="out of range"):
        demo.add_spec(10**6, 2.0, sae="demo")  # was kept, and every later generation failed on it
    assert demo.specs == specs


def test_numpy_and_tensor_integers_are_ints(demo):
    assert demo.neighbours(np.int64(3), sae="demo").feature == 3
    assert demo.feature_info(torch.tensor(3), "demo").feature == 3
    spec = SteeringSpec(np.int64(3), np.float32(2.5), sae="demo")
    assert type(spec.feature) is int and type(spec.coefficient) is float and spec == SteeringSpec(3, 2.5, sae="demo")
    cfg = GenerationSettings(max_new_tokens=np.int64(3), seed=np.uint32(1), temperature=np.float32(0.5))
    assert (cfg.max_new_tokens, cfg.seed, cfg.temperature) == (3, 1, 0.5) and type(cfg.seed) is int
    assert EvalSettings(batch_size=np.int64(2)).batch_size == 2
    for bad in (True, 2.0, "3", None):
        with pytest.raises(InputError, match="max new tokens"):
            GenerationSettings(max_new_tokens=bad)


def test_counts_out_of_range_are_refused_in_one_line(demo):
    with pytest.raises(InputError, match="limit must be at least 1"):
        demo.search("red", "demo", limit=-1)
    with pytest.raises(InputError, match="k .* must be at least 1"):
        demo.feature_info(3, "demo", k=-1)
    info = demo.feature_info(3, "demo", k=10**6)  # past the vocabulary: every token, ranked
    assert len(info.promoted) == demo.model.vocab_size
    with pytest.raises(InputError, match="predictions must be at least 0"):
        demo.analyze(PROMPT, predictions=-1)
    for kwargs, says in [(dict(max_tokens=-5), "--max-tokens"), (dict(ctx=-1), "ctx"), (dict(lo=10, hi=1), "lo < hi"),
                         (dict(batch_size=2.5), "--batch-size"), (dict(n_bins=0), "n_bins")]:
        with pytest.raises(InputError, match=says):
            IndexSettings(**kwargs)
    with pytest.raises(InputError, match="seed must be from 0"):
        list(demo.generate(PROMPT, [[]], temperature=1.0, seeds=[2**70], max_new_tokens=2))


def test_steering_kl_checks_the_ids_it_is_given(demo):
    spec = SteeringSpec(3, 4.0, sae="demo")
    with pytest.raises(InputError, match="token id must be from 0"):
        demo.steering_kl(PROMPT, [[spec]], [[10**9, 5]])
    with pytest.raises(InputError, match="token id"):
        demo.steering_kl(PROMPT, [[spec]], [[5.7, 5]])  # was read as 5
    with pytest.raises(InputError, match="context"):
        demo.steering_kl(PROMPT, [[spec]], [[5] * 600])
    assert len(demo.steering_kl(PROMPT, [[spec]], [np.array([5, 6])])[0]) == 2


def test_generate_never_cuts_the_prompt_and_stops_at_the_context(demo):
    """The README: generation never cuts a prompt to fit. `generate` cut it (a warning) and ran past the context."""
    context = demo.model.context_length
    with pytest.raises(InputError, match="no room to generate"):
        list(demo.generate("word " * (context + 10), [[]], max_new_tokens=5))
    used = len(demo.model.tokenizer(PROMPT)["input_ids"])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        n = sum(1 for piece in demo.generate(PROMPT, [[SteeringSpec(3, 0.0, sae="demo")]], max_new_tokens=600)
                if piece.row == 0 and piece.token_id is not None)
    assert n <= context - used and any("capped at" in str(w.message) for w in caught)


def test_a_list_of_texts_holds_text_only(demo, tmp_path):
    with pytest.raises(InputError, match="text 1 of the list is NoneType"):
        demo.evals(["The cat sat.", None], progress=False)
    with pytest.raises(InputError, match="is int"):
        demo.build_index(["The cat.", 5], str(tmp_path / "idx"), "demo")
    assert not (tmp_path / "idx").exists()


def test_an_index_built_into_a_folder_is_the_one_used(demo, tmp_path):
    """build_index(out=...) built it, but the session kept reading the bundled index."""
    bundled = demo.indexes["demo"].root
    try:
        index = demo.build_index(["The sky is blue."] * 30, str(tmp_path / "idx"), "demo")
        assert demo.indexes["demo"].root == index.root == tmp_path / "idx"
        assert demo.indexes["demo"].n_tokens == index.n_tokens
    finally:
        demo.load()  # the module's other tests read the bundled index
    assert demo.indexes["demo"].root == bundled


def test_text_where_text_is_wanted_and_one_name_as_a_string(demo, tmp_path):
    """analyze(5) and friends were AttributeErrors ('int' has no 'strip'); evals(saes="demo") read 'd', 'e', ..."""
    for call in (lambda: demo.analyze(5), lambda: demo.search(None, "demo"), lambda: demo.search_all(5),
                 lambda: demo.span(None, 0, 2), lambda: demo.contrast([None], ["a"]), lambda: demo.load_sae(None),
                 lambda: list(demo.generate(5, [[]], max_new_tokens=2))):
        with pytest.raises(InputError, match="must be text, got"):
            call()
    one = demo.evals(["The cat sat on the mat."], saes="demo", progress=False)
    assert [h.name for h in one.saes] == ["demo"]
    from saetui.activations.cache import ActivationCache
    from saetui.sae.analyzer import SAEAnalyzer

    for ids in ([1, 426, 351], torch.tensor([1, 2, 3])):  # token ids were an 'empty prompt'
        with pytest.raises(InputError, match=f"must be text, got {type(ids).__name__}"):
            SAEAnalyzer(demo.model, demo.saes).analyze(ids)
    hook = demo.saes.get("demo").hook_name  # one hook as a string: its letters were taken as hooks
    cache = ActivationCache(tmp_path / "cache").build(demo.model, ["The cat sat."], hook, progress=False)
    assert cache.manifest["hooks"] == [hook] and len(cache.activations(hook)) == 1


def test_a_sweep_as_the_cli_types_it(demo):
    """steer(sweep="0,1x") was a ValueError (could not convert string to float): the README's own syntax."""
    spec = SteeringSpec(3, 4.0, sae="demo")
    typed = demo.steer(PROMPT, [spec], sweep="0,1x,8", max_new_tokens=2)
    mixed = demo.steer(PROMPT, [spec], sweep=[0, "1x", np.float32(8)], max_new_tokens=2)
    assert [(r.coefficient, r.unit) for r in typed.rows] == [(r.coefficient, r.unit) for r in mixed.rows]
    assert [(r.coefficient, r.unit) for r in typed.rows] == [(0.0, "raw"), (1.0, "max"), (8.0, "raw")]
    for bad in ("2y", [None]):
        with pytest.raises(InputError, match="sweep"):
            demo.steer(PROMPT, [spec], sweep=bad, max_new_tokens=2)


def test_a_span_counts_from_the_start(demo):
    """span=(-2, -1) said 'is empty: START must be less than END' (-2 < -1); (1.0, 3.0) was a TypeError."""
    with pytest.raises(InputError, match="span start must be at least 0"):
        demo.analyze(PROMPT, span=(-2, -1))
    with pytest.raises(InputError, match="span start must be at least 0"):
        demo.span(PROMPT, 1.0, 3.0)
    assert demo.span(PROMPT, np.int64(1), 3).to_dict() == demo.span(PROMPT, 1, 3).to_dict()


def test_a_run_left_midway_keeps_the_text_of_its_tokens(demo):
    """An exception in the loop over run.pieces() left token_ids filled and text '' (to_dict said so)."""
    run = demo.steer(PROMPT, [SteeringSpec(3, 4.0, sae="demo")], compare=True, max_new_tokens=8)
    with pytest.raises(KeyError):
        for i, _ in enumerate(run.pieces()):
            if i == 5:
                raise KeyError("the caller's own bug")
    assert any(out["token_ids"] for out in run.outputs)
    for out in run.outputs:
        assert out["text"] == demo.decode(out["token_ids"])


def test_specs_as_text_and_objects_of_the_wrong_kind(demo):
    """generate(rows=[["416:6"]]) and steer(specs=[None]) were AttributeErrors ('no attribute enabled'); text is
    read as the CLI's --feature reads it."""
    typed = [p.token_id for p in demo.generate(PROMPT, [["demo/3:4"]], max_new_tokens=4)]
    built = [p.token_id for p in demo.generate(PROMPT, [[SteeringSpec(3, 4.0, sae="demo")]], max_new_tokens=4)]
    assert typed == built
    assert demo.steer(PROMPT, ["demo/3:4"], max_new_tokens=2).specs == [SteeringSpec(3, 4.0, sae="demo")]
    for bad in ([[None]], [[3]]):
        with pytest.raises(InputError, match="a steering spec is"):
            list(demo.generate(PROMPT, bad, max_new_tokens=2))
    with pytest.raises(InputError, match="a steering spec is"):
        demo.steer(PROMPT, [None], max_new_tokens=2)
    with pytest.raises(InputError, match="stop_event is a threading.Event"):
        list(demo.generate(PROMPT, [[]], stop_event=True, max_new_tokens=2))


def test_the_engine_itself_never_cuts_the_prompt_and_stops_at_the_context(demo):
    """SteeringEngine (the README's Steering section) cut a long prompt with a warning and then generated past the
    context (an IndexError in the embedding on GPT-2's 128). The one check is in the engine now."""
    from saetui.steering.generate import SteeringEngine

    engine = SteeringEngine(demo.model, demo.saes)
    context = demo.model.context_length
    with pytest.raises(InputError, match="no room to generate"):
        list(engine.generate("word " * (context + 10), max_new_tokens=5))
    text = "word " * (context - 8)
    used = len(demo.model.tokenizer(text)["input_ids"])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        (out,) = engine.run(text, [[SteeringSpec(3, 0.0, sae="demo")]], max_new_tokens=40)
    assert len(out.token_ids) <= context - used
    assert any(f"capped at {context - used}" in str(w.message) for w in caught)


def test_specs_as_text_wherever_specs_are_taken_and_rows_are_lists_of_lists(demo):
    """check_spec/spec_fits/steer(held=)/steering_kl(rows=) took only objects (AttributeError on text); a string
    where rows are wanted was read letter by letter."""
    spec = SteeringSpec(3, 4.0, sae="demo")
    assert demo.check_spec("demo/3:4").spec == spec and demo.spec_fits("demo/3:4")
    assert not demo.spec_fits(None) and not demo.spec_fits("demo/999:4")
    run = demo.steer(PROMPT, ["demo/5:2"], held=["demo/3:4"], max_new_tokens=2)
    assert spec in run.rows[-1].specs
    ids = [p.token_id for p in demo.generate(PROMPT, [[spec]], max_new_tokens=3) if p.token_id is not None]
    assert demo.steering_kl(PROMPT, [["demo/3:4"]], [ids]) == demo.steering_kl(PROMPT, [[spec]], [ids])
    for rows in ("demo/3:4", [spec], ["demo/3:4"], 5):
        with pytest.raises(InputError, match="rows is a list of rows|each row is a list of specs"):
            list(demo.generate(PROMPT, rows, max_new_tokens=2))
    assert demo.steer(PROMPT, "demo/3:4", max_new_tokens=2).specs == [spec]  # one spec alone: a list of one


def test_steer_takes_seeds_as_generate_does(demo):
    run = demo.steer(PROMPT, ["demo/3:4"], compare=True, temperature=1.0, seeds=[1, 2], max_new_tokens=3)
    by_steer = [p.token_id for p in run.pieces()]
    by_generate = [p.token_id for p in demo.generate(PROMPT, [[], ["demo/3:4"]], temperature=1.0, seeds=[1, 2],
                                                     max_new_tokens=3)]
    assert by_steer == by_generate
    with pytest.raises(InputError, match="seed"):
        list(demo.steer(PROMPT, ["demo/3:4"], compare=True, seeds=[-1, 2], max_new_tokens=2).pieces())


def test_labels_added_in_bulk_are_checked_whole_before_any_is_saved(demo):
    """add_labels({3: 5}) was saved and broke every later search; {4.5: ...} was saved as '4.5'."""
    before = dict(demo.labels.of("demo"))
    for new, says in [({3: 5}, "a label is text"), ({4.5: "half"}, "whole numbers"), ({"3": "x"}, "whole numbers"),
                      ({3: "fine", 10**6: "x"}, "outside"), ({3: "a\ud800b"}, "lone surrogate"), ([(3, "x")], "a dict")]:
        with pytest.raises(InputError, match=says):
            demo.add_labels(new, "demo")
        assert demo.labels.of("demo") == before
    demo.search("color", "demo")  # every later search still works


def test_vector_coefficients_token_ids_and_positions_are_checked_as_everywhere(demo):
    from saetui.activations.collector import ActivationCollector

    for value in (10**400, "abc", None, "2", True, float("nan")):
        with pytest.raises(InputError, match="must be a finite number"):
            demo.vector_spec("v", value)
    for feature in (3.0, "3", -1, 10**6):
        with pytest.raises(InputError, match="feature"):
            demo.max_activation("demo", feature)
    assert demo.max_activation("demo", np.int64(3)) == demo.max_activation("demo", 3)
    for ids in ([-1], [2**70], [demo.model.vocab_size], "abc"):
        with pytest.raises(InputError, match="token id"):
            demo.decode(ids)
    collector = ActivationCollector(demo.model)
    for positions in ([2.9], [-0.5], ["1"]):
        with pytest.raises(InputError, match="list of integers"):
            collector.collect(PROMPT, ["blocks.1.hook_resid_post"], positions=positions)
    assert collector.collect(PROMPT, ["blocks.1.hook_resid_post"], positions=[np.int64(-1)]).positions == \
        collector.collect(PROMPT, ["blocks.1.hook_resid_post"], positions="last").positions


def test_one_prompt_or_name_as_a_string_is_not_read_letter_by_letter(demo):
    one = demo.contrast("Look at the red.", "Look at the cat.", top_k=3)
    assert one.n_prompts == (1, 1)
    assert demo.contrast((p for p in ["Look at the red."]), ["Look at the cat."], top_k=3).n_prompts == (1, 1)
    with pytest.raises(InputError, match="set A is a list of prompts"):
        demo.contrast(5, ["Look at the cat."])
    assert demo.chosen_sae("demo").name == "demo"


def test_a_layer_or_hook_two_loaded_saes_share_names_neither(demo, tmp_path):
    """sae('1') resolved to the first SAE at layer 1 where two are loaded there: a spec could steer the wrong one."""
    from saetui.errors import SaetuiError
    from saetui.session import Session

    s = Session()
    s.load()
    second = s.saes.add(s.sae("demo").sae, name="again", spec="again")
    assert second.layer == s.sae("demo").layer
    for key in ("1", "blocks.1.hook_resid_post"):
        with pytest.raises(SaetuiError, match="names several loaded SAEs"):
            s.sae(key)
    assert s.sae("again") is second and s.sae("demo").name == "demo" and s.sae("3").name == "demo-late"


def test_an_interrupt_while_hooks_are_removed_leaves_none_on_the_model(demo, monkeypatch):
    """Ctrl+C delivered on entry to RemovableHandle.remove lost that handle and every one after it: the collector's
    hook then stopped every later forward."""
    import torch.utils.hooks as torch_hooks

    original = torch_hooks.RemovableHandle.remove
    armed = [True]

    def interrupted(self):
        if armed[0]:
            armed[0] = False
            raise KeyboardInterrupt
        return original(self)

    monkeypatch.setattr(torch_hooks.RemovableHandle, "remove", interrupted)
    with pytest.raises(KeyboardInterrupt):
        demo.span(PROMPT, 1, 5)
    monkeypatch.undo()
    left = [n for n, m in demo.model.model.named_modules() if m._forward_hooks or m._forward_pre_hooks]
    assert left == []
    assert demo.analyze(PROMPT).tokens


def test_targets_token_id_prompts_engine_specs_and_settings_are_checked_in_one_line(demo):
    """From the API probe: a lone surrogate as target was the tokenizer's TypeError, contrast's token-id prompts
    torch's IndexError, the engine took no spec text (AttributeError), circuit(settings={...}) an AttributeError,
    and disagreement(factor='x') a TypeError."""
    from saetui.sae.attribution import disagreement
    from saetui.sae.contrast import contrast
    from saetui.steering.generate import SteeringEngine

    for call in (lambda: demo.attribute("The capital of France is", target="\ud800", verify=0),
                 lambda: demo.attribute("The capital of France is", versus="a\ud800", verify=0),
                 lambda: demo.circuit("The capital of France is", " Paris", "\ud800")):
        with pytest.raises(InputError, match="lone surrogate U\\+D800"):
            call()
    good = demo.model.tokenize("a red cat").input_ids[0].tolist()
    for ids, match in (([99999], "a token id must be from 0 to"), ([-1, 5], "a token id must be from 0 to"),
                       ([2.5], "a token id"), ([1] * 10_000, "10000 tokens: the model's context is")):
        with pytest.raises(InputError, match=match):
            contrast(demo.model, demo.saes, [ids], [good])
    engine = SteeringEngine(demo.model, demo.saes)
    text = "".join(engine.generate(PROMPT, ["demo-late/416:6"], max_new_tokens=3))
    assert text == "".join(engine.generate(PROMPT, [SteeringSpec(416, 6.0, sae="demo-late")], max_new_tokens=3))
    base, steered = engine.compare(PROMPT, ["demo-late/416:6"], max_new_tokens=2)
    assert base.token_ids and steered.token_ids
    with pytest.raises(InputError, match="settings must be a CircuitSettings"):
        demo.circuit("The capital of France is", " Paris", settings={"nodes": 5})
    for factor in ("x", None, 0.5, float("nan"), True):
        with pytest.raises(InputError, match="factor must be a number of at least 1"):
            disagreement(1.0, 2.0, factor)
    assert disagreement(1.0, 2.0, 1.5) == "size" and disagreement(1.0, 2.0, 3) is None
