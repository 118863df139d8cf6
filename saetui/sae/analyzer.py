"""SAEAnalyzer: which SAE features fire on which tokens, and how well each SAE reconstructs them.

For every loaded SAE and every token of a prompt it reports the top-k features (descending,
positive activations only) and the reconstruction quality; per prompt it reports the top-k
features by their maximum over tokens, BOS/pad/special tokens excluded by default, and for a chat
prompt (saetui.models.chat) the tokens its template wrote too (turn markers, role names). Next-token
predictions need the full forward and are only computed when asked; otherwise the forward stops
after the deepest hooked layer. Results are plain dataclasses with `to_dict()` for JSON.

Reconstruction quality, per token t with activation x_t and reconstruction x̂_t:
    l0      number of features with activation > 0
    fvu     ||x_t - x̂_t||² / ||x_t - x̄||², x̄ = mean activation over the prompt's non-special tokens
            (per prompt: the same sums over all non-special tokens); None for a token left out of x̄
            (BOS and other special tokens): measured against the other tokens' mean, BOS's outlier
            norm gave an FVU that changed with whatever followed it
    cosine  cos(x_t, x̂_t)
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Sequence

from saetui.activations.collector import ActivationCollector
from saetui.files import finite_or_none, json_ready
from saetui.inputs import check_int
from saetui.settings import AnalysisSettings

if TYPE_CHECKING:
    import torch

    from saetui.models.chat import ChatTokens
    from saetui.models.model import ModelWithHooks, TokenBatch
    from saetui.sae.manager import LoadedSAE, SAEManager


@dataclass
class TokenInfo:
    """One token; `role` ("system" | "user" | "assistant" | "template") and `template` only for chat prompts."""

    index: int
    id: int
    text: str
    special: bool
    role: str | None = None
    template: bool = False


@dataclass
class Reconstruction:
    l0: int
    fvu: float | None
    cosine: float | None


@dataclass
class SAEResult:
    """One SAE's view of one prompt.

    per_token[i]:   [(feature, activation), ...] for token i, top-k, descending
    top_features:   [(feature, max_activation, token_index), ...] over non-special tokens, descending
    reconstruction: per token; fvu/mean_l0 summarise the non-special tokens
    """

    name: str
    hook: str
    d_sae: int
    per_token: list[list[tuple[int, float]]]
    top_features: list[tuple[int, float, int]]
    reconstruction: list[Reconstruction]
    fvu: float | None
    mean_l0: float | None


@dataclass
class AnalysisResult:
    prompt: str
    tokens: list[TokenInfo]
    saes: list[SAEResult]
    # predictions[i]: the top next tokens after token i, as (token_id, text, probability)
    predictions: list[list[tuple[int, str, float]]] | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    span: Any = None  # a SpanResult (saetui.sae.span) over tokens START..END-1, when one was asked for


    def sae(self, name: str) -> SAEResult:
        return next(s for s in self.saes if s.name == name or s.hook == name)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: tuples become lists, NaN becomes null."""
        out = asdict(self)
        out.pop("span")
        if self.predictions is None:
            out.pop("predictions")
        if all(t.role is None for t in self.tokens):  # a plain prompt: tokens as before chat templates
            for tok in out["tokens"]:
                tok.pop("role"), tok.pop("template")
        out = json_ready(out)
        if self.span is not None:  # its prompt is the analysis's own
            out["span"] = {k: v for k, v in self.span.to_dict().items() if k != "prompt"}
        return out

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps(self.to_dict(), **kwargs)


