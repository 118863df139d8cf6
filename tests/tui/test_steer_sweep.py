"""Pilot tests of steering that says what it does (issue 23): sweep rows titled with their coefficient in both units
and their KL from the baseline, bad sweep text refused in one line, prompts cut to the context said so, a
generation capped by the context said so, and a chat reply that would leave no room refused."""

from __future__ import annotations

import pytest
import torch

from saetui.errors import InputError
from saetui.settings import AppSettings
from saetui.steering.draft import Draft
from saetui.steering.spec import SteeringSpec
from saetui.tui.app import SaeTuiApp
from saetui.tui.snapshot import settle
from saetui.tui.widgets.status_bar import StatusBar
from tests.demo_facts import color_feature
from tests.steering_kl import independent_kl

PROMPT = "The capital of France is Paris. Anna has a"
SAE, COLOR = color_feature()  # the demo's most color-promoting feature (late SAE)
SIZES = [(60, 20), (80, 24), (120, 40)]
LONG = "the cat sat on the mat. " * 60    # more tokens than the demo's context (256)
NEAR = "the cat sat on the mat. " * 30    # fits, with fewer than 64 tokens left


def notes(app) -> list[str]:
    return [n.message for n in app._notifications]


def n_tokens(app, text: str) -> int:
    return len(app.session.model.tokenizer(text, add_special_tokens=True)["input_ids"])


@pytest.mark.parametrize("size", SIZES)
async def test_sweep_rows_say_both_units_and_their_kl(size):
    app = SaeTuiApp(prompt=PROMPT)
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        top = app.session.max_activation(SAE, COLOR)
        app.draft = Draft((SteeringSpec(COLOR, 14.0, sae=SAE),))
        sweep = app.query_one("#sweep")
        assert "raw" in sweep.placeholder and "2x = 2×max" in sweep.placeholder  # the box says its units
        sweep.value = "0,1x,14"
        app.query_one("#max-tokens").value = "6"
        await pilot.press("f4", "ctrl+w")  # from the spec list (in the prompt Ctrl+W deletes a word)
        await settle(pilot)
        columns = list(app.query("GenerationColumn"))
        kl = app.steer.kl
        means = [sum(k) / len(k) for k in kl]
        target = f"{SAE}/{COLOR}"
        assert [c.border_title for c in columns] == [
            f"{target} 0 = ×0 max · KL 0",
            f"{target} ×1 max = {top:.3g} · KL {means[1]:.2g}",
            f"{target} 14 = ×{14 / top:.2g} max · KL {means[2]:.2g}",
        ]
        for column in columns:  # the whole title is on screen
            assert len(column.border_title) <= column.size.width - 4, (size, column.border_title)
        for specs, ids, row_kl in zip(app.steer.rows_specs, app.steer.generated, kl):  # two plain forwards agree
            want, bound = independent_kl(app.session.model, app.session.saes, specs, PROMPT, ids)
            assert bool(((torch.tensor(row_kl, dtype=torch.float64) - want).abs() <= bound).all())
        assert means[0] == 0.0 and means[2] > means[1] > 0
        assert not any("reverse" in str(s.style) for s in columns[0].render_text().spans)  # KL 0: nothing marked
        assert any("reverse" in str(s.style) for s in columns[2].render_text().spans)


async def test_enter_in_the_sweep_box_sweeps_and_bad_text_is_one_line_and_loses_nothing():
    app = SaeTuiApp(prompt=PROMPT)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        app.draft = Draft((SteeringSpec(COLOR, 14.0, sae=SAE),))
        app.query_one("#max-tokens").value = "4"
        sweep = app.query_one("#sweep")
        sweep.focus()
        await pilot.press(*"0,7", "enter")
        await settle(pilot)
        before = [c.border_title for c in app.query("GenerationColumn")]
        assert len(before) == 2 and before[1].startswith(f"{SAE}/{COLOR} 7 = ×")
        assert app.focused is sweep  # still in the box, to change the coefficients and sweep again
        assert sweep.selection.end - sweep.selection.start == len("0,7")  # selected: typing replaces it
        await pilot.press(*"0,2y", "enter")
        await settle(pilot)
        (error,) = [n for n in notes(app) if "sweep takes" in n]
        assert "\n" not in error and "2x = 2 times the max activation" in error
        assert [c.border_title for c in app.query("GenerationColumn")] == before  # the last sweep stays
        assert app.query_one("#sweep").value == "0,2y"  # the text stays, to be fixed


