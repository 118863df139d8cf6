"""Widgets on their own, in a bare Textual app."""

from __future__ import annotations

import asyncio

from textual.app import App, ComposeResult

from saetui.tui.widgets.text_box import TextBox


class Box(App):
    CSS = "TextBox { width: 20; height: auto; }"

    def compose(self) -> ComposeResult:
        yield TextBox(id="box")


async def test_a_text_box_lays_the_screen_out_again_only_when_its_height_changes():
    """A layout pass repaints the whole screen (a 30 ms frame beside a token table): the token info under
    the side list and the streamed generation columns must not ask for one on every update."""
    app = Box()
    async with app.run_test(size=(40, 10)) as pilot:
        box = app.query_one(TextBox)
        layouts = []
        refresh = box.refresh

        def spy(*args, layout: bool = False, **kwargs):  # noqa: ANN002, ANN003
            layouts.append(layout)
            return refresh(*args, layout=layout, **kwargs)

        box.refresh = spy
        steps = [("one line", True), ("another line", False), ("two\nlines", True), ("still\ntwo", False),
                 ("a line long enough to wrap twice at twenty", True)]
        for text, lays_out in steps:
            layouts.clear()
            box.show(text)
            await pilot.pause()
            assert any(layouts) is lays_out, text
            assert box.size.height == box.get_content_height(box.size, app.size, 20), text  # the box fits its text


def test_a_border_label_drops_its_least_important_parts_first():
    from saetui.tui.subtitles import fit_label

    parts = ["blocks.1.hook_resid_post", "L0 32.6", "FVU 0.402", "s: next SAE"]
    assert fit_label(parts, 80, [0, 3, 2]) == "blocks.1.hook_resid_post · L0 32.6 · FVU 0.402 · s: next SAE"
    assert fit_label(parts, 42, [0, 3, 2]) == "L0 32.6 · FVU 0.402 · s: next SAE"  # the hook goes first
    assert fit_label(parts, 25, [0, 3, 2]) == "L0 32.6 · FVU 0.402"
    assert fit_label(parts, 5, [0, 3, 2]) == "L0 32.6"  # never dropped: Textual cuts it
    assert fit_label(["", "L0 1.0"], 80, []) == "L0 1.0"  # empty parts leave no separator


