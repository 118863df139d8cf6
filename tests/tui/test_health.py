"""The SAE health screen (F8): every loaded SAE's figures on a corpus, as Session.evals computes them."""

from __future__ import annotations

from saetui.tui.app import SaeTuiApp
from saetui.tui.screens.health import DEMO_CORPUS, HealthScreen, rate_chart
from saetui.tui.snapshot import settle


def test_the_rate_chart_scales_to_the_fullest_bin():
    assert rate_chart([0, 1, 4, 8]) == " ▁▄█"
    assert rate_chart([0, 0]) == ""


async def test_f8_evaluates_the_demo_on_its_held_out_text_and_a_typed_corpus(tmp_path, monkeypatch):
    from saetui.tui.screens import health

    monkeypatch.setattr(health, "DEMO_DOCS", 6)  # a few documents: the flow, not the figures (tests/core/test_evals.py)
    app = SaeTuiApp(prompt="The capital of France is Paris.")
    corpus = tmp_path / "c.txt"
    corpus.write_text("Tom went home and saw a red bird.\nAnna has a blue cat and a green dog.\n")
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("f8")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, HealthScreen)
        box = screen.query_one("#health-corpus")
        assert box.value == DEMO_CORPUS
        await pilot.press(*"x.txt")  # the default is selected: typing replaces it
        assert box.value == "x.txt"
        box.value = DEMO_CORPUS
        await pilot.press("enter")
        await app.workers.wait_for_complete()
        await pilot.pause()
        body = str(screen.query_one("#health-body").render())
        assert screen.result is not None and [h.name for h in screen.result.saes] == ["demo", "demo-late"]
        assert "demo (blocks.1.hook_resid_post)" in body and "recovered" in body and "firing rate" in body
        first = screen.result.saes[0]
        assert f"L0 {first.l0:.1f}" in body and 0 < first.kl_spliced
        box.value = str(corpus)
        await pilot.press("enter")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert screen.result.documents == 2 and app.session.last_corpus == str(corpus)
        box.value = str(tmp_path / "missing.txt")
        await pilot.press("enter")
        await app.workers.wait_for_complete()
        await pilot.pause()
        body = str(screen.query_one("#health-body").render())
        assert "no dataset file" in body  # one line, the app goes on
        assert "firing rate" in body and "the last evaluation" in body  # a wrong path took the last result away
        box.value = "  "
        await pilot.press("enter")  # did nothing, with the last error still shown
        assert any(n.message == "type a .txt/.jsonl corpus path, or 'demo held-out text'" for n in app._notifications)
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, HealthScreen)
        await pilot.press("f8")  # closing lost minutes of work on a real model: the last result shows again
        await pilot.pause()
        body = str(app.screen.query_one("#health-body").render())
        assert "the last evaluation; Enter evaluates again" in body and "L0" in body


async def test_the_detail_marks_a_dense_feature_and_leaves_a_sparse_one_unmarked():
    """Dense (fires on more than 10% of the indexed tokens, as `saetui evals` counts them) is said in the detail."""
    from saetui.sae.evals import DENSE
    from saetui.tui.messages import FeatureChosen
    from saetui.tui.screens.feature_detail import FeatureDetailScreen

    app = SaeTuiApp(prompt="The capital of France is Paris.")
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        index = app.session.indexes["demo"]
        rates = index.counts.double() / index.n_tokens
        dense = int((rates > DENSE).nonzero()[0])
        sparse = int(((rates > 0) & (rates < DENSE / 10)).nonzero()[0])
        for feature, marked in ((dense, True), (sparse, False)):
            app.post_message(FeatureChosen("demo", feature))
            await app.workers.wait_for_complete()
            await pilot.pause()
            assert isinstance(app.screen, FeatureDetailScreen)
            head = str(app.screen.query_one("#detail-head").render())
            assert ("· dense" in head) is marked, (feature, head)
            await pilot.press("escape")
            await pilot.pause()
