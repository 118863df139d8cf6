"""Pilot tests of what issue 9 puts on screen: features per width, several SAEs tagged, reconstruction and
predictions, coefficient steps scaled to the max activation, sweeps, the detail view, search scores, the
registry driving keys and palette, and the first-screen hint."""

from __future__ import annotations

import re

import pytest
from rich.text import Text

from saetui.settings import AppSettings
from saetui.steering.draft import Draft, coefficient_step
from saetui.steering.spec import SteeringSpec
from saetui.tui.app import HINT, SaeTuiApp
from saetui.tui.commands import Palette
from saetui.tui.snapshot import settle
from saetui.tui.widgets.feature_list import FeatureList
from saetui.tui.widgets.token_table import TokenTable, token_label
from saetui.demo import SAES
from tests.demo_facts import color_feature
from tests.tui.conftest import dense_last, token_side_rows

PROMPT = "The capital of France is Paris. Anna has a"
COLOR_SAE, COLOR = color_feature()  # the demo's most color-promoting feature (late SAE)


def notes(app) -> list[str]:
    return [n.message for n in app._notifications]


def span_rows(app, span) -> list[tuple[str, int]]:
    """(sae, feature) as the side list should show a span: the displayed SAE's features first, dense ones last."""
    ordered = sorted(span.saes, key=lambda s: s.name != app.sae_name)
    return dense_last(app, [(s.name, f.feature) for s in ordered for f in s.features])


def features_in_row(table: TokenTable, row: int) -> int:
    cell = str(table.get_row_at(row)[2])
    return len([part for part in cell.split("  ") if ":" in part])


async def test_the_token_table_shows_as_many_features_as_the_width_allows():
    counts = {}
    for width in (80, 160):
        app = SaeTuiApp(prompt=PROMPT)
        async with app.run_test(size=(width, 30)) as pilot:
            await settle(pilot)
            table = app.query_one(TokenTable)
            counts[width] = features_in_row(table, 1)
            assert table.virtual_size.width <= table.content_size.width  # nothing cut at the edge
            assert "SAE demo" in str(table.border_title)  # always says which SAE is displayed
    assert counts[80] == 3 and counts[160] >= 6, counts


async def test_a_modal_pushed_right_after_a_refill_covers_the_token_table_drawn_whole():
    """A frame drawn between a refill and the table's next idle, then a modal (F1, Enter on a feature): the table
    under it must show `0*` and `10`, not `0` and `1` (DataTable caches cells without their column's width)."""
    from saetui.tui.screens.help import HelpScreen

    app = SaeTuiApp(prompt=PROMPT)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        table = app.query_one(TokenTable)
        assert table.row_count > 10 and table.get_row_at(0)[0].plain == "0*"  # the demo's BOS, then 10 and more
        table.show(*table._shown)
        app.export_screenshot()  # the frame before the table is idle
        app.push_screen(HelpScreen())
        await settle(pilot)
        shown = re.sub(r"<[^>]+>", "", app.export_screenshot()).replace("&#160;", " ")
        cut = "the # column under the modal is cut"
        assert re.search(r"│ 0\* +│", shown) and re.search(r"│ 10 +│", shown), cut


