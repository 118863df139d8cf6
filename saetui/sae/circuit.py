"""Feature circuits across SAEs, checked by ablation (Marks et al., Sparse Feature Circuits, on sae-lens SAEs).

The metric m is logit(target) - logit(versus) at the last position, averaged over the prompts; without a versus
log p(target) (CircuitSettings.metric "logprob", the default) or logit(target) ("logit": what why?,
saetui.sae.attribution, explains). With a versus the two are one: log p(t) - log p(v) = logit(t) - logit(v).
Every loaded SAE is spliced in with its error term kept, so the forward is unchanged:

    at SAE s:   x_out = decode(a) + e,   a = encode(x_in),  e = x_in - decode(a)

Nodes are (SAE, feature, position) for every latent that fires at a non-special position, plus one error node
per (SAE, position): e, the part of the activation the SAE does not reconstruct. Special tokens (BOS and the
like) are never nodes and never ablated.

Ablation has one meaning everywhere, the one `steer` mode ablate has: a feature node's activation set to 0 and
its decoder contribution removed (x_out - a_f W_dec[f] at that position), the error term kept; an error node's
ablation removes e at its position. Each SAE sees the activations that result from the ablations upstream of it.

Estimates (the gradient g_s = dm/dx_out at SAE s, downstream SAEs passing gradients straight through, as their
splice is the identity in value):

    effect(feature f at p) = -a_f[p] * (g_s[p] . W_dec[f])        attribution patching
    effect(error at p)     = -e[p] . g_s[p]
    integrated gradients (steps >= 1): the same with g_s averaged over SAE s's latents and error scaled by
    alpha = (i + 1/2) / steps, every other SAE at its own values (one batch row per step and SAE)

Edges run between the nodes of consecutive SAEs s1 -> s2: for a kept downstream node d (one backward each),
weight(u -> d) = (dm/dd) (dd/du) (-u), where d is a latent of s2 (encoded from its own input, so it depends on
every upstream node) or s2's error at a position (as its contribution g . e to the metric).

Checked, not assumed: the top nodes are ablated one at a time (measured change of m beside the estimate, and
their Spearman correlation); the faithfulness curve scores circuits C of the top k feature nodes by
(m(C) - m(empty)) / (m(full) - m(empty)), every feature node outside C ablated at every position, error nodes
kept; with several prompts, on prompts held out from the ones the circuit was found on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Sequence

from saetui.errors import InputError
from saetui.models.hooks import HookSet
from saetui.settings import CircuitSettings

if TYPE_CHECKING:
    import torch

    from saetui.models.model import ModelWithHooks
    from saetui.sae.manager import LoadedSAE

CURVE = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)


@dataclass
class Node:
    sae: str
    feature: int | None  # None: the error node
    position: int
    effect: float  # estimated change of the metric if ablated
    activation: float  # the feature's activation (an error node: the error's norm), mean over the prompts
    ablated: float | None = None  # measured: m with it ablated minus m(full) (the top `verify` only)

    @property
    def key(self) -> str:
        return f"{self.sae}/{'err' if self.feature is None else self.feature}@{self.position}"

    def to_dict(self) -> dict[str, Any]:
        return {"sae": self.sae, "feature": self.feature, "position": self.position, "effect": self.effect,
                "activation": self.activation, "ablated": self.ablated}


@dataclass
class CircuitResult:
    prompts: list[str]
    held_out: list[str]
    target: str
    versus: str | None
    full: float
    empty: float
    nodes: list[Node] = field(default_factory=list)
    edges: list[dict[str, Any]] = field(default_factory=list)
    faithfulness: list[dict[str, Any]] = field(default_factory=list)
    held_out_faithfulness: list[dict[str, Any]] = field(default_factory=list)
    spearman: float | None = None
    tokens: list[str] = field(default_factory=list)
    target_id: int | None = None  # the ids behind `target` and `versus` (not in the JSON: its texts say them)
    versus_id: int | None = None
    kind: str = "logprob"  # the metric without a versus: "logprob" or "logit" (CircuitSettings.metric)

    @property
    def metric(self) -> str:
        """The metric in words: `log p(' Paris')`, `logit(' Paris')` or `logit(' Paris') - logit(' Rome')`."""
        return metric_name(self.target, self.versus, self.kind)

    def to_dict(self) -> dict[str, Any]:
        return {
            "prompts": self.prompts, "held_out": self.held_out, "tokens": self.tokens,
            "target": self.target, "versus": self.versus,
            "metric": {"name": self.metric, "full": self.full, "empty": self.empty},
            "nodes": [n.to_dict() for n in self.nodes], "edges": self.edges,
            "faithfulness": self.faithfulness, "held_out_faithfulness": self.held_out_faithfulness,
            "spearman": self.spearman,
        }


# ---------------------------------------------------------------------- the metric and the spliced forward
def metric_name(target: str | int, versus: str | int | None, kind: str = "logprob") -> str:
    """The metric in words, from the target's and versus's token texts (or ids, shown as numbers): `log p(' Paris')`
    (kind "logprob"), `logit(' Paris')` (kind "logit"), or with a versus `logit(' Paris') - logit(' Rome')`."""
    def token(t: str | int) -> str:
        return repr(t) if isinstance(t, str) else str(t)

    if versus is not None:
        return f"logit({token(target)}) - logit({token(versus)})"
    return f"log p({token(target)})" if kind == "logprob" else f"logit({token(target)})"


class _Metric:
    def __init__(self, target: int, versus: int | None, kind: str = "logprob") -> None:
        self.target, self.versus, self.kind = target, versus, kind

    def __call__(self, logits: torch.Tensor) -> torch.Tensor:
        """logits (B, vocab) at the last position -> m per row (B,), in float32 at least (float64 stays)."""
        logits = logits.float() if logits.dtype.itemsize < 4 else logits
        if self.versus is not None:
            return logits[:, self.target] - logits[:, self.versus]
        if self.kind == "logit":
            return logits[:, self.target]
        return logits.log_softmax(-1)[:, self.target]


@dataclass
class _Plan:
    """Per batch row and SAE, what to change: latents kept (mask), latents and error scaled (IG)."""

    keep: dict[str, torch.Tensor] = field(default_factory=dict)  # SAE -> (B, T, d_sae) 1 keeps a latent, 0 ablates it
    keep_error: dict[str, torch.Tensor] = field(default_factory=dict)  # SAE -> (B, T, 1)
    scale: dict[str, torch.Tensor] = field(default_factory=dict)  # SAE -> (B, 1, 1) IG scale of latents and error


@dataclass
class _Grads:
    a: dict[str, torch.Tensor] = field(default_factory=dict)  # SAE -> (B, T, d_sae) latents
    error: dict[str, torch.Tensor] = field(default_factory=dict)  # SAE -> (B, T, d) error term (a value)
    out: dict[str, torch.Tensor] = field(default_factory=dict)  # SAE -> (B, T, d) the spliced output (grad retained)
    error_graph: dict[str, torch.Tensor] = field(default_factory=dict)  # the linked SAE's error as a function of its input


def _run(model: ModelWithHooks, saes: Sequence[LoadedSAE], ids: torch.Tensor, plan: _Plan, metric: _Metric, *,
         grad: bool = False, linked: str | None = None) -> tuple[torch.Tensor, _Grads]:
    """One forward of `ids` (B, T) with every SAE spliced in and `plan` applied; returns m per row and, with
    grad, the tensors to differentiate.

    Each SAE's latents are a leaf of the graph and its splice passes gradients straight through to its input
    (it is the identity in value), so dm/da is the effect of a latent holding its error fixed, and dm/dout the
    effect of the error. The `linked` SAE instead encodes its input inside the graph (its latents and error
    are functions of every node upstream: the downstream side of an edge)."""
    import torch

    from saetui.sae.attribution import _keep_last

    saved = _Grads()
    b, t = ids.shape

    def make(loaded: LoadedSAE):
        sae, name = loaded.sae, loaded.name

        def splice(hidden: torch.Tensor) -> torch.Tensor:
            x = hidden.reshape(b, t, -1).to(sae.dtype)
            if name == linked:
                a = sae.encode(x)
                out = x  # nothing is changed in an edge run: the input goes on, in value and in gradient
                out.retain_grad()
                saved.a[name], saved.out[name] = a, out
                saved.error_graph[name] = x - sae.decode(a)
                return out.to(hidden.dtype).reshape(hidden.shape)
            with torch.no_grad():
                a = sae.encode(x.detach())
                e = x.detach() - sae.decode(a)
            if grad:
                a.requires_grad_(True)
            kept = a * plan.keep[name] if name in plan.keep else a
            err = e * plan.keep_error[name] if name in plan.keep_error else e
            if name in plan.scale:
                kept, err = kept * plan.scale[name], err * plan.scale[name]
            recon = sae.decode(kept)
            if grad:
                # value: decode(kept) + err; gradient: to the latents through decode, straight through to x
                out = x + (recon + err - x).detach() + (recon - recon.detach())
                out.retain_grad()
                saved.a[name], saved.error[name], saved.out[name] = a, e, out
            else:
                out = recon + err
            return out.to(hidden.dtype).reshape(hidden.shape)

        return splice

    with HookSet() as hooks, (torch.enable_grad() if grad else torch.no_grad()):
        for loaded in saes:
            hooks.at(model, loaded.hook_name, make(loaded))
        out = model.model(input_ids=ids, attention_mask=torch.ones_like(ids), use_cache=False, **_keep_last(model))
        return metric(out.logits[:, -1]), saved


# ---------------------------------------------------------------------- the circuit
def find_circuit(model: ModelWithHooks, saes: Sequence[LoadedSAE], prompts: Sequence[str], target: int | str,
                 versus: int | str | None = None, *, settings: CircuitSettings | None = None,
                 held_out: Sequence[str] = ()) -> CircuitResult:
    """The circuit of `saes` (ordered by layer) for the metric on `prompts` (all the same token length), with its
    checks; `held_out` prompts (same length) get their own faithfulness curve."""

    from saetui.sae.attribution import _frozen, check_kinds, token_id

    settings = settings or CircuitSettings()
    saes = sorted(saes, key=lambda s: s.layer)
    if not saes:
        raise InputError("no SAE to build a circuit from: load one with --sae")
    check_kinds(saes)
    for loaded in saes:
        if not loaded.kind.linear_decode:
            raise InputError(f"cannot ablate through SAE {loaded.name} ({loaded.kind.name}): its decode is not linear")
    prompts = list(prompts)
    if not prompts:
        raise InputError("no prompt given")
    t_id = token_id(model, target, "target")
    v_id = None if versus is None else token_id(model, versus, "versus")
    if v_id == t_id:
        raise InputError(f"versus is the target's own token ({model.token_texts([t_id])[0]!r}): the metric would be 0")
    metric = _Metric(t_id, v_id, settings.metric)
    ids, special = _ids(model, prompts)
    held_ids = _ids(model, list(held_out), length=ids.shape[1])[0] if held_out else None
    with _frozen([model.model, *[s.sae for s in saes]]):
        full = float(_run(model, saes, ids, _Plan(), metric)[0].mean())
        effects, acts = _estimate(model, saes, ids, special, metric, settings.steps)
        nodes = _rank(saes, effects, acts, special)
        listed = nodes[: settings.nodes]
        edges = _edges(model, saes, ids, metric, listed, settings.edges_per_node)
        verified = nodes[: settings.verify]
        measured = _ablate_each(model, saes, ids, special, metric, verified)
        for node, value in zip(verified, measured):
            node.ablated = value - full
        spearman = _spearman([n.effect for n in verified], [n.ablated for n in verified]) if len(verified) > 2 else None
        features = [n for n in nodes if n.feature is not None]
        curve, empty = _faithfulness(model, saes, ids, special, metric, features, full)
        held_curve: list[dict[str, Any]] = []
        if held_ids is not None:
            held_full = float(_run(model, saes, held_ids, _Plan(), metric)[0].mean())
            held_special = _special(model, held_ids)
            held_curve, _ = _faithfulness(model, saes, held_ids, held_special, metric, features, held_full)
    return CircuitResult(
        prompts=prompts, held_out=list(held_out), target=model.token_texts([t_id])[0],
        versus=None if v_id is None else model.token_texts([v_id])[0], full=full, empty=empty,
        nodes=listed, edges=edges, faithfulness=curve, held_out_faithfulness=held_curve, spearman=spearman,
        tokens=model.token_texts(ids[0].tolist()), target_id=t_id, versus_id=v_id, kind=settings.metric,
    )


def _ids(model: ModelWithHooks, prompts: list[str], length: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(P, T) ids of prompts that all have T tokens, and (P, T) special-token mask."""
    batch = model.tokenize(prompts)
    lengths = set(batch.lengths)
    if len(lengths) != 1 or (length is not None and lengths != {length}):
        counts = ", ".join(f"{p!r}: {n}" for p, n in zip(prompts, batch.lengths))
        raise InputError(f"the prompts of a circuit must have the same number of tokens (positions are nodes): {counts}")
    return batch.input_ids, batch.special_mask


