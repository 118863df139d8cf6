"""Measure the bundled demo: `python -m saetui.demo.report [--docs N]`.

On held-out corpus text (a seed the training never saw), per SAE: the model's next-token loss, the SAE's
mean L0, fraction of variance unexplained, the loss with the SAE's reconstruction spliced in at its hook
point (non-special tokens) against the clean loss, and the share of features that never fire.
BOS/EOS/pad/chat-marker positions are left out of every SAE number, as in training.

Per category: the feature chosen on held-out corpus text as the category's best detector, the share of the
category's words it fires on and the share of other tokens it fires on, side by side on held-out corpus
text (frames the model trained on), on sentences typed by hand (`typed_sentences.txt`) and on hand-written
sentences in frames the corpus never writes (`heldout_frames.txt`, issue 27); the number detector also on
numbers written in digits. Also the planted facts (capitals, colours of things, animal sounds), completed in
plain text and answered in chat format.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import torch

from saetui.demo import SAES
from saetui.demo.corpus import Document, generate_corpus, mark_categories
from saetui.demo.train import HELDOUT_SEED
from saetui.models.hooks import HookSet

TYPED_SENTENCES = Path(__file__).parent / "typed_sentences.txt"
#: Hand-written sentences in frames no training document uses (issue 27).
HELDOUT_FRAMES = Path(__file__).parent / "heldout_frames.txt"
#: The categories whose detectors are measured on typed sentences (pronouns and names are left out:
#: "I"/"you" and names are not what a category feature is for).
DETECTED = ("color", "animal", "country", "capital", "city", "number", "emotion", "weather", "food", "day", "month")


def heldout_texts(n_docs: int) -> list[str]:
    return [d.text for d in generate_corpus(n_docs, seed=HELDOUT_SEED)]


def typed_sentences(path: Path = TYPED_SENTENCES) -> list[Document]:
    """The hand-written sentences of a file (one a line; `#` comments and `[kind]` headers skipped), each
    category word marked by `mark_categories` (WORDS, multi-word names, numbers in digits)."""
    return [Document(line, mark_categories(line)) for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip() and not line.startswith(("#", "["))]


def heldout_frame_sentences() -> list[Document]:
    """The hand-written sentences in frames no training document uses (`heldout_frames.txt`)."""
    return typed_sentences(HELDOUT_FRAMES)


def token_latents(model: Any, loaded: Any, docs: list[Document]) -> tuple[torch.Tensor, list[str | None], list[int]]:
    """SAE latents of every non-special token of `docs` (N, d_sae), the category of the word each token
    belongs to, and a word id per token (tokens of one word share it; -1 outside category words)."""
    from saetui.activations.collector import ActivationCollector

    collector = ActivationCollector(model)
    lats, cats, words = [], [], []
    n_words = 0
    for doc in docs:
        enc = model.tokenizer(doc.text, return_offsets_mapping=True, add_special_tokens=True)
        ids, offsets = enc["input_ids"], enc["offset_mapping"]
        acts = collector.collect(model.batch_from_ids([ids]), loaded.hook_name)[loaded.hook_name][0]
        with torch.inference_mode():
            lat = loaded.sae.encode(acts)
        for t, (tok, (s, e)) in enumerate(zip(ids, offsets)):
            if model.is_special(tok):
                continue
            hit = [(i, c) for i, (ws, we, c) in enumerate(doc.spans) if s < we and e > ws]
            lats.append(lat[t])
            cats.append(hit[0][1] if hit else None)
            words.append(n_words + hit[0][0] if hit else -1)
        n_words += len(doc.spans)
    return torch.stack(lats), cats, words


def detector_scores(lats: torch.Tensor, cats: list[str | None], words: list[int], category: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Per feature: the share of the category's words it fires on (any of the word's tokens) and the
    share of all other tokens it fires on."""
    fires = lats > 0
    in_cat = torch.tensor([c == category for c in cats])
    word_ids = torch.tensor(words)
    ids = sorted({w for w, c in zip(words, cats) if c == category})
    if not ids:
        return torch.zeros(lats.shape[1]), torch.zeros(lats.shape[1])
    per_word = torch.stack([fires[word_ids == w].any(0) for w in ids]).float()  # (n_words, d_sae)
    return per_word.mean(0), fires[~in_cat].float().mean(0)