async def test_token_keys_with_no_tokens_shown_say_why():
    """w and h on an empty token table (the model loading, or nothing analyzed) did nothing and said nothing."""
    from saetui.session import Session

    app = SaeTuiApp(Session(), prompt="", restore=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        table = app.query_one(TokenTable)
        assert table.row_count == 0
        table.focus()
        await pilot.press("w", "h")
        assert notes(app).count("no tokens yet: F5 analyzes the prompt") == 2


async def test_several_saes_are_tagged_and_s_switches_the_displayed_one():
    app = SaeTuiApp(prompt=PROMPT)  # the demo loads two SAEs, an early and a late layer
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        names = [s.name for s in app.session.saes]
        assert len(names) == 2 and app.sae_name == names[0]
        features = app.query_one("#token-features", FeatureList)
        rows = features.rows_shown
        assert {r.sae for r in rows} == set(names) and rows[0].sae == names[0]  # the displayed SAE first
        assert str(features.get_row_at(0)[0]).startswith(f"{names[0]}/")  # tagged
        app.query_one(TokenTable).focus()
        await pilot.press("s")
        await pilot.pause()
        assert app.sae_name == names[1] and f"SAE {names[1]}" in str(app.query_one(TokenTable).border_title)
        dense = app.session.dense_features(names[1]) or frozenset()  # listed after the others (`d`: in place)
        feats = [f for f, _ in app.analysis.sae(names[1]).per_token[0]]
        want = next(f for f in feats if f not in dense or app.session.labels.get((names[1], f), ""))
        assert str(app.query_one(TokenTable).get_row_at(0)[2]).startswith(f"{want}:")


async def test_h_in_the_token_table_heats_the_first_feature_its_row_shows_and_h_again_turns_it_off():
    """The first feature the row shows, not the strongest: a dense feature (listed last, dimmed) is not what the
    row is about, and heating one shown nowhere on screen read as a wrong feature."""
    app = SaeTuiApp(prompt=PROMPT)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        table = app.query_one(TokenTable)
        table.focus()
        sae = app.sae_name
        shown_first = [int(str(table.get_row_at(r)[2]).split(":")[0]) for r in range(table.row_count)]
        strongest = [feats[0][0] for feats in app.analysis.sae(sae).per_token]
        row = next(r for r in range(table.row_count) if shown_first[r] != strongest[r])  # a dense strongest one
        await pilot.press(*["down"] * row)
        await settle(pilot)
        top = shown_first[row]
        await pilot.press("h")
        await settle(pilot)
        assert f"heat of feature {top}" in str(table.border_title)
        await pilot.press("h")
        await settle(pilot)
        assert "heat" not in str(table.border_title)


async def test_highlighted_token_shows_its_reconstruction_and_next_token_predictions():
    app = SaeTuiApp(prompt=PROMPT)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        app.query_one(TokenTable).focus()
        await pilot.press("down", "down")
        await pilot.pause()
        info = str(app.query_one("#token-info").render())
        rec = app.analysis.saes[0].reconstruction[2]
        assert f"L0 {rec.l0}" in info and f"cos {rec.cosine:.3f}" in info
        assert f"recon {app.analysis.saes[0].name} L0" in info  # two SAEs loaded: it says whose reconstruction
        top = app.analysis.predictions[2][0]
        assert repr(top[1]) in info and f"{top[2]:.0%}" in info
        res = app.analysis.saes[0]
        assert f"L0 {res.mean_l0:.1f}" in str(app.query_one(TokenTable).border_subtitle)  # the prompt's summary
        await pilot.press("s")  # the next SAE shown: its own numbers, under its name
        await pilot.pause()
        other = app.analysis.saes[1]
        info = str(app.query_one("#token-info").render())
        assert f"recon {other.name} L0 {other.reconstruction[2].l0}" in info


async def test_the_token_info_wraps_between_guesses_never_inside_one_and_again_on_a_resize():
    """At 60x20 the box under the side list is 22 cells wide: Textual wrapped `' city' 5%` at its space."""
    app = SaeTuiApp(prompt=PROMPT)
    async with app.run_test(size=(60, 20)) as pilot:
        await settle(pilot)
        table, info = app.query_one(TokenTable), app.query_one("#token-info")
        table.focus()

        def shown() -> list[str]:
            return [info.render_line(y).text.strip() for y in range(info.size.height)]

        wrapped = 0
        for index in range(len(app.analysis.tokens)):
            table.move_cursor(row=index)
            await settle(pilot)
            lines = shown()
            guesses = [f"{text!r} {p:.0%}" for _, text, p in app.analysis.predictions[index][:AppSettings.predictions]]
            in_sight = [g for g in guesses if g in " ".join(lines)]  # the box shows 4 lines at most
            assert in_sight, (index, lines)
            for guess in in_sight:
                assert any(guess in line for line in lines), (index, guess, lines)
            wrapped += sum(line.startswith("'") for line in lines)  # a guess that began a line of its own
        assert wrapped  # some token's guesses did not fit on one line at this width

        def on_the_next_line() -> int:
            line = next(line for line in shown() if line.startswith("next"))
            return sum(guess in line for guess in guesses)

        narrow = on_the_next_line()
        await pilot.resize_terminal(160, 40)
        await settle(pilot)
        assert on_the_next_line() > narrow, shown()  # packed anew for the wider box


async def test_plus_steps_by_a_quarter_of_the_max_activation_and_a_sweep_gives_one_row_per_coefficient():
    app = SaeTuiApp(prompt=PROMPT)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        top = app.session.max_activation(COLOR_SAE, COLOR)
        assert top is not None and top > 0
        app.draft = Draft((SteeringSpec(COLOR, 1.0, sae=COLOR_SAE),))
        await pilot.press("f4")
        await pilot.press("plus")
        step = coefficient_step(app.draft.specs[0], top)
        assert abs(step - top / 4) <= 0.05 * top
        assert app.draft.specs[0].coefficient == round(1.0 + step, 4)
        app.query_one("#sweep").value = "0,3,6"
        app.query_one("#max-tokens").value = "4"
        await pilot.press("ctrl+w")
        await settle(pilot)
        columns = app.query("GenerationColumn")
        titles = [c.border_title.partition(" · KL ")[0] for c in columns]  # plain numbers: raw, and in max units
        assert titles == [f"{COLOR_SAE}/{COLOR} {c} = ×{c / top:.2g} max" for c in (0, 3, 6)]
        assert [s[-1].coefficient for s in app.steer.rows_specs] == [0.0, 3.0, 6.0]
        assert all(len(ids) > 0 for ids in app.steer.generated)
        app.query_one("#sweep").value = "0,x"
        await pilot.press("ctrl+w")
        await pilot.pause()
        assert any("sweep takes numbers" in n for n in notes(app))


async def test_adding_a_feature_uses_twice_its_max_activation():
    app = SaeTuiApp(prompt=PROMPT)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        features = app.query_one("#token-features", FeatureList)
        features.focus()
        row = features.current()
        await pilot.press("a")
        await pilot.pause()
        (spec,) = app.draft.specs
        assert (spec.sae, spec.feature) == (row.sae, row.feature)
        assert spec.coefficient == round(2 * app.session.max_activation(row.sae, row.feature), 2)


def test_pack_never_splits_an_item_across_lines():
    from saetui.tui.widgets.text_box import pack

    items = [Text(f"' token{i}' +{i}.00") for i in range(30)]
    lines = pack(items, 40).plain.split("\n")
    assert all(len(line) <= 40 for line in lines) and len(lines) > 5
    assert " ".join(lines) == " ".join(i.plain for i in items)  # nothing lost, nothing added
    for item in items:  # each item whole on one line
        assert any(item.plain in line for line in lines), item
    # a lead (`next `) is followed by the first item where it fits; a long one goes whole to the next line (it was
    # one item with the lead, cut to `next '<|assistant|>' …` at 60x20)
    lead = Text("next ")
    assert pack([Text("'a' 1%"), Text("'b' 2%")], 22, sep=" · ", lead=lead).plain == "next 'a' 1% · 'b' 2%"
    assert pack([Text("'<|assistant|>' 100%"), Text("'<|user|>' 0%")], 22, sep=" · ", lead=lead).plain.split("\n") \
        == ["next ", "'<|assistant|>' 100%", "'<|user|>' 0%"]


async def test_detail_shows_where_the_max_comes_from_a_histogram_and_shaded_examples():
    app = SaeTuiApp(prompt=PROMPT)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        app.query_one("#token-features").focus()
        await pilot.press("enter")
        await settle(pilot)
        screen = app.screen
        info = screen.info
        assert info is not None and info.histogram and info.top_examples
        head = str(screen.query_one("#detail-head").render())
        assert "special tokens" in head and f"{info.max_activation:.2f}" in head and "histogram" in head
        flows = list(screen.query(".detail-flow"))
        shaded = [str(span.style) for flow in flows[2:] for span in flow.render().spans]
        assert any(style.startswith("on ") for style in shaded)  # tokens shaded by their activation
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is app.screen_stack[0]


async def test_search_shows_scores_and_why_beside_the_label():
    app = SaeTuiApp(prompt=PROMPT)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        await pilot.press("f3", *"promotes Paris")
        await settle(pilot)
        # every loaded SAE, merged by score, as many hits as the app's list asks for
        result = app.session.search_all("promotes Paris", AppSettings.search_limit)
        rows = app.query_one("#search-results", FeatureList).rows_shown
        assert [(r.sae, r.feature) for r in rows] == [(h.sae, h.feature) for h in result.hits]
        assert rows[0].value == f"{result.hits[0].score:.2f}" and result.hits[0].why in rows[0].about
        assert len({r.value for r in rows}) > 1  # scores that say something


async def test_search_hits_are_tagged_whenever_several_saes_are_loaded_and_a_number_out_of_all_names_each_range():
    """'promotes red' finds only demo-late features: shown untagged, 349 read as demo/349."""
    app = SaeTuiApp(prompt=PROMPT)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        await pilot.press("f3", *"promotes red")
        await settle(pilot)
        results = app.query_one("#search-results", FeatureList)
        rows = results.rows_shown
        assert len({r.sae for r in rows}) == 1 and len(app.session.sae_names) == 2  # the case: hits of one SAE
        assert str(results.get_row_at(0)[0]) == f"{rows[0].sae}/{rows[0].feature}"
        box = app.query_one("#search-input")
        box.value = ""
        await pilot.press(*"1024")
        await settle(pilot)
        note = str(app.query_one("#search-note").render())
        assert all(f"{s.name} has 0..{s.d_sae - 1}" in note for s in app.session.saes)
        box.value = "9" * 5000  # beyond what int() reads: was Python's ValueError text in a toast
        await settle(pilot)
        assert "too long (over 4300 digits)" in str(app.query_one("#search-note").render()) and not app._notifications
        # a list cut at the limit says so ('50 features' read as all there are); `promotes` without its word or
        # space gets the hint (it searched labels for the word)
        box.value = "color"
        await settle(pilot)
        assert results.row_count == AppSettings.search_limit
        assert str(app.query_one("#search-note").render()).startswith(f"the best {AppSettings.search_limit} features")
        box.value = "promotes"
        await settle(pilot)
        assert str(app.query_one("#search-note").render()) == "promotes WORD: type the word"


async def test_first_screen_hint_and_palette_from_the_registry():
    from saetui.tui.actions import palette_actions

    app = SaeTuiApp(prompt=PROMPT)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        assert app.query_one("#prompt").border_subtitle == HINT
        await pilot.press("ctrl+p")
        await pilot.pause(0.4)
        shown = [str(o.prompt) for o in app.screen.query_one("CommandList")._options]
        for action in palette_actions():
            assert any(action.description in s for s in shown), (action, shown)


async def test_a_labels_file_set_aside_while_loading_is_shown():
    from saetui import files

    app = SaeTuiApp(prompt=PROMPT)
    files.notice("labels.csv was damaged and kept aside as labels.csv.bak-1")  # as a loader records it
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        assert any("kept aside" in n for n in notes(app))


async def test_why_shows_attribution_and_adds_a_feature_signed_to_push_the_prediction():
    from saetui.tui.screens.why import WhyScreen

    app = SaeTuiApp(prompt="The capital of France is")
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        table = app.query_one(TokenTable)
        table.focus()
        last = len(app.analysis.tokens) - 1
        await pilot.press(*["down"] * last, "w")  # the last token: what comes after "is"
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, WhyScreen) and screen.result is not None
        want = app.session.attribute("The capital of France is", position=last, top_k=20, verify=10)
        assert screen.result.target.text == want.target.text
        sae, first = screen.rows[0]
        assert abs(first.attribution) == max(abs(f.attribution) for s in want.saes for f in s.features)
        assert repr(want.target.text) in str(screen.query_one("#why-head").render())
        await pilot.press("a")  # push the predicted token up
        await pilot.pause()
        (spec,) = app.draft.specs
        # The measured ablation's sign where there is one (push_sign): on today's demo the top feature's
        # attribution and ablation disagree in sign, and the ablation is what adding the feature does.
        sign = first.push_sign()
        assert spec.feature == first.feature and (spec.coefficient > 0) == (sign > 0)
        await pilot.press("enter")
        await settle(pilot)
        assert app.screen.feature == first.feature  # the detail, over the why screen
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is screen


