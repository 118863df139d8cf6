"""Pilot tests of every flow of the app, on the bundled demo model and SAE."""

from __future__ import annotations

import io
import time

import pytest

from saetui.session import Session
from saetui.steering.draft import Draft
from saetui.steering.generate import Piece
from saetui.steering.spec import SteeringSpec
from saetui.tui.app import SaeTuiApp
from tests.tui.conftest import token_side_rows
from saetui.tui.screens.error import ErrorScreen
from saetui.tui.screens.feature_detail import FeatureDetailScreen
from saetui.tui.snapshot import settle
from saetui.tui.widgets.status_bar import StatusBar
from saetui.tui.widgets.steering_panel import GenerationColumn
from saetui.demo import SAES
from tests.demo_facts import color_feature

COLOR_SAE, COLOR = color_feature()  # the demo's most color-promoting feature (late SAE)

PROMPT = "The capital of France is Paris. Anna has a"


def make_app(prompt: str = PROMPT) -> SaeTuiApp:
    return SaeTuiApp(prompt=prompt)


class EndlessSession(Session):
    """Generation that never ends by itself, so stopping it is the only way out (no race with EOS)."""

    stopped = False

    def generate(self, prompt, rows=None, *, stop_event=None, **settings):
        while not stop_event.is_set():
            for row in (0, 1):
                yield Piece(row, 5, "x")
            time.sleep(0.005)
        self.stopped = True


def notes(app) -> list[str]:
    return [n.message for n in app._notifications]


def steer_with(app, *specs: tuple) -> None:
    """Set the app's steering draft to (feature, coefficient[, mode]) specs of the color feature's SAE."""
    app.draft = Draft(tuple(SteeringSpec(f, c, *(m or ["add"]), sae=COLOR_SAE) for f, c, *m in specs))


async def test_loads_and_analyzes_the_prompt():
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        table = app.query_one("#token-table")
        assert app.session.last is not None
        assert table.row_count == len(app.session.last.tokens) > 5
        assert "saetui-demo" in str(app.query_one("#status").render())


async def test_f5_and_ctrl_g_typed_right_after_text_use_that_text():
    """Keys read at once: F5, Ctrl+G and Ctrl+Q are priority bindings, run by the app as they arrive, while the
    characters before them still wait in the prompt's (or a settings box's) queue. They analyze, generate and save
    what was typed."""
    from textual import events

    def burst(app, keys):
        for key in keys:
            app.post_message(events.Key(key, key if len(key) == 1 else None))

    app = SaeTuiApp(prompt="Anna has a red")
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        prompt = app.query_one("#prompt")
        prompt.focus()
        prompt.move_cursor(prompt.document.end)
        await pilot.pause()
        burst(app, [*" cat", "f5"])
        await settle(pilot)
        assert app.analysis.prompt == "Anna has a red cat"
        burst(app, [*" sat", "ctrl+g"])
        await settle(pilot)
        assert app.steer._prompt == "Anna has a red cat sat" and app.steer.done
        prompt.focus()  # the steer tab took it
        prompt.move_cursor(prompt.document.end)
        await pilot.pause()
        burst(app, [*" down", "ctrl+q"])  # quit saves the prompt as typed
        await pilot.pause()
    from saetui import state

    saved, _ = state.load_session()
    assert saved is not None and saved["prompt"] == "Anna has a red cat sat down"


async def test_moving_through_tokens_shows_their_features():
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        app.query_one("#token-table").focus()
        await pilot.press("down", "down", "down")
        await pilot.pause()
        token = app.session.last.tokens[3]
        features = app.query_one("#token-features")
        assert repr(token.text) in str(features.border_title)
        assert [(r.sae, r.feature) for r in features.rows_shown] == token_side_rows(app, 3)


async def test_heat_line_for_a_chosen_feature():
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        app.query_one("#token-features").focus()
        await pilot.press("h")
        await settle(pilot)
        assert "heat of feature" in str(app.query_one("#token-table").border_title)