def choose_detectors(lats: torch.Tensor, cats: list[str | None], words: list[int],
                     categories: tuple[str, ...] = DETECTED) -> dict[str, int]:
    """For each category the feature that fires on most of its words among those that fire on at most
    5% of other tokens (else the best recall minus false-positive rate), chosen on held-out corpus text."""
    chosen = {}
    for cat in categories:
        recall, other = detector_scores(lats, cats, words, cat)
        selective = other <= 0.05
        score = torch.where(selective, recall, recall - other - 1.0) if selective.any() else recall - other
        chosen[cat] = int(score.argmax())
    return chosen


#: The texts each category's detector is measured on: held-out corpus documents (frames the model trained on,
#: where the detector is chosen), the typed sentences, and the hand-written sentences in frames no training
#: document uses.
TEXT_SETS = ("in-frame", "typed", "held-out frames")


def _digits_apart(docs: list[Document]) -> list[Document]:
    """The same documents with numbers written in digits marked "digits" instead of "number"."""
    return [Document(d.text, [(s, e, "digits" if c == "number" and d.text[s].isdigit() else c) for s, e, c in d.spans])
            for d in docs]


def detection(model: Any, loaded: Any, heldout_docs: int = 300) -> dict[str, dict[str, Any]]:
    """Per category: the detector chosen on held-out corpus text and, on each of TEXT_SETS, the share of the
    category's words it fires on, the share of other tokens it fires on and the number of words
    ({"feature", SET: (recall, other, n_words)}); for "number" also "digits": the same on numbers in digits."""
    texts = {"in-frame": generate_corpus(heldout_docs, seed=HELDOUT_SEED),
             "typed": typed_sentences(), "held-out frames": heldout_frame_sentences()}
    latents = {k: token_latents(model, loaded, docs) for k, docs in texts.items()}
    chosen = choose_detectors(*latents["in-frame"])
    out: dict[str, dict[str, Any]] = {}
    for cat, f in chosen.items():
        out[cat] = {"feature": f}
        for k, (lats, cats, words) in latents.items():
            recall, other = detector_scores(lats, cats, words, cat)
            out[cat][k] = (float(recall[f]), float(other[f]), len({w for w, c in zip(words, cats) if c == cat}))
    f = chosen["number"]
    out["number"]["digits"] = {}
    for k, docs in texts.items():
        lats, cats, words = latents[k]
        digit_cats = [c for d in _digits_apart(docs) for c in _token_cats(model, d)]
        recall, _ = detector_scores(lats, digit_cats, words, "digits")
        out["number"]["digits"][k] = (float(recall[f]), len({w for w, c in zip(words, digit_cats) if c == "digits"}))
    return out


def _token_cats(model: Any, doc: Document) -> list[str | None]:
    """The category of each non-special token of `doc`, as token_latents assigns them."""
    enc = model.tokenizer(doc.text, return_offsets_mapping=True, add_special_tokens=True)
    out = []
    for tok, (s, e) in zip(enc["input_ids"], enc["offset_mapping"]):
        if model.is_special(tok):
            continue
        hit = [c for ws, we, c in doc.spans if s < we and e > ws]
        out.append(hit[0] if hit else None)
    return out


def passes(scores: tuple[float, float, int]) -> bool:
    """A detector passes on a text: it fires on >= 80% of the category's words and <= 10% of other tokens."""
    return scores[0] >= 0.8 and scores[1] <= 0.1


def measure(n_docs: int = 400, batch_size: int = 32, sae_dir: Path | None = None, sae: str | None = None) -> dict[str, Any]:
    """One demo SAE's quality numbers on `n_docs` held-out documents (`sae`: its name; default the first)."""
    from saetui.demo import load_demo

    model, saes = load_demo(device="cpu", sae_dir=sae_dir)
    loaded = saes.get(sae or ("demo" if sae_dir is not None else SAES[0].name))
    return _measure(model, loaded, heldout_texts(n_docs), batch_size) | {"heldout_docs": n_docs}