async def test_at_80_columns_the_token_table_keeps_its_fvu_and_gets_the_hook_back_when_wider():
    from saetui.session import Session
    from saetui.tui.app import SaeTuiApp
    from saetui.tui.snapshot import settle

    app = SaeTuiApp(Session(), prompt="Anna has a red cat.", restore=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        table = app.query_one("#token-table")
        narrow = table.border_subtitle
        assert "FVU" in narrow and "hook_resid" not in narrow and len(narrow) <= table.size.width - 4
        await pilot.resize_terminal(160, 40)
        await settle(pilot)
        assert table.border_subtitle.startswith("blocks.1.hook_resid_post · L0")


class Bar(App):
    def compose(self) -> ComposeResult:
        from saetui.tui.widgets.status_bar import StatusBar

        yield StatusBar(id="status")


async def test_the_status_bar_says_when_the_decode_step_compiles_and_when_it_is_ready():
    from saetui.tui.widgets.status_bar import StatusBar

    base = {"model": "m", "saes": ["s (blocks.1.hook_resid_post)"], "device": "cuda:0", "dtype": "bfloat16"}
    app = Bar()
    async with app.run_test(size=(160, 3)) as pilot:
        bar = app.query_one(StatusBar)
        shown = {}
        for state in ("eager", "uncompiled", "compiling", "compiled"):
            bar.show({**base, "decoding": state}, note="done")
            await pilot.pause()
            shown[state] = str(bar.render())
        assert "decode" not in shown["eager"] and "decode" not in shown["uncompiled"]
        assert "decode compiling" in shown["compiling"] and "decode compiled" in shown["compiled"]
        assert shown["compiled"].startswith("done") and bar.note == "done"  # the note is kept for a refresh


class _Headers(App):
    """Three empty panes under tab headers: Textual's TabbedContent, or ours (`ours`)."""

    TITLE = "headers"

    def __init__(self, ours: bool) -> None:
        super().__init__()
        self.ours = ours

    def compose(self) -> ComposeResult:
        from textual.widgets import Static, TabbedContent, TabPane

        from saetui.tui.widgets.pane_tabs import PaneSwitcher, PaneTabs

        yield Static("above")
        if self.ours:
            switcher = PaneSwitcher(initial="tokens")
            yield PaneTabs([("tokens", "Tokens F2"), ("search", "Search F3"), ("steer", "Steer F4")], switcher)
            yield switcher
        else:
            with TabbedContent(initial="tokens"):
                for pane, title in (("tokens", "Tokens F2"), ("search", "Search F3"), ("steer", "Steer F4")):
                    yield TabPane(title, id=pane)

    async def on_mount(self) -> None:
        from textual.widgets import Static, Tabs

        for tabs in self.query(Tabs):
            tabs.can_focus = False  # as the app had it: F2/F3/F4 switch panes
        from saetui.tui.widgets.pane_tabs import PaneSwitcher

        panes = ("tokens", "search", "steer")  # the panes go in later, as the app's
        if self.ours:
            await self.query_one(PaneSwitcher).add_panes(*(Static(f"the {pane} pane", id=pane) for pane in panes))
        else:
            for pane in panes:
                await self.query_one(f"#{pane}").mount(Static(f"the {pane} pane"))

    @property
    def shown(self) -> str:
        from textual.widgets import ContentSwitcher

        return self.query_one(ContentSwitcher).current


async def test_the_tab_headers_draw_and_click_as_textuals_tabbed_content():
    """PaneTabs stands in for Textual's Tabs on the first frame (issue 28): the same cells and colours, a click on a
    label or on the bar under it shows its pane, the underline ends under the active label, hovering lights a label."""
    import re

    def shot(app: App) -> str:  # the SVG, less the id each export makes up
        return re.sub(r"terminal-\d+-", "terminal-", app.export_screenshot())

    screens = {}
    for ours in (False, True):
        app = _Headers(ours)
        async with app.run_test(size=(60, 6)) as pilot:
            await pilot.pause()
            shots = [shot(app)]
            for offset, pane in (((14, 1), "search"), ((25, 2), "steer"), ((3, 1), "tokens")):  # a label, the bar
                await pilot.click(offset=offset)
                await pilot.wait_for_animation()
                await pilot.pause()
                assert app.shown == pane, (ours, offset)
                shots.append(shot(app))
            await pilot.hover(offset=(14, 1))
            await pilot.pause()
            shots.append(shot(app))
        screens[ours] = shots
    assert len(set(screens[True])) == 4  # each step changed the screen (back on tokens: as at the start)
    assert screens[True] == screens[False]


async def test_editing_keys_that_arrive_in_one_burst_apply_in_order_with_typed_characters():
    """Keys read at once (a slow SSH link) reach the box before the first has bubbled up to the app, where
    Textual runs bindings: backspace ran after the characters typed after it (Textual #6605). Posted here
    without waiting between them, as a terminal read delivers them."""
    from textual import events

    from saetui.tui.widgets.text_input import Input, TextArea

    class Boxes(App):
        def compose(self) -> ComposeResult:
            yield Input("64", id="one", select_on_focus=False)
            yield TextArea("The cat", id="many")

    def burst(app: App, keys: list[str]) -> None:
        for key in keys:
            app.post_message(events.Key(key, key if len(key) == 1 else {"backspace": "\x7f"}.get(key)))

    app = Boxes()
    async with app.run_test() as pilot:
        one, many = app.query_one("#one", Input), app.query_one("#many", TextArea)
        one.focus()
        await pilot.pause()
        burst(app, ["backspace", "backspace", "3", "0", "left", "left", "1", "end", "5"])
        await pilot.pause(0.2)
        assert one.value == "1305"
        many.focus()
        many.move_cursor(many.document.end)
        await pilot.pause()
        burst(app, ["backspace", "backspace", "r", "t", "home", "A", "ctrl+e", "s"])
        await pilot.pause(0.2)
        assert many.text == "AThe crts"



async def test_the_command_palette_box_takes_a_burst_of_keys_in_order_too():
    """The palette's box is Textual's CommandInput: `lox<backspace>ad` in one read was `loxa`."""
    from textual import events
    from textual.command import CommandInput

    from saetui.session import Session
    from saetui.tui.app import SaeTuiApp
    from saetui.tui.snapshot import settle

    app = SaeTuiApp(Session(), prompt="The cat", restore=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("ctrl+p")
        await pilot.pause(0.3)
        for key in ["l", "o", "x", "backspace", "a", "d"]:
            app.post_message(events.Key(key, key if len(key) == 1 else "\x7f"))
        await pilot.pause(0.3)
        assert app.screen.query_one(CommandInput).value == "load"


async def test_keys_read_with_tab_go_to_the_widget_tab_moves_to():
    """Tab End in one read: End went to the prompt (Textual runs Tab once its key has bubbled up from the prompt),
    and the token table stayed on its first row."""
    from textual import events

    from saetui.session import Session
    from saetui.tui.app import SaeTuiApp
    from saetui.tui.snapshot import settle

    app = SaeTuiApp(Session(), prompt="The capital of France is", restore=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        app.query_one("#prompt").focus()
        await pilot.pause()
        table = app.query_one("#token-table")
        for key in ("tab", "end"):
            app.post_message(events.Key(key, "\t" if key == "tab" else None))
        await settle(pilot)
        assert app.focused is table and table.cursor_row == table.row_count - 1
        for key in ("shift+tab", "tab", "tab"):  # back to the prompt, then on past the table
            app.post_message(events.Key(key, None))
        await settle(pilot)
        assert app.focused is app.query_one("#token-features")


async def test_the_whole_screen_is_repainted_once_a_toast_has_gone():
    """An expired toast stayed painted over a streamed generation column (80x24 in tmux, about every other time;
    the app's own picture had none): the app repaints the whole screen after each toast's timeout."""
    from saetui.session import Session
    from saetui.tui.app import SaeTuiApp
    from saetui.tui.snapshot import settle

    app = SaeTuiApp(Session(), prompt="The cat", restore=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.pause(1.0)
        whole: list[float] = []
        refresh = app.screen.refresh

        def spy(*regions, **kwargs):  # noqa: ANN002, ANN003
            if not regions and not kwargs:
                whole.append(asyncio.get_running_loop().time())
            return refresh(*regions, **kwargs)

        app.screen.refresh = spy
        sent = asyncio.get_running_loop().time()
        app.notify("a toast", timeout=0.3)
        await pilot.pause(1.0)
        assert not app._notifications and any(t >= sent + 0.3 for t in whole)


async def test_settle_waits_until_the_screen_stops_changing():
    """Widgets finish work frames after the message that asked for it (a DataTable widens its columns when idle, a
    new width refills it): a snapshot taken, or a modal pushed, before then shows a half-drawn table. A widget that
    changes once after each refresh, 20 times, is drawn at its last step when `settle` returns."""
    from textual.widgets import Static

    from saetui.tui.snapshot import settle

    class Steps(Static):
        step = 0

        def on_mount(self) -> None:
            self.call_after_refresh(self.next_step)

        def next_step(self) -> None:
            self.step += 1
            self.update(f"step{self.step}x")
            if self.step < 20:
                self.call_after_refresh(self.next_step)

    class StepsApp(App):
        def compose(self) -> ComposeResult:
            yield Steps("step0x")

    app = StepsApp()
    async with app.run_test(size=(20, 3)) as pilot:
        await settle(pilot)
        assert "step20x" in app.export_screenshot()