async def test_search_then_detail_then_add_to_steering():
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        app.use_sae(SAES[-1].name)  # what a feature promotes is written by the late SAE's decoder directions
        await settle(pilot)
        await pilot.press("f3")
        app.query_one("#search-input").focus()
        await pilot.press(*"promotes Paris")
        await settle(pilot)
        results = app.query_one("#search-results")
        assert results.row_count > 0
        first = results.rows_shown[0].feature
        results.focus()
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, FeatureDetailScreen)
        assert app.screen.feature == first
        assert any("Paris" in t for t, _ in app.screen.info.promoted)
        await pilot.press("a")
        await pilot.pause()
        assert [s.feature for s in app.draft.specs] == [first]
        assert app.session.specs == list(app.draft.specs)  # the session follows the app's draft
        assert app.query_one("#specs").row_count == 1


async def test_generate_streams_both_columns_and_marks_the_steering():
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        steer_with(app, (COLOR, 14.0))
        await pilot.press("ctrl+g")
        await settle(pilot)
        base = app.query_one("#gen-baseline", GenerationColumn).text
        steered = app.query_one("#gen-steered", GenerationColumn).text
        assert base and steered and base != steered
        # tokens that differ from the baseline's are underlined
        shown = app.query_one("#gen-steered", GenerationColumn).render_text()
        assert any("underline" in str(span.style) for span in shown.spans)
        assert app.steer.generated[0] != app.steer.generated[1]
        assert "generation done" in str(app.query_one("#status").render())
        said: list[str] = []  # the status line said the last run's 'generation done' until the next one ended
        status = app.status
        app.status = lambda text, *a, **k: (said.append(text), status(text, *a, **k))[1]
        await pilot.press("f4", "ctrl+w")  # from the spec list (in the prompt Ctrl+W deletes a word)
        await settle(pilot)
        assert said[0] == "sweeping 4 coefficients…" and said[-1].startswith("generation done"), said


async def test_steering_keys_edit_the_specs():
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        steer_with(app, (COLOR, 4.0))
        await pilot.press("f4")
        table = app.query_one("#specs")
        step = app.steer.steps()[0]
        coef_at = str(table.render_line(0).text).index("coef")  # the header row
        await pilot.press("plus", "plus", "minus", "m", "o", "space")
        spec = app.draft.specs[0]
        assert (spec.coefficient, spec.mode, spec.scope, spec.enabled) == (round(4.0 + step, 4), "clamp", "prompt", False)
        await pilot.pause()
        assert str(table.render_line(0).text).index("coef") == coef_at  # m did not shift the columns after it
        await pilot.press("delete")
        assert app.draft.specs == () and table.row_count == 0


async def test_a_label_too_long_for_the_spec_table_ends_with_an_ellipsis():
    """At 80 columns a long label was cut at the table's edge with nothing to say so (a vector's 'A−B dire')."""
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        long = "a label much longer than the room the spec table leaves for it at eighty columns"
        app.session.labels.set(COLOR_SAE, COLOR, long)
        steer_with(app, (COLOR, 4.0))
        await pilot.press("f4")
        await settle(pilot)
        table = app.query_one("#specs")
        shown = str(table.get_row_at(0)[6])
        assert shown.endswith("…") and long.startswith(shown[:-1]) and table.virtual_size.width <= table.size.width
        await pilot.resize_terminal(200, 40)  # the room comes back with the width
        await settle(pilot)
        assert str(table.get_row_at(0)[6]) == long


async def test_spec_keys_that_cannot_change_anything_say_why():
    """From a tmux walk: + on an ablated spec changed its hidden coefficient (m then showed it changed); + at
    the ±10,000 limit, m on a steering vector and any key on an empty table did nothing and said nothing."""
    from saetui.steering.spec import MAX_COEFFICIENT, VectorSpec

    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        steer_with(app, (COLOR, 4.0, "ablate"), (COLOR + 1, MAX_COEFFICIENT))
        app.draft = Draft((*app.draft.specs, VectorSpec("v", 2.0)))
        await pilot.press("f4")
        table = app.query_one("#specs")
        table.focus()
        before = app.draft
        await pilot.press("plus", "plus")
        await pilot.pause()
        assert app.draft == before and any("is ablated: it has no coefficient" in n for n in notes(app))
        await pilot.press("down", "plus")
        await pilot.pause()
        assert app.draft == before and any("at the limit, ±10000" in n for n in notes(app))
        await pilot.press("down", "m")
        await pilot.pause()
        assert app.draft == before and any("is a steering vector: it is only added" in n for n in notes(app))
        app.draft = Draft()
        await pilot.pause()
        table.focus()
        await pilot.press("space")
        await pilot.pause()
        assert any("no steering spec to change" in n for n in notes(app))