class SAEAnalyzer:
    """Per-token and per-prompt SAE feature analysis for a model and the SAEs loaded for it."""

    def __init__(self, model: ModelWithHooks, saes: SAEManager) -> None:
        self.model = model
        self.saes = saes
        self.collector = ActivationCollector(model)

    def analyze(
        self, prompt: str | ChatTokens, *, top_k: int = AnalysisSettings.top_k, include_special: bool = False,
        predictions: int = AnalysisSettings.predictions,
        reconstruction: bool = True, include_template: bool = False,
    ) -> AnalysisResult:
        """Analyze one prompt, or one rendered conversation (ChatTokens), with every loaded SAE."""
        from saetui.models.chat import ChatTokens

        kw = dict(top_k=top_k, include_special=include_special, predictions=predictions, reconstruction=reconstruction,
                  include_template=include_template)
        if isinstance(prompt, ChatTokens):
            result = self.analyze_batch(self.model.batch_from_chat(prompt), **kw)[0]
            result.prompt = prompt.text
            result.meta["chat"] = {"messages": prompt.messages, "generation_prompt": prompt.generation_prompt}
            return result
        return self.analyze_batch([prompt], **kw)[0]

    def analyze_batch(
        self,
        prompts: Sequence[str] | TokenBatch,
        *,
        top_k: int = AnalysisSettings.top_k,
        include_special: bool = False,
        predictions: int = AnalysisSettings.predictions,
        reconstruction: bool = True,
        include_template: bool = False,
    ) -> list[AnalysisResult]:
        """Analyze prompts in one padded forward; results are per prompt, for real tokens only.

        top_k:           features kept per token and per prompt (positive activations only)
        include_special: let BOS/pad/special tokens take part in the per-prompt summary
        include_template: let a chat template's tokens (batch.template_mask) take part, its special ones too
        predictions:     > 0 runs the whole model and adds the top-N next tokens after each token
        reconstruction:  per-token fvu and cosine (costs one SAE decode); L0 is always given
        """
        import torch

        from saetui.errors import InputError
        from saetui.models.model import TokenBatch

        top_k, predictions = check_int(top_k, "top-k"), check_int(predictions, "predictions", 0)
        loaded = list(self.saes)
        if not loaded:
            raise InputError("no SAE loaded")
        batch = prompts if isinstance(prompts, TokenBatch) else self.model.tokenize(prompts)
        texts = [""] * len(batch) if isinstance(prompts, TokenBatch) else list(prompts)
        captured, logits = self.collector.run(
            batch, [s.hook_name for s in loaded], stop_early=predictions <= 0, return_logits=predictions > 0
        )
        real = batch.attention_mask.bool()
        special = batch.special_mask[real].cpu()  # (N,) over the real tokens of all prompts, prompt after prompt
        counted = counted_tokens(special, batch.template_mask[real].cpu() if batch.template_mask is not None else None,
                                 include_special=include_special, include_template=include_template)
        per_sae = []
        with torch.inference_mode():
            for s in loaded:
                x = captured[s.hook_name][real]  # (N, d_model)
                per_sae.append(_analyze_tokens(s, x, counted, batch.lengths, top_k, reconstruction))
            preds = _predictions(self.model, logits[real], predictions) if logits is not None else None
        del captured, logits
        ids = batch.input_ids.tolist()
        special_rows = batch.special_mask.tolist()
        results, start = [], 0
        for i, n in enumerate(batch.lengths):
            row = ids[i][:n]
            roles = batch.roles[i] if batch.roles is not None else [None] * n
            tokens = [TokenInfo(j, t, text, bool(special_rows[i][j]), roles[j], roles[j] == "template")
                      for j, (t, text) in enumerate(zip(row, self.model.token_texts(row)))]
            results.append(
                AnalysisResult(
                    prompt=texts[i],
                    tokens=tokens,
                    saes=[per[i] for per in per_sae],
                    predictions=preds[start : start + n] if preds is not None else None,
                    meta={"model": self.model.name},
                )
            )
            if batch.full_lengths is not None and batch.full_lengths[i] > n:  # the prompt was cut to the context
                results[-1].meta["cut"] = {"kept": n, "of": batch.full_lengths[i]}
            start += n
        return results

    def latents(self, prompt: str | TokenBatch, sae: str | None = None) -> torch.Tensor:
        """(T, d_sae) feature activations of one SAE for every token of `prompt` (a text, or a one-row batch)."""
        loaded = self.saes.get(sae)
        acts = self.collector.collect(prompt, loaded.hook_name)
        import torch

        with torch.inference_mode():
            return loaded.sae.encode(acts[loaded.hook_name][0])


def counted_tokens(special: torch.Tensor, template: torch.Tensor | None, *, include_special: bool = False,
                   include_template: bool = False) -> torch.Tensor:
    """Which tokens take part in summaries (bool, the shape of `special`).

    A message's (or a plain prompt's) token counts unless it is special and include_special is off. A chat
    template's token counts with include_template, or, if it is special (BOS, turn markers), with include_special.
    """
    import torch

    plain = torch.ones_like(special) if include_special else ~special
    if template is None:
        return plain
    templ = torch.full_like(special, include_template) | (special & include_special)
    return torch.where(template, templ, plain)


