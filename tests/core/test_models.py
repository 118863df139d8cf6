"""ModelWithHooks and the architecture table, on tiny random models of every supported family."""

from __future__ import annotations

import pytest
import torch

from saetui.activations.collector import ActivationCollector
from saetui.errors import HookPointError, InputError, ModelLoadError
from saetui.models.architectures import parse_hook_name, resolve_architecture
from saetui.models.model import ModelWithHooks, needs_sharding, pick_dtype
from saetui.models.synthetic import TINY_ARCHITECTURES
from tests.conftest import hook_ids

PROMPTS = ["The capital of France is Paris.", "Hi", "One two three four"]  # mixed lengths -> padding


@pytest.mark.parametrize("arch", TINY_ARCHITECTURES)
def test_resid_hooks_equal_the_models_own_hidden_states(arch, model_dirs):
    """Collector activations equal output_hidden_states for real tokens, with early exit and without."""
    model = ModelWithHooks.from_pretrained(str(model_dirs(arch)))
    assert model.model_type == arch
    batch = model.tokenize(PROMPTS)
    assert len(set(batch.lengths)) > 1 and (batch.attention_mask == 0).any()
    with torch.inference_mode():
        hidden = model.model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, output_hidden_states=True).hidden_states
    before = hook_ids(model.model)
    collector = ActivationCollector(model)
    # hidden_states[-1] has the final norm applied in most families, so stop one layer short.
    for layer in range(model.n_layers - 1):
        for stop_early in (True, False):
            acts = collector.collect(PROMPTS, [f"blocks.{layer}.hook_resid_post", f"blocks.{layer}.hook_resid_pre"], stop_early=stop_early)
            for i, n in enumerate(batch.lengths):
                post = acts[f"blocks.{layer}.hook_resid_post"][i]
                pre = acts[f"blocks.{layer}.hook_resid_pre"][i]
                assert post.shape == (n, model.d_model)
                torch.testing.assert_close(post, hidden[layer + 1][i, :n], atol=1e-6, rtol=0)
                torch.testing.assert_close(pre, hidden[layer][i, :n], atol=1e-6, rtol=0)
    assert hook_ids(model.model) == before


@pytest.mark.parametrize("arch", TINY_ARCHITECTURES)
def test_attn_and_mlp_outputs_add_up_to_the_residual(arch, model_dirs):
    """resid_pre + attn_out + mlp_out == resid_post: the attn/mlp modules are the ones added to the stream."""
    model = ModelWithHooks.from_pretrained(str(model_dirs(arch)))
    names = [f"blocks.1.{k}" for k in ("hook_resid_pre", "hook_attn_out", "hook_mlp_out", "hook_resid_post")]
    acts = ActivationCollector(model).collect(PROMPTS, names)
    for i in range(len(PROMPTS)):
        pre, attn, mlp, post = (acts[n][i] for n in names)
        assert attn.abs().sum() > 0 and mlp.abs().sum() > 0
        torch.testing.assert_close(pre + attn + mlp, post, atol=1e-5, rtol=1e-5)


def test_early_exit_never_runs_later_layers_or_the_lm_head(gemma2):
    calls = []
    handles = [gemma2.layers[3].register_forward_hook(lambda *a: calls.append("layer3")),
               gemma2.model.lm_head.register_forward_hook(lambda *a: calls.append("lm_head"))]
    try:
        ActivationCollector(gemma2).collect("The cat sat", "blocks.1.hook_resid_post")
        assert calls == []
        ActivationCollector(gemma2).collect("The cat sat", "blocks.1.hook_resid_post", stop_early=False)
        assert calls == ["layer3", "lm_head"]
    finally:
        for h in handles:
            h.remove()


def test_hook_point_parsing_and_range():
    assert parse_hook_name("blocks.12.hook_resid_post").layer == 12
    with pytest.raises(HookPointError, match="unsupported hook point"):
        parse_hook_name("blocks.3.attn.hook_z")


def test_layer_out_of_range_is_a_clear_error(gemma2):
    with pytest.raises(HookPointError, match="layer 9 out of range.*0..3"):
        gemma2.hook_point("blocks.9.hook_resid_post")


def test_fallback_finds_the_layer_list_of_an_unknown_family(gemma2):
    spec = resolve_architecture(gemma2.model, "some_new_family", gemma2.n_layers)
    assert spec.layers == "model.layers" and spec.mlp_out == "mlp" and spec.attn_out == "self_attn"


def test_fallback_names_what_it_found_when_nothing_fits():
    net = torch.nn.Module()
    net.a = torch.nn.ModuleList([torch.nn.Linear(2, 2) for _ in range(3)])
    net.b = torch.nn.ModuleList([torch.nn.Linear(2, 2) for _ in range(3)])
    with pytest.raises(HookPointError, match=r"found ModuleLists: a \(3\), b \(3\)"):
        resolve_architecture(net, "mystery", 3)