async def test_u_undoes_each_change_to_the_specs_back_to_the_first_and_says_when_there_is_nothing_left():
    for size in ((60, 20), (80, 24), (120, 40)):
        app = make_app()
        async with app.run_test(size=size) as pilot:
            await settle(pilot)
            await pilot.press("f4")
            await pilot.press("u")
            await pilot.pause()
            assert any("nothing to undo" in n for n in notes(app))
            steer_with(app, (COLOR, 4.0), (COLOR + 1, 2.0))
            await pilot.pause()
            table = app.query_one("#specs")
            table.focus()
            start = app.draft
            drafts = [start]
            for key in ("plus", "m", "space", "delete", "delete"):  # the last removal leaves no row
                await pilot.press(key)
                drafts.append(app.draft)
            assert app.draft.specs == () and len(set(drafts)) == len(drafts)
            for want in reversed(drafts[:-1]):
                await pilot.press("u" if len(want) else "ctrl+z")
                await pilot.pause()
                assert app.draft == want and table.row_count == len(want.specs), size
            assert app.draft == start
            await pilot.press("end")
            assert table.cursor_row == len(start.specs) - 1
            await pilot.press("home")
            assert table.cursor_row == 0
            await pilot.press("u")
            await pilot.pause()
            assert app.draft == start and sum("nothing to undo" in n for n in notes(app)) == 2


async def test_stop_ends_generation():
    app = SaeTuiApp(EndlessSession(), prompt=PROMPT)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        await pilot.press("ctrl+s")  # nothing running: said, not silence
        await pilot.pause()
        assert "nothing to stop" in str(app.query_one("#status").render())
        await pilot.press("ctrl+g")
        await pilot.pause(0.1)
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert "generation stopped" in str(app.query_one("#status").render())
        assert len(app.steer.generated[0]) > 0


async def test_quit_during_generation_exits():
    session = EndlessSession()
    app = SaeTuiApp(session, prompt=PROMPT)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        await pilot.press("ctrl+g")
        await pilot.pause(0.1)
        steer = app.steer
        assert any(w.is_running for w in steer.workers)
        await pilot.press("ctrl+q")
        await pilot.app.workers.wait_for_complete()
    assert session.stopped and app.return_code in (0, None)
    assert len(steer.generated[0]) > 0


@pytest.mark.parametrize("prompt, message", [("   ", "empty prompt"), ("x" * 50_000, "limit is 20,000")])
async def test_bad_prompt_is_one_line_and_the_app_keeps_running(prompt, message):
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        app.query_one("#prompt").text = prompt
        await pilot.press("f5")
        await settle(pilot)
        assert any(message in n for n in notes(app))
        app.query_one("#prompt").text = "Anna has a"
        await pilot.press("f5")
        await settle(pilot)
        assert app.session.last.prompt == "Anna has a"


async def test_non_numeric_settings_are_refused():
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        for box, typed, says in [("#temperature", "warm", "the temperature box needs a number, got 'warm'"),
                                  ("#max-tokens", "12.5", "the max tokens box needs a whole number, got '12.5'"),
                                  ("#seed", "x", "the seed box needs a whole number, got 'x'")]:
            before = app.query_one(box).value
            app.query_one(box).value = typed
            await pilot.press("ctrl+g")
            await settle(pilot)
            assert any(says in n for n in notes(app)), notes(app)  # which box, and what it holds
            app.query_one(box).value = before


async def test_terminal_too_small_shows_a_notice():
    app = make_app()
    async with app.run_test(size=(30, 10)) as pilot:
        await settle(pilot)
        shown = [w.id or type(w).__name__ for w in app.screen.children if w.display]
        assert shown == ["too-small"], shown


