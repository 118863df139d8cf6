"""Sweeps that say their units and their KL (issue 23), and generation that says when the context is full.

A sweep's coefficients are raw (as `--feature` and the app's coef column hold them) or, typed `2x`, multiples of
the feature's max activation; each row's KL from the baseline is the mean over its generated positions of
KL(steered || unsteered), checked here against two plain forwards of the demo (one with the steering hooks)
and torch's kl_div, within the float32 rounding bound of tests/tolerance.py.
"""

from __future__ import annotations

from dataclasses import replace

import json

import pytest
import torch

from saetui.cli import main
from saetui.errors import InputError
from saetui.generation import Row, coefficient_text, mean_kl, plan_rows, row_title
from saetui.inputs import SweepValue, parse_sweep
from saetui.steering.spec import SteeringSpec, VectorSpec
from tests.demo_facts import color_feature
from tests.steering_kl import independent_kl

SAE, FEATURE = color_feature()  # the demo's most color-promoting feature (late SAE)
PROMPT = "Tom went home."


@pytest.fixture(scope="module")
def session():
    from saetui.session import Session

    return Session.open()  # the bundled demo: its SAEs carry feature indexes (max activations)


# ---------------------------------------------------------------------- typing a sweep
@pytest.mark.parametrize("text, want", [
    ("0,4,8.5", [(0.0, "raw"), (4.0, "raw"), (8.5, "raw")]),
    ("0, 1x, 2X ,4xmax", [(0.0, "raw"), (1.0, "max"), (2.0, "max"), (4.0, "max")]),
    ("-1.5×,14", [(-1.5, "max"), (14.0, "raw")]),
    ("0,4,", [(0.0, "raw"), (4.0, "raw")]),  # a comma at the end, as left while typing
])
def test_parse_sweep_reads_raw_numbers_and_multiples_of_the_max(text, want):
    assert [(v.value, v.unit) for v in parse_sweep(text)] == want


@pytest.mark.parametrize("text, words", [
    ("0,x", "takes numbers separated by commas"), ("2y", "2x = 2 times the max activation"),
    ("x2", "takes numbers"), ("nan", "finite"), ("1e9x", "within ±10000"), (" , ", "finite"),
    ("0,,1", "empty place before a comma"), ("0, ,1,", "empty place"), (",0,1", "empty place"), ("1_0", "takes numbers"),
    ("\u0661", "takes numbers"), ("1x,,", "empty place"),
])
def test_parse_sweep_refuses_bad_text_in_one_line(text, words):
    with pytest.raises(InputError) as info:
        parse_sweep(text, "sweep")
    message = str(info.value)
    assert words in message and "\n" not in message and repr(text) in message


def test_plan_rows_gives_each_variant_its_unit_and_refuses_2x_for_a_vector():
    spec = SteeringSpec(5, 3.0, sae="s", unit="max")  # a spec in max units (from a preset) swept raw stays raw
    rows = plan_rows([spec], sweep=[SweepValue(0), SweepValue(2, "max"), 7.0])
    assert [(r.coefficient, r.unit, r.swept) for r in rows] == [(0.0, "raw", 1), (2.0, "max", 1), (7.0, "raw", 1)]
    assert [(r.specs[-1].coefficient, r.specs[-1].unit) for r in rows] == [(0.0, "raw"), (2.0, "max"), (7.0, "raw")]
    vector = VectorSpec("dir", 1.0)
    assert [r.specs[-1].coefficient for r in plan_rows([vector], sweep=[SweepValue(2)])] == [2.0]
    with pytest.raises(InputError, match="no max activation: its coefficients are multiples of the saved direction"):
        plan_rows([vector], sweep=[SweepValue(2, "max")])
    # an ablated spec has no coefficient: its rows were the same text, each titled with another one
    with pytest.raises(InputError, match="s/5 is ablated: it has no coefficient to sweep"):
        plan_rows([SteeringSpec(5, 0.0, mode="ablate", sae="s")], sweep=[SweepValue(0), SweepValue(5)])
    held = plan_rows([spec], sweep=[SweepValue(1)], held=[SteeringSpec(6, 0.0, mode="ablate", sae="s")])
    assert held[0].specs[0].mode == "ablate"  # held as it is, beside the swept spec
    # beside a spec that has a coefficient, an ablated one of the swept specs is held as it is (the README's
    # `--feature 77:20:clamp --feature 12:ablate --sweep 0,5,10,20`): it was refused
    clamp, ablate = SteeringSpec(77, 20.0, mode="clamp", sae="s"), SteeringSpec(12, 0.0, mode="ablate", sae="s")
    rows = plan_rows([clamp, ablate], sweep=[SweepValue(0), SweepValue(5)])
    assert [r.specs for r in rows] == [(ablate, replace(clamp, coefficient=c)) for c in (0.0, 5.0)]
    assert [r.swept for r in rows] == [1, 1]


