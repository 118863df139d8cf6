"""The circuit screen (saetui/tui/screens/circuit.py) on the bundled demo, against Session.circuit called directly with
the same arguments: the grid holds exactly the result's nodes, the selected node's edges are the result's, `x`
measures what the library measures, bad input is one line on the screen, Esc closes at any time, and it fits
60x20, 80x24 and 120x40. The conftest checks that no hook is left on the model after each test."""

from __future__ import annotations

import functools
from dataclasses import replace
import threading

import pytest
import torch

from saetui.errors import InputError
from saetui.settings import AttributionSettings, CircuitSettings
from saetui.tui.app import SaeTuiApp
from saetui.tui.screens import circuit as circuit_screen
from saetui.tui.screens.circuit import CircuitScreen, circuit_tokens
from saetui.tui.snapshot import settle
from saetui.tui.widgets.circuit_grid import CircuitGrid, node_item
from saetui.tui.widgets.circuit_parts import edge_end
from tests.tolerance import assert_close_reduction, path_length

PROMPT = "The capital of France is"
# smaller than the app's defaults (CircuitSettings()): the same code, a few seconds on a CPU
FAST = CircuitSettings(nodes=20, steps=2, verify=6, edges_per_node=4)


async def _open(pilot, target=" Paris", versus=" Rome", settings=FAST) -> CircuitScreen:
    app = pilot.app
    await settle(pilot)
    screen = CircuitScreen(app.session, app.prompt_text, target, versus, settings=settings)
    app.push_screen(screen)
    await settle(pilot)
    return screen


def _grid_text(screen: CircuitScreen) -> str:
    return screen.query_one(CircuitGrid).render().plain


async def test_the_grid_holds_exactly_the_result_nodes_and_the_selection_shows_each_with_its_edges():
    app = SaeTuiApp(prompt=PROMPT)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _open(pilot)
        want = app.session.circuit(PROMPT, " Paris", " Rome", settings=FAST)
        cells = screen.cells
        assert cells is not None and screen.error is None
        assert cells.saes == ["demo", "demo-late"]  # hook order: blocks.1, then blocks.3
        assert cells.tokens == want.tokens
        got = {(cells.saes[r], c): [(n.key, n.effect, n.ablated) for n in nodes] for (r, c), nodes in cells.cells.items()}
        expected: dict = {}
        for n in want.nodes:  # already by |effect|: each cell keeps that order
            expected.setdefault((n.sae, n.position), []).append((n.key, n.effect, n.ablated))
        assert got == expected  # the same numbers: the same kernels on the same shapes
        head = screen.query_one("#circuit-head").text()
        assert f"{want.full:.3f}" in head and f"{want.empty:.3f}" in head and f"Spearman {want.spearman:.2f}" in head
        for n in want.nodes:  # every node, selected, is on the grid and described with its edges
            cells.select(next(m for m in screen.result.nodes if m.key == n.key))
            screen._show_node()
            await pilot.pause()
            assert node_item(n) in _grid_text(screen), n.key
            detail = screen.query_one("#circuit-node").text().splitlines()
            assert f"estimate {n.effect:+.3f}" in detail[1]
            # flagged as why? flags a feature: the sign, or the measured / estimate ratio beyond the factor
            if n.ablated is None:
                assert "!" not in detail[1]
            elif n.effect * n.ablated < 0:
                assert detail[1].endswith("! sign"), detail[1]
            else:
                ratio = abs(n.ablated) / abs(n.effect)
                flagged = max(ratio, 1 / ratio) > AttributionSettings.disagree
                assert detail[1].endswith(f"! ×{ratio:.2g}") == flagged, detail[1]
            for line, end, mine in ((detail[2], "from", "to"), (detail[3], "to", "from")):
                edges = sorted((e for e in want.edges if e[mine] == n.key), key=lambda e: -abs(e["weight"]))
                items = [f"{edge_end(e[end])} {e['weight']:+.3g}" for e in edges]
                shown = [item for item in items if item in line]
                assert shown == items[:len(shown)] and (shown or not items), (n.key, line)
                hidden = len(items) - len(shown)
                assert (f"+{hidden} more" in line) == (hidden > 0), (n.key, line)
        assert any(e["to"] in {n.key for n in want.nodes} for e in want.edges)  # some node above had edges in
        # this circuit's measurements all agree with their estimates: a node that did not, as the detail shows it
        from dataclasses import replace

        from textual.content import Content

        from saetui.tui.widgets.circuit_parts import node_lines

        n = next(m for m in want.nodes if m.ablated is not None and m.feature is not None)
        for measured, says in ((n.effect * 0.2, "! ×0.2"), (-n.effect, "! sign"), (n.effect * 0.5, None)):
            lines = node_lines(want, replace(n, ablated=measured), "x", "", cells.saes, "", 200)
            line = Content.from_markup(lines[1]).plain
            assert line.endswith(says) if says else "!" not in line, line


