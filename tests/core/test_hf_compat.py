"""saetui/models/hf_compat.py on the installed transformers: every function the rest of saetui calls instead of a
transformers internal. scripts/compat runs this file at the oldest versions pyproject declares as well."""

from __future__ import annotations

import threading

import torch

from saetui.models import hf_compat
from tests.tolerance import path_length, reduction_bound


def test_forward_keywords(gemma2):
    hf = gemma2.model
    assert hf_compat.cache_kwarg(hf) in ("cache", "past_key_values")
    assert hf_compat.cache_kwarg(hf) in hf_compat.forward_params(hf)
    assert hf_compat.keeps_last_logits(hf)
    ids = gemma2.tokenize("The cat sat").input_ids
    with torch.inference_mode():
        out = hf(input_ids=ids, use_cache=True)
        cache = hf_compat.output_cache(out)
        assert cache is not None and hf_compat.cache_length({hf_compat.cache_kwarg(hf): cache}) == ids.shape[1]
        assert hf_compat.cache_length({}) == 0
        assert out.logits.shape[1] == ids.shape[1]
        assert hf(input_ids=ids, logits_to_keep=1).logits.shape[1] == 1


def test_the_static_cache_has_plain_layers_and_decodes_like_the_dynamic_one(model_dirs):
    """Sliding-window layers too (Gemma 2): every layer keeps its fill level as a tensor, so a compiled
    step does not guard on it; greedy decoding on it equals decoding with the model's own cache."""
    from saetui.models.model import ModelWithHooks

    model = ModelWithHooks.from_pretrained(str(model_dirs("gemma2")))
    hf = model.model
    cache = hf_compat.static_cache(hf, 32)
    assert len(cache.layers) == hf.config.num_hidden_layers
    assert all(isinstance(layer.cumulative_length, torch.Tensor) for layer in cache.layers)
    assert hf_compat.can_compile_fullgraph(hf)
    ids = model.tokenize("The cat sat on the mat").input_ids
    kw = hf_compat.cache_kwarg(hf)
    # the static cache attends over all its positions under a mask, the model's own cache over what it holds:
    # other shapes, so logits rounding apart (tests/tolerance.py); fed the model's own greedy tokens, each
    # must be the top of ours up to that
    bound = reduction_bound(30.0, path_length(model, f"blocks.{model.n_layers - 1}.hook_resid_post", model.d_model), torch.float32)
    with torch.inference_mode():
        want = hf.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=20, min_new_tokens=20, do_sample=False)[0, ids.shape[1]:]
        t = ids.shape[1]
        logits = hf(input_ids=ids, position_ids=torch.arange(t)[None], use_cache=True, **{kw: cache}).logits[:, -1]
        assert float(logits.abs().max()) < 30.0  # the magnitude the bound assumes
        for i, token in enumerate(want.tolist()):
            assert float(logits[0, token]) >= float(logits.max()) - 2 * bound, (i, token, int(logits.argmax()))
            logits = hf(input_ids=torch.tensor([[token]]), position_ids=torch.tensor([[t + i]]), use_cache=True, **{kw: cache}).logits[:, -1]
        hf_compat.set_cache_length(cache, 3)
        assert all(int(layer.cumulative_length) == 3 for layer in cache.layers)


def test_layers_run_by_hand_equal_the_models_own_forward(model_dirs):
    """hidden_after (the benchmarks' lower bound) runs the model's layers as its forward does, on the same shapes:
    the same bits as the model's own hidden states."""
    from saetui.models.model import ModelWithHooks

    for arch in ("gemma2", "llama"):
        model = ModelWithHooks.from_pretrained(str(model_dirs(arch)))
        ids = model.tokenize("The cat sat on the mat").input_ids
        with torch.inference_mode():
            want = model.model(input_ids=ids, output_hidden_states=True).hidden_states
            for layer in range(model.n_layers - 1):  # the last hidden state has the final norm applied
                assert torch.equal(hf_compat.hidden_after(model.model, ids, layer), want[layer + 1]), (arch, layer)


def test_causal_masks_build_for_every_layer_type(gemma2):
    config = gemma2.model.config
    emb = torch.zeros(1, 5, config.hidden_size)
    masks = hf_compat.causal_masks(config, emb, torch.arange(5)[None])
    assert set(masks) == {"full_attention", "sliding_attention"}


def test_the_compile_time_context_variables_stay_per_thread_for_eager_forwards():
    """After thread_safe_compile_state, an eager set/get/reset in one thread leaves another thread's value alone."""
    hf_compat.thread_safe_compile_state()
    from transformers.utils import output_capturing

    var = output_capturing._active_collector
    assert isinstance(var, hf_compat._SafeContextVar)
    seen = {}

    def other():
        token = var.set({"theirs": []})
        seen["other"] = var.get()
        var.reset(token)

    token = var.set({"mine": []})
    thread = threading.Thread(target=other)
    thread.start()
    thread.join()
    assert var.get() == {"mine": []} and seen["other"] == {"theirs": []}
    var.reset(token)
    assert var.get() is None and var.global_var is None