async def test_ctrl_w_deletes_a_word_in_the_prompt_and_sweeps_from_the_sweep_box():
    """Ctrl+W in the prompt swept (a priority binding) where a shell's user deletes the word before the cursor."""
    app = SaeTuiApp(prompt="")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        app.draft = Draft((SteeringSpec(COLOR, 14.0, sae=SAE),))
        app.query_one("#max-tokens").value = "4"
        prompt = app.query_one("#prompt")
        prompt.focus()
        await pilot.press(*"The capital of", "ctrl+w", *"is")
        await settle(pilot)
        assert app.prompt_text == "The capital is" and not any(app.steer.generated)  # nothing swept
        sweep = app.query_one("#sweep")
        sweep.focus()
        await pilot.press(*"0,7", "ctrl+w")
        await settle(pilot)
        titles = [c.border_title for c in app.query("GenerationColumn")]
        assert len(titles) == 2 and titles[1].startswith(f"{SAE}/{COLOR} 7 = ×") and app.focused is sweep


async def test_a_one_row_sweep_after_a_two_row_one_shows_one_row_and_compares_nothing():
    """The steered column kept the last sweep's second row beside the new one, and the status said
    'steered = baseline' (one row: every row equal to the first)."""
    app = SaeTuiApp(prompt=PROMPT)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        app.draft = Draft((SteeringSpec(COLOR, 14.0, sae=SAE),))
        app.query_one("#max-tokens").value = "4"
        sweep = app.query_one("#sweep")
        for text in ("1,2", "3"):
            sweep.value = text
            await pilot.press("f4", "ctrl+w")  # from the spec list (in the prompt Ctrl+W deletes a word)
            await settle(pilot)
        shown = [c for c in app.query("GenerationColumn") if c.display]
        times = 3 / app.session.max_activation(SAE, COLOR)
        assert [c.border_title.split(" · ")[0] for c in shown] == [f"{SAE}/{COLOR} 3 = ×{times:.2g} max"]
        assert "steered = baseline" not in str(app.query_one(StatusBar).render())
        app.query_one("#sweep").value = ""
        await pilot.press("ctrl+g")  # and a plain generation shows both columns again
        await settle(pilot)
        assert [c.border_title for c in app.query("GenerationColumn") if c.display][0] == "baseline"
        assert len([c for c in app.query("GenerationColumn") if c.display]) == 2


@pytest.mark.parametrize("size", SIZES)
async def test_sweeping_a_switched_off_spec_says_so_and_sweeps_it(size):
    app = SaeTuiApp(prompt=PROMPT)
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        app.draft = Draft((SteeringSpec(COLOR, 14.0, sae=SAE, enabled=False),))
        app.query_one("#sweep").value = "0,7"
        app.query_one("#max-tokens").value = "3"
        await pilot.press("f4", "ctrl+w")
        await settle(pilot)
        (said,) = [n for n in notes(app) if "switched off" in n]
        assert said.startswith(f"{SAE}/{COLOR} is switched off") and "swept anyway" in said
        assert [[s.enabled for s in specs] for specs in app.steer.rows_specs] == [[True]] * 2  # on in both rows
        assert not app.draft.specs[0].enabled  # the draft keeps it off: Ctrl+G does not steer with it
        app.draft = Draft((SteeringSpec(COLOR, 14.0, sae=SAE),))
        await pilot.press("f4", "ctrl+w")
        await settle(pilot)
        assert len([n for n in notes(app) if "switched off" in n]) == 1  # a switched-on spec: nothing more said


async def test_2x_without_a_feature_index_says_to_type_raw_coefficients(monkeypatch):
    app = SaeTuiApp(prompt=PROMPT)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        monkeypatch.setattr(app.session, "max_activation", lambda sae, feature: None)
        app.draft = Draft((SteeringSpec(COLOR, 14.0, sae=SAE),))
        app.query_one("#sweep").value = "0,2x"
        await pilot.press("f4", "ctrl+w")
        await settle(pilot)
        assert any("no known max activation (no feature index): sweep raw coefficients" in n for n in notes(app))


@pytest.mark.filterwarnings("ignore:prompt cut to its first")  # the library's warning; the app says it on screen
async def test_an_over_long_prompt_is_analyzed_cut_and_says_so():
    app = SaeTuiApp(prompt=LONG)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        context, n = app.session.model.context_length, n_tokens(app, LONG)
        assert n > context and len(app.analysis.tokens) == context
        said = f"prompt cut to its first {context} of {n} tokens"
        assert any(said in note for note in notes(app))
        assert said in app.query_one(StatusBar).note  # on the status line too, not replaced by the analysis