def _special(model: ModelWithHooks, ids: torch.Tensor) -> torch.Tensor:
    return model.batch_from_ids(ids.tolist()).special_mask.to(ids.device)


def _estimate(model: ModelWithHooks, saes: Sequence[LoadedSAE], ids: torch.Tensor, special: torch.Tensor,
              metric: _Metric, steps: int) -> tuple[dict[str, tuple[torch.Tensor, torch.Tensor]], dict[str, tuple[torch.Tensor, torch.Tensor]]]:
    """Per SAE: (feature effects (T, d_sae), error effects (T,)) and (mean activations (T, d_sae), error norms (T,)),
    averaged over the prompts; special positions 0."""
    import torch

    p, t = ids.shape
    effects: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    acts: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    if steps == 0:  # attribution patching: one forward and backward for every SAE at once
        m, g = _run(model, saes, ids, _Plan(), metric, grad=True)
        m.sum().backward()
        for loaded in saes:
            a, e, out = g.a[loaded.name], g.error[loaded.name], g.out[loaded.name]
            effects[loaded.name] = _node_effects(a.grad, a, e, out.grad, special, p)
            acts[loaded.name] = _node_acts(a, e, special, p)
        return effects, acts
    alphas = (torch.arange(steps, dtype=torch.float32) + 0.5) / steps
    for loaded in saes:  # one batch per SAE: rows = prompts x steps, that SAE scaled, the others at their values
        rows = ids.repeat_interleave(steps, 0)  # (P*steps, T)
        scale = alphas.repeat(p).to(device=ids.device, dtype=loaded.sae.dtype)[:, None, None]
        m, g = _run(model, saes, rows, _Plan(scale={loaded.name: scale}), metric, grad=True)
        m.sum().backward()
        a, e, out = g.a[loaded.name], g.error[loaded.name], g.out[loaded.name]
        d_sae = a.shape[-1]
        # integrated gradients: dm/d(alpha a) averaged along the path; the splice multiplies a by alpha, so the
        # chain rule's alpha is in a.grad and is divided out (the error's gradient is dm/dout, alpha-free)
        grad_a = (a.grad.reshape(p, steps, t, d_sae) / alphas.to(a.grad)[None, :, None, None]).mean(1)
        grad_out = out.grad.reshape(p, steps, t, -1).mean(1)
        a0 = a.detach().reshape(p, steps, t, d_sae)[:, 0]
        e0 = e.reshape(p, steps, t, -1)[:, 0]
        effects[loaded.name] = _node_effects(grad_a, a0, e0, grad_out, special, p)
        acts[loaded.name] = _node_acts(a0, e0, special, p)
    return effects, acts


