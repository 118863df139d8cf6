"""The decoding core (saetui.steering.decode, .static): the static-cache decoder, plain and compiled, against the eager loop.

Eager and static runs go through the same loop and the same steering tables, so their greedy tokens are
equal; the compiled step is traced by dynamo and run with aot_eager here (the same graph capture, hooks
and guards as inductor, no code generation: seconds on a small CPU; `-m inductor` adds inductor, minutes).
The graph counters show that one compiled graph serves every step and every later generation whose specs,
scopes and SAEs change.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from saetui.models.model import ModelWithHooks
from saetui.models.synthetic import TINY_ARCHITECTURES
from saetui.sae.manager import SAEManager
from saetui.steering import decode, static
from saetui.steering.generate import GenerationSettings, SteeringEngine
from saetui.steering.scopes import covers
from saetui.steering.spec import SteeringSpec, resolve
from tests.conftest import hook_ids
from tests.greedy import assert_close_logprobs, assert_same_greedy

HOOK, LATE = "blocks.1.hook_resid_post", "blocks.3.hook_resid_post"
PROMPT = "The cat sat on the mat"
# add over all positions, a clamp, a scoped add that starts inside the generated part, a window, an ablation
ROWS = [
    [],
    [SteeringSpec(3, 40.0)],
    [SteeringSpec(5, 30.0, mode="clamp"), SteeringSpec(9, -25.0, scope="generated")],
    [SteeringSpec(7, 60.0, scope="10:14"), SteeringSpec(2, 0.0, mode="ablate", scope="prompt")],
]
# every scope form, unions among them, on both SAEs: a sequence of generations (4 rows each, like ROWS)
# whose specs move between SAEs, hook points, scopes and modes
MOVES = [
    [[], [SteeringSpec(3, 40.0, sae="s"), SteeringSpec(4, 20.0, sae="t", scope="0:3+generated")],
     [SteeringSpec(5, 30.0, mode="clamp", sae="t")], [SteeringSpec(6, -30.0, sae="t", scope="prompt+generated")]],
    [[SteeringSpec(1, 50.0, sae="s", scope="prompt")], [SteeringSpec(8, 0.0, mode="ablate", sae="s", scope="template+9:")],
     [SteeringSpec(2, 45.0, sae="t", scope="generated")], []],
    [[SteeringSpec(2, 45.0, sae="t", scope="all"), SteeringSpec(7, 9.0, mode="clamp", sae="t", scope="2:11")], [], [],
     [SteeringSpec(9, -35.0, sae="s", scope="8:"), SteeringSpec(11, 3.0, mode="clamp", sae="s", scope="generated")]],
]
_BACKENDS = ["aot_eager", pytest.param("inductor", marks=pytest.mark.inductor)]


@pytest.fixture(autouse=True)
def _aot_eager(monkeypatch):
    monkeypatch.setattr(static, "BACKEND", "aot_eager")
    yield


def _setup(model_dirs, make_sae, arch, *, two=False):
    model = ModelWithHooks.from_pretrained(str(model_dirs(arch)))
    saes = SAEManager(model)
    saes.add(make_sae(model.d_model, 128, HOOK), name="s")
    if two:
        saes.add(make_sae(model.d_model, 128, LATE), name="t")
    return model, saes


def _tokens(engine, rows, prompt=PROMPT, **settings):
    return [o.token_ids for o in engine.run(prompt, rows, **settings)]


def _static(model, saes, rows, *, compile, prompt=PROMPT, **settings):
    """Generate on a static decoder directly (compile=False: its plain step)."""
    cfg = GenerationSettings(**settings)
    resolved = [[resolve(s, saes) for s in row] for row in rows]
    ids = model.tokenize(prompt).input_ids[0].tolist()
    runner = static.static_runner(model, resolved, list(saes), len(ids) + cfg.max_new_tokens, compile=compile,
                                  prompt_len=len(ids), template=None)
    out = [[] for _ in rows]
    for piece in decode.decode(runner, ids, len(rows), cfg, [cfg.seed] * len(rows), decode.stop_ids(model), model.tokenizer):
        out[piece.row].append((piece.token_id, piece.logprob))
    return out


def _graphs() -> int:
    from torch._dynamo.utils import counters

    return counters["stats"]["unique_graphs"]


@pytest.mark.parametrize("arch", TINY_ARCHITECTURES)
def test_static_decoder_equals_eager_on_every_architecture(model_dirs, make_sae, arch):
    model, saes = _setup(model_dirs, make_sae, arch)
    eager = SteeringEngine(model, saes, compile=False)
    want = [list(zip(o.token_ids, o.logprobs)) for o in eager.run(PROMPT, ROWS, max_new_tokens=24)]
    got = _static(model, saes, ROWS, compile=False, max_new_tokens=24)
    static.forget(model)
    assert_same_greedy(model, saes, ROWS, [[t for t, _ in r] for r in got], [[t for t, _ in r] for r in want])
    assert_close_logprobs(model, saes, ROWS, got, want)
    assert want[1] != want[0]  # the steering changed something: the comparison is not vacuous


def test_static_decoder_samples_like_eager(model_dirs, make_sae):
    model, saes = _setup(model_dirs, make_sae, "llama")
    settings = dict(max_new_tokens=16, temperature=0.8, top_p=0.9, seed=4)
    got = _static(model, saes, ROWS[:2], compile=False, **settings)
    static.forget(model)
    # Same seed, same draws: a sampled token could only change if a draw landed within rounding (~1e-6) of an
    # edge of the cumulative probabilities, about 1e-5 odds over these 32 draws.
    assert [[t for t, _ in r] for r in got] == _tokens(SteeringEngine(model, saes, compile=False), ROWS[:2], **settings)


@pytest.mark.parametrize("backend", _BACKENDS)
@pytest.mark.parametrize("arch", ["gemma2", "llama", "gpt2"])
def test_compiled_equals_eager_with_one_graph_for_every_step_and_every_later_generation(model_dirs, make_sae, arch, backend,
                                                                                          monkeypatch):
    """>= 24 tokens on one compiled graph (a graph per step was the bug: the sliding-window cache's fill level
    was a Python int); then generations whose specs move between SAEs, hook points, scopes and modes add none."""
    monkeypatch.setattr(static, "BACKEND", None if backend == "inductor" else backend)
    model, saes = _setup(model_dirs, make_sae, arch, two=True)
    eager = SteeringEngine(model, saes, compile=False)
    fast = SteeringEngine(model, saes, compile=True)
    assert fast.static(GenerationSettings())
    torch._dynamo.reset()
    start = _graphs()
    rows = [[SteeringSpec(s.feature, s.coefficient, s.mode, "s", s.scope) for s in row] for row in ROWS]
    assert_same_greedy(model, saes, rows, _tokens(fast, rows, max_new_tokens=24), _tokens(eager, rows, max_new_tokens=24))
    assert _graphs() - start == 1, "one graph for 24 steps of the same batch shape"
    for rows in MOVES:
        assert_same_greedy(model, saes, rows, _tokens(fast, rows, max_new_tokens=24), _tokens(eager, rows, max_new_tokens=24))
    assert _graphs() - start == 1, "new specs, scopes and SAEs reuse the compiled step"
    static.forget(model)


def test_compiled_equals_eager_for_chat_prompts_and_template_scopes(make_sae):
    from saetui.demo import load_demo
    from saetui.models.chat import render_chat

    model, saes = load_demo()
    chat = render_chat(model.tokenizer, [{"role": "user", "content": "What colour is the sky?"}])
    f = 205  # a demo feature whose steering on the template tokens changes the reply (the last assert)
    rows = [[], [SteeringSpec(f, 6.0, sae="demo", scope="generated")],
            [SteeringSpec(f, 6.0, sae="demo", scope="generated+template")], [SteeringSpec(f, 4.0, sae="demo-late", scope="template")]]
    eager = SteeringEngine(model, saes, compile=False)
    fast = SteeringEngine(model, saes, compile=True)
    want = _tokens(eager, rows, prompt=chat, max_new_tokens=12)
    assert_same_greedy(model, saes, rows, _tokens(fast, rows, prompt=chat, max_new_tokens=12), want, prompt=chat)
    assert want[1] != want[2] or want[2] != want[0]  # template steering reached the model
    static.forget(model)


def test_saved_vectors_steer_the_same_on_both_paths(gemma2, make_sae):
    from saetui.steering.vectors import VectorSpec, save_vector

    saes = SAEManager(gemma2)
    saes.add(make_sae(64, 128, HOOK), name="s")
    torch.manual_seed(1)
    save_vector("push", {"blocks.2.hook_resid_post": torch.randn(64) * 8}, model=gemma2.name)
    rows = [[], [VectorSpec("push", 1.0)], [VectorSpec("push", -1.0, scope="generated"), SteeringSpec(3, 30.0)]]
    want = _tokens(SteeringEngine(gemma2, saes, compile=False), rows, max_new_tokens=12)
    assert_same_greedy(gemma2, saes, rows, _tokens(SteeringEngine(gemma2, saes, compile=True), rows, max_new_tokens=12), want)
    assert want[1] != want[0]
    static.forget(gemma2)


def test_every_end_id_of_the_generation_config_stops_both_paths(model_dirs, make_sae):
    model, saes = _setup(model_dirs, make_sae, "llama")
    eager = SteeringEngine(model, saes, compile=False)
    (free,) = _tokens(eager, [[]], max_new_tokens=12)
    end = free[4]  # a token the model emits fifth: make it an end-of-turn id of the generation config only
    model.model.generation_config.eos_token_id = [model.tokenizer.eos_token_id, end]
    try:
        (row,) = _tokens(eager, [[]], max_new_tokens=12)
        assert row == free[: free.index(end) + 1]
        (row,) = _tokens(SteeringEngine(model, saes, compile=True), [[]], max_new_tokens=12)
        assert_same_greedy(model, saes, [[]], [row], [free[: free.index(end) + 1]])  # running past the end fails here
    finally:
        model.model.generation_config.eos_token_id = model.tokenizer.eos_token_id
        static.forget(model)


def test_no_hook_on_the_model_and_an_analysis_between_steps_is_not_steered(gemma2, make_sae):
    saes = SAEManager(gemma2)
    saes.add(make_sae(64, 128, HOOK), name="s")
    engine = SteeringEngine(gemma2, saes, compile=True)
    before = hook_ids(gemma2.model)
    stream = engine.stream(PROMPT, [[SteeringSpec(3, 40.0)]], max_new_tokens=5)
    next(stream)
    ids = gemma2.tokenize(PROMPT).input_ids
    with torch.inference_mode():  # a forward between two tokens (an analysis) is not steered
        between = gemma2.model(input_ids=ids).logits
    assert hook_ids(gemma2.model) == before  # the decoder's hooks are on its twin, never on the model
    stream.close()
    with torch.inference_mode():
        assert torch.equal(between, gemma2.model(input_ids=ids).logits)
    static.forget(gemma2)


def test_a_compiled_step_built_in_the_background_takes_over_once_ready(model_dirs, make_sae):
    model, saes = _setup(model_dirs, make_sae, "llama")
    want = _tokens(SteeringEngine(model, saes, compile=False), ROWS, max_new_tokens=10)
    assert static.compile_status(model) == "eager"
    first = _static(model, saes, ROWS, compile=None, max_new_tokens=10)  # runs uncompiled, starts the build
    assert_same_greedy(model, saes, ROWS, [[t for t, _ in r] for r in first], want)
    assert static.wait_compiled(model, timeout=600)
    assert static.compile_status(model) == "compiled"
    pool = static._pool(model)
    assert any(d.compiled and d.ready and d.failed is None for d in pool.decoders)
    again = _static(model, saes, ROWS, compile=None, max_new_tokens=10)
    assert_same_greedy(model, saes, ROWS, [[t for t, _ in r] for r in again], want)
    static.forget(model)


def test_the_background_compile_starts_when_the_first_generation_ends(model_dirs, make_sae, monkeypatch):
    """Tracing holds the GIL: a compile running while tokens stream stalls them (each torch op of a forward
    gives the GIL away and waits to get it back). So the first steer streams uncompiled from its first token
    to its last, with torch.compile not even called (its first call imports dynamo), and the build starts at
    its end, with the GIL changing hands often while it runs."""
    import sys
    import threading

    model, saes = _setup(model_dirs, make_sae, "llama")
    events: list[tuple] = []
    real_compile, real_warm = torch.compile, static.Decoder.warm
    monkeypatch.setattr(torch, "compile", lambda *a, **k: events.append(("torch.compile",)) or real_compile(*a, **k))
    threads = []
    monkeypatch.setattr(static.Decoder, "warm", lambda self: events.append(("warm", sys.getswitchinterval()))
                        or threads.append(threading.current_thread()) or real_warm(self))
    before = sys.getswitchinterval()
    rows = [[resolve(s, saes) for s in row] for row in ROWS[:2]]
    ids = model.tokenize(PROMPT).input_ids[0].tolist()
    runner = static.static_runner(model, rows, list(saes), len(ids) + 8, compile=None, prompt_len=len(ids), template=None)
    assert static.compile_status(model) == "compiling"
    for _ in decode.decode(runner, ids, 2, GenerationSettings(max_new_tokens=8), [0, 0], set(), model.tokenizer):
        events.append(("piece",))
    assert static.wait_compiled(model, timeout=600)
    kinds = [e[0] for e in events]
    assert kinds == ["piece"] * 16 + ["warm", "torch.compile"], kinds
    assert events[16][1] == pytest.approx(static._COMPILE_SWITCH_INTERVAL) and events[16][1] < before  # (Python keeps it in µs)
    assert sys.getswitchinterval() == before
    assert static.compile_status(model) == "compiled"
    # a compile asked for now (another batch shape) runs in the same thread, which stays: on torch 2.11 without
    # a GPU, a compile in a second thread after the first one has ended crashed the process (static._Compiler)
    _static(model, saes, ROWS, compile=True, max_new_tokens=4)
    assert len(threads) == 2 and threads[0] is threads[1] and threads[0].is_alive() and threads[0].daemon
    assert threads[0] is not threading.current_thread()
    static.forget(model)


def test_compile_failure_falls_back_with_one_notice(model_dirs, make_sae, monkeypatch):
    from saetui.files import take_notices

    model, saes = _setup(model_dirs, make_sae, "llama")

    def broken(fn, **_kw):
        def call(*a, **k):
            raise RuntimeError("backend exploded")
        return call

    monkeypatch.setattr(torch, "compile", broken)
    monkeypatch.setattr(static, "_notices_given", set())
    take_notices()
    fast = SteeringEngine(model, saes, compile=True)
    eager = SteeringEngine(model, saes, compile=False)
    for _ in range(2):
        assert_same_greedy(model, saes, ROWS, _tokens(fast, ROWS, max_new_tokens=8), _tokens(eager, ROWS, max_new_tokens=8))
    notes = take_notices()
    assert len(notes) == 1 and "compiled decoding failed" in notes[0] and "backend exploded" in notes[0]
    static.forget(model)


def test_static_decoding_is_the_default_on_cuda_only(gemma2):
    engine = SteeringEngine(gemma2, SAEManager(gemma2))
    assert not engine.static(GenerationSettings())  # tests run on CPU
    assert SteeringEngine(gemma2, SAEManager(gemma2), compile=True).static(GenerationSettings())
    assert not SteeringEngine(gemma2, SAEManager(gemma2), compile=True).static(GenerationSettings(use_cache=False))
    assert not SteeringEngine(gemma2, SAEManager(gemma2), compile=False).static(GenerationSettings())


def _sentencepiece_like():
    """A Gemma/Llama-style tokenizer (Metaspace words, byte-fallback tokens, their decoder), vocabulary only."""
    from tokenizers import Tokenizer, decoders, models
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "<bos>": 1, "<eos>": 2, **{f"<0x{b:02X}>": 3 + b for b in range(256)}}
    for word in ["▁the", "▁cat", "▁sat", "▁", "s", ",", ".", "▁(", ")", "▁é", "é", "▁日本", "'"]:
        vocab[word] = len(vocab)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[], byte_fallback=True))
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                                     decoders.Strip(" ", 1, 0)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>")


@pytest.mark.parametrize("which", ["byte-level BPE", "sentencepiece-like", "demo"])
def test_streamed_pieces_add_up_to_the_decoded_text(which):
    """The pieces the loop streams, from a window of the last tokens, join to what decoding the whole gives:
    words, special tokens (skipped), characters split over byte tokens (nothing until whole)."""
    import random

    from saetui.models.synthetic import build_tokenizer

    if which == "byte-level BPE":
        tok = build_tokenizer()
    elif which == "sentencepiece-like":
        tok = _sentencepiece_like()
    else:
        from transformers import AutoTokenizer

        import saetui.demo

        tok = AutoTokenizer.from_pretrained(Path(saetui.demo.__file__).parent / "assets" / "model")
    # characters as their UTF-8 bytes, where the vocabulary has byte tokens (whole characters only: the
    # byte-fallback decoder turns a whole run of byte tokens into U+FFFD when one of them is invalid)
    bytes_of = {b: tok.convert_tokens_to_ids(f"<0x{b:02X}>") for b in range(256)} if which == "sentencepiece-like" else {}
    words = [i for i in range(len(tok)) if i not in tok.all_special_ids and i not in bytes_of.values()]
    rng = random.Random(0)
    for _ in range(60):
        ids: list[int] = []
        for _ in range(rng.randint(1, 40)):
            roll = rng.random()
            if roll < 0.1:
                ids.append(rng.choice(tok.all_special_ids))
            elif roll < 0.25 and bytes_of:
                ids += [bytes_of[b] for b in rng.choice(["é", "日", "😀", "a"]).encode()]
            else:
                ids.append(rng.choice(words))
        ids.append(rng.choice(words[:50] if not bytes_of else [tok.convert_tokens_to_ids("▁cat")]))
        tail = decode._TextTail(tok)
        assert "".join(tail.add(i) for i in ids) == tok.decode(ids, skip_special_tokens=True), ids


def test_static_cache_lengths_double_so_a_growing_chat_meets_few_shapes():
    """Each cache length is a compile of its own: 256, 512, 1024... (a reply growing to 2,048 positions meets
    4 lengths), never past the model's context, never short of what is needed."""
    from types import SimpleNamespace

    free, short = SimpleNamespace(context_length=None), SimpleNamespace(context_length=1000)
    assert [static.cache_length_for(free, n) for n in (1, 256, 257, 700, 2048, 2049)] == [256, 256, 512, 1024, 2048, 4096]
    assert len({static.cache_length_for(free, n) for n in range(1, 2049)}) == 4
    assert [static.cache_length_for(short, n) for n in (200, 600, 1000, 1200)] == [256, 1000, 1000, 1200]


