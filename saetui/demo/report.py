"""Measure the bundled demo: `python -m saetui.demo.report [--docs N]`.

On held-out corpus text (a seed the training never saw) it prints the model's next-token loss and,
for the SAE: mean L0, fraction of variance unexplained, the loss with the SAE's reconstruction
spliced in at its hook point (non-special tokens) against the clean loss, and the share of features
that never fire. BOS/EOS/pad positions are left out of every SAE number, as in training.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import torch

from saetui.demo import SAE_DIR
from saetui.demo.corpus import generate_corpus
from saetui.demo.train import HELDOUT_SEED
from saetui.models.hooks import HookSet


def heldout_texts(n_docs: int) -> list[str]:
    return [d.text for d in generate_corpus(n_docs, seed=HELDOUT_SEED)]


def measure(n_docs: int = 400, batch_size: int = 32, sae_dir: Path = SAE_DIR) -> dict[str, Any]:
    """The demo's quality numbers on `n_docs` held-out documents."""
    from saetui.demo import load_demo

    model, saes = load_demo(device="cpu", sae_dir=sae_dir)
    loaded = saes.get("demo")
    sae = loaded.sae
    module, _ = model.hook_module(model.hook_point(loaded.hook_name))
    texts = heldout_texts(n_docs)
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
        "heldout_docs": n_docs,
        "heldout_tokens": totals["tokens"],
        "model_loss": clean_loss,
        "sae_mean_l0": totals["l0"] / n,
        "sae_fvu": totals["sq_err"] / variance,
        "spliced_loss": spliced_loss,
        "ce_increase_fraction": (spliced_loss - clean_loss) / clean_loss,
        "dead_fraction": float((~fired).float().mean()),
        "d_sae": loaded.d_sae,
        "hook": loaded.hook_name,
        "n_params": sum(p.numel() for p in model.model.parameters()),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Measure the bundled demo model and SAE on held-out text.")
    parser.add_argument("--docs", type=int, default=400, help="held-out documents (default 400)")
    parser.add_argument("--sae", type=Path, default=SAE_DIR, help="SAE directory (default: the bundled one)")
    args = parser.parse_args(argv)
    r = measure(args.docs, sae_dir=args.sae)
    print(f"held-out text: {r['heldout_docs']} documents, {r['heldout_tokens']} predicted tokens")
    print(f"model ({r['n_params'] / 1e6:.2f}M parameters): next-token loss {r['model_loss']:.4f}")
    print(f"SAE ({r['d_sae']} features at {r['hook']}): mean L0 {r['sae_mean_l0']:.1f}, FVU {r['sae_fvu']:.3f}, "
          f"dead features {r['dead_fraction']:.1%}")
    print(f"loss with the SAE spliced in: {r['spliced_loss']:.4f} vs clean {r['model_loss']:.4f} "
          f"({r['ce_increase_fraction']:+.2%})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
