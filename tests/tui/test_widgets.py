"""Widgets on their own, in a bare Textual app."""

from __future__ import annotations

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