def test_scope_rules():
    assert covers("all", 5, 3) == [True] * 5
    assert covers("prompt", 5, 3) == [True, True, True, False, False]
    assert covers("generated", 5, 3) == [False, False, False, True, True]
    assert covers("1:3", 5, 3) == [False, True, True, False, False]
    assert covers("3:", 5, 3) == [False, False, False, True, True]
    assert covers("0:1+generated", 5, 3) == [True, False, False, True, True]
    assert covers("template", 5, 3, [True, False, True]) == [True, False, True, False, False]
    assert covers("template", 5, 3) == [False] * 5  # no chat prompt: nothing
    assert covers("prompt", 4) == [True] * 4  # a plain forward is all prompt


@pytest.mark.parametrize("flag, want", [([], None), (["--no-compile"], False)])
def test_cli_steer_no_compile_reaches_the_engine(capsys, monkeypatch, gemma2_dir, sae_dir, flag, want):
    from saetui.cli import main

    seen = []
    original = SteeringEngine.__init__

    def record(self, model, saes, *, compile=None):
        seen.append(compile)
        original(self, model, saes, compile=compile)

    monkeypatch.setattr(SteeringEngine, "__init__", record)
    code = main(["steer", "--model", str(gemma2_dir), "--sae", str(sae_dir), "--prompt", "The cat",
                 "--feature", "5:8", "--max-new-tokens", "3", "--json", *flag])
    assert code == 0 and seen and seen[0] is want