def test_dtype_rules():
    assert pick_dtype("cuda", "llama") == torch.bfloat16
    assert pick_dtype("cpu", "llama") == torch.float32
    assert pick_dtype("cpu", "llama", "fp16") == torch.float16
    with pytest.raises(ModelLoadError, match="float16 is not supported for gemma2"):
        pick_dtype("cuda", "gemma2", "float16")


def test_gemma2_runs_on_eager_attention(gemma2):
    assert gemma2.model.config._attn_implementation == "eager"


def test_sharding_decision():
    gib = 1024**3
    assert needs_sharding(9 * 10**9, 2, [16 * gib, 16 * gib])  # 18 GB of bf16 on 16 GiB cards
    assert not needs_sharding(2 * 10**9, 2, [80 * gib, 80 * gib])
    assert not needs_sharding(9 * 10**9, 2, [20 * gib])  # one GPU: nothing to spread over


def test_unknown_model_offline_is_one_line(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelLoadError, match="HF_HUB_OFFLINE is set") as err:
        ModelWithHooks.from_pretrained("nobody/no-such-model-xyz")
    assert "\n" not in str(err.value)


def test_trust_remote_code_is_off_by_default(monkeypatch, gemma2_dir):
    seen = {}
    import transformers

    original = transformers.AutoConfig.from_pretrained

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return original(*args, **kwargs)

    monkeypatch.setattr(transformers.AutoConfig, "from_pretrained", spy)
    ModelWithHooks.from_pretrained(str(gemma2_dir))
    assert seen["trust_remote_code"] is False


def test_empty_and_overlong_prompts(gemma2):
    with pytest.raises(InputError, match="empty prompt"):
        gemma2.tokenize("   ")
    full = len(gemma2.tokenizer("word " * 400, add_special_tokens=True)["input_ids"])
    with pytest.warns(UserWarning, match=f"prompt cut to its first 128 of {full} tokens"):
        batch = gemma2.tokenize("word " * 400)
    assert batch.lengths == [128] and batch.full_lengths == [full]  # what was cut, for the app and the JSON
    assert gemma2.tokenize("word " * 10).full_lengths is None


def test_special_tokens_are_marked(gemma2):
    batch = gemma2.tokenize(["Hello there", "Hi"])
    assert batch.special_mask[:, 0].all()  # BOS
    assert batch.special_mask[1, batch.lengths[1]:].all()  # padding
    assert not batch.special_mask[0, 1:batch.lengths[0]].any()


@pytest.mark.parametrize("kind", ["byte-level BPE (tiny models)", "byte fallback (the demo)"])
def test_tokens_holding_part_of_a_character_read_as_their_bytes(kind, gemma2):
    """Decoded alone, every piece of an emoji is the same `\\ufffd`; token_texts (used by analysis, examples,
    promoted tokens, spans and attribution) gives their bytes instead, which add up to the character."""
    import re

    if kind.startswith("byte fallback"):
        from saetui.demo import load_demo

        model = load_demo()[0]
    else:
        model = gemma2
    text = "café 🙂 日本"
    ids = model.tokenizer(text, add_special_tokens=False)["input_ids"]
    texts = model.token_texts(ids)
    assert not any("\ufffd" in t for t in texts) and any("<0x" in t for t in texts), texts
    data = b"".join(bytes.fromhex(p[3:5]) if p.startswith("<0x") else p.encode()
                    for t in texts for p in re.findall(r"<0x[0-9A-F]{2}>|[^<]+|<", t))
    assert data.decode("utf-8").replace(" ", "") == text.replace(" ", "")


def test_a_model_folder_without_its_tokenizer_is_refused_in_one_line(tmp_path):
    """Without tokenizer files transformers builds an empty tokenizer (5 tokens for the demo's Gemma config): the
    folder loaded and every prompt was one <unk>."""
    import shutil

    from saetui import demo

    folder = tmp_path / "no-tokenizer"
    shutil.copytree(demo.MODEL_DIR, folder)
    for name in ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "special_tokens_map.json"):
        (folder / name).unlink(missing_ok=True)
    with pytest.raises(ModelLoadError, match="tokenizer has .* tokens for a vocabulary of .* tokenizer files missing"):
        ModelWithHooks.from_pretrained(str(folder), device="cpu")


def test_an_unreadable_generation_config_is_said(tmp_path):
    """transformers loads a model whose generation_config.json is damaged without a word, and a chat reply then runs
    past the model's end-of-turn id: the load says so."""
    import shutil
    from importlib import resources

    from saetui.files import take_notices

    folder = tmp_path / "m"
    shutil.copytree(resources.files("saetui.demo") / "assets" / "model", folder)
    take_notices()
    ModelWithHooks.from_pretrained(str(folder), device="cpu")
    assert take_notices() == []  # the intact one
    (folder / "generation_config.json").write_text("nope")
    ModelWithHooks.from_pretrained(str(folder), device="cpu")
    (said,) = take_notices()
    assert said.startswith(f"{folder / 'generation_config.json'} could not be read (JSONDecodeError)")
