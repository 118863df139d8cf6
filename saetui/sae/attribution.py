"""Why this token? Attribution of one prediction to SAE features, checked by real ablation.

The target is the logit of token t at position I (default: the last token, and the model's top
prediction there), or with `versus` token v the logit difference t - v. For every loaded SAE at
once, one forward and one backward:

    at the SAE's hook point, with x (T, d) the model's own activation there,
        a  = sae.encode(x)                 (T, d_sae), a leaf that requires grad
        d  = sae.decode(a)                 (T, d)
        x' = x + (d - d.detach())          == x bit for bit: the forward is the model's own
    so x' = decode(a) + e with the error term e = x - decode(a) held fixed with respect to a, while
    x keeps its own gradient upstream: the backward is the real model's, and several SAEs spliced in
    at once do not cut each other's paths (an SAE at layer 2 leaves layer 1's gradients exact).

    attribution(f) = sum_{p <= I} a_f(p) * d target / d a_f(p)
    error          = sum_{p <= I} e(p)   . d target / d x(p)
    bias           = sum_{p <= I} b_dec  . d target / d x(p)          (linear decoders)
For a linear decoder, features + error + bias = sum_p x(p) . grad(p): the first-order (gradient x
activation) split of the hooked activation's total contribution. It is exact as a gradient, and an
estimate of what removing a feature does; `verify` measures that:

    ablation(f) = target(clean) - target(a_f zeroed at every position <= I, error term kept,
                                          other SAEs untouched)
from real forwards, batched: the clean row and one row per verified feature share the forward up
to the first hooked layer, where the batch is widened (models that refuse a widened batch get the
plain batch). Where everything after the hook is linear in x, ablation == attribution.

Only positions 0..I are run: a causal model's logits at I do not depend on later tokens. Model
weights never get gradients (requires_grad is switched off for the call and restored), and hooks
exist only during a forward, removed however it ends.
"""

from __future__ import annotations

import contextlib
import math
import numbers
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Iterator, Sequence

from saetui.errors import InputError
from saetui.models.hooks import HookSet
from saetui.files import json_ready
from saetui.inputs import as_int, check_int, check_utf8
from saetui.settings import AttributionSettings

if TYPE_CHECKING:
    import torch
    import torch.nn as nn

    from saetui.models.chat import ChatTokens
    from saetui.models.model import ModelWithHooks
    from saetui.sae.manager import LoadedSAE

# SAE kinds (saetui.sae.kinds) whose splice at one hook point would not be the model's own forward.
_REFUSED = {
    "transcoder": "it reconstructs another hook's activation (hook_name_out), so it cannot be spliced in at one hook",
    "temporal": "its activations depend on earlier tokens' activations, so a_f(p) * gradient is not a per-feature split",
}


def disagreement(estimate: float, measured: float | None, factor: float = AttributionSettings.disagree) -> str | None:
    """How a linear estimate and its measurement disagree: "sign" when they point opposite ways, "size" when the
    larger magnitude is more than `factor` times the smaller (a zero measurement against a non-zero estimate
    counts); None when they agree or nothing was measured. why? flags its features by it, the circuit its nodes."""
    if isinstance(factor, bool) or not isinstance(factor, numbers.Real) or not math.isfinite(factor) or factor < 1:
        raise InputError(f"factor must be a number of at least 1 (how many times the smaller the larger may be), "
                         f"got {factor!r}")
    if measured is None:
        return None
    if estimate * measured < 0:
        return "sign"
    big, small = sorted((abs(estimate), abs(measured)), reverse=True)
    return "size" if big > factor * small else None


def disagreement_flag(estimate: float, measured: float | None, factor: float = AttributionSettings.disagree) -> str:
    """The flag the app shows beside a disagreeing pair: `! sign`, or `! ×0.2` (measured / estimate); "" if none."""
    kind = disagreement(estimate, measured, factor)
    if kind is None or measured is None:
        return ""
    return "! sign" if kind == "sign" else f"! ×{abs(measured) / abs(estimate):.2g}"