async def test_help_lists_every_binding():
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        await pilot.press("f1")
        await pilot.pause()
        from rich.console import Console

        from saetui.tui.actions import ACTIONS, SCOPES, key_text

        console = Console(width=app.screen.query_one("#help-box").content_size.width, record=True, file=io.StringIO())
        for table in app.screen.tables:
            console.print(table)
        lines = console.export_text().splitlines()
        text = " ".join(" ".join(lines).split())
        for action in ACTIONS:  # every key of every scope, from the registry the bindings come from
            assert " ".join(action.help.split()) in text and key_text(action.keys) in text, action
        assert "heat line" in text and "promotes WORD" in text and "special token" in text
        assert "F5 / Ctrl+R" in text and "u / Ctrl+Z" in text and "Shift+Down" in text  # as keyboards print them
        starts = [key_text(a.keys) for a in ACTIONS] + ["Ctrl+P", "search", "*", "underline", "f:act", "dim"]
        titles = [str(t.render()) for t in app.screen.query(".help-title")]
        assert titles == [*SCOPES.values(), "more"]
        for line in lines:  # a wrapped help line stays in its column, never back at column 0
            assert not line.strip() or line.startswith(" ") or any(line.startswith(k) for k in starts), line


async def test_a_failing_model_load_is_shown_and_the_app_keeps_running():
    app = SaeTuiApp(model="/no/such/model", saes=["x"])
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        assert not any("no model directory" in n for n in notes(app))  # in the modal, no toast over its text
        assert isinstance(app.screen, ErrorScreen) and "no model directory" in app.screen.message
        await pilot.press("escape")
        await pilot.press("f5")  # still responsive, and says how to get a model (not "still loading")
        await pilot.pause()
        assert any("no model loaded" in n and "load model demo" in n for n in notes(app))


async def test_last_session_is_restored_and_a_corrupt_one_set_aside():
    from saetui import state
    from saetui.paths import config_dir

    app = make_app("Anna has a")
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        steer_with(app, (COLOR, 7.0))
        await pilot.press("ctrl+q")
    again = SaeTuiApp()
    async with again.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        assert again.query_one("#prompt").text == "Anna has a"
        assert [(s.feature, s.coefficient) for s in again.draft.specs] == [(COLOR, 7.0)]
    (config_dir() / state.SESSION_FILE).write_text("{broken")
    clean = SaeTuiApp()
    async with clean.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        (aside,) = config_dir().glob(state.SESSION_FILE + ".bak*")  # timestamped
        assert aside.read_text() == "{broken"
        assert any("kept aside" in n and n.endswith("starting clean") for n in notes(clean))
        assert clean.query_one("#prompt").text == SaeTuiApp.DEFAULT_PROMPT and clean.draft.specs == ()


async def test_a_restart_restores_the_sae_shown_the_chat_and_the_steer_boxes_and_drops_a_damaged_chat():
    import json

    from saetui import state
    from saetui.paths import config_dir

    turns = [{"role": "user", "content": "What is the capital of France?"}, {"role": "assistant", "content": "Paris."}]
    app = make_app("Anna has a")
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        await pilot.press("ctrl+n")  # show the second SAE
        await pilot.press("ctrl+t")  # chat mode
        await settle(pilot)
        app.chat = list(turns)  # as F6 leaves it after a kept reply
        typed = {"max-tokens": "12", "temperature": "0.7", "seed": "5", "sweep": "0,1x,14"}
        app.steer.restore_boxes(typed)
        shown = app.sae_name
        assert shown == app.session.sae_names[1]
        await pilot.press("ctrl+q")
    again = SaeTuiApp()
    async with again.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        assert again.sae_name == shown and again.chat == turns
        assert again.steer.boxes() == typed and again.steer.settings()["max_new_tokens"] == 12
        assert "user turn 2" in str(again.query_one("#prompt").border_title)
        assert again.analysis_input[1] == turns  # the analysis on load ran as the chat's next turn
    path = config_dir() / state.SESSION_FILE
    saved = json.loads(path.read_text())
    path.write_text(json.dumps({**saved, "chat": [{"role": "robot", "content": 3}]}))
    clean = SaeTuiApp()
    async with clean.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        assert clean.chat is None and clean.sae_name == shown
        assert any("unusable chat dropped" in n for n in notes(clean))
    plain = SaeTuiApp(prompt="Tom went home.")  # a prompt given: the SAE shown and the chat start afresh
    async with plain.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        assert plain.chat is None and plain.sae_name == plain.session.sae_names[0]


