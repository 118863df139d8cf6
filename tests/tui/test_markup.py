"""User text on screen is text, never markup: labels, paths and error messages with `[` in them show as typed and
never raise MarkupError (which closed the app: a label `[y` before the token box's `[b]recon[/b]` line, a corpus
path `[/b].txt` in the status bar)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from textual.content import Content

from saetui.tui.app import SaeTuiApp
from saetui.tui.markup import WORD_JOINER, escape
from saetui.tui.snapshot import settle

HOSTILE = "[/b] [y [bold red]r[/] \\[b] a\\"


@settings(deadline=None, max_examples=300)  # no wall-clock limit in a test (hypothesis's default is 200 ms)
@given(st.text(alphabet=st.sampled_from("[]/\\bdim=@#$ xy\n"), max_size=24)
       | st.text(st.characters(blacklist_categories=("Cc", "Cs")), max_size=24))  # control characters: not markup's
def test_escaped_text_shows_as_typed_between_markup(text):
    """Before, inside and after the app's own tags, on one line or several: the text comes back whole, the tags work."""
    content = Content.from_markup(f"[b]head[/b] {escape(text)}[dim]tail[/dim]\n[b]next[/b]")
    assert content.plain.replace(WORD_JOINER, "") == f"head {text}tail\nnext"
    assert content.plain.endswith("tail\nnext")


async def test_a_label_with_brackets_shows_as_typed_in_the_token_box_and_the_detail():
    app = SaeTuiApp(prompt="The capital of France is")
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        features = app.query_one("#token-features")
        row = features.current()
        app.session.set_label(row.feature, HOSTILE, row.sae)
        app.labels_rev += 1  # as the label box does once saved
        await settle(pilot)
        features.focus()
        await settle(pilot)
        assert HOSTILE in str(app.query_one("#token-info").render())  # the highlighted feature's whole label
        await pilot.press("enter")
        await settle(pilot)
        assert HOSTILE in str(app.screen.query_one("#detail-head").render())


async def test_a_path_with_brackets_is_one_line_in_the_toast_and_the_status_bar(tmp_path):
    app = SaeTuiApp(prompt="The capital of France is")
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        await pilot.press("f8")
        await pilot.pause()
        path = str(tmp_path / "[/b] [x.txt")
        app.screen.query_one("#health-corpus").value = path
        await pilot.press("enter")
        await app.workers.wait_for_complete()
        await settle(pilot)
        assert f"no dataset file at {path}" in str(app.screen.query_one("#health-body").render())
        assert any(path in n.message for n in app._notifications)
        assert path in str(app.query_one("#status").render())
        await pilot.press("escape")
        await settle(pilot)
        assert app.is_running