def _node_effects(grad_a: torch.Tensor, a: torch.Tensor, e: torch.Tensor, grad_out: torch.Tensor, special: torch.Tensor,
                  p: int) -> tuple[torch.Tensor, torch.Tensor]:
    """-(activation x gradient) per node, the prompts' mean: features (T, d_sae), errors (T,)."""
    import torch

    with torch.no_grad():
        t = special.shape[1]
        feat = -(a.detach().float() * grad_a.float()).reshape(p, t, -1)
        err = -(e.float() * grad_out.reshape(e.shape).float()).sum(-1).reshape(p, t)
        feat = feat.masked_fill(special[..., None], 0.0).mean(0)
        err = err.masked_fill(special, 0.0).mean(0)
    return feat, err


def _node_acts(a: torch.Tensor, e: torch.Tensor, special: torch.Tensor, p: int) -> tuple[torch.Tensor, torch.Tensor]:
    import torch

    with torch.no_grad():
        t = special.shape[1]
        feat = a.detach().float().reshape(p, t, -1).masked_fill(special[..., None], 0.0).mean(0)
        err = e.float().norm(dim=-1).reshape(p, t).masked_fill(special, 0.0).mean(0)
    return feat, err


def _rank(saes: Sequence[LoadedSAE], effects: dict, acts: dict, special: torch.Tensor) -> list[Node]:
    """Every node (a feature that fires somewhere at a non-special position, each error) by |effect|."""
    nodes: list[Node] = []
    counted = ~special.any(0)  # positions special in no prompt
    for loaded in saes:
        feat, err = effects[loaded.name]
        act, norm = acts[loaded.name]
        fired = (act > 0) & counted[:, None]
        for pos, f in fired.nonzero().tolist():
            nodes.append(Node(loaded.name, f, pos, float(feat[pos, f]), float(act[pos, f])))
        for pos in counted.nonzero().flatten().tolist():
            nodes.append(Node(loaded.name, None, pos, float(err[pos]), float(norm[pos])))
    return sorted(nodes, key=lambda n: -abs(n.effect))


