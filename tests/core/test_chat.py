"""Chat templates (issue 13): tiny models carrying the Gemma, Llama-3 and ChatML (Qwen) templates.

The rendered ids equal `apply_chat_template(..., tokenize=True)` with one BOS, template tokens are marked
and kept out of summaries, steering in a chat leaves the prompt alone unless asked, and a multi-turn
conversation is the template applied to the whole of it.
"""

from __future__ import annotations

import pytest

from saetui.errors import InputError

GEMMA = (
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}"
    "{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if (message['role'] == 'assistant') %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}{% endif %}"
    "{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{'<start_of_turn>model\n'}}{% endif %}"
)
LLAMA3 = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}"
    "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' + message['content'] | trim + '<|eot_id|>' %}"
    "{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)
CHATML = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
# family -> (architecture, template, its special tokens, the end-of-turn token, whether the template writes BOS)
FAMILIES = {
    "gemma": ("gemma2", GEMMA, ["<start_of_turn>", "<end_of_turn>"], "<end_of_turn>", True),
    "llama3": ("llama", LLAMA3, ["<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"], "<|eot_id|>", True),
    "chatml": ("qwen2", CHATML, ["<|im_start|>", "<|im_end|>"], "<|im_end|>", False),
}
HOOK = "blocks.1.hook_resid_post"
PROMPT = "The cat sat on the mat"


def _chat_model_dir(family: str, path):
    import torch
    from transformers import AutoModelForCausalLM

    from saetui.models.synthetic import build_tokenizer, tiny_config

    arch, template, specials, end, _ = FAMILIES[family]
    tok = build_tokenizer()
    tok.add_special_tokens({"additional_special_tokens": specials})
    tok.chat_template = template
    config = tiny_config(arch, vocab_size=len(tok))
    config.max_position_embeddings = 512  # room for a few turns of a byte-level tokenizer
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config)
    model.generation_config.eos_token_id = [tok.eos_token_id, tok.convert_tokens_to_ids(end)]
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def chat_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("chat-models")
    cache: dict = {}

    def get(family: str):
        if family not in cache:
            cache[family] = _chat_model_dir(family, root / family)
        return cache[family]

    return get


@pytest.fixture(scope="module")
def sessions(chat_dirs, tmp_path_factory):
    """family -> a Session on that tiny chat model with one random SAE at HOOK."""
    from saetui.models.model import ModelWithHooks
    from saetui.models.synthetic import random_jumprelu_sae
    from saetui.sae.manager import SAEManager
    from saetui.session import Session

    cache: dict = {}

    def get(family: str) -> Session:
        if family not in cache:
            model = ModelWithHooks.from_pretrained(str(chat_dirs(family)))
            sae_path = tmp_path_factory.mktemp(f"sae-{family}") / "sae"
            sae = random_jumprelu_sae(model.d_model, 256, HOOK)
            with __import__("torch").no_grad():
                sae.threshold.fill_(0.05)  # fires on most tokens of a random tiny model
            sae.save_model(sae_path)
            manager = SAEManager(model)
            manager.load(str(sae_path))
            session = Session()
            session.attach(model, manager)
            cache[family] = session
        return cache[family]

    return get


def _template_ids(tokenizer, messages, add_generation_prompt=True) -> list[int]:
    out = tokenizer.apply_chat_template(messages, tokenize=True, add_generation_prompt=add_generation_prompt)
    ids = out["input_ids"] if hasattr(out, "keys") else out
    return [int(i) for i in ids]


@pytest.mark.parametrize("family", FAMILIES)
def test_ids_equal_apply_chat_template_with_one_bos(family, sessions):
    session = sessions(family)
    tok = session.model.tokenizer
    messages = [{"role": "user", "content": PROMPT}]
    chat = session.chat_prompt(PROMPT, True)
    assert chat.ids == _template_ids(tok, messages)
    assert chat.text == tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    writes_bos = FAMILIES[family][4]
    assert chat.ids.count(tok.bos_token_id) == (1 if writes_bos else 0)
    if writes_bos:  # the naive way (the rendered text tokenized with special tokens) doubles the BOS
        naive = tok(chat.text, add_special_tokens=True)["input_ids"]
        assert naive.count(tok.bos_token_id) == 2 and chat.ids[0] == tok.bos_token_id