@pytest.mark.parametrize("spec, top, want", [
    (SteeringSpec(5, 2.0, unit="max"), 3.16, "×2 max = 6.32"),
    (SteeringSpec(5, 14.0), 3.2, "14 = ×4.4 max"),
    (SteeringSpec(5, 14.0), None, "coef 14"),
    (SteeringSpec(5, 2.0, mode="clamp", unit="max"), 3.0, "clamp ×2 max = 6"),
    (VectorSpec("dir", 2.0), None, "×2"),
    (SteeringSpec(5, 4.0, unit="max"), 312.5, "×4 max = 1250"),  # Gemma Scope sizes: no exponent form
    (SteeringSpec(5, 1000.0), 3.16, "1000 = ×316 max"),
])
def test_coefficient_text_names_both_units_where_both_are_known(spec, top, want):
    assert coefficient_text(spec, top) == want


def test_row_title_adds_the_mean_kl():
    row = Row("variant", (SteeringSpec(5, 2.0, sae="s", unit="max"),), 2.0, "max", 1)
    assert row_title(row, lambda s: 3.0) == "s/5 ×2 max = 6"
    assert row_title(row, lambda s: 3.0, [0.1, 0.3]) == "s/5 ×2 max = 6 · KL 0.2"
    assert row_title(Row("baseline"), lambda s: None, None) == "baseline" and mean_kl([]) is None


# ---------------------------------------------------------------------- what the units do
def test_1x_is_the_raw_max_activation(session):
    top = session.max_activation(SAE, FEATURE)
    spec = SteeringSpec(FEATURE, 1.0, sae=SAE)
    run = session.steer(PROMPT, [spec], sweep=[SweepValue(1, "max"), SweepValue(top)], max_new_tokens=6)
    for _ in run.pieces():
        pass
    relative, raw = run.outputs
    assert relative["token_ids"] == raw["token_ids"]  # 1.0 * max == max: the same numbers reach the hook
    assert run.kl()[0] == run.kl()[1]
    assert run.title(0) == f"{SAE}/{FEATURE} ×1 max = {top:.3g}" and run.title(1) == f"{SAE}/{FEATURE} {top:g} = ×1 max"


def test_2x_needs_a_feature_index(session, monkeypatch):
    loaded = session.sae(SAE)
    monkeypatch.setattr(loaded, "max_activations", None)
    with pytest.raises(InputError, match="max-activation units needs a feature index"):
        session.steer(PROMPT, [SteeringSpec(FEATURE, 1.0, sae=SAE)], sweep=[SweepValue(2, "max")], max_new_tokens=2)


# ---------------------------------------------------------------------- the KL of each row
def test_each_sweep_rows_mean_kl_equals_two_plain_forwards(session):
    top = session.max_activation(SAE, FEATURE)
    spec = SteeringSpec(FEATURE, 1.0, sae=SAE)
    run = session.steer(PROMPT, [spec], sweep=parse_sweep("0,1x,14"), compare=True, max_new_tokens=8)
    for _ in run.pieces():
        pass
    data = run.to_dict()
    variants = data["variants"]
    assert [(v["coefficient"], v["unit"]) for v in variants] == [(0.0, "raw"), (1.0, "max"), (14.0, "raw")]
    assert variants[0]["kl_mean"] == 0.0  # coefficient 0: both copies computed identically
    for row, variant in zip(run.rows[1:], variants):
        want, bound = independent_kl(session.model, session.saes, list(row.specs), PROMPT, variant["token_ids"])
        got = torch.tensor(variant["kl"], dtype=torch.float64)
        assert len(got) == len(want) > 0
        assert bool(((got - want).abs() <= bound).all()), (got - want, bound)
        assert abs(variant["kl_mean"] - float(want.mean())) <= float(bound.mean())
    assert variants[2]["kl_mean"] > variants[1]["kl_mean"] > 0.01  # 14 is ×4.4 max: a larger push than ×1
    assert 14 / top > 1


def test_a_row_that_adds_nothing_has_a_kl_of_exactly_zero(session):
    """`--feature demo/3:0` on this prompt gave kl [0, 0, 0, 6e-08, 4e-10] on an AMD CPU: two batch rows of one
    input differ by the rounding of the kernels' row blocks. A row whose specs add nothing is not run."""
    for prompt, n in (("Hello <|end|> there", 5), (PROMPT, 7)):
        run = session.steer(prompt, [SteeringSpec(3, 0.0, sae="demo"), SteeringSpec(5, 0.0, sae="demo-late")],
                            max_new_tokens=n)
        for _ in run.pieces():
            pass
        assert run.to_dict()["steered"]["kl"] == [0.0] * n