def _edges(model: ModelWithHooks, saes: Sequence[LoadedSAE], ids: torch.Tensor, metric: _Metric, listed: list[Node],
           per_node: int) -> list[dict[str, Any]]:
    """The strongest edges into each listed node from the nodes of the SAE before it: one forward per SAE pair
    (the downstream SAE linked, see `_run`) and one backward per downstream node."""
    import torch

    order = [s.name for s in saes]
    by_name = {s.name: s for s in saes}
    edges: list[dict[str, Any]] = []
    for down in order[1:]:
        targets = [n for n in listed if n.sae == down]
        if not targets:
            continue
        up = order[order.index(down) - 1]
        m, g = _run(model, saes, ids, _Plan(), metric, grad=True, linked=down)
        (dm_dout,) = torch.autograd.grad(m.sum(), [g.out[down]], retain_graph=True)  # (P, T, d)
        w_dec = by_name[down].sae.W_dec.detach()
        a_up, out_up, e_up = g.a[up], g.out[up], g.error[up]
        for node in targets:
            pull = dm_dout[:, node.position].detach()  # (P, d): dm / d(the downstream output at the node's position)
            if node.feature is None:  # an error node: its contribution to m, as a function of everything upstream
                value = (pull * g.error_graph[down][:, node.position]).sum()
            else:
                value = ((pull @ w_dec[node.feature]) * g.a[down][:, node.position, node.feature]).sum()
            d_a, d_out = torch.autograd.grad(value, [a_up, out_up], retain_graph=True)
            with torch.no_grad():
                w = -(a_up.detach().float() * d_a.float()).mean(0)  # (T, d_sae): weight of each upstream latent
                w_err = -(e_up.float() * d_out.float()).sum(-1).mean(0)  # (T,): of each upstream error
                cand = [(float(w.flatten()[i]), f"{up}/{i % w.shape[1]}@{i // w.shape[1]}")
                        for i in w.flatten().abs().topk(min(per_node, w.numel())).indices.tolist()]
                cand += [(float(w_err[pos]), f"{up}/err@{pos}") for pos in range(w_err.numel())]
            cand = sorted((c for c in cand if c[0] != 0.0), key=lambda c: -abs(c[0]))[:per_node]
            edges += [{"from": src, "to": node.key, "weight": weight} for weight, src in cand]
    return edges