async def test_steered_rows_show_kl_and_mark_where_steering_moved_the_model_most():
    app = SaeTuiApp(prompt=PROMPT)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        app.draft = Draft((SteeringSpec(COLOR, 14.0, sae=COLOR_SAE),))
        app.query_one("#max-tokens").value = "8"
        await pilot.press("ctrl+g")
        await settle(pilot)
        steer = app.steer
        kl = app.session.steering_kl(PROMPT, steer.rows_specs, steer.generated)
        assert steer.kl == kl and kl[0] is None and len(kl[1]) == len(steer.generated[1])
        column = app.query_one("#gen-steered")
        assert f"max {max(kl[1]):.2f}" in column.border_subtitle
        assert any("reverse" in str(span.style) for span in column.render_text().spans)


async def test_detail_lists_decoder_neighbours_and_enter_walks_to_one():
    app = SaeTuiApp(prompt=PROMPT)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        app.post_message(__import__("saetui.tui.messages", fromlist=["x"]).FeatureChosen(COLOR_SAE, COLOR))
        await settle(pilot)
        first = app.screen
        neighbours = first.query_one("#neighbours", FeatureList)
        want = app.session.neighbours(COLOR, COLOR_SAE, against=COLOR_SAE, top_k=8)
        shown = neighbours.rows_shown
        assert [(r.sae, r.feature) for r in shown[:8]] == [(COLOR_SAE, n.feature) for n in want.neighbours]  # its own SAE first
        assert {r.sae for r in shown[8:]} == {s.name for s in app.session.saes} - {COLOR_SAE}  # then the other SAE's
        neighbours.focus()
        await pilot.press("enter")
        await settle(pilot)
        assert app.screen is not first and app.screen.feature == want.neighbours[0].feature
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is first


async def test_shift_arrows_select_a_span_and_list_its_features_from_every_sae():
    app = SaeTuiApp(prompt=PROMPT)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        table = app.query_one(TokenTable)
        table.focus()
        await pilot.press("down", "shift+down", "shift+down")
        await settle(pilot)
        assert table.span == (1, 4)
        features = app.query_one("#token-features", FeatureList)
        span = app.session.span(PROMPT, 1, 4, pool="max", top_k=AppSettings.top_k)
        assert [(r.sae, r.feature) for r in features.rows_shown] == span_rows(app, span)
        assert "Span 1–3" in str(features.border_title)
        # each token's strongest feature that is not dense is the span's too (a span listed 10 features per SAE, then
        # moved the dense ones last: 19 of 20 rows were dense ones)
        dense = {s.name: app.session.dense_features(s.name) or frozenset() for s in app.analysis.saes}
        listed = {(r.sae, r.feature) for r in features.rows_shown}
        for index in (1, 2, 3):
            lively = [(sae, f) for sae, f in token_side_rows(app, index) if f not in dense[sae]]
            assert lively and lively[0] in listed, (index, lively[:3])

        def marked() -> list[int]:
            return [row for row in range(table.row_count) if TokenTable.SPAN_STYLE in str(table.get_row_at(row)[0].style)]

        assert marked() == [1, 2, 3]  # the span's rows are marked in the table
        await pilot.press("shift+up")
        assert marked() == [1, 2] and table.span == (1, 3)
        app.tokens._repaint()  # a repaint (labels, the SAE shown) keeps the marks of the span still selected
        assert marked() == [1, 2]
        await pilot.resize_terminal(120, 36)  # a refill for the new width is no move: the span stays (it ended)
        await settle(pilot)
        assert table.span == (1, 3) and marked() == [1, 2] and "Span 1–2" in str(features.border_title)
        await pilot.press("down")  # a plain arrow ends the span: back to the token's own features
        await settle(pilot)
        assert table.span is None and [(r.sae, r.feature) for r in features.rows_shown] == token_side_rows(app, 3)
        assert marked() == []


