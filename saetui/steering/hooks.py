"""The steering hook: one per hooked module, adding SAE decoder directions to the model's own activations.

For a hooked activation x (B, T, d) and the specs of batch row b at that hook:

    add     x += c * W_dec[f]                              (precomputed sum over the row's add specs)
    clamp   x += (v - a_f(x)) * W_dec[f]                   a_f: the SAE's activation of feature f, from
    ablate  clamp with v = 0                               its kind's column encoder (saetui.sae.kinds):
                                                           f's encoder column only where the architecture
                                                           allows, else the full encode

x itself is never replaced by the SAE's reconstruction, so what the SAE cannot reconstruct (its
error term) stays in the model. Each row of the batch has its own specs (baseline, steered, sweep
variants), and each spec its position scope. The added vector is computed in the SAE's dtype and
cast to the activation's dtype and device. Absolute positions come from the attention mask of each
forward, so they are right for the prompt (T tokens) and for every cached decoding step (1 token).
For a chat prompt the scope `template` covers the positions its chat template wrote (turn markers,
role names, the reply's opener); scopes join with `+` (`generated+template`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Sequence

from saetui.errors import InputError
from saetui.models.hooks import HookSet

if TYPE_CHECKING:
    import torch

    from saetui.models.model import ModelWithHooks
    from saetui.sae.manager import LoadedSAE
    from saetui.steering.spec import ResolvedSpec


@dataclass
class _ScopePlan:
    """Everything added at one hook for one position scope, for all B rows.

    add:     (B, d) summed c * W_dec[f] per row, or None
    feats:   (m,) clamped features;  values: (B, m) target values;  active: (B, m) 1 where row b clamps
    encode:  x (B, T, d) -> (B, T, m) the clamped features' activations (the SAE kind's column encoder)
    w_dec:   (m, d) the clamped features' decoder rows
    """

    add: torch.Tensor | None = None
    feats: torch.Tensor | None = None
    values: torch.Tensor | None = None
    active: torch.Tensor | None = None
    encode: Callable[[torch.Tensor], torch.Tensor] | None = None
    w_dec: torch.Tensor | None = None


class _Positions:
    """Absolute positions (B, T) of the tokens in the forward being run, the prompt length, and for a chat
    prompt which of its positions the template wrote (bool, prompt_len)."""

    def __init__(self, prompt_len: int | None, template: Sequence[bool] | None = None) -> None:
        self.prompt_len = prompt_len
        self.template = list(template) if template is not None else None
        self._template_t: torch.Tensor | None = None
        self.current: torch.Tensor | None = None

    def observe(self, args: tuple, kwargs: dict) -> None:
        import torch

        ids = kwargs.get("input_ids", args[0] if args else None)
        if ids is None:
            ids = kwargs["inputs_embeds"]
        b, t = ids.shape[:2]
        mask = kwargs.get("attention_mask")
        if isinstance(mask, torch.Tensor) and mask.dim() == 2 and mask.shape[1] >= t:
            # Left padding and cached steps alike: a token's position is the count of real tokens before it.
            self.current = (mask.long().cumsum(-1) - 1)[:, -t:].clamp(min=0)
        else:
            cache = kwargs.get("cache", kwargs.get("past_key_values"))
            start = cache.get_seq_length() if cache is not None and hasattr(cache, "get_seq_length") else 0
            self.current = torch.arange(start, start + t, device=ids.device).expand(b, t)

    def mask(self, scope: str, device: torch.device) -> torch.Tensor | None:
        """(B, T, 1) bool: the positions `scope` covers in this forward (None = all of them); `a+b` is a union."""
        parts = scope.split("+")
        if "all" in parts:
            return None
        pos = self.current.to(device)
        keep = None
        for part in parts:
            one = self._part(part, pos)
            keep = one if keep is None else keep | one
        return keep[..., None]

    def _part(self, scope: str, pos: torch.Tensor) -> torch.Tensor:
        import torch

        if scope in ("prompt", "generated"):
            n = self.prompt_len if self.prompt_len is not None else int(pos.max()) + 1  # plain forward: all prompt
            return pos < n if scope == "prompt" else pos >= n
        if scope == "template":  # the chat template's prompt tokens; nothing without a chat prompt
            if not self.template:
                return torch.zeros_like(pos, dtype=torch.bool)
            if self._template_t is None or self._template_t.device != pos.device:
                self._template_t = torch.tensor(self.template, dtype=torch.bool, device=pos.device)
            n = len(self.template)
            return (pos < n) & self._template_t[pos.clamp(max=n - 1)]
        start, _, end = scope.partition(":")
        keep = pos >= int(start or 0)
        if end:
            keep = keep & (pos < int(end))
        return keep


class SteeringHooks:
    """Context manager: steering hooks for `rows` (one list of resolved specs per batch row).

    >>> with SteeringHooks(model, [[], specs]):     # row 0 baseline, row 1 steered
    ...     model.model(input_ids=ids.expand(2, -1), attention_mask=mask)
    """

    def __init__(self, model: ModelWithHooks, rows: Sequence[Sequence[ResolvedSpec]], *, prompt_len: int | None = None,
                 template: Sequence[bool] | None = None) -> None:
        self.model = model
        self.rows = [list(r) for r in rows]
        self.positions = _Positions(prompt_len, template)
        self._hooks = HookSet()

    def __enter__(self) -> SteeringHooks:
        plans = build_plans(self.rows)
        try:
            if plans:
                self._hooks.on_call(self.model.model, self.positions.observe)
            for hook_name, (loaded, scopes) in plans.items():
                module, side = self.model.hook_module(self.model.hook_point(hook_name))
                add = self._hooks.on_input if side == "input" else self._hooks.on_output
                add(module, self._make_hook(loaded, scopes), where=hook_name)
        except BaseException:
            self._hooks.remove()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._hooks.remove()

    def _make_hook(self, loaded: LoadedSAE, scopes: dict[str, _ScopePlan]):
        import torch

        n_rows = len(self.rows)

        def steer(hidden: torch.Tensor) -> torch.Tensor:
            b, t = self.positions.current.shape
            x = hidden.reshape(b, t, -1) if hidden.dim() == 2 else hidden  # OPT's fc2 works on (B*T, d)
            if x.shape[0] != n_rows and n_rows != 1:
                raise InputError(f"steering was set up for {n_rows} rows but the batch has {x.shape[0]}")
            out = x
            for scope, plan in scopes.items():
                delta = _delta(loaded, plan, x)  # (B or 1, 1 or T, d) in the SAE's dtype
                mask = self.positions.mask(scope, x.device)
                delta = delta.to(device=x.device, dtype=x.dtype)
                out = out + (delta if mask is None else delta * mask)
            return out.reshape(hidden.shape)

        return steer


def build_plans(rows: list[list[ResolvedSpec]]) -> dict[str, tuple[LoadedSAE | None, dict[str, _ScopePlan]]]:
    """hook name -> (its SAE, or None for steering vectors only; scope -> what to add), one entry per hooked module.

    Rows may mix ResolvedSpec (SAE features) and ResolvedVector (saved vectors: value * vector is added)."""
    import torch

    # Feature specs carry their SAE; steering vectors (saetui.steering.vectors) only a hook name and a tensor.
    by_hook: dict[str, tuple[LoadedSAE | None, dict[str, list[tuple[int, ResolvedSpec]]]]] = {}
    for r, row in enumerate(rows):
        for rs in row:
            if not rs.spec.enabled:
                continue
            owner = getattr(rs, "sae", None)
            hook = owner.hook_name if owner is not None else rs.hook_name
            loaded, scopes = by_hook.setdefault(hook, (owner, {}))
            if loaded is None and owner is not None:
                by_hook[hook] = (owner, scopes)
            scopes.setdefault(rs.spec.scope, []).append((r, rs))
    n = len(rows)
    plans: dict[str, tuple[LoadedSAE | None, dict[str, _ScopePlan]]] = {}
    for hook, (loaded, scopes) in by_hook.items():
        sae = loaded.sae if loaded is not None else None
        # a hook with vectors only: the added sum lives in the first vector's dtype and device
        w_dec = sae.W_dec.detach() if sae is not None else next(rs.vector for items in scopes.values() for _, rs in items)[None]
        out: dict[str, _ScopePlan] = {}
        for scope, items in scopes.items():
            plan = _ScopePlan()
            adds = [(r, rs) for r, rs in items if rs.mode == "add"]
            if adds:
                plan.add = torch.zeros(n, w_dec.shape[1], dtype=w_dec.dtype, device=w_dec.device)
                for r, rs in adds:
                    vector = getattr(rs, "vector", None)
                    direction = w_dec[rs.spec.feature] if vector is None else vector.to(device=w_dec.device, dtype=w_dec.dtype)
                    plan.add[r] += rs.value * direction
            clamps = [(r, rs) for r, rs in items if rs.mode == "clamp"]
            if clamps:
                feats = sorted({rs.spec.feature for _, rs in clamps})
                col = {f: i for i, f in enumerate(feats)}
                plan.feats = torch.tensor(feats, device=w_dec.device)
                plan.values = torch.zeros(n, len(feats), dtype=w_dec.dtype, device=w_dec.device)
                plan.active = torch.zeros_like(plan.values)
                for r, rs in clamps:
                    plan.values[r, col[rs.spec.feature]] = rs.value
                    plan.active[r, col[rs.spec.feature]] = 1.0
                plan.encode = loaded.kind.column_encoder(sae, plan.feats)
                plan.w_dec = w_dec[plan.feats]
            out[scope] = plan
        plans[hook] = (loaded, out)
    return plans


def feature_activations(loaded: LoadedSAE, x: torch.Tensor, plan: _ScopePlan) -> torch.Tensor:
    """a_f(x) for the plan's clamped features only: (B, T, m), as sae.encode(x)[..., feats] (see saetui.sae.kinds)."""
    return plan.encode(x)


def _delta(loaded: LoadedSAE, plan: _ScopePlan, x: torch.Tensor) -> torch.Tensor:
    delta = None
    if plan.add is not None:
        delta = plan.add[:, None, :]
    if plan.feats is not None:
        a = feature_activations(loaded, x, plan)
        clamp = ((plan.values[:, None, :] - a) * plan.active[:, None, :]) @ plan.w_dec
        delta = clamp if delta is None else delta + clamp
    return delta