@dataclass
class FeatureAttribution:
    """One feature's share of the target.

    attribution: sum over positions p <= I of a_f(p) * d target / d a_f(p)
    activation:  max over positions p <= I of a_f(p)
    ablation:    target(clean) - target(f zeroed at p <= I), from a real forward; None if not verified
    positions:   [(p, a_f(p) * d target / d a_f(p)), ...] where a_f(p) != 0, in position order
    """

    feature: int
    attribution: float
    activation: float
    ablation: float | None
    positions: list[tuple[int, float]]

    def disagreement(self, factor: float = AttributionSettings.disagree) -> str | None:
        """How the linear estimate and the measurement disagree: "sign" when attribution and ablation point
        opposite ways, "size" when the larger magnitude is more than `factor` times the smaller (a zero ablation
        against a non-zero attribution counts); None when they agree or the feature was not verified."""
        return disagreement(self.attribution, self.ablation, factor)

    def push_sign(self) -> int:
        """+1 if adding more of this feature raises the target, -1 if it lowers it. The measured ablation's
        sign where there is one (ablation = target(clean) - target(feature zeroed): positive means the
        feature's presence raises the target), else attribution's; the two differ exactly on "sign" rows."""
        effect = self.ablation if self.ablation else self.attribution
        return 1 if effect >= 0 else -1


@dataclass
class SAEAttribution:
    """One SAE's view: its top features by |attribution| and its error term's share (and b_dec's)."""

    name: str
    hook: str
    error: float
    bias: float
    features: list[FeatureAttribution]


@dataclass
class TokenTarget:
    """A token at the target position: its id, text, logit and probability there (clean model)."""

    id: int
    text: str
    logit: float
    prob: float


@dataclass
class AttributionResult:
    """What `attribute` returns; `to_dict()` is the JSON of `saetui attribute --json`.

    position:    I, the token after which the prediction is made (0-based, BOS included)
    value:       the target: target.logit, or target.logit - versus.logit
    tokens:      the prompt's tokens 0..I as (index, id, text, special)
    predictions: the model's top next tokens at I, most probable first (only when asked: left out of the JSON otherwise)
    """

    prompt: str
    position: int
    target: TokenTarget
    versus: TokenTarget | None
    value: float
    saes: list[SAEAttribution]
    tokens: list[dict[str, Any]] = field(default_factory=list)
    predictions: list[TokenTarget] | None = None

    def to_dict(self) -> dict[str, Any]:
        out = json_ready(asdict(self))
        if self.predictions is None:
            out.pop("predictions")
        return out

    def sae(self, name: str) -> SAEAttribution:
        return next(s for s in self.saes if s.name == name or s.hook == name)


# ---------------------------------------------------------------------- token arguments
def token_id(model: ModelWithHooks, token: int | str, what: str = "target") -> int:
    """A token id from an id (int) or a token's text (str) that the tokenizer makes one token.

    Refused with one line: an id outside the vocabulary, empty text, text the tokenizer splits into
    several tokens (naming the pieces, and the one-token spelling with a leading space if there is
    one), text it cannot represent (the unknown token).
    """
    vocab = model.vocab_size
    number = as_int(token)  # np.argmax's and tensor ids too
    token = token if number is None else number
    if isinstance(token, bool) or not isinstance(token, (int, str)):
        raise InputError(f"{what} must be a token id or a token's text, got {token!r}")
    if isinstance(token, int):
        if not 0 <= token < vocab:
            raise InputError(f"{what} id {token} out of range: the vocabulary has ids 0..{vocab - 1}")
        return token
    if token == "":
        raise InputError(f"{what} is empty: give a token's text or its id")
    check_utf8(token, f"{what} token", argv=False)  # the tokenizer raised a TypeError of its own
    tok = model.tokenizer
    ids = tok.encode(token, add_special_tokens=False)
    if len(ids) == 1:
        unk = tok.unk_token_id
        if unk is not None and ids[0] == unk and token != tok.unk_token:
            raise InputError(f"{what} {token!r} is not in the vocabulary (it becomes the unknown token)")
        return int(ids[0])
    if not ids:
        raise InputError(f"{what} {token!r} has no tokens: give a token's text or its id")
    pieces = ", ".join(repr(p) for p in model.token_texts(ids))
    hint = ""
    if not token.startswith(" "):
        spaced = tok.encode(" " + token, add_special_tokens=False)
        if len(spaced) == 1:
            hint = f"; ' {token}' (id {spaced[0]}) is one token"
    raise InputError(f"{what} {token!r} is {len(ids)} tokens ({pieces}): give one token or its id{hint}")


def check_position(position: int | None, n_tokens: int) -> int:
    """The 0-based position I among `n_tokens` (None: the last; negative counts from the end)."""
    if position is None:
        return n_tokens - 1
    number = as_int(position)
    if number is None:
        raise InputError(f"position must be a whole number, got {position!r}")
    position = number
    if not -n_tokens <= position < n_tokens:
        raise InputError(f"position {position} out of range: the prompt has {n_tokens} tokens "
                         f"(0..{n_tokens - 1}, BOS included; negative counts from the end)")
    return position % n_tokens