async def test_arrow_keys_walk_the_strongest_cell_then_the_next_sae():
    app = SaeTuiApp(prompt=PROMPT)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _open(pilot)
        cells = screen.cells
        first = screen.result.nodes[0]  # the selection starts on the strongest node
        assert cells.selected is first
        same = [n for n in screen.result.nodes if (n.sae, n.position) == (first.sae, first.position)]
        walked = [cells.selected.key]
        for _ in same[1:]:
            await pilot.press("down")
            walked.append(cells.selected.key)
        assert walked == [n.key for n in same]
        order = list(cells.saes)  # rows, early to late
        row = order.index(first.sae)
        await pilot.press("down")  # past the cell's last node: the next SAE's row, if there is one
        if row + 1 < len(order):
            assert cells.selected.sae == order[row + 1]
            await pilot.press("up")
            assert cells.selected is same[-1]
        else:  # the strongest node is in the last SAE: down stays, up past the cell's first node goes a row up
            assert cells.selected is same[-1]
            await pilot.press(*["up"] * len(same))
            assert cells.selected.sae == order[row - 1]
            above = cells.selected
            await pilot.press("down")
            assert cells.selected.sae == first.sae
            await pilot.press("up")
            assert cells.selected is above
        chosen = cells.selected
        assert node_item(chosen) in _grid_text(screen)  # scrolled into view (+N more elsewhere)
        from saetui.tui.screens.feature_detail import FeatureDetailScreen

        await pilot.press("enter")  # the selected feature's detail, over the circuit
        await settle(pilot)
        assert isinstance(app.screen, FeatureDetailScreen)
        assert (app.screen.sae, app.screen.feature) == (chosen.sae, chosen.feature)
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is screen


async def test_x_shows_the_change_the_library_measures():
    app = SaeTuiApp(prompt=PROMPT)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _open(pilot)
        node = screen.cells.selected
        assert node.ablated is not None  # the strongest node is one of the top `verify`, measured by find_circuit
        await pilot.press("x")
        await settle(pilot)
        got = screen.measured[node.key]
        # Session.ablate_circuit on the same result and node: the same kernels on the same shapes
        assert got == app.session.ablate_circuit(screen.result, [node])
        model = app.session.model
        n = path_length(model, f"blocks.{model.n_layers - 1}.hook_resid_post", 1024) + model.d_model
        assert_close_reduction(torch.tensor(got), torch.tensor(node.ablated), n=n, dtype=torch.float32,
                               scale=max(abs(screen.result.full), abs(screen.result.full + node.ablated)))
        assert f"x: {got:+.3f} now" in screen.query_one("#circuit-node").text()



async def test_a_label_given_in_a_nodes_detail_shows_on_the_circuit_screen_back():
    app = SaeTuiApp(prompt=PROMPT)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _open(pilot)
        node = screen.cells.selected
        await pilot.press("enter")  # the node's detail
        await settle(pilot)
        app.session.set_label(node.feature, "a [fresh [/b] label", node.sae)  # as its l key does; text, not markup
        await pilot.press("escape")
        await settle(pilot)
        assert app.screen is screen and "a [fresh [/b] label" in screen.query_one("#circuit-node").text()


async def test_palette_circuit_with_a_bad_target_is_one_line_on_the_screen_and_esc_closes():
    from tests.tui.test_defects import palette

    app = SaeTuiApp(prompt=PROMPT)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        with pytest.raises(InputError) as direct:
            app.session.circuit(PROMPT, "Parisian-capital")
        await palette(pilot, "circuit Parisian-capital")
        await pilot.press("enter")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, CircuitScreen) and screen.result is None
        assert screen.error == str(direct.value) and "\n" not in screen.error
        head = " ".join(screen.query_one("#circuit-head").text().split())
        assert head == f"circuit failed: {direct.value}"  # wrapped to the width, nothing left out
        assert not any(str(direct.value) in n.message for n in app._notifications)  # not said twice (a toast too)
        assert screen.query_one("#circuit-box").border_subtitle == "Esc"  # no node keys to offer
        app.clear_notifications()
        await pilot.press("x", "enter")  # x said 'the circuit is still being found'; Enter said nothing
        said = [n.message for n in app._notifications]
        assert said == ["the circuit failed (above): no node to act on; Esc closes"] * 2
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, CircuitScreen)
        await palette(pilot, "circuit Paris Rome extra")  # three arguments: a toast, no screen
        await pilot.press("enter")
        await pilot.pause()
        assert not isinstance(app.screen, CircuitScreen)
        assert any("TARGET [VERSUS]" in n.message for n in app._notifications)


