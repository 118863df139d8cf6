"""Train the demo assets on the CPU: `python -m saetui.demo.train lexicon|model|sae|index|all`.

lexicon: the corpus's general vocabulary (`lexicon.json`) from wordfreq + lemminflect (the `train` extra);
         the shipped JSON is what the corpus generator reads, so only rebuilding it needs the extra.
model:   a byte-level BPE tokenizer (6,144 entries: common words and every category word are single
         tokens, digits are split one per token; chat markers are special tokens, with a chat template)
         and a ~1.8M-parameter Gemma-2 (4 layers, width 128) trained on packed documents from the
         planted-structure corpus.
sae:     one JumpReLU SAE per entry of `saetui.demo.SAES` (an early and the last layer's resid_post, of the
         width each names),
         trained with sae-lens's JumpReLUTrainingSAE (quadratic L0 penalty around a target) on
         activations of the demo model, BOS/EOS/pad/chat-marker positions excluded, inputs scaled to
         norm sqrt(d) and the scale folded back in.
index:   each SAE's feature index over held-out text, labelled from the planted categories.
Everything is seeded: the same seed gives the same weights on the same machine.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path
from typing import Any, Callable

import torch

from saetui.demo import DEMO_NAME, MODEL_DIR, SAES, DemoSAE
from saetui.demo.corpus import CHAT_TOKENS, generate_corpus

SEQ_LEN = 128
VOCAB = 6144
# Corpus seeds: training text, SAE training text, held-out text for reports and tests.
MODEL_SEED, SAE_SEED, HELDOUT_SEED = 0, 1, 2

#: The chat template (Jinja, as transformers renders it): <bos><|user|>\n...<|end|>\n<|assistant|>\n...<|end|>\n
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{% if message['role'] not in ['system', 'user', 'assistant'] %}"
    "{{ raise_exception('the demo chat template knows the roles system, user and assistant') }}{% endif %}"
    "{{ '<|' + message['role'] + '|>\n' + message['content'] | trim + '<|end|>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}"
)


def build_demo_tokenizer(texts: list[str], vocab_size: int = VOCAB) -> Any:
    """Byte-level BPE that prepends <bos>: <pad>=0, <bos>=1, <eos>=2, then the chat markers, all special.

    Digits are single tokens, as in Gemma's tokenizer (any number typed is made of known pieces). Every
    category word is one token in each of its forms (" cat", "Cat" at the start of a text, " Cat"): the
    category words are added to the training texts often enough that BPE merges them whole."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    from saetui.demo.corpus import WORDS
    from saetui.models.synthetic import BOS_ID

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                                 pre_tokenizers.ByteLevel(add_prefix_space=False)])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=["<pad>", "<bos>", "<eos>", *CHAT_TOKENS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )
    forms = sorted({f for ws in WORDS.values() for w in ws for f in (w, " " + w, w[0].upper() + w[1:], " " + w[0].upper() + w[1:])})
    tok.train_from_iterator(texts + ["\n".join(forms)] * 50, trainer)
    tok.post_processor = processors.TemplateProcessing(single="<bos> $A", special_tokens=[("<bos>", BOS_ID)])
    out = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>",
                                  additional_special_tokens=list(CHAT_TOKENS))
    out.chat_template = CHAT_TEMPLATE
    return out


def demo_config(vocab_size: int, end_id: int | None = None) -> Any:
    """Gemma-2 architecture, ~1.6M parameters (eager attention, as Gemma 2 always runs here)."""
    from transformers import Gemma2Config

    from saetui.models.synthetic import BOS_ID, EOS_ID, PAD_ID

    return Gemma2Config(
        vocab_size=vocab_size, hidden_size=128, intermediate_size=512, num_hidden_layers=4,
        num_attention_heads=4, num_key_value_heads=2, head_dim=32, query_pre_attn_scalar=32,
        max_position_embeddings=256, sliding_window=256, attn_logit_softcapping=None,
        final_logit_softcapping=30.0, pad_token_id=PAD_ID, bos_token_id=BOS_ID, eos_token_id=EOS_ID,
    )


def packed_tokens(tokenizer: Any, texts: list[str]) -> torch.Tensor:
    """All documents as one stream `<bos> doc <eos> <bos> doc <eos> ...`, cut into (N, SEQ_LEN) rows."""
    ids = tokenizer(texts, add_special_tokens=True)["input_ids"]
    stream = [t for row in ids for t in (*row, tokenizer.eos_token_id)]
    n = len(stream) // SEQ_LEN
    return torch.tensor(stream[: n * SEQ_LEN]).view(n, SEQ_LEN)