def _measure(model: Any, loaded: Any, texts: list[str], batch_size: int = 32) -> dict[str, Any]:
    sae = loaded.sae
    module, _ = model.hook_module(model.hook_point(loaded.hook_name))
    totals = {"clean": 0.0, "spliced": 0.0, "tokens": 0, "sq_err": 0.0, "l0": 0.0, "n": 0}
    sum_x = torch.zeros(model.d_model, dtype=torch.float64)
    sum_sq = torch.zeros((), dtype=torch.float64)
    fired = torch.zeros(loaded.d_sae, dtype=torch.bool)
    for i in range(0, len(texts), batch_size):
        batch = model.tokenize(texts[i : i + batch_size])
        labels = batch.input_ids.masked_fill(batch.attention_mask == 0, -100)
        keep = ~batch.special_mask  # (B, T) positions the SAE is judged on
        with torch.inference_mode():
            clean = model.model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, labels=labels).loss

            def splice(x: torch.Tensor) -> torch.Tensor:
                lat = sae.encode(x[keep])
                recon = sae.decode(lat)
                xs = x[keep].double()
                totals["sq_err"] += float((recon.double() - xs).pow(2).sum())
                totals["l0"] += float((lat > 0).sum())
                totals["n"] += int(keep.sum())
                sum_x.add_(xs.sum(0))
                sum_sq.add_(xs.pow(2).sum())
                fired.logical_or_((lat > 0).any(0))
                out = x.clone()
                out[keep] = recon.to(x.dtype)
                return out

            with HookSet() as hooks:
                hooks.on_output(module, splice, where=loaded.hook_name)
                spliced = model.model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, labels=labels).loss
        n_pred = int((labels[:, 1:] != -100).sum())
        totals["clean"] += float(clean) * n_pred
        totals["spliced"] += float(spliced) * n_pred
        totals["tokens"] += n_pred
    n = totals["n"]
    variance = float(sum_sq - sum_x.pow(2).sum() / n)  # total sum of squares about the mean
    clean_loss = totals["clean"] / totals["tokens"]
    spliced_loss = totals["spliced"] / totals["tokens"]
    return {
        "heldout_tokens": totals["tokens"],
        "model_loss": clean_loss,
        "sae_mean_l0": totals["l0"] / n,
        "sae_fvu": totals["sq_err"] / variance,
        "spliced_loss": spliced_loss,
        "ce_increase_fraction": (spliced_loss - clean_loss) / clean_loss,
        "dead_fraction": float((~fired).float().mean()),
        "d_sae": loaded.d_sae,
        "hook": loaded.hook_name,
        "name": loaded.name,
        "n_params": sum(p.numel() for p in model.model.parameters()),
    }


def _answers(model: Any, saes: Any, cases: list[tuple[str, str, str]], chat: bool) -> int:
    """How many of (plain prompt, chat question, answer) the model gets right greedily: plain, the next words
    start with the answer; in chat, the reply (at most 8 tokens) contains it."""
    from saetui.steering.generate import SteeringEngine

    engine = SteeringEngine(model, saes)
    right = 0
    for prompt, question, answer in cases:
        if chat:
            text = model.tokenizer.apply_chat_template([{"role": "user", "content": question}],
                                                       add_generation_prompt=True, tokenize=False)
            ids = model.tokenizer(text, add_special_tokens=False)["input_ids"]
            with torch.inference_mode():
                out = model.model.generate(torch.tensor([ids]), max_new_tokens=8, do_sample=False)
            right += answer.strip().lower() in model.tokenizer.decode(out[0, len(ids):]).lower()
        else:
            (res,) = engine.run(prompt, [[]], max_new_tokens=3)
            right += res.text.startswith(answer)
    return right