def _analyze_tokens(
    s: LoadedSAE, x: torch.Tensor, counted: torch.Tensor, lengths: list[int], top_k: int, reconstruction: bool
) -> list[SAEResult]:
    """Encode the real tokens of all prompts (x: (N, d)) and split the summaries per prompt.

    counted: (N,) bool on the CPU, the tokens that take part in per-prompt summaries.
    """
    import torch

    lat = s.sae.encode(x)  # (N, d_sae)
    k = min(top_k, lat.shape[-1])
    tok_vals, tok_idx = lat.topk(k, dim=-1)  # (N, k)
    sparse = _sparse_latents(s, lat)
    l0 = sparse.crow_indices().diff() if sparse is not None else (lat != 0).sum(-1)
    if reconstruction:
        x_hat = _decode(s.sae, lat, sparse).to(lat.dtype)
        xf = x.to(lat.dtype)
        err = (xf - x_hat).pow(2).sum(-1)
        cos = torch.nn.functional.cosine_similarity(xf, x_hat, dim=-1)

    # Per-prompt summaries over counted tokens: max over tokens, then top-k.
    prompt_top, fvu_tok, fvu_all, mean_l0 = [], [], [], []
    start = 0
    for n, c in zip(lengths, counted.split(lengths)):
        rows = slice(start, start + n)
        start += n
        lat_c, offset = _counted_rows(lat[rows], c)
        if lat_c is None:
            prompt_top.append(None)
            fvu_tok.append(torch.full((n,), float("nan"), device=lat.device)), fvu_all.append(None), mean_l0.append(None)
            continue
        v, f = lat_c.amax(0).topk(k)  # (k,)
        pos = lat_c[:, f].argmax(0) + offset  # the token where each top feature peaks
        prompt_top.append((f, v, pos))
        c_dev = c.to(lat.device)
        mean_l0.append(l0[rows][c_dev].float().mean())
        if reconstruction:
            x_i = xf[rows]
            centered = (x_i - x_i[c_dev].mean(0)).pow(2).sum(-1)  # (n,)
            fvu_tok.append(torch.where(c_dev, err[rows] / centered, float("nan")))  # nan: None below
            fvu_all.append(err[rows][c_dev].sum() / centered[c_dev].sum())

    # One transfer to the host per tensor.
    tv, ti, l0l = tok_vals.tolist(), tok_idx.tolist(), l0.tolist()
    if reconstruction:
        fvul, cosl = torch.cat(fvu_tok).tolist(), cos.tolist()
    results, start = [], 0
    for p, n in enumerate(lengths):
        rows = range(start, start + n)
        per_token = [[(f, a) for f, a in zip(ti[r], tv[r]) if a > 0] for r in rows]
        top = []
        if prompt_top[p] is not None:
            f, v, pos = (t.tolist() for t in prompt_top[p])
            top = [(fi, a, q) for fi, a, q in zip(f, v, pos) if a > 0]
        recon = [Reconstruction(int(l0l[r]), finite_or_none(fvul[r]), finite_or_none(cosl[r])) if reconstruction
                 else Reconstruction(int(l0l[r]), None, None) for r in rows]
        fvu = finite_or_none(float(fvu_all[p])) if reconstruction and fvu_all[p] is not None else None
        ml0 = finite_or_none(float(mean_l0[p])) if mean_l0[p] is not None else None
        results.append(SAEResult(s.name, s.hook_name, s.d_sae, per_token, top, recon, fvu, ml0))
        start += n
    return results


def _counted_rows(lat: torch.Tensor, counted: torch.Tensor) -> tuple[torch.Tensor | None, int]:
    """The rows of lat (n, d_sae) whose `counted` flag is set, and the index of the first one.

    Usually only BOS is left out, so the counted rows form one run and a view avoids copying
    (n, d_sae) floats; otherwise they are gathered. Returns (None, 0) when no token counts.
    """
    idx = counted.nonzero().flatten().tolist()
    if not idx:
        return None, 0
    if idx[-1] - idx[0] + 1 == len(idx):
        return lat[idx[0] : idx[-1] + 1], idx[0]
    # Not one run: the others become -inf, so they never win a max (whatever the sign of the SAE's activations:
    # AbsTopK features fire negative too).
    import torch

    drop = torch.ones(lat.shape[0], 1, dtype=torch.bool, device=lat.device)
    drop[idx] = False
    return lat.masked_fill(drop, float("-inf")), 0


def _sparse_latents(s: LoadedSAE, lat: torch.Tensor) -> torch.Tensor | None:
    """lat (N, d_sae) as a CSR matrix, on the CPU, for SAEs whose decoder is plain `lat @ W_dec + b_dec`
    (the SAE's kind says so: `linear_decode`, decided when it was loaded).

    A trained SAE fires ~1% of its features, and on the CPU one CSR conversion gives both the L0
    (row lengths) and a decode 2-3x cheaper than the dense product; on GPUs dense is faster.
    """
    import warnings

    import torch

    sae = s.sae
    plain = (
        lat.device.type == "cpu"
        and lat.dtype == torch.float32
        and s.kind.linear_decode
        and sae.cfg.normalize_activations == "none"
        and sae.cfg.reshape_activations == "none"
    )
    if not plain:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "sparse CSR support is in beta"
        return lat.to_sparse_csr()


def _decode(sae: Any, lat: torch.Tensor, sparse: torch.Tensor | None) -> torch.Tensor:
    """sae.decode(lat), through the CSR form when there is one and it is sparse enough to pay off."""
    if sparse is None or sparse.values().numel() > 0.05 * lat.numel():
        return sae.decode(lat)
    return sparse @ sae.W_dec + sae.b_dec


def _predictions(model: ModelWithHooks, logits: torch.Tensor, n: int) -> list[list[tuple[int, str, float]]]:
    """Top-n next tokens and probabilities after each position. logits: (N, vocab)."""
    probs = logits.float().softmax(-1)
    vals, idx = probs.topk(min(n, probs.shape[-1]), dim=-1)
    out = []
    for row_ids, row_p in zip(idx.tolist(), vals.tolist()):
        out.append(list(zip(row_ids, model.token_texts(row_ids), row_p)))
    return out