def check_kinds(saes: Sequence[LoadedSAE]) -> None:
    """Refuse SAEs whose kind cannot be spliced in exactly at one hook point (one line)."""
    for loaded in saes:
        kind = loaded.kind.name if loaded.kind is not None else "unknown"
        if kind in _REFUSED:
            raise InputError(f"cannot attribute through SAE {loaded.name} ({kind}): {_REFUSED[kind]}")


# ---------------------------------------------------------------------- the computation
def attribute(
    model: ModelWithHooks,
    saes: Sequence[LoadedSAE],
    prompt: str | ChatTokens,
    *,
    position: int | None = None,
    target: int | str | None = None,
    versus: int | str | None = None,
    top_k: int = AttributionSettings.top_k,
    verify: int = AttributionSettings.verify,
    predictions: int = 0,
) -> AttributionResult:
    """Attribute the prediction after token `position` of `prompt` to every SAE's features.

    target/versus: a token id (int) or a token's text (str, one token); target defaults to the
    model's top prediction at the position. top_k: features kept per SAE (by |attribution|, non-zero
    only). verify: how many of the kept features, largest |attribution| over all SAEs, get a real
    ablation (0: none). predictions: > 0 also returns the model's top-N next tokens at the position
    (to choose a target from). See the module docstring for the math.
    """
    import torch

    top_k, verify = check_int(top_k, "top-k"), check_int(verify, "verify", 0)
    predictions = check_int(predictions, "predictions", 0)
    saes = list(saes)
    if not saes:
        raise InputError("no SAE loaded")
    check_kinds(saes)
    target_id = None if target is None else token_id(model, target, "target")
    versus_id = None if versus is None else token_id(model, versus, "versus")
    from saetui.models.chat import ChatTokens

    chat = prompt if isinstance(prompt, ChatTokens) else None
    if chat is not None:  # a rendered conversation: its ids as the template made them (one BOS)
        ids = torch.tensor([chat.ids], dtype=torch.long, device=model.device)
        prompt = chat.text
    else:
        ids = model.tokenize(prompt).input_ids[:1]  # (1, T)
    pos = check_position(position, ids.shape[1])
    ids = ids[:, : pos + 1]  # (1, I+1): later tokens cannot change a causal prediction at I

    if versus_id is not None and versus_id == target_id:
        raise InputError(f"versus is the target itself (id {target_id}): the difference would be 0")

    with _frozen([model.model, *(s.sae for s in saes)]), torch.inference_mode(False), torch.enable_grad():
        splices, logits = _spliced_forward(model, saes, ids)  # logits: (vocab,) float32, at I
        if target_id is None:
            target_id = int(logits.argmax())
        if versus_id is not None and versus_id == target_id:
            raise InputError(f"versus is the model's top prediction itself (id {target_id}): the difference would be 0")
        value = logits[target_id] - (logits[versus_id] if versus_id is not None else 0.0)
        value.backward()
        per_sae = [_sae_result(s, sp, top_k) for s, sp in zip(saes, splices)]
        del splices
        logits = logits.detach()
    probs = logits.softmax(-1)
    texts = model.token_texts([target_id] + ([versus_id] if versus_id is not None else []))

    def token(i: int, text: str) -> TokenTarget:
        return TokenTarget(i, text, float(logits[i]), float(probs[i]))

    result = AttributionResult(
        prompt=prompt, position=pos, target=token(target_id, texts[0]),
        versus=token(versus_id, texts[1]) if versus_id is not None else None,
        value=float(value.detach()), saes=per_sae,
        tokens=[{"index": i, "id": t, "text": s, "special": model.is_special(t)}
                for i, (t, s) in enumerate(zip(ids[0].tolist(), model.token_texts(ids[0].tolist())))],
    )
    if predictions > 0:
        top = probs.topk(min(predictions, probs.shape[-1])).indices.tolist()
        result.predictions = [token(i, text) for i, text in zip(top, model.token_texts(top))]
    if chat is not None:  # chat prompts: each token's role, and whether the template wrote it
        for tok in result.tokens:
            tok["role"] = chat.roles[tok["index"]]
            tok["template"] = tok["role"] == "template"
    if verify:
        ablate(model, saes, ids, result, verify, target_id, versus_id)
    return result


@dataclass
class _Splice:
    """What one SAE's splice kept from the forward: a (T, d_sae) leaf, the error e (T, d), and x' (T, d)."""

    a: torch.Tensor | None = None
    error: torch.Tensor | None = None
    out: torch.Tensor | None = None