async def test_presets_and_prompt_history():
    from saetui import state

    app = make_app("Anna has a")
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        steer_with(app, (COLOR, 3.0, "clamp"))
        app.steer.save_preset("colors")
        app.draft = Draft()
        app.steer.load_preset("colors")
        await pilot.pause()  # the pane's new draft goes up to the app as a message (DraftChanged)
        assert [(s.feature, s.mode) for s in app.draft.specs] == [(COLOR, "clamp")]
        app.steer.load_preset("nope")
        await pilot.pause()
        assert any("no preset named 'nope'" in n for n in notes(app))
        (state.config_dir() / "presets" / "bad.json").write_text("[1, 2")
        app.steer.load_preset("bad")
        await pilot.pause()
        (said,) = [n for n in notes(app) if "kept aside" in n]
        assert said.startswith("preset 'bad' not loaded: bad.json could not be read") and "starting clean" not in said
        assert [(s.feature, s.mode) for s in app.draft.specs] == [(COLOR, "clamp")]  # the specs in use stay
        app.query_one("#prompt").text = "Tom went home."
        await pilot.press("f5")
        await settle(pilot)
        await pilot.press("ctrl+up")
        assert app.query_one("#prompt").text == "Anna has a"
        await pilot.press("ctrl+down")
        assert app.query_one("#prompt").text == "Tom went home."
        box = app.query_one("#prompt")
        box.text = "my unsaved draft"  # typed, not analyzed: Ctrl+Up threw it away, and skipped the newest
        await pilot.press("ctrl+up")
        assert box.text == "Tom went home."
        await pilot.press("ctrl+up", "ctrl+up")
        assert box.text == "Anna has a" and any("no older analyzed prompt" in n for n in notes(app))
        await pilot.press("ctrl+down", "ctrl+down")
        assert box.text == "my unsaved draft"  # back, as a shell brings back the line being typed
        await pilot.press("ctrl+down")
        assert box.text == "my unsaved draft" and any("this is the newest" in n for n in notes(app))
        # a recalled prompt is typed on at its end; edited, it keeps its edit and the draft stays the draft
        await pilot.press("ctrl+up", "X")
        assert box.text == "Tom went home.X"
        await pilot.press("ctrl+down")
        assert box.text == "my unsaved draft"
        await pilot.press("ctrl+up")
        assert box.text == "Tom went home.X"


async def test_command_palette_exports_the_analysis(tmp_path, monkeypatch):
    import json

    monkeypatch.chdir(tmp_path)
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"export analysis")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await settle(pilot)
        app.tokens.export_analysis()  # twice in the same second: a second file, the first one kept
        app.tokens.export_analysis()
    written = sorted(tmp_path.glob("saetui-analysis-*.json"))
    assert len(written) == 3, written
    for path in written:
        data = json.loads(path.read_text())
        assert data["prompt"] == PROMPT and data["saes"][0]["name"] == "demo"



async def test_typed_coefficient_sets_the_spec_and_bad_text_is_refused():
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        steer_with(app, (COLOR, 4.0))
        app.query_one("#coef").focus()
        await pilot.press(*"abc", "enter")
        await pilot.pause()
        assert any("coef takes a number, or 2x for twice the max activation; got 'abc'" in n for n in notes(app))
        assert app.draft.specs[0].coefficient == 4.0
        app.query_one("#coef").value = ""
        await pilot.press(*"-2.5", "enter")
        await pilot.pause()
        assert app.draft.specs[0].coefficient == -2.5
        # beyond ±1e4: refused in words (it was set to 10000 without one); a small value is kept as typed (it was
        # rounded to 0)
        await pilot.press(*"50000", "enter")
        await pilot.pause()
        assert any("coefficient 50000" in n and "too large" in n for n in notes(app))
        assert app.draft.specs[0].coefficient == -2.5
        app.query_one("#coef").value = ""
        await pilot.press(*"0.00001", "enter")
        await pilot.pause()
        assert app.draft.specs[0].coefficient == 0.00001
        app.query_one("#coef").value = ""
        await pilot.press(*"1_0", "enter")  # as the CLI reads a number: float() took it as 10
        await pilot.pause()
        assert app.draft.specs[0].coefficient == 0.00001 and "got '1_0'" in notes(app)[-1]
        # 2x: twice the feature's max activation, as the sweep box reads it (it was refused as not a number)
        app.query_one("#coef").value = ""
        await pilot.press(*"2x", "enter")
        await pilot.pause()
        top = app.session.max_activation(app.draft.specs[0].sae, COLOR)
        assert app.draft.specs[0].coefficient == round(2 * top, 2) == app.steer._start(COLOR_SAE, COLOR)  # as `a` sets
        app.query_one("#coef").value = ""
        await pilot.press(*"1,2", "enter")  # a sweep's list is not one coefficient
        await pilot.pause()
        assert app.draft.specs[0].coefficient == round(2 * top, 2) and "got '1,2'" in notes(app)[-1]
        # an ablated spec has no coefficient: a typed one was set unseen, and came back with m
        app.draft = app.draft.cycle_mode(0).cycle_mode(0)
        assert app.draft.specs[0].mode == "ablate"
        app.query_one("#coef").value = ""
        await pilot.press(*"3", "enter")
        await pilot.pause()
        assert app.draft.specs[0].coefficient == round(2 * top, 2) and "is ablated: it has no coefficient" in notes(app)[-1]


