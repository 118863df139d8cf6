"""Keys that open a dialog, read in one burst with the keys around them (saetui/tui/key_order.py): the keys before
run first, the keys after go to the dialog."""

from __future__ import annotations

from textual import events

from saetui.tui.app import SaeTuiApp
from saetui.tui.screens.label_edit import LabelScreen
from saetui.tui.snapshot import settle

PROMPT = "The capital of France is Paris. Anna has a"


async def focused_features(pilot):
    """The app loaded and the token's feature list focused."""
    await settle(pilot)
    features = pilot.app.query_one("#token-features")
    features.focus()
    await pilot.pause()
    return features


def burst(app, keys: list[str]) -> None:
    """Keys as one read from the terminal brings them: all in the app's queue before the first is handled."""
    for key in keys:
        app.post_message(events.Key(key, key if len(key) == 1 else {"enter": "\r", "space": " "}.get(key)))


async def test_l_then_a_label_and_enter_in_one_read_saves_that_label_and_touches_nothing_else():
    app = SaeTuiApp(prompt=PROMPT)
    async with app.run_test(size=(100, 30)) as pilot:
        features = await focused_features(pilot)
        assert features.row_count > 1
        second = features._rows[1]
        specs = list(app.draft.specs)
        # Down first: the label is the second row's. Its letters hold `a` (add a spec), `h` (heat), `d`, `l`.
        burst(app, ["down", "l", "ctrl+u", *"a hld label", "enter"])
        await settle(pilot)
        assert not isinstance(app.screen, LabelScreen) and app.screen is app.screen_stack[0]  # no detail opened
        assert app.session.labels.get((second.sae, second.feature)) == "a hld label"
        assert list(app.draft.specs) == specs
        assert app.focused is features and features.cursor_row == 1


async def test_escape_then_keys_go_to_the_prompt_and_l_types_an_l_there():
    """Escape moves the focus to the prompt: the keys read with it go there (End moved the list, the letters were
    lost); `l` is no longer the list's key, it types an l."""
    app = SaeTuiApp(prompt=PROMPT)
    async with app.run_test(size=(100, 30)) as pilot:
        features = await focused_features(pilot)
        prompt = app.query_one("#prompt")
        prompt.move_cursor((0, 0))
        burst(app, ["escape", "end", "l", "y"])
        await settle(pilot)
        assert app.screen is app.screen_stack[0]
        assert app.focused is prompt and prompt.text == PROMPT + "ly" and features.cursor_row == 0
        features.focus()
        await pilot.pause()
        burst(app, ["down", "escape", *" a cat", "f5"])  # Down for the list, the rest for the prompt, then analyzed
        await settle(pilot)
        assert features.cursor_row == 1 and prompt.text == PROMPT + "ly a cat"
        assert app.analysis.prompt == PROMPT + "ly a cat" and list(app.draft.specs) == []


async def test_t_then_a_token_and_enter_in_one_read_explain_that_token():
    from tests.tui.test_why import PROMPT as WHY_PROMPT, open_why

    app = SaeTuiApp(prompt=WHY_PROMPT)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await open_why(pilot)
        burst(app, ["t", *" Cairo", "enter"])
        await settle(pilot)
        assert app.screen is screen and screen.result is not None
        assert screen.result.target.text == " Cairo"


async def test_enter_then_l_and_a_label_in_one_read_open_the_detail_and_label_from_there():
    from saetui.tui.screens.feature_detail import FeatureDetailScreen

    app = SaeTuiApp(prompt=PROMPT)
    async with app.run_test(size=(100, 30)) as pilot:
        features = await focused_features(pilot)
        row = features.current()
        burst(app, ["enter", "l", "ctrl+u", *"from detail", "enter"])
        await settle(pilot)
        assert isinstance(app.screen, FeatureDetailScreen) and app.screen.feature == row.feature
        assert app.session.labels.get((row.sae, row.feature)) == "from detail"


async def test_a_marker_that_never_comes_back_holds_the_keys_only_a_while(monkeypatch):
    """A marker lost on its way (its widget removed) must not hold the keys for good: after a few waits the key
    takes its turn and the keys held go on, in order."""
    from saetui.tui import key_order

    monkeypatch.setattr(key_order, "STUCK_S", 0.05)
    monkeypatch.setattr(key_order.KeyOrder, "_send", lambda self, wait: None)  # every marker lost
    app = SaeTuiApp(prompt=PROMPT)
    async with app.run_test(size=(100, 30)) as pilot:
        features = await focused_features(pilot)
        row = features.current()
        burst(app, ["l", "ctrl+u", *"held", "enter"])
        for _ in range(100):
            await pilot.pause(0.05)
            if app._waiting is None and not isinstance(app.screen, LabelScreen):
                break
        await settle(pilot)
        assert app._waiting is None and app.session.labels.get((row.sae, row.feature)) == "held"