def _ablate_each(model: ModelWithHooks, saes: Sequence[LoadedSAE], ids: torch.Tensor, special: torch.Tensor,
                 metric: _Metric, nodes: list[Node]) -> list[float]:
    """m with each node ablated alone (the prompts' mean), batched: a row per (node, prompt)."""
    return _ablate_groups(model, saes, ids, metric, [[node] for node in nodes])


def _ablate_groups(model: ModelWithHooks, saes: Sequence[LoadedSAE], ids: torch.Tensor, metric: _Metric,
                   groups: list[list[Node]]) -> list[float]:
    """m with each group's nodes ablated together (the prompts' mean), batched: a row per (group, prompt)."""
    import torch

    if not groups:
        return []
    p, t = ids.shape
    rows = ids.repeat(len(groups), 1)
    plan = _Plan()
    for loaded in saes:
        keep = torch.ones(len(groups) * p, t, loaded.d_sae, dtype=loaded.sae.dtype, device=ids.device)
        keep_e = torch.ones(len(groups) * p, t, 1, dtype=loaded.sae.dtype, device=ids.device)
        for i, group in enumerate(groups):
            for node in group:
                if node.sae != loaded.name:
                    continue
                if node.feature is None:
                    keep_e[i * p:(i + 1) * p, node.position] = 0.0
                else:
                    keep[i * p:(i + 1) * p, node.position, node.feature] = 0.0
        plan.keep[loaded.name], plan.keep_error[loaded.name] = keep, keep_e
    m, _ = _run(model, saes, rows, plan, metric)
    return m.reshape(len(groups), p).mean(1).tolist()


