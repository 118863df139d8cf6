"""Pilot tests for the defects of issue 9, one (or more) per numbered defect; each failed before its fix."""

from __future__ import annotations

import threading

import pytest

from saetui.session import Session
from saetui.steering.draft import Draft
from saetui.steering.spec import SteeringSpec
from saetui.tui import app as app_module
from saetui.tui.app import SaeTuiApp
from saetui.tui.snapshot import settle
from saetui.tui.widgets.feature_list import FeatureRow
from tests.demo_facts import color_feature

COLOR_SAE, COLOR = color_feature()  # the demo's most color-promoting feature (late SAE)

PROMPT = "The capital of France is Paris. Anna has a"


def notes(app) -> list[str]:
    return [n.message for n in app._notifications]


# ---------------------------------------------------------------- 3: quitting never waits
class SlowLoadSession(Session):
    """A model load that only ends when the test says so (as a 20 s download would)."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()
        self.thread: threading.Thread | None = None

    def load(self, *args, **kwargs):
        self.thread = threading.current_thread()
        app = self.app
        app.call_from_thread(app.run_action, "quit")  # Ctrl+Q while the load is running
        self.release.wait(30)
        return super().load(*args, **kwargs)


def test_quit_while_loading_does_not_join_the_load_worker():
    session = SlowLoadSession()
    app = SaeTuiApp(session, prompt=PROMPT)
    session.app = app
    try:
        app.run(headless=True, size=(80, 24))
        # App.run() returned (asyncio.run closed its loop) while the load is still running
        assert session.thread is not None and session.thread.is_alive()
        assert not session.release.is_set()
    finally:
        session.release.set()
        if session.thread is not None:
            session.thread.join()  # let the load end before the next test
    from saetui import state

    saved, _ = state.load_session()
    assert saved["prompt"] == PROMPT  # the session was saved before the exit


def test_run_ends_the_process_without_waiting_for_threads(monkeypatch):
    calls = []
    monkeypatch.setattr(SaeTuiApp, "run", lambda self, **kw: None)
    monkeypatch.setattr(app_module.os, "_exit", lambda code: calls.append(code))
    app_module.run()
    assert calls == [0]


# ---------------------------------------------------------------- 2: a failed model load is not saved
async def test_a_failed_model_load_is_not_saved_and_load_model_demo_works():
    from saetui import state
    from saetui.tui.screens.error import ErrorScreen

    app = SaeTuiApp(prompt=PROMPT)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        app.load_model("/nonexistent")
        await settle(pilot)
        assert isinstance(app.screen, ErrorScreen) and "saetui-demo stays loaded" in app.screen.message
        await pilot.press("escape")
        await pilot.press("ctrl+q")
    saved, _ = state.load_session()
    assert saved["model"] is None  # the demo, which loaded; not the path that failed
    again = SaeTuiApp()
    async with again.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        assert not isinstance(again.screen, ErrorScreen) and again.session.ready
        again.load_model("/nonexistent")
        await settle(pilot)
        await pilot.press("escape")
        again.load_model("demo")
        await settle(pilot)
        assert again.session.ready and again.session.last is not None


async def test_a_restored_model_that_fails_falls_back_to_the_demo():
    from saetui import state
    from saetui.tui.screens.error import ErrorScreen

    state.save_session({"model": "/nonexistent", "saes": ["x"], "prompt": PROMPT, "specs": [], "history": []})
    app = SaeTuiApp()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        assert not isinstance(app.screen, ErrorScreen)
        assert app.session.ready and app.session.last is not None
        assert any("opened the demo instead" in n for n in notes(app))


# ---------------------------------------------------------------- 1: resize reads the new size
async def test_resize_shows_and_hides_the_too_small_notice_at_once():
    app = SaeTuiApp(prompt=PROMPT)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        from saetui.hub_progress import Progress

        app.query_one("#download").show_progress(Progress("file", "model org/model", "model.safetensors", 1, 1,
                                                          done=1_000, total=2_000, cache="/tmp/hub"))
        await pilot.resize_terminal(30, 10)
        await pilot.pause()
        shown = [w.id or type(w).__name__ for w in app.screen.children if w.display]
        assert shown == ["too-small"], shown  # the notice alone: the download panel's own showing too is undone
        await pilot.resize_terminal(80, 24)
        await pilot.pause()
        shown = [w.id or type(w).__name__ for w in app.screen.children if w.display]
        assert "too-small" not in shown and app.query_one("#prompt").region.area > 0, shown
        assert app.query_one("#download").display and app.query_one("#panes").display


# ---------------------------------------------------------------- 4: generated text scrolls and follows
class LongSession(Session):
    """Twenty lines of generated text per row, then done."""

    def generate(self, prompt, rows=None, *, stop_event=None, **settings):
        from saetui.steering.generate import Piece

        for i in range(20):
            for row in (0, 1):
                yield Piece(row, i + 1000 * row, f"line {i} of row {row}\n")


async def test_generated_text_follows_the_stream_and_the_status_shows_done():
    from saetui.tui.widgets.steering_panel import GenerationColumn

    app = SaeTuiApp(LongSession(), prompt=PROMPT)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("ctrl+g")
        await settle(pilot)
        await pilot.pause(0.2)
        for column in app.query(GenerationColumn):
            assert column.max_scroll_y > 0 and column.scroll_y == column.max_scroll_y  # the end is in view
        status = app.query_one("#status")
        assert "generation done" in status.render_line(0).text


# ---------------------------------------------------------------- 5: the footer fits 80 columns
def footer_keys_on_screen(app) -> list[str]:
    from textual.widgets._footer import FooterKey

    width = app.size.width
    return [k.description for k in app.query(FooterKey) if k.region.width > 0 and k.region.right <= width]


async def test_footer_shows_stop_and_help_at_80_columns():
    app = SaeTuiApp(prompt=PROMPT)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        app.draft = Draft((SteeringSpec(COLOR, 4.0, sae=COLOR_SAE),))
        for focus in ("#prompt", "#token-table", "#token-features", "#specs"):
            if focus == "#specs":
                await pilot.press("f4")
            app.query_one(focus).focus()
            await pilot.pause()
            assert app.focused is app.query_one(focus)
            shown = footer_keys_on_screen(app)
            for _ in range(20):  # the footer recomposes after a focus change: on a loaded machine, a few frames on
                if shown:
                    break
                await pilot.pause(0.05)
                shown = footer_keys_on_screen(app)
            assert "Stop" in shown and "Help" in shown and "Quit" in shown, (focus, shown)



@pytest.mark.parametrize("size", [(60, 20), (80, 24), (120, 40)])
async def test_the_footers_last_cell_is_the_palette_key_not_a_clipped_key_under_it(size):
    """The compact footer's 1-cell key margin left the docked palette key one cell short of the edge, and the
    clipped key under it showed through (`^p palettef` at 60x20)."""
    app = SaeTuiApp(prompt=PROMPT)
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        for focus in ("#prompt", "#token-table", "#token-features"):
            app.query_one(focus).focus()
            await pilot.pause()
            widget, _ = app.screen.get_widget_at(size[0] - 1, size[1] - 1)
            assert widget.has_class("-command-palette"), (focus, widget)

# ---------------------------------------------------------------- 7: focus stays where the user types
async def test_prompt_keeps_focus_and_text_while_loading_and_after():
    app = SaeTuiApp(prompt="Anna has")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press(*" a cat")  # typed at once, while the model loads
        await settle(pilot)
        await pilot.press(*" today")
        await pilot.pause()
        assert app.focused is app.query_one("#prompt")
        assert app.query_one("#prompt").text == "Anna has a cat today"


async def test_keys_after_f3_and_after_the_detail_screen_go_to_the_search_box():
    from saetui.tui.screens.feature_detail import FeatureDetailScreen

    app = SaeTuiApp(prompt=PROMPT)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("f3", *"label")  # `l` and `a` are keys of the results list: they must not go there
        await settle(pilot)
        assert app.query_one("#search-input").value == "label"
        assert app.screen is app.screen_stack[0] and app.draft.specs == ()  # no label dialog, nothing added
        app.query_one("#search-input").value = ""
        await pilot.press(*"capital")
        await settle(pilot)
        assert app.query_one("#search-results").row_count > 0
        app.query_one("#search-results").focus()
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, FeatureDetailScreen)
        await pilot.press("escape", *"s")
        await settle(pilot)
        assert app.screen is app.screen_stack[0]
        assert app.query_one("#search-input").value == "capitals"


# ---------------------------------------------------------------- 6: heat line
async def test_heat_line_keeps_the_cursor_follows_new_prompts_shows_numbers_and_turns_off():
    app = SaeTuiApp(prompt=PROMPT)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        tokens = app.query_one("#token-table")
        tokens.focus()
        await pilot.press("down", "down", "down")
        features = app.query_one("#token-features")
        features.focus()
        feature = features.current_feature()
        await pilot.press("h")
        await settle(pilot)
        assert tokens.cursor_row == 3
        title = str(tokens.border_title)
        assert f"heat of feature {feature}" in title
        acts = app.session.feature_activations(app.sae_name, feature)
        assert f"{acts[3]:5.2f}" in str(tokens.get_row_at(3)[2])  # the number, not only a colour
        app.query_one("#prompt").text = "Anna has a red cat"
        await pilot.press("f5")
        await settle(pilot)
        assert len(app.session.last.tokens) == tokens.row_count
        new_acts = app.session.feature_activations(app.sae_name, feature)
        assert f"max {max(new_acts):.2f}" in str(tokens.border_title)  # refreshed for the new prompt
        features.focus()
        features.show([FeatureRow(app.sae_name, feature, "1.00", "")])  # the same feature again: h turns it off
        await pilot.press("h")
        await settle(pilot)
        assert "heat" not in str(tokens.border_title)
        assert "│" not in str(tokens.get_row_at(0)[2])


# ---------------------------------------------------------------- 13: no duplicate spec; max tokens fits 4 digits
async def test_adding_a_feature_twice_keeps_one_spec_and_max_tokens_shows_four_digits():
    app = SaeTuiApp(prompt=PROMPT)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        features = app.query_one("#token-features")
        features.focus()
        await pilot.press("a", "a")
        await pilot.pause()
        assert [s.feature for s in app.draft.specs] == [features.current_feature()]
        assert any("already in steering" in n for n in notes(app))
        await pilot.press("f4")
        await pilot.pause()
        box = app.query_one("#max-tokens")
        box.value = "1000"
        await pilot.pause()
        assert box.content_region.width >= 5  # 4 digits and the cursor


# ---------------------------------------------------------------- 9: long labels end with an ellipsis
async def test_long_labels_end_with_an_ellipsis_inside_the_list():
    app = SaeTuiApp(prompt=PROMPT)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        features = app.query_one("#token-features")
        label = "capital: paris and other capital cities of europe"
        features.show([FeatureRow("demo", 549, "3.31", label), FeatureRow("demo", 7, "1.00", "short")])
        await pilot.pause()
        about = features.get_row_at(0)[2]
        assert str(about).endswith("…") and str(about)[:-1] in label
        assert str(features.get_row_at(1)[2]) == "short"
        assert features.virtual_size.width <= features.scrollable_content_region.width  # nothing cut at the edge


# ---------------------------------------------------------------- 11: byte-level tokens are readable
async def test_partial_utf8_tokens_show_their_bytes_and_no_row_is_blank():
    app = SaeTuiApp(prompt="Café 😀 naïve")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        table = app.query_one("#token-table")
        shown = [str(table.get_row_at(i)[1]) for i in range(table.row_count)]
        assert all(s.strip() for s in shown), shown
        assert not any("\ufffd" in s for s in shown), shown
        assert "<0xF0>" in "".join(shown)  # the first byte of 😀
        assert "␣" in shown  # a lone space token


# ---------------------------------------------------------------- 12: palette commands with an argument
async def palette(pilot, text: str) -> None:
    await pilot.press("ctrl+p")
    await pilot.pause()
    await pilot.press(*text)
    await pilot.pause(0.4)


async def test_palette_lists_existing_presets_and_asks_for_a_missing_argument():
    from saetui import state
    from saetui.tui.screens.ask import AskScreen

    app = SaeTuiApp(prompt=PROMPT)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        app.draft = Draft((SteeringSpec(COLOR, 3.0, sae=COLOR_SAE),))
        await palette(pilot, "save preset")
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, AskScreen)  # not a toast saying "type the argument"
        assert app.screen.query_one("#ask-input").placeholder == "save the steering specs under a name"  # what it takes
        await pilot.press("enter")  # nothing typed: the box stays, and says what it wants
        await pilot.pause()
        assert isinstance(app.screen, AskScreen) and any("type it first" in n.message for n in app._notifications)
        await pilot.press(*"reds", "enter")
        await pilot.pause()
        assert state.list_presets() == ["reds"]
        assert notes(app)[-1].startswith("preset reds saved (1 spec): ")
        app.draft = Draft()
        # the bare command again asks: the saved name is listed after it (Enter replaced `reds` with no specs)
        await palette(pilot, "save preset")
        shown = [str(o.prompt) for o in app.screen.query_one("CommandList")._options]
        assert shown[0].startswith("save preset …") and any("save preset reds" in s for s in shown[1:]), shown
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, AskScreen) and len(state.load_preset("reds")) == 1
        await pilot.press("escape")
        await pilot.pause()
        await palette(pilot, "save preset reds")  # named: replaced, and the notice says so
        await pilot.press("enter")
        await pilot.pause()
        assert state.load_preset("reds") == [] and notes(app)[-1].startswith("preset reds replaced (0 specs): ")
        await palette(pilot, "load preset")
        from textual.command import CommandPalette

        assert isinstance(app.screen, CommandPalette)
        shown = [str(o.prompt) for o in app.screen.query_one("CommandList")._options]
        assert any("load preset reds" in s for s in shown), shown
        await pilot.press("escape")
        await pilot.pause()
        await palette(pilot, "use sae")
        shown = [str(o.prompt) for o in app.screen.query_one("CommandList")._options]
        assert any("use sae demo" in s for s in shown), shown


async def test_no_notification_covers_the_error_modal():
    from saetui.tui.screens.error import ErrorScreen

    app = SaeTuiApp(prompt=PROMPT)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        app.notify("something earlier")
        app.load_sae("no/such/sae")
        await settle(pilot)
        assert isinstance(app.screen, ErrorScreen)
        assert notes(app) == []


# ---------------------------------------------------------------- the Session lock is taken per forward step
def test_a_suspended_generation_holds_no_lock_and_no_steering_hooks():
    session = Session()
    session.load()
    before = session.analyze(PROMPT).saes[0].per_token
    session.add_spec(COLOR, 40.0, sae=COLOR_SAE)
    gen = session.generate(PROMPT, stop_event=threading.Event(), max_new_tokens=10)
    next(gen)  # suspended between two tokens
    free = []

    def try_lock() -> None:
        got = session.lock.acquire(blocking=False)
        free.append(got)
        if got:
            session.lock.release()

    other = threading.Thread(target=try_lock)
    other.start()
    other.join()
    assert free == [True]  # another thread (the analyze worker) gets the lock between tokens
    assert session.analyze(PROMPT).saes[0].per_token == before  # no steering hook left on the model
    rest = list(gen)
    assert rest  # and the generation goes on


async def test_the_palettes_screenshot_says_where_it_saved_and_keys_is_saetuis_f1(tmp_path, monkeypatch):
    """Textual's Screenshot wrote to ~/Downloads, which a server seldom has: `Failed to save screenshot`, no reason.
    Without that folder it goes to the current one, and the notice names the file."""
    import platformdirs

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(platformdirs, "user_downloads_dir", lambda: str(tmp_path / "no-such-folder"))
    app = SaeTuiApp(prompt=PROMPT)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert "Screenshot" in titles and "Keys" not in titles
        await palette(pilot, "Screenshot")
        await pilot.press("enter")
        await pilot.pause(0.3)
        await settle(pilot)
        (shot,) = tmp_path.glob("*.svg")
        assert notes(app)[-1] == f"screenshot saved: {shot}" and "saetui" in shot.read_text()


async def test_the_error_dialog_fits_a_small_terminal():
    """At 60x20 a model's load error was taller than the screen: its last lines and lower border were cut off."""
    from saetui.tui.screens.error import ErrorScreen

    app = SaeTuiApp(prompt=PROMPT)
    async with app.run_test(size=(60, 20)) as pilot:
        await settle(pilot)
        app.push_screen(ErrorScreen("Model not loaded", " ".join(["a long reason that wraps"] * 30)))
        await pilot.pause()
        box = app.screen.query_one("#error-box")
        assert box.region.y >= 0 and box.region.bottom <= 20, box.region
        assert box.max_scroll_y > 0  # the rest is a scroll away