async def test_a_span_in_chat_mode_is_over_the_rendered_conversation():
    app = SaeTuiApp(prompt="What is the capital of France?")
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        app.action_toggle_chat()
        await settle(pilot)
        table = app.query_one(TokenTable)
        table.focus()
        await pilot.press("down", "down", "down", "shift+down")
        await settle(pilot)
        assert table.span == (3, 5)
        want = app.session.span("What is the capital of France?", 3, 5, pool="max", top_k=AppSettings.top_k, chat=True)
        features = app.query_one("#token-features", FeatureList)
        assert [(r.sae, r.feature) for r in features.rows_shown] == span_rows(app, want)
        assert "Span 3–4" in str(features.border_title) and len(features.rows_shown) > 0


async def test_palette_contrast_lists_features_separating_two_sets_and_saves_a_vector():
    app = SaeTuiApp(prompt=PROMPT)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        a, b = ["Anna has a red car.", "The sky is blue."], ["Tom has a cat.", "The dog ran home."]
        app.search.contrast_command("; ".join(a) + " | " + "; ".join(b))
        await settle(pilot)
        want = app.session.contrast(a, b, top_k=20)
        rows = app.query_one("#search-results", FeatureList).rows_shown
        best = max((f for s in want.saes for f in s.features), key=lambda f: f.diff)
        assert rows[0].feature == best.feature and rows[0].value == f"{best.diff:+.2f}"
        assert "contrast: A 2 prompts" in str(app.query_one("#search-note").render())
        app.search.save_vector("redblue")
        await pilot.pause()
        assert "redblue" in app.session.vectors()
        app.search.contrast_command("only one set")
        await pilot.pause()
        assert any("two sets" in n for n in notes(app))
        app.steer.steer_vector("redblue")  # the direction steers beside SAE features, from the panel
        app.steer.steer_vector("nosuch")
        await pilot.pause()
        assert [getattr(s, "vector", None) for s in app.draft.specs] == ["redblue"]
        assert any("nosuch" in n for n in notes(app))
        hook = app.session.saes.get(app.sae_name).hook_name  # saved at both SAEs' hooks: the displayed one is used
        assert str(app.query_one("#specs").get_row_at(0)[1]) == f"vector redblue@{hook}"
        app.draft = app.draft.set_coefficient(0, 6.0)
        app.query_one("#max-tokens").value = "6"
        await pilot.press("ctrl+g")
        await settle(pilot)
        rows = [s for s in app.steer.rows_specs[1]]
        want = list(app.session.generate(PROMPT, [[], rows], stop_event=None, max_new_tokens=6))
        assert app.steer.generated[1] == [p.token_id for p in want if p.row == 1]
        await pilot.press("ctrl+q")
    again = SaeTuiApp()
    async with again.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        assert [(s.vector, s.coefficient) for s in again.draft.specs] == [("redblue", 6.0)]  # the session keeps it


async def test_palette_contrast_reads_files_of_prompts_as_the_cli_does(tmp_path):
    """`contrast colors.txt | The cat sat down.` contrasted the path's text (1 prompt); `a | b | c` read B as
    `b | c`. Files are read as `saetui contrast` reads them; a bad one is one line; one `|` only."""
    colors = tmp_path / "colors.txt"
    colors.write_text("Anna has a red car.\nThe sky is blue.\n")
    app = SaeTuiApp(prompt=PROMPT)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        app.search.contrast_command(f"{colors} | Tom has a cat.; The dog ran home.")
        await settle(pilot)
        got = app.session.last_contrast  # the app's (the call below replaces it)
        want = app.session.contrast(["Anna has a red car.", "The sky is blue."], ["Tom has a cat.", "The dog ran home."],
                                    top_k=20)
        assert got is not want and got.n_prompts == (2, 2) and got.to_dict() == want.to_dict()
        for bad, says in [("a | b | c", "one |"), (f"{tmp_path / 'nope.txt'} | b", "no file at"),
                          (f"{tmp_path} | b", "not a file of prompts"), ("- | b", "standard input")]:
            before = len(app._notifications)
            app.search.contrast_command(bad)
            await settle(pilot)
            assert any(says in n.message for n in list(app._notifications)[before:]), bad
        assert app.is_running


async def test_quitting_before_the_model_loads_keeps_the_saved_specs():
    import threading

    from saetui import state
    from saetui.session import Session

    class Waiting(Session):
        release = threading.Event()

        def load(self, *args, **kwargs):
            self.release.wait(30)

    spec = SteeringSpec(COLOR, 7.0, sae=COLOR_SAE).to_dict()
    state.save_session({"model": None, "saes": None, "prompt": PROMPT, "specs": [spec], "history": []})
    session = Waiting()
    app = SaeTuiApp(session)
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.pause()
            await pilot.press("ctrl+q")  # the model is still loading
    finally:
        session.release.set()
    saved, _ = state.load_session()
    assert saved["specs"] == [spec]


async def test_keys_pressed_faster_than_the_draft_comes_back_all_count():
    app = SaeTuiApp(prompt=PROMPT)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        app.draft = Draft((SteeringSpec(COLOR, 1.0, sae=COLOR_SAE),))
        await pilot.press("f4")
        await pilot.pause()
        step = app.steer.steps()[0]
        for _ in range(6):
            app.query_one("#specs").action_nudge(1)  # six presses before any message is handled
        await pilot.pause()
        assert app.draft.specs[0].coefficient == round(1.0 + 6 * step, 4)
        table = app.query_one(TokenTable)
        app.action_show_tab("tokens")
        table.focus()
        await pilot.pause()
        for _ in range(3):
            table.action_extend(1)
        await settle(pilot)
        assert table.span == (0, 4)


async def test_why_a_then_shift_a_turns_the_feature_to_push_down():
    from saetui.tui.messages import SteerFeature

    app = SaeTuiApp(prompt=PROMPT)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        app.post_message(SteerFeature(COLOR_SAE, COLOR, 1, signed=True))
        await pilot.pause()
        up = app.draft.specs[0].coefficient
        app.post_message(SteerFeature(COLOR_SAE, COLOR, -1, signed=True))
        await pilot.pause()
        assert up > 0 and app.draft.specs[0].coefficient == -up and len(app.draft) == 1
        app.post_message(SteerFeature(COLOR_SAE, COLOR))  # `a` in a feature list: points at it, changes nothing
        await pilot.pause()
        assert app.draft.specs[0].coefficient == -up