@pytest.mark.parametrize("family", FAMILIES)
def test_template_tokens_are_marked(family, sessions):
    session = sessions(family)
    model = session.model
    chat = session.chat_prompt(PROMPT, True)
    user = [i for i, r in enumerate(chat.roles) if r == "user"]
    assert user == list(range(user[0], user[-1] + 1))  # one run
    assert model.tokenizer.decode([chat.ids[i] for i in user]) == PROMPT
    assert set(chat.roles) == {"user", "template"}
    for i, t in enumerate(chat.ids):  # every special token (BOS, turn markers) is the template's
        if model.is_special(t):
            assert chat.roles[i] == "template"
    assert chat.roles[-1] == "template" and chat.template[-1]  # the reply's opener ends the prompt
    opener = {"gemma": "<start_of_turn>model\n", "llama3": "<|start_header_id|>assistant<|end_header_id|>\n\n",
              "chatml": "<|im_start|>assistant\n"}[family]
    assert chat.text.endswith(opener)


@pytest.mark.parametrize("family", FAMILIES)
def test_analysis_marks_template_tokens_and_leaves_them_out_of_summaries(family, sessions):
    import json

    session = sessions(family)
    result = session.analyze(PROMPT, 8, chat=True)
    roles = [t.role for t in result.tokens]
    assert roles == session.chat_prompt(PROMPT, True).roles
    assert all(t.template == (t.role == "template") for t in result.tokens)
    top = result.saes[0].top_features
    assert top and all(not result.tokens[i].template for _, _, i in top)
    data = json.loads(result.to_json())
    assert data["tokens"][-1]["role"] == "template" and data["tokens"][-1]["template"] is True
    assert data["meta"]["chat"]["messages"] == [{"role": "user", "content": PROMPT}]
    # the switch: template tokens count; the per-token table is the same either way
    shown = session.analyze(PROMPT, 8, chat=True, include_template=True)
    assert shown.saes[0].per_token == result.saes[0].per_token
    assert any(shown.tokens[i].template for _, _, i in shown.saes[0].top_features)
    # feature_activations reuses the analyzed ids (not the rendered text re-tokenized)
    f = top[0][0]
    acts = session.feature_activations(None, f)
    assert len(acts) == len(result.tokens)
    assert acts[top[0][2]] == pytest.approx(top[0][1], rel=1e-5)


def test_counted_tokens_rule():
    import torch

    from saetui.sae.analyzer import counted_tokens

    special = torch.tensor([True, True, False, False])  # BOS, a turn marker, "user", the text
    template = torch.tensor([True, True, True, False])
    assert counted_tokens(special, template).tolist() == [False, False, False, True]
    assert counted_tokens(special, template, include_template=True).tolist() == [True, True, True, True]
    assert counted_tokens(special, template, include_special=True).tolist() == [True, True, False, True]
    assert counted_tokens(special, None).tolist() == [False, False, True, True]


def _capture(model, hook_name, stores):
    """A forward hook at hook_name's module appending each forward's output (B, T, d)."""
    module, side = model.hook_module(model.hook_point(hook_name))
    assert side == "output"

    def keep(mod, args, out):
        stores.append((out[0] if isinstance(out, tuple) else out).detach().clone())

    return module.register_forward_hook(keep)


