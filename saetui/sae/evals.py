"""SAE health on your own model and corpus: reconstruction, sparsity, and what splicing the SAE in costs the model.

For every loaded SAE (several side by side), over a corpus streamed in batches:

    positions       each document's non-special tokens; each document is tokenized alone with the tokenizer's own
                    special tokens and cut to the model's context
    l0              mean count of latents > 0 per position
    fvu             sum |x - x_hat|^2 / sum |x - mean x|^2, the mean taken over the corpus's positions
    cosine          mean cos(x, x_hat)
    ce_loss_clean   mean next-token cross-entropy over every predicted token of every document, unchanged model
    ce_loss_spliced the same with the hook's activation replaced by the SAE's reconstruction at the positions
                    (the error term dropped)
    ce_loss_zero    the same with the hook's activation replaced by 0 at the positions
    ce_recovered    (zero - spliced) / (zero - clean)          (None unless zeroing raises the loss: no damage to
                                                               recover, and the share would read past 100%)
    kl_spliced      mean KL(p_clean || p_spliced) over the predicted tokens
    dead_fraction   share of latents never > 0;  dense_fraction: share > 0 on more than 10% of positions
    density_histogram  log10 firing rates of the latents that fired, in fixed half-decade bins (+ the dead count)

One pass: the clean model, each SAE's splice and each hook's zero-ablation are row groups of the same batch
(G = 1 + SAEs + hooks copies of the documents), so the cost is the G forwards the figures need. The SAE is
encoded once per hook on the clean rows: its latents give the figures and the reconstruction written into
that SAE's splice rows (their activation there equals the clean rows', nothing upstream differs).
Accumulators are sums (float64), so memory does not grow with the corpus.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from saetui.errors import InputError
from saetui.inputs import documents_within
from saetui.settings import EvalSettings  # noqa: F401 - defaults live in saetui.settings

if TYPE_CHECKING:
    import torch

    from saetui.models.model import ModelWithHooks
    from saetui.sae.manager import LoadedSAE

DENSE = 0.1  # a latent firing on more than this share of positions is dense
HIST_EDGES = [x / 2 for x in range(-16, 1)]  # log10 firing rate: -8 .. 0 in half decades (lower rates in the first bin)


@dataclass
class SAEHealth:
    """One SAE's figures (see the module docstring)."""

    name: str
    hook: str
    tokens: int
    l0: float
    fvu: float | None
    cosine: float
    ce_loss_clean: float
    ce_loss_spliced: float
    ce_loss_zero: float
    ce_recovered: float | None
    kl_spliced: float
    dead_fraction: float
    dense_fraction: float
    density_histogram: dict[str, Any]


@dataclass
class EvalResult:
    corpus: str
    tokens: int  # positions evaluated (non-special tokens)
    documents: int
    saes: list[SAEHealth] = field(default_factory=list)
    cut: int = 0  # documents cut to the model's context

    def to_dict(self) -> dict[str, Any]:
        return {"corpus": self.corpus, "tokens": self.tokens, "documents": self.documents,
                "saes": [asdict(s) for s in self.saes]}


class _Stats:
    """Running sums of one SAE's figures (float64 / int64 on the SAE's device)."""

    def __init__(self, loaded: LoadedSAE) -> None:
        import torch

        dev = loaded.sae.W_dec.device
        d_in = int(loaded.sae.W_dec.shape[1])
        self.positions = 0
        self.l0 = 0.0
        self.err = torch.zeros((), dtype=torch.float64, device=dev)
        self.sum_x = torch.zeros(d_in, dtype=torch.float64, device=dev)
        self.sum_x2 = torch.zeros((), dtype=torch.float64, device=dev)
        self.cos = torch.zeros((), dtype=torch.float64, device=dev)
        self.fired = torch.zeros(loaded.d_sae, dtype=torch.int64, device=dev)
        self.kl = 0.0

    def add(self, x: torch.Tensor, lat: torch.Tensor, recon: torch.Tensor) -> None:
        """x, recon (N, d) and lat (N, d_sae) at the counted positions."""
        import torch

        x64, r64 = x.double(), recon.double()
        on = lat > 0
        self.positions += x.shape[0]
        self.l0 += float(on.sum())
        self.err += ((x64 - r64) ** 2).sum()
        self.sum_x += x64.sum(0)
        self.sum_x2 += (x64 ** 2).sum()
        self.cos += torch.nn.functional.cosine_similarity(x64, r64, dim=-1, eps=1e-12).sum()
        self.fired += on.sum(0)