def _lr(step: int, steps: int, peak: float, warmup: int) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def train_model(out: Path = MODEL_DIR, *, steps: int = 1200, batch_size: int = 32, n_docs: int = 80000,
                tokenizer_docs: int = 20000, seed: int = 0, log: Callable[[str], None] = print) -> Path:
    """Tokenizer + model, saved to `out` (config.json, model.safetensors, tokenizer files)."""
    from transformers import AutoModelForCausalLM, GenerationConfig

    torch.manual_seed(seed)
    docs = [d.text for d in generate_corpus(n_docs, seed=MODEL_SEED + seed)]
    tokenizer = build_demo_tokenizer(docs[:tokenizer_docs])
    data = packed_tokens(tokenizer, docs)
    config = demo_config(len(tokenizer))
    model = AutoModelForCausalLM.from_config(config)
    n_params = sum(p.numel() for p in model.parameters())
    log(f"model: {n_params / 1e6:.2f}M parameters, vocab {len(tokenizer)}, {data.numel() / 1e6:.2f}M training tokens, "
        f"{steps} steps of {batch_size}x{SEQ_LEN}")
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, betas=(0.9, 0.95), weight_decay=0.01)
    gen = torch.Generator().manual_seed(seed)
    model.train()
    start = time.time()
    for step in range(steps):
        for group in opt.param_groups:
            group["lr"] = _lr(step, steps, 3e-3, warmup=min(100, steps // 10 + 1))
        rows = data[torch.randint(0, data.shape[0], (batch_size,), generator=gen)]
        loss = model(input_ids=rows, labels=rows).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % 25 == 0 or step == steps - 1:
            log(f"step {step:5d}  loss {loss.item():.3f}  {time.time() - start:6.0f}s")
    model.eval()
    # Chat replies end with <|end|>: generation stops there as well as at <eos>.
    end_id = tokenizer.convert_tokens_to_ids("<|end|>")
    model.generation_config = GenerationConfig(bos_token_id=config.bos_token_id, pad_token_id=config.pad_token_id,
                                               eos_token_id=[config.eos_token_id, end_id])
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def collect_sae_inputs(model_dir: Path, hooks: list[str], n_docs: int, seed: int, batch_size: int = 64) -> dict[str, torch.Tensor]:
    """{hook: (N, d_model)} activations at each hook for the real, non-special tokens of n_docs documents."""
    from saetui.activations.collector import ActivationCollector
    from saetui.models.model import ModelWithHooks

    model = ModelWithHooks.from_pretrained(str(model_dir), dtype="float32", device="cpu")
    collector = ActivationCollector(model)
    texts = [d.text for d in generate_corpus(n_docs, seed=seed)]
    chunks: dict[str, list[torch.Tensor]] = {h: [] for h in hooks}
    for i in range(0, len(texts), batch_size):
        batch = model.tokenize(texts[i : i + batch_size])
        captured, _ = collector.run(batch, hooks)
        for h in hooks:
            chunks[h].append(captured[h][~batch.special_mask].clone())
    return {h: torch.cat(c) for h, c in chunks.items()}


def train_sae(model_dir: Path = MODEL_DIR, out: Path = SAES[0].sae_dir, *, layer: int = SAES[0].layer, steps: int = 4000,
              batch_size: int = 1024, n_docs: int = 4000, width: int = 1024, target_l0: float = 32.0,
              pre_act: float = 1e-3, seed: int = 0, acts: torch.Tensor | None = None,
              log: Callable[[str], None] = print) -> Path:
    """JumpReLU SAE on the demo model's blocks.{layer}.hook_resid_post, saved in sae-lens format."""
    from sae_lens import JumpReLUTrainingSAE, JumpReLUTrainingSAEConfig
    from sae_lens.saes.sae import TrainStepInput

    hook = f"blocks.{layer}.hook_resid_post"
    torch.manual_seed(seed)
    if acts is None:
        acts = collect_sae_inputs(model_dir, [hook], n_docs, SAE_SEED + seed)[hook]
    d_in = acts.shape[1]
    scale = float(math.sqrt(d_in) / acts.norm(dim=-1).mean())  # train on inputs of norm ~sqrt(d)
    acts = acts * scale
    cfg = JumpReLUTrainingSAEConfig(
        d_in=d_in, d_sae=width, jumprelu_sparsity_loss_mode="quadratic", target_l0=target_l0,
        l0_coefficient=1.0, l0_warm_up_steps=steps // 10, jumprelu_init_threshold=0.1, jumprelu_bandwidth=0.05,
        pre_act_loss_coefficient=pre_act, apply_b_dec_to_input=True,
    )
    sae = JumpReLUTrainingSAE(cfg)
    with torch.no_grad():
        sae.b_dec.copy_(acts.mean(0))  # start from the mean, so the features model the variation
    log(f"sae {hook}: {acts.shape[0] / 1e3:.0f}k activations (d={d_in}), width {width}, target L0 {target_l0}, {steps} steps")
    opt = torch.optim.Adam(sae.parameters(), lr=2e-3, betas=(0.9, 0.999))
    gen = torch.Generator().manual_seed(seed)
    last_fired = torch.zeros(width, dtype=torch.long)
    start = time.time()
    for step in range(steps):
        for group in opt.param_groups:
            group["lr"] = _lr(step, steps, 2e-3, warmup=steps // 20 + 1)
        x = acts[torch.randint(0, acts.shape[0], (batch_size,), generator=gen)]
        warm = min(1.0, (step + 1) / max(1, cfg.l0_warm_up_steps))
        res = sae.training_forward_pass(TrainStepInput(
            sae_in=x, coefficients={"l0": cfg.l0_coefficient * warm},
            dead_neuron_mask=(step - last_fired) > 500, n_training_steps=step, is_logging_step=False,
        ))
        opt.zero_grad(set_to_none=True)
        res.loss.backward()
        torch.nn.utils.clip_grad_norm_(sae.parameters(), 1.0)
        opt.step()
        with torch.no_grad():
            fired = (res.feature_acts > 0).any(0)
            last_fired[fired] = step
        if step % 250 == 0 or step == steps - 1:
            l0 = (res.feature_acts > 0).float().sum(-1).mean().item()
            fvu = ((res.sae_out - x).pow(2).sum() / (x - x.mean(0)).pow(2).sum()).item()
            dead = ((step - last_fired) > 500).float().mean().item()
            log(f"step {step:5d}  fvu {fvu:.3f}  L0 {l0:5.1f}  dead {dead:.2%}  {time.time() - start:5.0f}s")
    with torch.no_grad():
        sae.fold_activation_norm_scaling_factor(scale)  # takes raw activations from now on
    sae.cfg.metadata.hook_name = hook
    sae.cfg.metadata.model_name = DEMO_NAME
    out.mkdir(parents=True, exist_ok=True)
    sae.save_inference_model(out)
    return out


def build_demo_index(demo_sae: DemoSAE = SAES[0], n_docs: int = 1200, log: Callable[[str], None] = print) -> Path:
    """One demo SAE's feature index over held-out text, with labels from the planted categories.

    A feature is labelled when at least 80% of its top-20 examples fire on words of one category:
    "color words" or, when one word dominates the same way, "color: red"; a dense one (firing on more than
    saetui.sae.evals.DENSE of the tokens) never is: its top examples are the tail of a feature that fires on most
    text, and its label would then show on nearly every token ("number words" on ' France').
    """
    from collections import Counter

    from saetui.demo import load_demo
    from saetui.demo.corpus import token_category
    from saetui.sae.evals import DENSE
    from saetui.sae.index import IndexSettings, build_index
    from saetui.sae.search import save_labels

    model, saes = load_demo(device="cpu")
    loaded = saes.get(demo_sae.name)
    texts = [d.text for d in generate_corpus(n_docs, seed=HELDOUT_SEED)]
    if demo_sae.index_dir.exists():
        import shutil

        shutil.rmtree(demo_sae.index_dir)
    index = build_index(model, loaded, texts, demo_sae.index_dir, settings=IndexSettings(top_k=20, batch_size=32), progress=False)
    labels = {}
    rates = index.counts.double() / max(1, index.n_tokens)
    for f in range(loaded.d_sae):
        if rates[f] > DENSE:
            continue
        words = [model.token_texts([window[at]])[0].strip().lower() for _, window, at in index.examples(f)]
        if len(words) < 10:
            continue
        cat, n = Counter(token_category(w) for w in words).most_common(1)[0]
        if cat is None or n < 0.8 * len(words):
            continue
        word, m = Counter(words).most_common(1)[0]
        labels[f] = f"{cat}: {word}" if m >= 0.8 * len(words) else f"{cat} words"
    save_labels(demo_sae.index_dir, labels)
    log(f"index {demo_sae.name}: {index.n_tokens} tokens, {len(labels)} labelled features -> {demo_sae.index_dir}")
    return demo_sae.index_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Train the bundled demo model and SAEs (CPU).")
    parser.add_argument("what", choices=["lexicon", "model", "sae", "index", "all"])
    parser.add_argument("--model-steps", type=int, default=1200)
    parser.add_argument("--sae-steps", type=int, default=2500)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default 1: the same weights whatever the core count, and no spinning on a shared one)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    start = time.time()
    if args.what == "lexicon":
        from saetui.demo.lexicon import write_lexicon

        print(f"lexicon -> {write_lexicon()}")
    if args.what in ("model", "all"):
        train_model(steps=args.model_steps, seed=args.seed)
        print(f"model done at {time.time() - start:.0f}s", flush=True)
    if args.what in ("sae", "all"):
        hooks = [s.hook_name for s in SAES]
        acts = collect_sae_inputs(MODEL_DIR, hooks, 4000, SAE_SEED + args.seed)
        for demo_sae in SAES:
            train_sae(out=demo_sae.sae_dir, layer=demo_sae.layer, width=demo_sae.width, steps=args.sae_steps,
                      seed=args.seed + demo_sae.seed, acts=acts[demo_sae.hook_name])
            print(f"sae {demo_sae.name} done at {time.time() - start:.0f}s", flush=True)
    if args.what in ("index", "all"):
        for demo_sae in SAES:
            build_demo_index(demo_sae)
    print(f"done in {time.time() - start:.0f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