async def test_chat_mode_renders_user_turns_and_continues_with_the_kept_reply():
    app = SaeTuiApp(prompt="What is the capital of France?")
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        await pilot.press("ctrl+t")
        await settle(pilot)
        first = [{"role": "user", "content": "What is the capital of France?"}]
        want = app.session.render_chat(first, add_generation_prompt=True)
        assert [t.id for t in app.analysis.tokens] == list(want.ids)  # the template's ids, one BOS
        assert any(t.template for t in app.analysis.tokens) and "chat" in str(app.query_one("#prompt").border_title)
        app.query_one("#max-tokens").value = "6"
        await pilot.press("ctrl+g")
        await settle(pilot)
        reply = app.steer.reply(0)
        await pilot.press("f6")  # keep the baseline reply
        await pilot.pause()
        assert app.chat == [*first, {"role": "assistant", "content": reply}] and app.query_one("#prompt").text == ""
        await pilot.press(*"And of Spain?", "f5")
        await settle(pilot)
        whole = app.session.render_chat([*app.chat, {"role": "user", "content": "And of Spain?"}], add_generation_prompt=True)
        assert [t.id for t in app.analysis.tokens] == list(whole.ids)
        await pilot.press("ctrl+t")
        await settle(pilot)
        assert app.chat is None and not any(t.template for t in app.analysis.tokens)


async def test_a_next_turn_typed_before_f6_stays_in_the_box():
    """The next question typed before F6/F7: the reply kept answers the question it was generated for, and the text
    typed stays (it was cleared without a word)."""
    app = SaeTuiApp(prompt="What is the capital of France?")
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        await pilot.press("ctrl+t")
        await settle(pilot)
        app.query_one("#max-tokens").value = "4"
        await pilot.press("ctrl+g")
        await settle(pilot)
        prompt = app.query_one("#prompt")
        prompt.text = "Where is Paris?"
        await pilot.press("f7")
        await pilot.pause()
        assert app.chat == [{"role": "user", "content": "What is the capital of France?"},
                            {"role": "assistant", "content": app.steer.reply(1)}]
        assert prompt.text == "Where is Paris?" and "the text in the box is the next user turn" in notes(app)[-1]


async def test_f6_f7_without_a_reply_to_keep_say_why():
    """Each way of having no reply to keep says which it is: none yet, kept already, a plain-text generation
    before chat mode was turned on, a reply to another conversation. Nothing is kept by any of them."""
    app = SaeTuiApp(prompt="What is the capital of France?")

    async def refusal(key: str) -> str:
        before = len(app._notifications)
        chat = app.chat
        await pilot.press(key)
        await pilot.pause()
        assert app.chat == chat  # nothing kept
        (note,) = [n.message for n in list(app._notifications)[before:]]
        return note

    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        app.query_one("#max-tokens").value = "4"
        await pilot.press("ctrl+g")  # plain text, then chat mode on
        await settle(pilot)
        await pilot.press("ctrl+t")
        await settle(pilot)
        assert await refusal("f7") == "the last generation was plain text, not a chat reply: Ctrl+G generates one"
        await pilot.press("ctrl+g")
        await settle(pilot)
        await pilot.press("f7")
        await pilot.pause()
        assert len(app.chat) == 2
        assert await refusal("f6") == "the steered reply is kept already: type the next user turn, then Ctrl+G"
        app.query_one("#prompt").text = "And of Spain?"
        await pilot.press("ctrl+g")
        await settle(pilot)
        await pilot.press("ctrl+t", "ctrl+t")  # a new chat: the reply on screen answers the old one
        await settle(pilot)
        assert app.chat == []
        assert await refusal("f6") == "the last reply answers another conversation: Ctrl+G generates one for this one"
        await pilot.press("ctrl+g")  # a reply kept, then a new chat: not 'kept already' (that was the old chat's)
        await settle(pilot)
        await pilot.press("f7")
        await pilot.pause()
        assert len(app.chat) == 2
        await pilot.press("ctrl+t", "ctrl+t")
        await settle(pilot)
        assert await refusal("f6") == "the last reply answers another conversation: Ctrl+G generates one for this one"


@pytest.mark.parametrize("size", [(60, 20), (80, 24), (120, 40)])
async def test_the_token_table_never_scrolls_sideways_in_chat_mode(size):
    """Walk of issue 23: at 60x20 in chat mode the `<|assistant|>` token and the `top features` header were wider
    than the table: it scrolled sideways (`top featur`) and a horizontal scrollbar took one of its rows."""
    app = SaeTuiApp(prompt="What is the capital of France?")
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        await pilot.press("ctrl+t")
        await settle(pilot)
        table = app.query_one(TokenTable)
        assert any(t.template for t in app.analysis.tokens)
        assert not table.show_horizontal_scrollbar, (size, table.virtual_size, table.content_size)
        assert table.virtual_size.width <= table.content_size.width, (size, table.virtual_size, table.content_size)
        labels = [str(table.get_row_at(i)[1]) for i in range(table.row_count)]
        whole = [token_label(t, app.session.model.tokenizer) for t in app.analysis.tokens]
        assert all(a == b or (a.endswith("…") and b.startswith(a[:-1])) for a, b in zip(labels, whole)), labels
        first = str(table.get_row_at(0)[2]).split()[0]
        assert re.fullmatch(r"\d+:\d+\.\d", first), first  # a whole f:act item in the last column


async def test_a_burst_of_60_keys_at_30_per_second_lands_on_its_token_with_that_tokens_side_list():
    """Keys injected as a terminal sends them (not pilot.press, which waits for each to be handled), 33 ms
    apart like a held key's repeat: none is lost, and the side list ends on the features of the token the
    cursor rests on, not one it passed."""
    import asyncio

    prompt = "The capital of France is Paris. Anna has a red cat and Tom has a blue dog. " * 2
    for size in ((120, 40), (80, 24)):
        app = SaeTuiApp(prompt=prompt)
        async with app.run_test(size=size) as pilot:
            await settle(pilot)
            table = app.query_one(TokenTable)
            table.focus()
            await pilot.pause()
            n, row = table.row_count, table.cursor_row
            keys = ["down"] * 30 + ["up"] * 7 + ["down"] * 5 + ["up"] * 18
            for key in keys:
                app.simulate_key(key)
                row = max(0, min(n - 1, row + (1 if key == "down" else -1)))
                await asyncio.sleep(1 / 30)
            await settle(pilot)
            assert 0 < row < n - 1 and table.cursor_row == row, (size, table.cursor_row, row)
            result = app.analysis
            want = token_side_rows(app, row)
            side = app.query_one("#token-features", FeatureList)
            assert [(r.sae, r.feature) for r in side.rows_shown] == want and want
            assert repr(token_label(result.tokens[row], app.session.model.tokenizer)) in str(side.border_title)