def evaluate(model: ModelWithHooks, saes: Sequence[LoadedSAE], corpus: str | Path | Sequence[str], *, field: str = "text",
             settings: EvalSettings | None = None, progress: bool = True) -> EvalResult:
    """The health figures of each of `saes` over `corpus` (a .txt/.jsonl file or a list of texts)."""
    import torch
    from tqdm.auto import tqdm

    from saetui.activations.cache import read_dataset

    settings = settings or EvalSettings()
    if not saes:
        raise InputError("no SAE to evaluate: load one with --sae")
    texts = read_dataset(corpus, field)
    hooks = list(dict.fromkeys(s.hook_name for s in saes))
    for hook in hooks:
        model.hook_point(hook)  # an SAE whose hook the model lacks: one line, before any work
    stats = {s.name: _Stats(s) for s in saes}
    n_groups = 1 + len(saes) + len(hooks)
    ce = [0.0] * n_groups  # summed next-token cross-entropy per row group: clean, splices, zeros
    predicted = 0
    documents = positions = cut = 0
    limit = model.context_length
    bar = tqdm(total=len(texts), unit="doc", desc="evals", disable=not progress)
    try:
        for start in range(0, len(texts), settings.batch_size):
            if settings.max_tokens is not None and positions >= settings.max_tokens:
                break
            rows = model.tokenizer(list(texts[start : start + settings.batch_size]), add_special_tokens=True)["input_ids"]
            if limit is not None:
                cut += sum(len(r) > limit for r in rows)
                rows = [r[:limit] for r in rows]
            batch = model.batch_from_ids(rows)
            counted = (~batch.special_mask) & batch.attention_mask.bool()  # (B, T)
            if settings.max_tokens is not None:  # the documents that reach it, not the whole batch
                keep = documents_within(counted.sum(1).tolist(), settings.max_tokens - positions)
                if keep < len(rows):
                    rows = rows[:keep]
                    batch = model.batch_from_ids(rows)
                    counted = (~batch.special_mask) & batch.attention_mask.bool()
            with torch.inference_mode():
                logits = _forward(model, saes, hooks, batch, counted, stats, n_groups)  # (G*B, T, V)
                b = len(batch)
                targets = batch.input_ids[:, 1:]
                valid = batch.attention_mask[:, 1:].bool()  # (B, T-1): positions whose next token is real
                clean_logp = logits[:b, :-1].float().log_softmax(-1)
                for g in range(n_groups):
                    logp = clean_logp if g == 0 else logits[g * b:(g + 1) * b, :-1].float().log_softmax(-1)
                    nll = -logp.gather(-1, targets[..., None])[..., 0]
                    ce[g] += float(nll[valid].double().sum())
                    if 1 <= g <= len(saes):
                        kl = (clean_logp.exp() * (clean_logp - logp)).sum(-1)
                        stats[saes[g - 1].name].kl += float(kl[valid].double().sum())
                    del logp
                predicted += int(valid.sum())
                del logits, clean_logp
            documents += b
            positions += int(counted.sum())
            bar.update(b)
    finally:
        bar.close()
    if cut:
        warnings.warn(f"{cut} document(s) longer than the model's context of {limit} tokens were cut to it", stacklevel=2)
    if positions == 0 or predicted == 0:
        raise InputError("the corpus has no token to evaluate (every document is special tokens only or one token long)")
    name = str(corpus) if isinstance(corpus, (str, Path)) else "(list)"
    result = EvalResult(name, positions, documents, cut=cut)
    clean = ce[0] / predicted
    for i, loaded in enumerate(saes):
        s = stats[loaded.name]
        spliced = ce[1 + i] / predicted
        zero = ce[1 + len(saes) + hooks.index(loaded.hook_name)] / predicted
        variance = float(s.sum_x2 - (s.sum_x ** 2).sum() / s.positions)
        rates = s.fired.double() / s.positions
        result.saes.append(SAEHealth(
            name=loaded.name, hook=loaded.hook_name, tokens=s.positions,
            l0=s.l0 / s.positions,
            fvu=float(s.err) / variance if variance > 0 else None,
            cosine=float(s.cos) / s.positions,
            ce_loss_clean=clean, ce_loss_spliced=spliced, ce_loss_zero=zero,
            ce_recovered=(zero - spliced) / (zero - clean) if zero > clean else None,
            kl_spliced=s.kl / predicted,
            dead_fraction=float((s.fired == 0).double().mean()),
            dense_fraction=float((rates > DENSE).double().mean()),
            density_histogram=density_histogram(rates),
        ))
    return result