@pytest.mark.filterwarnings("ignore:prompt cut to its first")  # the library's warning; the app says it on screen
@pytest.mark.parametrize("size", SIZES)
async def test_generating_from_an_over_long_prompt_is_refused_in_one_line_and_the_last_generation_stays(size):
    app = SaeTuiApp(prompt=PROMPT)
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        app.draft = Draft((SteeringSpec(COLOR, 14.0, sae=SAE),))
        app.query_one("#max-tokens").value = "4"
        await pilot.press("ctrl+g")
        await settle(pilot)
        before = [list(ids) for ids in app.steer.generated]
        shown = [str(c.query_one(".gen-text").render()) for c in app.query("GenerationColumn")]
        assert all(before) and all(shown)
        app.query_one("#prompt").text = LONG
        await pilot.press("ctrl+g")
        await settle(pilot)
        context, n = app.session.model.context_length, n_tokens(app, LONG)
        (refused,) = [note for note in notes(app) if "no room to generate" in note]
        assert f"the prompt has {n} tokens and the model's context is {context}: no room to generate" in refused
        assert "\n" not in refused
        assert app.steer.generated == before  # the walk saw the refusal blank both rows
        assert [str(c.query_one(".gen-text").render()) for c in app.query("GenerationColumn")] == shown


async def test_a_generation_capped_by_the_context_says_so():
    app = SaeTuiApp(prompt=NEAR)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        context, n = app.session.model.context_length, n_tokens(app, NEAR)
        assert n + 64 > context
        app.draft = Draft((SteeringSpec(COLOR, 14.0, sae=SAE),))
        app.query_one("#max-tokens").value = "64"
        await pilot.press("ctrl+g")
        await settle(pilot)
        said = f"max 64 capped at {context - n}: the prompt uses {n} of the model's {context}-token context"
        assert any(said == note for note in notes(app))
        assert app.query_one(StatusBar).note.endswith(f"capped at {context - n} tokens by the context")  # it stays said
        assert all(0 < len(ids) <= context - n for ids in app.steer.generated)


async def test_a_scope_past_the_generation_says_it_steers_nothing():
    app = SaeTuiApp(prompt="The cat sat")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        app.draft = Draft((SteeringSpec(COLOR, 14.0, sae=SAE, scope="1000:2000"),))
        await pilot.press("ctrl+g")
        await settle(pilot)
        assert any(note.startswith("scope 1000:2000 covers none of positions 0..") for note in notes(app))
        assert app.query_one(StatusBar).note.endswith("steered = baseline · scope 1000:2000 steers nothing here")


async def test_keeping_a_chat_reply_that_leaves_no_room_is_refused():
    app = SaeTuiApp(prompt="Tell me about the cat on the mat.")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("ctrl+t")
        await settle(pilot)
        context = app.session.model.context_length

        def used_by(turn: str) -> int:
            return len(app.session.render_chat([{"role": "user", "content": turn}], add_generation_prompt=True))

        # a user turn that leaves room for a reply but, with it, not for another turn (the tokenizer decides how long)
        for n in range(1, 60):
            turn = "Tell me about the cat on the mat. " * n + "Be brief and kind."
            used = used_by(turn)
            if context - AppSettings.chat_room < used < context:
                break
        assert context - AppSettings.chat_room < used < context
        app.query_one("#prompt").text = turn
        app.query_one("#max-tokens").value = "64"
        await pilot.press("ctrl+g")
        await settle(pilot)
        assert any(f"capped at {context - used}" in note for note in notes(app))  # the reply was capped, and said so
        await pilot.press("f7")
        await pilot.pause()
        (refusal,) = [n for n in notes(app) if n.startswith("reply not kept")]
        kept = [{"role": "user", "content": turn}, {"role": "assistant", "content": app.steer.reply(1)}]
        try:
            used = f"{len(app.session.render_chat(kept, add_generation_prompt=False))} of"
        except InputError:  # the conversation with the reply is longer than the context itself
            used = "more than"
        assert refusal == (f"reply not kept: the chat would use {used} the model's {context}-token context, too little "
                           f"for another turn (Ctrl+T twice starts a new chat)")
        assert app.chat == [] and app.query_one("#prompt").text == turn  # nothing kept, the turn still there
        assert app.focused is app.query_one("#prompt")  # what is typed next goes to the prompt, not to the specs' keys


def test_a_coefficient_nudged_or_typed_down_to_zero_is_0_not_minus_0():
    """The spec table showed `-0`: round(-1e-5, 4) and a typed '-0' are -0.0."""
    import math

    draft = Draft().add(SteeringSpec(3, 0.25, sae="demo"))
    for new in (draft.nudge(0, -1, 0.25000001), draft.set_coefficient(0, -0.0)):
        value = new.specs[0].coefficient
        assert value == 0 and math.copysign(1.0, value) == 1.0 and f"{value:g}" == "0"


