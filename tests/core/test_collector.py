"""ActivationCollector: positions, hook cleanup on errors, and no leaked tensors."""

from __future__ import annotations

import gc
import weakref

import pytest
import torch

from saetui.activations.collector import ActivationCollector
from saetui.errors import InputError
from saetui.models.hooks import HookSet
from saetui.sae.analyzer import SAEAnalyzer
from saetui.sae.manager import SAEManager
from tests.conftest import hook_ids


def test_positions_last_and_list(gemma2):
    collector = ActivationCollector(gemma2)
    prompts = ["The cat sat on the mat", "Hi"]
    full = collector.collect(prompts, "blocks.2.hook_resid_post")
    last = collector.collect(prompts, "blocks.2.hook_resid_post", positions="last")
    picked = collector.collect(prompts, "blocks.2.hook_resid_post", positions=[0, -1])
    for i in range(2):
        n = len(full.token_ids[i])
        assert last.positions[i] == [n - 1]
        torch.testing.assert_close(last["blocks.2.hook_resid_post"][i], full["blocks.2.hook_resid_post"][i][[n - 1]])
        torch.testing.assert_close(picked["blocks.2.hook_resid_post"][i], full["blocks.2.hook_resid_post"][i][[0, n - 1]])
    with pytest.raises(InputError, match="out of range"):
        collector.collect(prompts, "blocks.2.hook_resid_post", positions=[5])


def test_runs_in_inference_mode_in_a_worker_thread(gemma2):
    import threading

    out = {}
    thread = threading.Thread(target=lambda: out.update(acts=ActivationCollector(gemma2).collect("Hi there", "blocks.0.hook_resid_post")))
    thread.start()
    thread.join()
    t = out["acts"]["blocks.0.hook_resid_post"][0]
    assert t.is_inference() and not t.requires_grad


def test_a_hook_that_raises_leaves_no_hooks_and_no_trace(gemma2):
    """A failing forward mid-way removes every hook we added; the next run is bit-identical to a clean one."""
    batch = gemma2.tokenize(["The cat sat on the mat", "Hi"])
    with torch.inference_mode():
        clean = gemma2.model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
    before = hook_ids(gemma2.model)

    def boom(hidden):
        raise RuntimeError("hook failed")

    with pytest.raises(RuntimeError, match="hook failed"):
        with HookSet() as hooks:
            hooks.on_output(gemma2.layers[0], lambda h: None)
            hooks.on_input(gemma2.layers[1], lambda h: None)
            hooks.on_output(gemma2.layers[2], boom)
            gemma2.model(input_ids=batch.input_ids, attention_mask=batch.attention_mask)
    assert hook_ids(gemma2.model) == before

    # The same through the collector: a layer that raises while our hooks are installed.
    original = gemma2.layers[1].forward
    gemma2.layers[1].forward = lambda *a, **k: (_ for _ in ()).throw(RuntimeError("layer failed"))
    try:
        with pytest.raises(RuntimeError, match="layer failed"):
            ActivationCollector(gemma2).collect(["The cat"], ["blocks.0.hook_resid_post", "blocks.3.hook_mlp_out"])
    finally:
        gemma2.layers[1].forward = original
    assert hook_ids(gemma2.model) == before
    with torch.inference_mode():
        again = gemma2.model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
    assert torch.equal(clean, again)  # the same forward as before: the same bits unless a hook was left behind


def test_hookset_removal_is_idempotent(gemma2):
    before = hook_ids(gemma2.model)
    hooks = HookSet()
    hooks.on_output(gemma2.layers[0], lambda h: None)
    assert len(hooks) == 1
    hooks.remove()
    hooks.remove()
    assert hook_ids(gemma2.model) == before


def test_hooks_accept_tuple_outputs_and_refuse_other_types():
    from saetui.errors import HookPointError
    from saetui.models.hooks import hidden_of, with_hidden

    t = torch.ones(2)
    assert hidden_of((t, None), "x") is t
    assert with_hidden((t, "extra"), t * 2)[1] == "extra"
    with pytest.raises(HookPointError, match="passed a dict"):
        hidden_of({"a": t}, "blocks.0.hook_resid_post")


def test_repeated_analyses_leak_neither_tensors_nor_hooks(gemma2, make_sae, monkeypatch):
    manager = SAEManager(gemma2)
    manager.add(make_sae(64, 256, "blocks.1.hook_resid_post"), name="s")
    analyzer = SAEAnalyzer(gemma2, manager)
    refs: list[weakref.ref] = []
    original = analyzer.collector.run

    def spy(*args, **kwargs):
        captured, logits = original(*args, **kwargs)
        refs.extend(weakref.ref(t) for t in captured.values())
        return captured, logits

    monkeypatch.setattr(analyzer.collector, "run", spy)
    before = hook_ids(gemma2.model)
    for i in range(50):
        result = analyzer.analyze(f"The cat number {i} sat on the mat", top_k=5)
    gc.collect()
    assert len(refs) == 50
    assert all(r() is None for r in refs), "a captured activation is still alive"
    assert hook_ids(gemma2.model) == before
    assert len(result.tokens) > 3