async def test_keys_sent_at_once_to_a_list_act_in_the_order_they_were_typed(monkeypatch):
    """A burst that mixes Home/End with arrows (typed ahead, or pasted by tmux send-keys) lands where the keys say
    in order: every key of a list takes the same path (the focused widget, then the app's bindings), so none overtakes
    another (Up/Down bound with priority ran at once while Home was still on its way: Home Down Down Down ended on
    row 0). The token table's and the side list's highlights stop at the tokens pane (nothing above handles them)."""
    import asyncio

    from textual.screen import Screen

    seen: list[str] = []
    # Textual looks handlers up on the class: a spy there, undone after the test
    monkeypatch.setattr(Screen, "on_data_table_row_highlighted", lambda self, event: seen.append(event.data_table.id),
                        raising=False)
    app = SaeTuiApp(prompt=PROMPT)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        for lst in (app.query_one(TokenTable), app.query_one("#token-features", FeatureList)):
            lst.focus()
            await pilot.pause()
            for keys, want in ((["end", "up", "up", "home", "down", "down", "down"], 3),
                               (["home", "down", "down", "end", "up"], lst.row_count - 2)):
                for key in keys:  # as a terminal sends them: not waiting for each to be handled
                    app.simulate_key(key)
                await asyncio.sleep(0)
                await settle(pilot)
                assert lst.cursor_row == want, (lst.id, keys, lst.cursor_row, want)
    assert seen == [], seen


async def test_a_palette_command_typed_with_ctrl_p_and_enter_in_one_read_runs():
    """`Ctrl+P`, `save preset p2`, Enter sent at once (tmux send-keys, a slow link): the keys before the palette was
    mounted were lost and it closed with nothing run; with the box ready, Enter came before the search for the text
    had finished and ran what was highlighted for an earlier text (Textual's 'Save screenshot')."""
    import asyncio

    from saetui.paths import config_dir

    app = SaeTuiApp(prompt=PROMPT)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        for key in ["ctrl+p", *"save preset p2", "enter"]:  # as a terminal sends them: not waiting for each
            app.simulate_key(key)
        await asyncio.sleep(0)
        await settle(pilot)
        assert (config_dir() / "presets" / "p2.json").is_file()
        assert [n.message for n in app._notifications][-1].startswith("preset p2 saved (0 specs): ")
        assert not isinstance(app.screen, Palette)


async def test_dense_features_go_after_the_others_dimmed_and_d_shows_them_in_place():
    """The demo's index says which features fire on more than 10% of tokens: the side list puts them (unlabelled)
    after the others in the same order otherwise, dimmed, counts them on its lower border, and `d` shows them in place."""
    from saetui.sae.evals import DENSE

    app = SaeTuiApp(prompt=PROMPT)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        table = app.query_one(TokenTable)
        table.focus()
        await pilot.press("down", "down")
        await settle(pilot)
        session, result = app.session, app.analysis
        ordered = sorted(result.saes, key=lambda s: s.name != app.sae_name)
        natural = [(s.name, f) for s in ordered for f, _ in s.per_token[2]]

        def dense(sae: str, f: int) -> bool:
            index = session.indexes[sae]
            return float(index.counts[f]) / index.n_tokens > DENSE and not session.labels.get((sae, f), "")

        want = [k for k in natural if not dense(*k)] + [k for k in natural if dense(*k)]
        side = app.query_one("#token-features", FeatureList)
        shown = side.rows_shown
        assert [(r.sae, r.feature) for r in shown] == want != natural  # the demo has dense features at the top
        assert [r.dim for r in shown] == [dense(*k) for k in want]
        moved = sum(dense(*k) for k in natural)
        assert f"{moved} dense at the end" in str(side.border_subtitle)
        await pilot.press("d")
        await pilot.pause()
        assert [(r.sae, r.feature) for r in side.rows_shown] == natural and f"{moved} dense dimmed" in str(side.border_subtitle)
        assert not any("no feature index" in n for n in notes(app))  # the demo's SAEs have indexes
        await pilot.press("d")
        del session.indexes["demo-late"]  # an SAE without an index: said once, its features stay in place
        for prompt in ("Tom has a blue dog", "Tom has a red dog"):
            app.query_one("#prompt").text = prompt
            app.action_analyze()
            await settle(pilot)
        assert sum("demo-late has no feature index" in n for n in notes(app)) == 1
        assert not any(r.dim for r in side.rows_shown if r.sae == "demo-late")
        assert any(r.dim for r in side.rows_shown if r.sae == "demo")


async def test_at_60x20_the_generated_text_gets_lines_to_show():
    """At 60x20 the spec table keeps one row in sight and the generation columns two lines of text (they had
    none); at 80x24 the table keeps its four rows."""
    for size, spec_height in (((60, 20), 4), ((80, 24), 6)):
        app = SaeTuiApp(prompt=PROMPT)
        async with app.run_test(size=size) as pilot:
            await settle(pilot)
            await pilot.press("f4")
            await pilot.pause()
            await app.action_generate()
            await settle(pilot)
            columns = list(app.query("GenerationColumn"))
            assert app.query_one("#specs").outer_size.height == spec_height, size
            assert all(c.content_size.height >= 2 and c.text for c in columns[:2]), [c.content_size for c in columns]


async def test_a_switched_off_spec_is_swept_and_a_blank_row_says_why():
    """Ctrl+W on a spec switched off (Space) sweeps it all the same (it did nothing, silently); a generated row
    with no text, such as one ended by its first token, says so under its title."""
    from saetui.tui.messages import GenerationDone

    app = SaeTuiApp(prompt=PROMPT)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        app.draft = Draft((SteeringSpec(COLOR, 1.0, sae=COLOR_SAE, enabled=False),))
        await pilot.press("f4")
        app.query_one("#sweep").value = "0,30"
        app.query_one("#max-tokens").value = "6"
        await pilot.press("ctrl+w")
        await settle(pilot)
        assert [[s.enabled and s.coefficient for s in row] for row in app.steer.rows_specs] == [[0.0], [30.0]]
        assert app.steer.generated[0] != app.steer.generated[1]  # the swept feature reached the model
        steer = app.steer
        eos = app.session.model.tokenizer.eos_token_id
        steer.generated[1] = [eos]  # as if the row had ended at its first token
        steer.post_message(GenerationDone(False, steer._run, None))
        await settle(pilot)
        columns = list(app.query("GenerationColumn"))
        assert "ended it at its first token" in str(columns[1].query_one(".gen-text").render())
        assert "no text" not in str(columns[0].query_one(".gen-text").render())