@pytest.mark.parametrize("family", FAMILIES)
def test_steering_the_reply_leaves_the_prompt_untouched(family, sessions):
    from saetui.steering.spec import SteeringSpec

    session = sessions(family)
    model = session.model
    chat = session.chat_prompt(PROMPT, True)
    t = len(chat)
    spec = SteeringSpec(3, 8.0)  # scope "all": in a chat, the reply
    later = "blocks.2.hook_resid_post"  # downstream of the steered hook

    def run(rows, **kw):
        stores: list = []
        handle = _capture(model, later, stores)
        try:
            pieces = list(session.generate(PROMPT, rows, chat=True, max_new_tokens=3, **kw))
        finally:
            handle.remove()
        return stores, pieces

    # one row each, the same prompt and tokens: the same shapes and kernels, so untouched activations keep their bits
    base, _ = run([[]])
    steered, _ = run([[spec]])
    both, _ = run([[spec]], steer_template=True)
    assert base[0].shape[1] == t  # the first forward is the whole prompt
    assert torch_equal(base[0], steered[0])  # the prompt's activations untouched
    assert not torch_equal(base[1], steered[1])  # the reply's first token is steered
    # --steer-template: the template's prompt tokens are steered too, the user's text before them is not
    first = chat.template.index(True)
    assert not torch_equal(base[0][:, first], both[0][:, first])
    user = [i for i, r in enumerate(chat.roles) if r == "user"]
    assert first == 0 and user  # BOS / the first turn marker opens every template here
    # an explicit scope stays as given: `prompt` steers the prompt, in a chat too
    prompt_only, _ = run([[SteeringSpec(3, 8.0, scope="prompt")]])
    assert not torch_equal(base[0], prompt_only[0])


def torch_equal(a, b) -> bool:
    import torch

    return torch.equal(a, b)


def test_steer_template_touches_only_template_positions_at_the_hook(sessions):
    """At the steered hook itself the delta lands exactly on the template positions of the prompt."""
    import torch

    from saetui.steering.hooks import SteeringHooks
    from saetui.steering.spec import SteeringSpec, resolve

    session = sessions("llama3")
    model = session.model
    chat = session.chat_prompt(PROMPT, True)
    ids = torch.tensor([chat.ids])
    spec = resolve(SteeringSpec(3, 5.0, scope="generated+template"), session.saes)

    def at_hook(rows):
        stores: list = []
        with SteeringHooks(model, rows, prompt_len=len(chat), template=chat.template), torch.inference_mode():
            handle = _capture(model, HOOK, stores)  # after the steering hook: sees its output
            try:
                model.model(input_ids=ids, attention_mask=torch.ones_like(ids))
            finally:
                handle.remove()
        return stores[0][0]

    base, steered = at_hook([[]]), at_hook([[spec]])
    changed = (steered - base).abs().sum(-1) > 0
    assert changed.tolist() == chat.template
    direction = session.saes.get(None).sae.W_dec[3]
    first = chat.template.index(True)
    torch.testing.assert_close(steered[first] - base[first], 5.0 * direction)


@pytest.mark.parametrize("family", FAMILIES)
def test_multi_turn_ids_equal_the_template_on_the_whole_conversation(family, sessions):
    session = sessions(family)
    tok = session.model.tokenizer
    history = [{"role": "user", "content": "Hello there"}, {"role": "assistant", "content": "Hi. The dog ran."},
               {"role": "user", "content": "And the cat?"}, {"role": "assistant", "content": "It sat on the mat."}]
    nxt = "Where is Paris?"
    whole = history + [{"role": "user", "content": nxt}]
    chat = session.chat_prompt(nxt, history)
    assert chat.ids == _template_ids(tok, whole)
    assert session.render_chat(whole).ids == chat.ids
    # a conversation ending with the reply: no generation prompt, analyzed as it stands
    ended = session.render_chat(history)
    assert ended.ids == _template_ids(tok, history, add_generation_prompt=False) and not ended.generation_prompt
    assert [r for r in dict.fromkeys(ended.roles)] == ["template", "user", "assistant"]
    replies = [i for i, r in enumerate(ended.roles) if r == "assistant"]
    assert tok.decode([ended.ids[i] for i in replies]) == "Hi. The dog ran.It sat on the mat."
    # generation continues the conversation: the first reply token is the model's top prediction after it
    import torch

    pieces = list(session.generate(nxt, [[]], chat=history, max_new_tokens=2))
    with torch.inference_mode():
        logits = session.model.model(input_ids=torch.tensor([chat.ids])).logits[0, -1]
    assert pieces[0].token_id == int(logits.argmax())
    with pytest.raises(InputError, match="ends with the assistant's turn"):
        list(session.generate(None, [[]], chat=history, max_new_tokens=2))