async def test_ctrl_g_leaves_the_focus_where_it_was_and_a_removed_spec_is_said():
    """Ctrl+G from a steer box or the prompt: the keys typed next go there (Backspace went to the specs, where it
    removed one unseen); a removal says what went and that u brings it back."""
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        steer_with(app, (COLOR, 4.0))
        box = app.query_one("#max-tokens")
        box.focus()
        box.value = "8"
        await pilot.pause()
        await pilot.press("ctrl+g")
        await settle(pilot)
        assert app.focused is box and app.steer.done
        await pilot.press("backspace", *"6")
        await pilot.pause()
        assert box.value == "6" and len(app.draft.specs) == 1
        prompt = app.query_one("#prompt")
        prompt.focus()
        await pilot.press("ctrl+g")
        await settle(pilot)
        assert app.focused is prompt
        app.query_one("#specs").focus()
        await pilot.press("backspace")
        await pilot.pause()
        assert len(app.draft.specs) == 0
        said = app.query_one(StatusBar).note
        assert f"removed {COLOR_SAE}/{COLOR}" in said and "u brings it back" in said


async def test_a_failing_sae_load_shows_a_modal_and_keeps_the_loaded_one():
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        app.load_sae("gemma-scope-2b-pt-res-canonicl/layer_1/width_16k/canonical")
        await settle(pilot)
        assert isinstance(app.screen, ErrorScreen) and "did you mean" in app.screen.message
        await pilot.press("escape")
        assert [s.name for s in app.session.saes] == [s.name for s in SAES]
        await pilot.press("f5")
        await settle(pilot)
        assert app.session.last is not None


async def test_labels_set_in_the_app_are_saved_and_found():
    from saetui.paths import config_dir
    from saetui.sae.search import load_labels

    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        table = app.query_one("#token-features")
        table.focus()
        feature = table.current_feature()
        await pilot.press("l")
        await pilot.pause()
        app.screen.query_one("#label-input").value = ""
        await pilot.press(*"my favourite", "enter")
        await pilot.pause()
        assert load_labels(config_dir() / "demo-labels")[feature] == "my favourite"
        assert app.session.search("favorite", app.sae_name).hits[0].feature == feature


async def test_l_in_the_detail_view_labels_the_feature_and_the_detail_shows_it():
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        features = app.query_one("#token-features")
        features.focus()
        row = features.current()
        await pilot.press("enter")
        await settle(pilot)
        detail = app.screen
        await pilot.press("l")
        await pilot.pause()
        # two SAEs loaded: the box names the feature's (demo/30 and demo-late/30 are two features)
        assert f"Label for {row.sae}/{row.feature} " in str(app.screen.query_one("#label-box Static").render())
        app.screen.query_one("#label-input").value = ""
        await pilot.press(*"seen in detail", "enter")
        await settle(pilot)
        assert app.screen is detail and app.session.labels.get((row.sae, row.feature)) == "seen in detail"
        assert "seen in detail" in str(detail.query_one("#detail-head").render())