def _spliced_forward(model: ModelWithHooks, saes: list[LoadedSAE], ids: torch.Tensor) -> tuple[list[_Splice], torch.Tensor]:
    """One forward with every SAE spliced in (error term kept); returns the splices and the logits (vocab,) at the last position."""
    import torch

    splices = [_Splice() for _ in saes]
    with HookSet() as hooks, torch.enable_grad():
        for s, sp in zip(saes, splices):
            hooks.at(model, s.hook_name, _splice_fn(s, sp, ids.shape[1]))
        out = model.model(input_ids=ids, attention_mask=torch.ones_like(ids), use_cache=False, **_keep_last(model))
        logits = out.logits[0, -1].float()
    missing = [s.hook_name for s, sp in zip(saes, splices) if sp.a is None]
    if missing:
        raise InputError(f"hook points never fired: {', '.join(missing)}")
    return splices, logits


def _splice_fn(loaded: LoadedSAE, sp: _Splice, t: int):
    import torch

    sae = loaded.sae

    def splice(x: torch.Tensor) -> torch.Tensor:
        xs = x.detach().reshape(t, -1).to(sae.dtype)  # (T, d); OPT's fc2 passes (B*T, d) with B = 1
        with torch.no_grad():
            a = sae.encode(xs)
        a.requires_grad_(True)
        d = sae.decode(a)  # (T, d), in the graph of a
        out = x + (d - d.detach()).reshape(x.shape).to(x.dtype)  # == x exactly; d target/d a flows through d
        out.retain_grad()
        sp.a, sp.error, sp.out = a, (xs - d.detach()), out
        return out

    return splice


def _sae_result(loaded: LoadedSAE, sp: _Splice, top_k: int) -> SAEAttribution:
    import torch

    with torch.no_grad():
        a = sp.a.detach()  # (T, d_sae)
        grad_a = sp.a.grad if sp.a.grad is not None else torch.zeros_like(a)
        per_pos = (a * grad_a).float()  # (T, d_sae)
        total = per_pos.sum(0)  # (d_sae,)
        g = sp.out.grad  # (T, d) or the flattened shape
        g = torch.zeros_like(sp.error) if g is None else g.reshape(sp.error.shape).to(sp.error.dtype)
        error = float((sp.error * g).sum())
        bias = float((loaded.sae.b_dec.detach() * g).sum()) if loaded.kind.linear_decode else float("nan")
        k = min(top_k, total.numel())
        vals, feats = total.abs().topk(k)
        keep = vals > 0
        feats = feats[keep]
        chosen = per_pos[:, feats]  # (T, k)
        acts = a[:, feats].float()  # (T, k)
        active = acts != 0
        rows = []
        for j, f in enumerate(feats.tolist()):
            where = active[:, j].nonzero().flatten().tolist()
            pos = [(p, float(chosen[p, j])) for p in where]
            rows.append(FeatureAttribution(f, float(total[f]), float(acts[:, j].max()), None, pos))
    return SAEAttribution(loaded.name, loaded.hook_name, error, bias, rows)


# ---------------------------------------------------------------------- verification
def ablate(
    model: ModelWithHooks,
    saes: Sequence[LoadedSAE],
    ids: torch.Tensor,
    result: AttributionResult,
    n: int,
    target_id: int,
    versus_id: int | None,
) -> None:
    """Fill `ablation` for the n features of largest |attribution| over all SAEs (in place).

    One batched forward of 1 + n rows on ids (1, I+1): row 0 clean, row r with its feature zeroed
    at every position (error term kept, other SAEs untouched); effect = value(row 0) - value(row r).
    """
    by_sae = {s.name: s for s in saes}
    ranked = sorted(((abs(f.attribution), i, f) for i, r in enumerate(result.saes) for f in r.features),
                    key=lambda item: -item[0])
    chosen = [(result.saes[i].name, f) for _, i, f in ranked[:n]]
    if not chosen:
        return
    rows = [(by_sae[name], f.feature) for name, f in chosen]
    values = ablation_values(model, ids, rows, target_id, versus_id)  # (1 + n,)
    for (_, f), v in zip(chosen, values[1:]):
        f.ablation = values[0] - v