async def test_rows_from_an_earlier_prompt_chat_mode_or_specs_say_so_until_generated_anew():
    """After `+` (or a new prompt, or chat mode off) the steered column kept the old text under a title that named no
    coefficient: nothing said it was no longer what Ctrl+G would give."""
    app = SaeTuiApp(prompt=PROMPT)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        app.draft = Draft((SteeringSpec(COLOR, 6.0, sae=SAE),))
        app.query_one("#max-tokens").value = "3"
        note = app.query_one("#gen-stale")
        await pilot.press("f4", "ctrl+g")
        await settle(pilot)
        assert not note.has_class("-shown")
        await pilot.press("plus")
        await pilot.pause()
        assert note.has_class("-shown") and str(note.render()) == "generated before the specs changed: Ctrl+G generates anew"
        await pilot.press("minus")  # back to what generated them
        await pilot.pause()
        assert not note.has_class("-shown")
        app.query_one("#prompt").text = "Anna has a"
        await pilot.pause()
        assert "before the prompt changed" in str(note.render())
        await pilot.press("ctrl+g")
        await settle(pilot)
        assert not note.has_class("-shown")
        await pilot.press("ctrl+t")
        await pilot.pause()
        assert "before the chat mode changed" in str(note.render())
        await pilot.press("ctrl+t")
        await pilot.pause()
        # a sweep: the swept spec's coefficient is the sweep's, and the cursor on another row changes nothing made
        app.draft = Draft((SteeringSpec(COLOR, 6.0, sae=SAE), SteeringSpec(3, 2.0, sae="demo")))
        app.query_one("#sweep").value = "0,5"
        await pilot.press("f4", "home", "ctrl+w")
        await settle(pilot)
        await pilot.press("plus", "down")
        await pilot.pause()
        assert not note.has_class("-shown")
        await pilot.press("space")  # the held spec switched off: the rows steered with it
        await pilot.pause()
        assert str(note.render()) == "generated before the specs changed: Ctrl+W generates anew"


async def test_export_generation_is_the_steer_json_with_what_runs_it_again(tmp_path, monkeypatch):
    """The export had the prompt and the rows' text only: no temperature, seed, max tokens, chat turns, model or
    KL. It is now the object `saetui steer --json` prints for the same run."""
    import json

    monkeypatch.chdir(tmp_path)
    app = SaeTuiApp(prompt="Tom has a")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        app.steer.export_generation()
        await pilot.pause()
        assert "nothing generated yet" in notes(app)[-1]
        app.draft = Draft((SteeringSpec(COLOR, 6.0, sae=SAE),))
        for box, value in (("#max-tokens", "4"), ("#temperature", "0.8"), ("#seed", "7")):
            app.query_one(box).value = value
        await pilot.press("f4", "ctrl+g")
        await settle(pilot)
        app.steer.export_generation()
        await settle(pilot)
        (path,) = tmp_path.glob("saetui-generation-*.json")
        data = json.loads(path.read_text(encoding="utf-8"))
        assert data["settings"] == {"max_new_tokens": 4, "temperature": 0.8, "top_p": 1.0, "seed": 7, "use_cache": True}
        assert data["model"] == app.session.model.name and data["saes"] == {SAE: app.session.saes.get(SAE).spec}
        assert data["steered"]["token_ids"] == app.steer.generated[1] and data["baseline"]["token_ids"] == app.steer.generated[0]
        assert data["steered"]["kl_mean"] == pytest.approx(sum(app.steer.kl[1]) / len(app.steer.kl[1]))
        run = app.session.steer("Tom has a", [SteeringSpec(COLOR, 6.0, sae=SAE)], compare=True, max_new_tokens=4,
                                temperature=0.8, seed=7)
        for _ in run.pieces():
            pass
        assert data == json.loads(json.dumps(run.to_dict()))  # the same run from a script: the same object
        # a sweep holds the other specs in every row: they were missing, so the export could not be run again
        held = SteeringSpec(3, 2.0, sae="demo")
        app.draft = Draft((SteeringSpec(COLOR, 6.0, sae=SAE), held))
        app.query_one("#sweep").value = "0"
        await pilot.press("f4", "home", "ctrl+w")
        await settle(pilot)
        app.steer.export_generation()
        await settle(pilot)
        newest = max(tmp_path.glob("saetui-generation-*.json"), key=lambda p: p.stat().st_mtime_ns)
        data = json.loads(newest.read_text(encoding="utf-8"))
        assert data["held"] == [held.to_dict()] and [s["feature"] for s in data["specs"]] == [COLOR]
        assert set(data["saes"]) == {"demo", SAE}