async def test_palette_words_take_the_space_before_them_quotes_are_exact_digits_ids():
    app = SaeTuiApp(prompt=PROMPT)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        tok = app.session.model.tokenizer
        assert len(tok.encode(" Paris", add_special_tokens=False)) == 1
        assert circuit_tokens("Paris Rome", tok) == (" Paris", " Rome")
        assert circuit_tokens("'Paris' \" Rome\"", tok) == ("Paris", " Rome")
        assert circuit_tokens("42", tok) == (42, None)
        with pytest.raises(InputError, match="TARGET"):
            circuit_tokens("", tok)
        with pytest.raises(InputError, match="too long"):
            circuit_tokens("9" * 5000, tok)


async def test_esc_while_finding_drops_the_result_and_an_error_midway_leaves_no_hook(monkeypatch):
    app = SaeTuiApp(prompt=PROMPT)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        gate, real, done = threading.Event(), app.session.circuit, threading.Event()

        def held(*args, **kwargs):  # the circuit is found only once the test has pressed Esc
            gate.wait(30)
            try:
                return real(*args, **kwargs)
            finally:
                done.set()

        monkeypatch.setattr(app.session, "circuit", held)
        called, call = [], app.call_from_thread

        def spy(callback, *args, **kwargs):  # what the worker hands to the screen
            called.append(getattr(callback, "__name__", repr(callback)))
            return call(callback, *args, **kwargs)

        monkeypatch.setattr(app, "call_from_thread", spy)
        screen = CircuitScreen(app.session, PROMPT, " Paris", " Rome", settings=FAST)
        app.push_screen(screen)
        await pilot.pause()
        assert app.screen is screen and screen.result is None
        await pilot.press("escape")  # while the worker is still finding it
        assert not isinstance(app.screen, CircuitScreen)
        gate.set()
        assert done.wait(60)  # a closed screen's worker is no longer the app's to wait for: the test waits
        await pilot.pause(0.5)
        await settle(pilot)
        assert called == [] and screen.result is None and screen.cells is None  # what it found was dropped
        monkeypatch.undo()
        loaded = app.session.saes.get("demo-late")
        original = type(loaded.sae).encode
        calls = {"n": 0}

        def failing(self, x):  # the 5th encode fails, midway through the integrated gradients
            calls["n"] += 1
            if calls["n"] == 5:
                raise RuntimeError("encode blew up")
            return original(self, x)

        monkeypatch.setattr(type(loaded.sae), "encode", failing)
        screen = await _open(pilot)
        assert screen.error == "encode blew up" and "encode blew up" in screen.query_one("#circuit-head").text()
        assert app.is_running
        monkeypatch.undo()
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, CircuitScreen)


async def test_c_on_why_opens_the_circuit_of_its_prediction_on_the_tokens_up_to_it(monkeypatch):
    from saetui.tui.screens.why import WhyScreen
    from saetui.tui.widgets.token_table import TokenTable

    monkeypatch.setattr(circuit_screen, "CircuitSettings", functools.partial(CircuitSettings, **FAST.__dict__))
    app = SaeTuiApp(prompt=PROMPT)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        app.query_one(TokenTable).focus()
        await pilot.press("down", "down", "down", "w")  # ' of': the prediction after "The capital of"
        await settle(pilot)
        why = app.screen
        assert isinstance(why, WhyScreen) and why.result is not None
        await pilot.press("c")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, CircuitScreen) and screen.error is None, getattr(screen, "error", None)
        assert screen.result.prompts == ["The capital of"] and screen.result.target_id == why.result.target.id
        # it explains what why? explained, logit(t) (not the palette's default log p(t)), and says so
        want = app.session.circuit("The capital of", why.result.target.id, settings=replace(FAST, metric="logit"))
        assert [(n.key, n.effect) for n in screen.result.nodes] == [(n.key, n.effect) for n in want.nodes]
        assert screen.result.full == pytest.approx(why.result.value, rel=1e-5, abs=1e-5)
        assert f"logit({why.result.target.text!r}) after" in screen.query_one("#circuit-head").text()
        node = next(n for n in screen.result.nodes if n.ablated is not None)  # `x` measures the same metric
        assert app.session.ablate_circuit(screen.result, [node]) == pytest.approx(node.ablated, rel=1e-3, abs=1e-4)
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is why