def capitals(model: Any, saes: Any, chat: bool = False) -> tuple[int, int]:
    """(right, total) greedy completions of the planted capital facts, plain or as a chat question."""
    from saetui.demo.corpus import CAPITALS, capital_prompts

    cases = [(prompt, f"What is the capital of {country}?", answer) for (prompt, answer), country in zip(capital_prompts(), CAPITALS)]
    return _answers(model, saes, cases, chat), len(cases)


def facts(model: Any, saes: Any) -> dict[str, tuple[int, int, int]]:
    """Per planted fact kind (capitals, colours of things, animal sounds): (right in plain text, right in
    chat, total)."""
    from saetui.demo.corpus import CAPITALS, capital_prompts, colour_prompts, sound_prompts

    kinds = {"capitals": [(p, f"What is the capital of {c}?", a) for (p, a), c in zip(capital_prompts(), CAPITALS)],
             "colours of things": colour_prompts(), "animal sounds": sound_prompts()}
    return {k: (_answers(model, saes, cases, False), _answers(model, saes, cases, True), len(cases))
            for k, cases in kinds.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Measure the bundled demo model and SAEs on held-out and typed text.")
    parser.add_argument("--docs", type=int, default=400, help="held-out documents (default 400)")
    args = parser.parse_args(argv)
    from saetui.demo import load_demo

    model, saes = load_demo(device="cpu")
    texts = heldout_texts(args.docs)
    for i, demo_sae in enumerate(SAES):
        loaded = saes.get(demo_sae.name)
        r = _measure(model, loaded, texts)
        if i == 0:
            print(f"held-out text: {args.docs} documents, {r['heldout_tokens']} predicted tokens")
            print(f"model ({r['n_params'] / 1e6:.2f}M parameters, vocab {len(model.tokenizer)}): next-token loss {r['model_loss']:.4f}")
        print(f"SAE {r['name']} ({r['d_sae']} features at {r['hook']}): mean L0 {r['sae_mean_l0']:.1f}, FVU {r['sae_fvu']:.3f}, "
              f"dead features {r['dead_fraction']:.1%}; loss with it spliced in {r['spliced_loss']:.4f} vs clean "
              f"{r['model_loss']:.4f} ({r['ce_increase_fraction']:+.2%})")
    for kind, (plain, chat, total) in facts(model, saes).items():
        print(f"{kind}: {plain}/{total} completed in plain text; {chat}/{total} answered in chat format")
    print(f"category detectors: chosen on {300} held-out corpus documents; a category passes (*) with one feature on "
          f">= 80% of its words and <= 10% of other tokens")
    n_frames = len(heldout_frame_sentences())
    best: dict[str, list[str]] = {k: [] for k in TEXT_SETS}
    for demo_sae in SAES:
        res = detection(model, saes.get(demo_sae.name))
        good = {k: [c for c, r in res.items() if passes(r[k])] for k in TEXT_SETS}
        for k in TEXT_SETS:
            best[k] = sorted(set(best[k]) | set(good[k]), key=DETECTED.index)
        print(f"SAE {demo_sae.name}: " + ", ".join(f"{k} {len(good[k])}/{len(res)}" for k in TEXT_SETS))
        print(f"  {'category':8s} {'feature':>7s}  " + "  ".join(f"{k + ' (words)':>22s}" for k in TEXT_SETS))
        for cat, r in res.items():
            cells = [f"{r[k][0]:6.1%} {r[k][1]:5.1%} ({r[k][2]:3d}){'*' if passes(r[k]) else ' '}" for k in TEXT_SETS]
            print(f"  {cat:8s} {r['feature']:7d}  " + "  ".join(f"{c:>22s}" for c in cells))
        digits = res["number"]["digits"]
        print("  number feature on numbers in digits: " + ", ".join(f"{k} {r:.1%} of {n}" for k, (r, n) in digits.items()))
    print(f"best of the two SAEs: " + "; ".join(f"{k} {len(v)}/{len(DETECTED)}" for k, v in best.items()))
    print(f"  held-out frames ({n_frames} hand-written sentences): {', '.join(best['held-out frames'])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