def density_histogram(rates: torch.Tensor) -> dict[str, Any]:
    """How many latents fire at each log10 rate: {"edges": [...], "counts": [...], "dead": n}; rates below the
    first edge count in the first bin, a rate of 1 in the last."""
    import torch

    alive = rates[rates > 0]
    logs = alive.log10().clamp(min=HIST_EDGES[0], max=HIST_EDGES[-1])
    edges = torch.tensor(HIST_EDGES, dtype=logs.dtype, device=logs.device)
    index = (torch.bucketize(logs, edges, right=True) - 1).clamp(0, len(HIST_EDGES) - 2)
    counts = torch.bincount(index, minlength=len(HIST_EDGES) - 1)
    return {"edges": HIST_EDGES, "counts": [int(c) for c in counts.tolist()], "dead": int((rates == 0).sum())}


def _forward(model: ModelWithHooks, saes: Sequence[LoadedSAE], hooks: list[str], batch: Any, counted: torch.Tensor,
             stats: dict[str, _Stats], n_groups: int) -> torch.Tensor:
    """One forward of the batch repeated in G row groups [clean | splice per SAE | zero per hook]; the hooks
    take each SAE's figures on the clean rows and write the splices and zeros. Returns logits (G*B, T, V)."""
    import torch

    from saetui.models.hooks import HookSet

    b, t = batch.input_ids.shape
    keep = counted[..., None]  # (B, T, 1)

    def make(hook: str):
        mine = [(1 + i, loaded) for i, loaded in enumerate(saes) if loaded.hook_name == hook]
        zero_group = 1 + len(saes) + hooks.index(hook)

        def edit(hidden: torch.Tensor) -> torch.Tensor:
            x = hidden.reshape(n_groups, b, t, hidden.shape[-1])  # OPT's fc2 passes (G*B*T, d)
            out = x.clone()
            clean = x[0]
            for group, loaded in mine:
                sae = loaded.sae
                lat = sae.encode(clean.to(sae.dtype))  # (B, T, d_sae)
                recon = sae.decode(lat)
                stats[loaded.name].add(clean[counted].to(sae.dtype), lat[counted], recon[counted])
                out[group] = torch.where(keep, recon.to(x.dtype), x[group])
            out[zero_group] = torch.where(keep, torch.zeros_like(x[zero_group]), x[zero_group])
            return out.reshape(hidden.shape)

        return edit

    ids = batch.input_ids.repeat(n_groups, 1)
    mask = batch.attention_mask.repeat(n_groups, 1)
    with HookSet() as hookset:
        for hook in hooks:
            hookset.at(model, hook, make(hook))
        return model.model(input_ids=ids, attention_mask=mask, use_cache=False).logits


def recovered_text(h: SAEHealth) -> str:
    """The loss share recovered as read aloud; where zeroing the hook does not raise the loss, why it is none."""
    if h.ce_recovered is None:
        return "recovered n/a: zeroing does not raise the loss"
    return f"{h.ce_recovered:.1%} recovered"


def health_line(h: SAEHealth) -> str:
    """One line for a terminal: the figures a researcher reads first."""
    fvu = "n/a" if h.fvu is None else f"{h.fvu:.3f}"
    return (f"{h.name} ({h.hook}): L0 {h.l0:.1f} · FVU {fvu} · cos {h.cosine:.3f} · CE {h.ce_loss_clean:.3f} -> "
            f"{h.ce_loss_spliced:.3f} spliced, {h.ce_loss_zero:.3f} zeroed ({recovered_text(h)}) · "
            f"KL {h.kl_spliced:.4f} · "
            f"dead {h.dead_fraction:.1%} · dense {h.dense_fraction:.1%}")