def ablation_values(
    model: ModelWithHooks,
    ids: torch.Tensor,
    rows: Sequence[tuple[LoadedSAE, int]],
    target_id: int,
    versus_id: int | None = None,
    *,
    widen: bool = True,
) -> list[float]:
    """The target at the last position of ids (1, T) for a clean row and one row per (SAE, feature)
    with that feature zeroed at every position (x - decode(a) + decode(a without f)). 1 + len(rows) values.

    widen: run the batch of one up to the first hooked layer and widen it there (rows are identical
    before it); a model that cannot take a widened batch falls back to the plain batch.
    """
    import torch

    n_rows = 1 + len(rows)
    t = ids.shape[1]
    by_hook: dict[str, tuple[LoadedSAE, list[tuple[int, int]]]] = {}
    for r, (loaded, f) in enumerate(rows, start=1):
        loaded.check_feature(int(f))
        by_hook.setdefault(loaded.hook_name, (loaded, []))[1].append((r, f))
    first = min((model.hook_point(h).layer for h in by_hook), default=None)
    widen = widen and first is not None  # no rows: the clean forward alone

    def run(widened: bool) -> torch.Tensor:
        with HookSet() as hooks, torch.inference_mode():
            if widened:  # rows only differ from the first hooked layer on: share what comes before
                hooks.on_input(model.layers[first], lambda h: h.expand(n_rows, *h.shape[1:]).contiguous(),
                               where=f"layer {first}")
            for hook, (loaded, items) in by_hook.items():
                hooks.at(model, hook, _ours(_ablate_fn(loaded, items, n_rows, t)))
            batch = ids if widened else ids.expand(n_rows, t)
            out = model.model(input_ids=batch, attention_mask=torch.ones_like(batch), use_cache=False, **_keep_last(model))
            logits = out.logits[:, -1].float()  # (n_rows, vocab)
        if logits.shape[0] != n_rows:
            raise RuntimeError(f"widened batch gave {logits.shape[0]} rows, expected {n_rows}")
        return logits

    logits = None
    if widen:
        try:
            logits = run(True)
        except _HookFailed as exc:  # our own hook failed: a real error, not the widening
            raise exc.__cause__ from None
        except RuntimeError:  # this architecture ties a tensor to the input's batch size: run every row
            logits = None
    if logits is None:
        try:
            logits = run(False)
        except _HookFailed as exc:
            raise exc.__cause__ from None
    values = logits[:, target_id] - (logits[:, versus_id] if versus_id is not None else 0.0)
    return values.tolist()


class _HookFailed(Exception):
    """An exception raised inside one of our ablation hooks (its cause), told apart from the model's own."""


def _ours(fn):
    def hook(x):
        try:
            return fn(x)
        except Exception as exc:
            raise _HookFailed() from exc

    return hook


def _ablate_fn(loaded: LoadedSAE, items: list[tuple[int, int]], n_rows: int, t: int):
    """Hook: in row r, x -= decode(a) - decode(a with a_f = 0) at every position (a_f * W_dec[f] when decode is linear)."""
    import torch

    sae = loaded.sae
    rows = torch.tensor([r for r, _ in items])
    feats = torch.tensor([f for _, f in items])
    linear = (loaded.kind.linear_decode and sae.cfg.normalize_activations == "none"
              and getattr(sae.cfg, "reshape_activations", "none") == "none")

    def ablate_rows(x: torch.Tensor) -> torch.Tensor:
        x3 = x.reshape(n_rows, t, -1)  # OPT's fc2 passes (B*T, d)
        r, f = rows.to(x.device), feats.to(sae.W_dec.device)
        xs = x3[r].to(sae.dtype)  # (m, T, d)
        a = sae.encode(xs)  # (m, T, d_sae)
        m = torch.arange(len(items), device=a.device)
        a_f = a[m, :, f]  # (m, T)
        if linear:
            delta = a_f[..., None] * sae.W_dec[f][:, None, :]  # (m, T, d)
        else:
            a0 = a.clone()
            a0[m, :, f] = 0
            delta = sae.decode(a) - sae.decode(a0)
        out = x3.clone()
        out[r] = x3[r] - delta.to(device=x.device, dtype=x.dtype)
        return out.reshape(x.shape)

    return ablate_rows


# ---------------------------------------------------------------------- state
@contextlib.contextmanager
def _frozen(modules: Sequence[nn.Module]) -> Iterator[None]:
    """requires_grad off on every parameter of `modules` for the block, restored however it ends."""
    saved = []
    try:
        for module in modules:
            for p in module.parameters():
                saved.append((p, p.requires_grad))
                p.requires_grad_(False)
        yield
    finally:
        for p, flag in saved:
            p.requires_grad_(flag)


def _keep_last(model: ModelWithHooks) -> dict[str, Any]:
    """`logits_to_keep=1` where the model takes it: only the last position's logits are needed."""
    from saetui.models.hf_compat import keeps_last_logits

    return {"logits_to_keep": 1} if keeps_last_logits(model.model) else {}