def ablate_nodes(model: ModelWithHooks, saes: Sequence[LoadedSAE], prompts: Sequence[str], target: int | str,
                 versus: int | str | None, nodes: Sequence[Node], *, full: float | None = None,
                 kind: str = "logprob") -> float:
    """The measured change of the metric with `nodes` ablated together: m(ablated) - m(full), averaged over
    `prompts`, by the very path that gives a circuit node its `ablated` (one node: that value, up to rounding
    of another batch shape). `full`: m(full) when known (a CircuitResult's), else computed in the same batch;
    `kind`: the metric without a versus, as CircuitSettings.metric. Nodes must be of these SAEs, at non-special
    positions of the prompts (a one-line InputError otherwise)."""
    from saetui.sae.attribution import _frozen, token_id

    by_name = {s.name: s for s in saes}
    t_id = token_id(model, target, "target")
    CircuitSettings(metric=kind)  # checks it
    metric = _Metric(t_id, None if versus is None else token_id(model, versus, "versus"), kind)
    ids, special = _ids(model, list(prompts))
    for node in nodes:
        if node.sae not in by_name:
            raise InputError(f"node {node.key}: no loaded SAE named {node.sae!r}")
        if not 0 <= node.position < ids.shape[1] or bool(special[:, node.position].any()):
            raise InputError(f"node {node.key}: position {node.position} is not a non-special position of the prompts")
        if node.feature is not None:
            by_name[node.sae].check_feature(node.feature)
    groups = [list(nodes)] if full is not None else [[], list(nodes)]
    with _frozen([model.model, *[s.sae for s in saes]]):
        measured = _ablate_groups(model, sorted(saes, key=lambda s: s.layer), ids, metric, groups)
    return measured[-1] - (full if full is not None else measured[0])


def _faithfulness(model: ModelWithHooks, saes: Sequence[LoadedSAE], ids: torch.Tensor, special: torch.Tensor,
                  metric: _Metric, features: list[Node], full: float) -> tuple[list[dict[str, Any]], float]:
    """[{nodes: k, score}] for circuits of the top k feature nodes, and m(empty) (every feature node ablated)."""
    import torch

    p, t = ids.shape
    sizes = [k for k in CURVE if k < len(features)] + [len(features)]
    configs = [0, *sizes]  # 0: the empty circuit
    rows = ids.repeat(len(configs), 1)
    plan = _Plan()
    counted = (~special).to(dtype=torch.float32)  # (P, T): special positions are never ablated
    for loaded in saes:
        keep = torch.ones(len(configs), p, t, loaded.d_sae, dtype=loaded.sae.dtype, device=ids.device)
        keep *= (1 - counted.to(keep))[None, :, :, None]  # every non-special latent ablated...
        for c, k in enumerate(configs):
            for node in features[:k]:  # ...but the circuit's
                if node.sae == loaded.name:
                    keep[c, :, node.position, node.feature] = 1.0
        plan.keep[loaded.name] = keep.reshape(len(configs) * p, t, loaded.d_sae)
    m, _ = _run(model, saes, rows, plan, metric)
    per = m.reshape(len(configs), p).mean(1).tolist()
    empty = per[0]
    span = full - empty
    curve = [{"nodes": k, "score": (per[i + 1] - empty) / span if span != 0 else None} for i, k in enumerate(sizes)]
    return curve, empty


def _spearman(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Spearman's rank correlation (average ranks for ties); None when either side is constant."""
    import torch

    def ranks(v: Sequence[float]) -> torch.Tensor:
        t = torch.tensor(v, dtype=torch.float64)
        order = t.argsort()
        r = torch.empty_like(t)
        r[order] = torch.arange(len(t), dtype=torch.float64)
        for value in t.unique():  # ties share their mean rank
            same = t == value
            r[same] = r[same].mean()
        return r

    rx, ry = ranks(x), ranks(y)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    denom = float((rx.norm() * ry.norm()))
    return None if denom == 0 else float((rx * ry).sum()) / denom