async def test_the_token_tables_top_features_put_dense_ones_last_dimmed_and_d_shows_them_in_place():
    """The table's last column follows the side list's rule (issue 23): on each row the displayed SAE's dense,
    unlabelled features come after the others, dimmed, so the few that fit say something; `d` restores the order."""
    from saetui.sae.evals import DENSE

    for size in ((60, 20), (80, 24), (120, 40)):
        app = SaeTuiApp(prompt=PROMPT)
        async with app.run_test(size=size) as pilot:
            await settle(pilot)
            session, result, sae = app.session, app.analysis, app.sae_name
            index = session.indexes[sae]
            table = app.query_one(TokenTable)

            def dense(f: int) -> bool:
                return float(index.counts[f]) / index.n_tokens > DENSE and not session.labels.get((sae, f), "")

            def cells() -> list[list[tuple[int, bool]]]:
                """Per row: (feature, dimmed) for each `f:act` item shown."""
                out = []
                for row in range(table.row_count):
                    cell = table.get_row_at(row)[2]
                    items, at = [], 0
                    for part in cell.plain.split("  "):
                        dim = any("dim" in str(span.style) for span in cell.spans if span.start <= at < span.end)
                        items.append((int(part.split(":")[0]), dim))
                        at += len(part) + 2
                    out.append(items)
                return out

            shown = cells()
            moved_any = False
            for row, items in enumerate(shown):
                natural = [f for f, _ in result.sae(sae).per_token[row]]
                want = [f for f in natural if not dense(f)] + [f for f in natural if dense(f)]
                assert items == [(f, dense(f)) for f in want[:len(items)]], (size, row)
                moved_any |= want[:len(items)] != natural[:len(items)]
            assert moved_any  # the demo's dense features lead many rows
            table.focus()
            await pilot.press("d")
            await pilot.pause()
            for row, items in enumerate(cells()):
                natural = [f for f, _ in result.sae(sae).per_token[row]]
                assert items == [(f, dense(f)) for f in natural[:len(items)]], (size, row)


async def test_a_dense_feature_labelled_leaves_the_dense_group_in_the_table_too():
    """A label says what a dense feature means, so it keeps its place (`_is_dense`): the side list showed that at
    once, the token table's top features only after `d` twice or a restart."""
    app = SaeTuiApp(prompt=PROMPT)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        sae, table = app.sae_name, app.query_one(TokenTable)
        dense = app.session.dense_features(sae)
        per_token = app.analysis.sae(sae).per_token
        row, feature = next((r, f) for r, feats in enumerate(per_token) for f, _ in feats
                            if f in dense and not app.session.labels.get((sae, f), ""))

        def shown() -> list[int]:
            return [int(part.split(":")[0]) for part in table.get_row_at(row)[2].plain.split("  ")]

        before = shown()
        app.session.set_label(feature, "now it means something", sae)
        app.labels_rev += 1  # as the label box does once saved
        await settle(pilot)
        natural = [f for f, _ in per_token[row]]
        want = [f for f in natural if f not in dense or f == feature or app.session.labels.get((sae, f), "")]
        want += [f for f in natural if f not in want]
        assert shown() == want[:len(shown())] and shown() != before


async def test_home_end_and_page_keys_move_through_every_list():
    """Home/End go to the first and last row of the token table and of the side list (DataTable scrolls sideways on
    them), PageDown/PageUp a page; Tab goes from the prompt straight to the pane's list (the tab headers are skipped:
    F2/F3/F4 switch tabs)."""
    prompt = "The capital of France is Paris. Anna has a red cat and Tom has a blue dog. " * 3
    for size in ((60, 20), (80, 24), (120, 40)):
        app = SaeTuiApp(prompt=prompt)
        async with app.run_test(size=size) as pilot:
            await settle(pilot)
            for list_id in ("#token-table", "#token-features"):
                rows = app.query_one(list_id)
                rows.focus()
                await pilot.pause()
                assert rows.row_count > 10, (size, list_id)
                await pilot.press("end")
                assert rows.cursor_row == rows.row_count - 1, (size, list_id)
                await pilot.press("home")
                assert rows.cursor_row == 0, (size, list_id)
                await pilot.press("pagedown")
                assert 0 < rows.cursor_row < rows.row_count - 1, (size, list_id)
                await pilot.press("pageup")
                assert rows.cursor_row == 0, (size, list_id)
            for tab, first in (("tokens", "token-table"), ("search", "search-input"), ("steer", "specs")):
                app.action_show_tab(tab)
                await pilot.pause()
                app.query_one("#prompt").focus()
                await pilot.press("tab")
                assert app.focused.id == first, (size, tab, app.focused)


async def test_the_side_list_starts_at_its_top_for_a_new_token_and_d_during_a_span_keeps_the_span():
    """Walk of issue 23: after End in the side list, the next token's list showed its end (its top features out
    of sight); `d` during a span ended the span and the span's list ignored the dense rule."""
    for size in ((60, 20), (80, 24), (120, 40)):
        app = SaeTuiApp(prompt=PROMPT)
        async with app.run_test(size=size) as pilot:
            await settle(pilot)
            side = app.query_one("#token-features", FeatureList)
            side.focus()
            await pilot.press("end")
            assert side.cursor_row == side.row_count - 1 > 0
            table = app.query_one(TokenTable)
            table.focus()
            await pilot.press("down")
            await settle(pilot)
            assert side.cursor_row == 0 and side.scroll_y == 0, size
            await pilot.press("shift+down", "shift+down")
            await settle(pilot)
            span = table.span
            want = span_rows(app, app.session.span(PROMPT, *span, pool="max", top_k=AppSettings.top_k))
            assert [(r.sae, r.feature) for r in side.rows_shown] == want and "dense at the end" in str(side.border_subtitle)
            await pilot.press("d")
            await settle(pilot)
            assert table.span == span and "dense dimmed" in str(side.border_subtitle)
            natural = sorted(app.session.span(PROMPT, *span, pool="max", top_k=AppSettings.top_k).saes,
                             key=lambda s: s.name != app.sae_name)
            assert [(r.sae, r.feature) for r in side.rows_shown] == [(s.name, f.feature) for s in natural for f in s.features]
            await pilot.press("down")  # the span ends: the table is refilled in place order
            await settle(pilot)
            row = table.cursor_row
            first = str(table.get_row_at(row)[2]).split(":")[0]
            assert first == str(app.analysis.sae(app.sae_name).per_token[row][0][0])


async def test_a_newline_tokens_side_list_title_is_escaped_once():
    app = SaeTuiApp(prompt="Tom went home.\nAnna stayed.")
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        table = app.query_one(TokenTable)
        (row,) = [t.index for t in app.analysis.tokens if "\n" in t.text]
        table.move_cursor(row=row)
        await settle(pilot)
        title = str(app.query_one("#token-features").border_title)
        assert title.startswith("Features of '\\n'"), title  # the token's label (backslash, n), not its repr