@pytest.mark.parametrize("size", [(60, 20), (80, 24), (120, 40)])
async def test_the_screen_fits_the_terminal_and_the_selection_stays_in_view(size):
    app = SaeTuiApp(prompt=PROMPT)
    async with app.run_test(size=size) as pilot:
        screen = await _open(pilot)
        width, height = size
        for keys in ([], ["down"] * 8, ["left"], ["down"] * 20):
            await pilot.press(*keys)
            await pilot.pause()
            grid = screen.query_one(CircuitGrid)
            lines = grid.render().plain.splitlines()
            assert len(lines) <= grid.content_size.height and all(len(line) <= grid.content_size.width for line in lines)
            assert node_item(screen.cells.selected) in "\n".join(lines)
            for part in ("#circuit-head", "#circuit-node", "#circuit-curve"):
                widget = screen.query_one(part)
                assert all(len(line) <= widget.content_size.width for line in widget.text().splitlines()), part
                assert widget.region.bottom <= height and widget.region.right <= width, part
        curve = screen.query_one("#circuit-curve").text().splitlines()
        assert "k nodes" in curve[-1] or curve[-1].lstrip().startswith("k")
        assert [int(k) for k in curve[-1].split()[-len(screen.result.faithfulness):]] == \
            [p["nodes"] for p in screen.result.faithfulness]


@pytest.mark.parametrize("width", [40, 60, 80])
def test_the_curves_counts_and_scores_stay_apart_at_any_size(width):
    """k of 5000 and 16051 ran together (`500016051`), as did scores far off the 0..1 scale: each column keeps a
    space before it, a count too wide is written in thousands (`16k`), a score too wide says so (`≫1`)."""
    from textual.content import Content

    from saetui.tui.widgets.circuit_parts import curve_lines

    points = [(1, 0.1), (20, 0.5), (500, 43.0), (1000, -1234.5), (2000, 1.0), (5000, 1.0), (16051, 1.0)]
    lines = [Content.from_markup(line).plain for line in curve_lines([{"nodes": k, "score": s} for k, s in points],
                                                                      width)]
    assert all(len(line) <= width for line in lines)
    counts = lines[2].split()[-len(points):]
    assert len(counts) == len(points)
    for (k, _), text in zip(points, counts):
        assert int(text) == k if text.isdigit() else (text.endswith("k") and int(text[:-1]) == round(k / 1000))
    scores = lines[1].split()[-len(points):]
    assert len(scores) == len(points) and scores[3] in ("-1234", "≪0")


def test_a_circuit_before_any_text_says_to_pick_a_later_token():
    """`c` on <bos> said 'type it as the prompt' (it cannot be typed): the tokens before the prediction are special."""
    from saetui.errors import InputError
    from saetui.session import Session
    from saetui.tui.screens.circuit import circuit_prompt

    s = Session()
    s.load()
    with pytest.raises(InputError, match=r"tokens 0\.\.0 are special tokens only .*pick a later token"):
        circuit_prompt(s, PROMPT, 0, False)
    assert circuit_prompt(s, PROMPT, 2, False).strip()


def test_a_curve_divided_by_almost_nothing_says_so_in_the_header():
    """full 4.533 and empty 4.601 gave scores of 43, 50, 77 drawn as full bars under `score 0..1`, with no word."""
    from types import SimpleNamespace

    from textual.content import Content

    from saetui.tui.widgets.circuit_parts import header_lines

    def header(scores: list[float | None], full: float = 4.533, empty: float = 4.601) -> str:
        result = SimpleNamespace(spearman=0.9, prompts=["The capital of France is"], target=" Paris", versus=" Berlin", kind="logprob",
                                 full=full, empty=empty, nodes=[], faithfulness=[{"nodes": k + 1, "score": s}
                                                                                 for k, s in enumerate(scores)])
        return Content.from_markup(header_lines(result, 10)[1]).plain

    assert "mean little" in header([0.5, 43.0, 77.0]) and "mean little" in header([-3.0, 1.0])
    assert "mean little" not in header([0.1, 0.6, 1.05, None])
    # full 1.510 and empty -0.030 are far apart: a k at -1.2 is features interacting, not a division by ~0 (the
    # note said ≈ full, and at 80 columns it pushed the Spearman out of sight)
    far = header([0.79, -1.2, 1.0], full=1.510, empty=-0.030)
    assert "mean little" not in far and far.index("Spearman") < 60


async def test_the_loading_line_names_tokens_by_their_text_when_given_ids(monkeypatch):
    """From why? (`c`) the target and versus come as token ids: the loading line said `log p(1567)`."""
    monkeypatch.setattr(CircuitScreen, "_find", lambda self: None)  # the line as it stays while the circuit is found
    app = SaeTuiApp(prompt=PROMPT)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        tokenizer = app.session.model.tokenizer
        paris, rome = (tokenizer(t, add_special_tokens=False)["input_ids"][0] for t in (" Paris", " Rome"))
        for versus, metric, want in ((None, None, "log p(' Paris')"), (None, "logit", "logit(' Paris')"),
                                     (rome, "logit", "logit(' Paris') - logit(' Rome')")):
            screen = CircuitScreen(app.session, app.prompt_text, paris, versus, settings=FAST, metric=metric)
            app.push_screen(screen)
            await pilot.pause()
            assert f"finding the circuit of {want}" in screen.query_one("#circuit-head").text()
            await pilot.press("escape")
            await settle(pilot)