async def test_l_on_the_details_neighbours_labels_the_neighbour_not_the_feature_shown():
    """The detail and its neighbours list both bind `l`; as priority bindings Textual tries the screen's first: the
    focused list's comes first, as it did as a plain binding."""
    app = SaeTuiApp(prompt=PROMPT)
    async with app.run_test(size=(100, 40)) as pilot:
        await focused_features(pilot)
        await pilot.press("enter")
        await settle(pilot)
        detail = app.screen
        neighbours = detail.query_one("#neighbours")
        neighbours.focus()
        neighbours.move_cursor(row=1)
        await pilot.pause()
        row = neighbours.current()
        assert (row.sae, row.feature) != (detail.sae, detail.feature)
        burst(app, ["l", "ctrl+u", *"a neighbour", "enter"])
        await settle(pilot)
        assert app.screen is detail and app.session.labels.get((row.sae, row.feature)) == "a neighbour"
        assert app.session.labels.get((detail.sae, detail.feature)) != "a neighbour"


async def test_keys_before_tab_run_where_they_were_typed_and_keys_after_it_where_it_moved():
    """`Down Down Tab` in one read moved the side list twice: Tab ran as it arrived, and the Downs, bubbling up from
    the table, found the list's bindings. Now the table moves, then the focus; `End` after Tab is the list's."""
    from saetui.tui.widgets.token_table import TokenTable

    app = SaeTuiApp(prompt=PROMPT)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        table, features = app.query_one(TokenTable), app.query_one("#token-features")
        table.focus()
        table.move_cursor(row=1)
        await settle(pilot)
        burst(app, ["down", "down", "tab", "end"])
        await settle(pilot)
        assert table.cursor_row == 3 and app.focused is features
        assert features.cursor_row == features.row_count - 1 > 0
        assert str(features.border_title) == "Features of ' of'"  # token 3's list
        burst(app, ["up", "shift+tab", "down"])  # the same going back: Up is the list's, Down the table's
        await settle(pilot)
        assert app.focused is table and table.cursor_row == 4 and features.cursor_row == 0  # a new token's list


async def test_down_then_a_in_one_read_move_to_the_search_results_and_add_the_first_hit():
    """In the search box, `Down a` typed fast put the `a` in the box: it was forwarded there before Down moved the
    focus to the results."""
    app = SaeTuiApp(prompt=PROMPT)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        await pilot.press("f3", *"44")
        await settle(pilot)
        box, results = app.query_one("#search-input"), app.query_one("#search-results")
        assert app.focused is box and results.row_count > 0
        first = results._rows[0]
        burst(app, ["down", "a"])
        await settle(pilot)
        assert box.value == "44" and app.focused is results
        assert [(s.sae, s.feature) for s in app.draft.specs] == [(first.sae, first.feature)]
        burst(app, ["down", "up"])  # in the results Down is the list's own: one row down and back
        await settle(pilot)
        assert app.focused is results and results.cursor_row == 0
        # the query typed in the same read: Down waits for its search (it found no results yet, and `a` was typed)
        box.focus()
        box.value = ""
        await settle(pilot)
        burst(app, [*"417", "down", "a"])
        await settle(pilot)
        assert box.value == "417" and app.focused is results
        assert [(s.sae, s.feature) for s in app.draft.specs][-1] == (results._rows[0].sae, results._rows[0].feature)
        assert results._rows[0].feature == 417


async def test_a_plain_arrow_ends_the_span_before_a_shift_arrow_read_with_it():
    """`Down Down Shift+Down` in one read extended the old span (4–9): the plain arrows ended it only once their
    RowHighlighted arrived, after the shift+arrow had run. Sent slowly or at once, it is the span 8–9."""
    from saetui.tui.widgets.token_table import TokenTable

    app = SaeTuiApp(prompt=PROMPT)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        table = app.query_one(TokenTable)
        table.focus()
        table.move_cursor(row=4)
        await settle(pilot)
        await pilot.press("shift+down", "shift+down")
        await settle(pilot)
        assert table.span == (4, 7)
        burst(app, ["down", "down", "shift+down"])
        await settle(pilot)
        assert table.span == (8, 10) and "Span 8–9" in str(app.query_one("#token-features").border_title)
        burst(app, ["end", "up", "shift+down"])
        await settle(pilot)
        last = table.row_count - 1
        assert table.span == (last - 1, last + 1)