async def test_the_spec_table_shows_its_rows_at_every_size():
    """At 60x20 the spec table's one row went to a sideways scrollbar; at 120x40 five specs needed scrolling while
    the generated text had twenty empty rows. It grows with its rows now, up to 8 in sight (one at 60x20)."""
    specs = tuple(SteeringSpec(f, 2.0, "add", COLOR_SAE) for f in range(5))
    for size, rows in (((60, 20), 1), ((80, 24), 3), ((120, 40), 5)):
        app = SaeTuiApp(prompt=PROMPT)
        async with app.run_test(size=size) as pilot:
            await settle(pilot)
            app.draft = Draft(specs)
            await pilot.press("f4")
            await settle(pilot)
            table = app.query_one("#specs")
            assert table.scrollable_content_region.height - 1 >= rows, (size, table.scrollable_content_region)  # - header


async def test_a_spec_added_from_another_tab_is_in_sight_when_the_steer_tab_opens():
    """Walk of issue 23 at 60x20: `a` in why? (or in a feature list) adds a spec and highlights its row while the
    steer tab is hidden; the table, one row high there, still showed the first spec, so Ctrl+W swept a spec out of
    sight. The highlighted row is scrolled into view when the table shows."""
    for size in ((60, 20), (80, 24), (120, 40)):
        app = SaeTuiApp(prompt=PROMPT)
        async with app.run_test(size=size) as pilot:
            await settle(pilot)
            app.draft = Draft(tuple(SteeringSpec(f, 2.0, "add", COLOR_SAE) for f in range(10, 19)))
            await pilot.pause()
            app.steer.add_feature(COLOR_SAE, COLOR)  # as the why? screen's `a` does, from the tokens tab
            await settle(pilot)
            await pilot.press("f4")
            await settle(pilot)
            table = app.query_one("#specs")
            in_sight = table.scrollable_content_region.height - 1  # rows under the header
            assert table.cursor_row == 9, size
            assert table.scroll_y <= table.cursor_row < table.scroll_y + in_sight, (size, table.scroll_y, in_sight)


async def test_the_side_lists_columns_end_before_its_scrollbar():
    """Walk of issue 23: the side list sized its columns to its width with the vertical scrollbar's two cells in it
    (content_size counts them), so the about column ran under the scrollbar and its ellipsis was hidden: 'numbe'
    for 'number words' at 80x24. (At 60x20 the feature and act columns alone are two cells wider than the list: see
    the walk's report.)"""
    for size in ((80, 24), (120, 40)):
        app = SaeTuiApp(prompt=PROMPT)
        async with app.run_test(size=size) as pilot:
            await settle(pilot)
            side = app.query_one("#token-features", FeatureList)
            assert side.show_vertical_scrollbar, size  # the case that went wrong: more rows than fit
            assert side.virtual_size.width <= side.scrollable_content_region.width, (size, side.virtual_size)
            cut = [str(side.get_row_at(i)[2]) for i, r in enumerate(side.rows_shown) if len(r.about) > side._widths[2]]
            assert all(c.endswith("…") for c in cut) and (cut or size != (80, 24)), (size, cut)  # labels cut at 80
            header = side.render_line(0).text
            assert re.search(r"feature\s+act\s+about", header), (size, header)  # whole: `abou` at 80x24


@pytest.mark.parametrize("size", [(60, 20), (80, 24), (120, 40)])
async def test_every_side_list_row_on_screen_shows_its_feature_and_value_whole(size):
    """Walk of issue 23: at 60x20 `demo-late/721` and its act, padded, were two cells wider than the list, and
    3.37 read as 3.3. Where they do not fit padded, the cells lose their padding and keep one blank between."""
    app = SaeTuiApp(prompt=PROMPT)
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        app.query_one("#token-table").focus()
        await pilot.press("s")  # the late SAE shown: its features (the longer tags) head the list
        await settle(pilot)
        side = app.query_one("#token-features", FeatureList)
        tagged = [f"{r.sae}/{r.feature}" for r in side.rows_shown]
        assert tagged[0].startswith(f"{SAES[1].name}/"), tagged
        in_sight = side.scrollable_content_region.height - 1
        assert in_sight >= 2, size
        for y, (name, row) in enumerate(zip(tagged[:in_sight], side.rows_shown), start=1):
            line = side.render_line(y).text[: side.scrollable_content_region.width]  # the scrollbar covers the rest
            assert re.search(rf"(^|\s){re.escape(name)}\s+{re.escape(row.value)}(\s|$)", line), (size, line, name)


async def test_the_highlighted_features_whole_label_shows_under_the_side_list_while_it_has_the_focus():
    """Walk of issue 23: the side list's about column is 5 characters at 80x24 and absent at 60x20; the box under
    the list gives the highlighted feature's whole label while the list has the focus."""
    for size in ((60, 20), (80, 24), (120, 40)):
        app = SaeTuiApp(prompt=PROMPT)
        async with app.run_test(size=size) as pilot:
            await settle(pilot)
            side = app.query_one("#token-features", FeatureList)
            info = app.query_one("#token-info")
            labelled = next(i for i, r in enumerate(side.rows_shown) if r.about)
            assert "about" not in str(info.render())  # the token table has the focus
            side.focus()
            side.move_cursor(row=labelled)
            await settle(pilot)
            row = side.rows_shown[labelled]
            assert f"about {row.sae}/{row.feature}: {row.about}" in str(info.render()).replace("\n", " "), size
            app.query_one(TokenTable).focus()
            await settle(pilot)
            assert "about" not in str(info.render())


@pytest.mark.parametrize("size", [(60, 20), (80, 24)])
async def test_the_generation_boxes_show_a_typed_value_whole_once_left(size):
    """temp and seed had 3 cells at 80 columns (padding) and kept the view where typing left it: 0.75 read '75'."""
    app = SaeTuiApp(prompt=PROMPT)
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        await pilot.press("f4")
        await pilot.pause()
        for box_id, value in (("#temperature", "0.75"), ("#seed", "1234")):
            box = app.query_one(box_id)
            box.focus()
            await pilot.pause()
            await pilot.press("ctrl+u", *value, "tab")
            await pilot.pause()
            assert box.value == value and box.render_line(0).text.strip() == value, (size, box_id)


async def test_the_search_note_gives_the_highlighted_hits_whole_text_while_the_list_has_the_focus():
    """At 80 columns the results' `about` column is cut (`promotes ' green' +2.98 logit/act; +9.82 at its in…`),
    with no box to read it in full, unlike the token pane's list."""
    app = SaeTuiApp(prompt=PROMPT)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("f3", *"promotes green")
        await settle(pilot)
        note = app.query_one("#search-note")
        counted = str(note.render())
        assert "ranked by the token ' green'" in counted  # how the query was read
        await pilot.press("down", "down")  # into the list, then its second hit
        await pilot.pause()
        row = app.query_one("#search-results", FeatureList).current()
        whole = " ".join(str(note.render()).split())
        assert whole == " ".join(f"{row.sae}/{row.feature} · {row.about}".split()) and len(row.about) > 40
        await pilot.press("escape")  # the list loses the focus: the note says how the query was read again
        await pilot.pause()
        assert str(note.render()) == counted