def test_system_turn_where_the_template_takes_one(sessions):
    session = sessions("llama3")
    chat = session.chat_prompt(PROMPT, True, system="Be brief.")
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": PROMPT}]
    assert chat.ids == _template_ids(session.model.tokenizer, messages)
    assert [r for r in dict.fromkeys(chat.roles)] == ["template", "system", "user"]
    chatml = sessions("chatml").chat_prompt(PROMPT, True, system="Be brief.")
    assert "You are a helpful assistant." not in chatml.text and "system" in chatml.roles


def _one_line(exc: pytest.ExceptionInfo) -> str:
    text = str(exc.value)
    assert "\n" not in text, text
    return text


def test_a_template_that_refuses_a_system_turn_is_one_line_naming_the_model(sessions):
    session = sessions("gemma")
    with pytest.raises(InputError) as exc:
        session.analyze(PROMPT, chat=True, system="Be brief.")
    text = _one_line(exc)
    assert session.model.name in text and "does not take a system turn" in text


def test_a_model_without_a_chat_template_is_one_line_naming_it(gemma2, sae_dir):
    from saetui.sae.manager import SAEManager
    from saetui.session import Session

    manager = SAEManager(gemma2)
    manager.load(str(sae_dir))
    session = Session()
    session.attach(gemma2, manager)
    for call in (lambda: session.analyze(PROMPT, chat=True), lambda: list(session.generate(PROMPT, [[]], chat=True)),
                 lambda: session.attribute(PROMPT, chat=True)):
        with pytest.raises(InputError) as exc:
            call()
        assert _one_line(exc).startswith(f"model {gemma2.name} has no chat template")


def test_bad_conversations_are_one_line(sessions):
    session = sessions("llama3")
    for chat, pattern in [([{"role": "robot", "content": "x"}], "role must be one of"),
                          ([{"role": "user"}], "not a {'role', 'content'} dict"),
                          ([{"role": "user", "content": 3}], "content must be text"),
                          ([{"role": "user", "content": "a"}, {"role": "system", "content": "b"}], "can only open"),
                          ("hello", "a conversation is a list")]:
        with pytest.raises(InputError, match=pattern) as exc:
            session.chat_prompt("next", chat)
        _one_line(exc)
    with pytest.raises(InputError, match="needs a chat prompt"):
        session.analyze(PROMPT, system="Be brief.")
    with pytest.raises(InputError, match="alternate"):
        sessions("gemma").chat_prompt("again", [{"role": "user", "content": "hi"}])


def test_attribution_in_a_chat_explains_the_reply_opener(sessions):
    session = sessions("gemma")
    chat = session.chat_prompt(PROMPT, True)
    result = session.attribute(PROMPT, top_k=5, verify=2, chat=True)
    assert result.position == len(chat) - 1
    assert [t["id"] for t in result.tokens] == chat.ids
    assert [t["role"] for t in result.tokens] == chat.roles and result.tokens[-1]["template"] is True


def test_kl_in_a_chat_is_zero_at_coefficient_zero(sessions):
    from saetui.steering.spec import SteeringSpec

    session = sessions("chatml")
    rows = [[], [SteeringSpec(3, 0.0)], [SteeringSpec(3, 20.0)]]
    outs = [[] for _ in rows]
    for piece in session.generate(PROMPT, rows, chat=True, max_new_tokens=4):
        outs[piece.row].append(piece.token_id)
    kl = session.steering_kl(PROMPT, rows, outs, chat=True)
    assert kl[0] is None and all(v == 0.0 for v in kl[1]) and len(kl[2]) == len(outs[2])