async def test_the_detail_described_twice_at_once_is_whole():
    """A label saved right after the detail opened (keys read in one burst) described it a second time while the
    first description was still being mounted: the two interleaved and left a widget half-mounted (the app's next
    wait for its widgets never ended)."""
    import asyncio

    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        app.query_one("#token-features").focus()
        await pilot.press("enter")
        await settle(pilot)
        detail = app.screen
        await asyncio.gather(*(detail._show(detail.info, [], None) for _ in range(3)))
        await pilot.pause()
        parts = list(detail.query_one("#detail-box").children)
        assert len(detail.query("#detail-head")) == 1 and parts and all(w.is_attached and w.is_running for w in parts)


async def test_escape_returns_to_the_prompt_from_any_pane():
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        for tab, widget in (("f2", "#token-table"), ("f2", "#token-features"), ("f3", "#search-results"), ("f4", "#specs")):
            await pilot.press(tab)
            app.query_one(widget).focus()
            await pilot.pause()
            assert app.focused is app.query_one(widget)
            await pilot.press("escape")
            await pilot.pause()
            assert app.focused is app.query_one("#prompt"), widget


async def test_the_apps_own_process_keeps_the_collector_off_what_a_load_brought():
    """`saetui` (freeze_heap=True) collects once after the load and freezes what survives: a later full
    collection walks only what the app made since, not the model's ~500k objects (tui/heap.py)."""
    import gc

    try:
        app = SaeTuiApp(prompt="Anna has a", freeze_heap=True, restore=False)
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot)
            frozen, tracked = gc.get_freeze_count(), len(gc.get_objects())
            assert frozen > 100_000 and tracked < frozen / 2, (frozen, tracked)
    finally:
        gc.unfreeze()  # the rest of the suite keeps the collector as it was
    plain = SaeTuiApp(prompt="Anna has a", restore=False)
    async with plain.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        assert gc.get_freeze_count() == 0  # a library user's process (and every other test) is left alone


async def test_a_status_note_goes_after_a_while_and_a_newer_one_restarts_the_count(monkeypatch):
    """What just happened stays on the status line for AppSettings.status_note_s, then the line shows the model and
    SAEs only (it said what an action did long after); a newer note gets its own time."""
    from saetui.settings import AppSettings
    from saetui.tui.widgets.status_bar import StatusBar

    monkeypatch.setattr(AppSettings, "status_note_s", 0.4)
    app = make_app("Anna has a")
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        bar = app.query_one(StatusBar)
        app.status("first note")
        await pilot.pause()
        assert bar.note == "first note" and "first note" in str(bar.render())
        await pilot.pause(0.25)
        app.status("a newer note")
        await pilot.pause(0.25)  # the first note's time is up; the newer one's is not
        assert bar.note == "a newer note"
        await pilot.pause(0.4)
        assert bar.note == "" and "a newer note" not in str(bar.render())
        assert app.session.status()["model"] in str(bar.render())


async def test_a_widget_focused_in_a_hidden_pane_shows_its_pane():
    """As Textual's TabbedContent did (the tab headers are saetui's own since issue 28): the focus never sits in a
    pane the user cannot see (a benchmark focusing the token table while the steer pane showed waited forever for
    a frame)."""
    from saetui.tui.widgets.pane_tabs import PaneSwitcher, PaneTabs

    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("f4")
        assert app.query_one(PaneSwitcher).current == "steer"
        for widget, pane in (("#token-table", "tokens"), ("#sweep", "steer"), ("#search-input", "search")):
            app.query_one(widget).focus()
            await pilot.pause()
            assert app.query_one(PaneSwitcher).current == pane and app.query_one(PaneTabs).active == pane, widget
            assert app.query_one(widget).region.area > 0, widget  # on screen


async def test_chat_mode_toggled_on_an_empty_prompt_says_no_error():
    """Ctrl+T with an empty prompt box analyzed it: an 'analyze failed' error toast on every press."""
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        app.query_one("#prompt").text = ""
        await pilot.press("ctrl+t")
        await settle(pilot)
        await pilot.press("ctrl+t")
        await settle(pilot)
        assert app.chat is None and not [n for n in app._notifications if n.severity == "error"]