# ---------------------------------------------------------------------- the CLI
def test_cli_sweep_in_max_units_heads_each_row_with_both_units_and_its_kl(capsys, session):
    top = session.max_activation(SAE, FEATURE)
    code = main(["steer", "--prompt", PROMPT, "--feature", f"{SAE}/{FEATURE}:4", "--sweep", "0,2x", "--max-new-tokens", "5"])
    out, err = capsys.readouterr()
    assert code == 0, err
    heads = [line for line in out.splitlines() if line.startswith("--- ")]
    assert heads[0] == f"--- {SAE}/{FEATURE} 0 = ×0 max · KL 0 ---"
    assert heads[1].startswith(f"--- {SAE}/{FEATURE} ×2 max = {2 * top:.3g} · KL ")
    code = main(["steer", "--prompt", PROMPT, "--feature", f"{SAE}/{FEATURE}:4", "--sweep", "0,2y"])
    out, err = capsys.readouterr()
    assert code == 2 and out == "" and err.count("\n") == 1 and "2x = 2 times the max activation" in err


def test_cli_steer_refuses_a_prompt_longer_than_the_context_in_one_line(capsys, session):
    context = session.model.context_length
    long = "the cat sat on the mat. " * 60
    n = len(session.model.tokenizer(long, add_special_tokens=True)["input_ids"])
    assert n > context
    code = main(["steer", "--prompt", long, "--feature", f"{SAE}/{FEATURE}:4", "--json"])
    out, err = capsys.readouterr()
    assert code == 2 and out == "" and err.count("\n") == 1
    assert f"the prompt has {n} tokens and the model's context is {context}: no room to generate" in err


def test_cli_steer_json_says_when_the_context_capped_the_generation(capsys, session):
    context = session.model.context_length
    prompt = "the cat sat on the mat. " * 30
    n = len(session.model.tokenizer(prompt, add_special_tokens=True)["input_ids"])
    assert n < context < n + 64
    code = main(["steer", "--prompt", prompt, "--feature", f"{SAE}/{FEATURE}:4", "--max-new-tokens", "64", "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    data = json.loads(out)  # stdout is the JSON alone; the note is on stderr
    assert data["capped"] == {"max_new_tokens": context - n, "asked": 64, "prompt_tokens": n, "context": context}
    assert len(data["steered"]["token_ids"]) <= context - n
    assert err == (f"saetui: warning: --max-new-tokens 64 capped at {context - n}: the prompt uses {n} of the "
                   f"model's {context}-token context\n")


def test_a_scope_past_the_positions_a_generation_reads_is_said_and_indeed_steers_nothing(session):
    """4 prompt tokens and 4 new: the model reads positions 0..6 (the last new token is never read). `6:` steers
    the last read position (the last token changes, no note); `7:` and `template` outside a chat steer nothing, and
    the run says so before its tokens, in one line each."""
    from saetui.steering.spec import SteeringSpec

    def run(scope):
        r = session.steer("The cat sat", [SteeringSpec(195, 60.0, sae="demo-late", scope=scope)], compare=True,
                          max_new_tokens=4)
        list(r.pieces())
        baseline, steered = (o["token_ids"] for o in r.outputs)
        return r, baseline, steered

    r, baseline, steered = run("6:")
    assert r.room.used == 4 and r.notes() == [] and steered[:3] == baseline[:3] and steered != baseline
    for scope in ("7:", "7:9", "template", "7:+template"):
        r, baseline, steered = run(scope)
        assert steered == baseline and r.idle_scopes() == [scope]
        [note] = r.notes()
        assert note.startswith(f"scope {scope} covers none of positions 0..6") and "\n" not in note
        assert ("outside a chat" in note) == ("template" in scope)
    r, baseline, steered = run("6:+template")  # steers, but not its template part: said once
    assert steered != baseline and r.notes() == ["scope 6:+template: its template part steers nothing outside a chat "
                                                 "(template: the tokens a chat template wrote; there are none outside a chat)"]
    r = session.steer("The cat sat", [SteeringSpec(195, 60.0, sae="demo-late")], chat=True, max_new_tokens=1)
    [note] = r.notes()  # in a chat `all` is the reply, and one new token is never read: as typed, then as applied
    assert note.startswith("scope all (in a chat: generated) covers none of positions") and r.idle_scopes() == ["all"]