def test_generation_stops_at_the_end_of_turn_token(sessions):
    from saetui.steering.generate import stop_ids

    model = sessions("gemma").model
    assert model.tokenizer.convert_tokens_to_ids("<end_of_turn>") in stop_ids(model)


def test_scopes_join_with_plus():
    from saetui.steering.spec import SteeringSpec, chat_scope

    assert SteeringSpec(1, 1.0, scope="generated+template").scope == "generated+template"
    assert SteeringSpec(1, 1.0, scope="0:3+template").scope == "0:3+template"
    for bad in ("generated+", "+template", "generated+junk", "template+5:2"):
        with pytest.raises(InputError):
            SteeringSpec(1, 1.0, scope=bad)
    for long in (":" + "9" * 5000, "9" * 5000 + ":", "generated+:" + "9" * 5000):  # one side only: int() raised later
        with pytest.raises(InputError, match="a number is too long"):
            SteeringSpec(1, 1.0, scope=long)
    assert chat_scope("all") == "generated" and chat_scope("all", True) == "generated+template"
    assert chat_scope("prompt") == "prompt" and chat_scope("0:", True) == "0:+template"
    assert chat_scope("generated+template", True) == "generated+template"


# ---------------------------------------------------------------------- the CLI
@pytest.fixture()
def cli_dirs(chat_dirs, model_dirs, make_sae, tmp_path):
    """(a Gemma-template model, a model without a chat template, an SAE for both at HOOK)."""
    sae = make_sae(64, 256, HOOK)
    sae.save_model(tmp_path / "sae")
    return str(chat_dirs("gemma")), str(model_dirs("gemma2")), str(tmp_path / "sae")


@pytest.mark.parametrize("which, extra, pattern", [
    ("plain", ["analyze", "--chat"], "has no chat template"),
    ("plain", ["steer", "--chat", "--feature", "3:1"], "has no chat template"),
    ("plain", ["attribute", "--chat"], "has no chat template"),
    ("chat", ["analyze", "--chat", "--system", "Be brief."], "does not take a system turn"),
    ("chat", ["steer", "--chat", "--system", "Be brief.", "--feature", "3:1"], "does not take a system turn"),
])
def test_cli_chat_refusals_are_one_line_naming_the_model(which, extra, pattern, cli_dirs, capsys):
    from saetui.cli import main

    chat, plain, sae = cli_dirs
    model = chat if which == "chat" else plain
    code = main([extra[0], "--model", model, "--sae", sae, "--prompt", PROMPT, *extra[1:]])
    out, err = capsys.readouterr()
    lines = err.splitlines()
    assert (code, out) == (2, "") and len(lines) == 1, err
    assert lines[0].startswith("saetui: error: ") and pattern in lines[0] and model in lines[0], lines[0]


def test_cli_chat_json(cli_dirs, capsys):
    import json

    from saetui.cli import main

    chat, _, sae = cli_dirs
    common = ["--model", chat, "--sae", sae, "--prompt", PROMPT, "--chat", "--json"]
    assert main(["analyze", *common]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["tokens"][0]["role"] == "template" and {"user", "template"} == {t["role"] for t in data["tokens"]}
    assert all(not data["tokens"][i]["template"] for _, _, i in data["saes"][0]["top_features"])
    assert main(["steer", *common, "--feature", "3:4", "--compare", "--max-new-tokens", "3"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["specs"][0]["scope"] == "generated" and data["chat"]["rendered"].endswith("<start_of_turn>model\n")
    assert len(data["steered"]["token_ids"]) == len(data["steered"]["kl"]) == 3
    assert main(["steer", *common, "--feature", "3:4", "--steer-template", "--max-new-tokens", "2"]) == 0
    assert json.loads(capsys.readouterr().out)["specs"][0]["scope"] == "generated+template"
    assert main(["attribute", *common, "--verify", "1", "--top-k", "2"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["tokens"][-1]["role"] == "template" and data["position"] == len(data["tokens"]) - 1
