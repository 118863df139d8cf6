"""The steering hook: one per hooked module, adding SAE decoder directions to the model's own activations.

For a hooked activation x (B, T, d) at absolute positions pos (B, T), and the specs of batch row b:

    add     x += c * W_dec[f]                              (precomputed sum over the row's add specs)
    clamp   x += (v - a_f(x)) * W_dec[f]                   a_f: the SAE's activation of feature f, from
    ablate  clamp with v = 0                               its kind's column encoder (saetui.sae.kinds):
                                                           f's encoder column only where the architecture
                                                           allows, else the full encode

each for the positions its scope covers (saetui.steering.scopes). x itself is never replaced by the
SAE's reconstruction, so what the SAE cannot reconstruct (its error term) stays in the model.

Everything a generation steers is a handful of tensors (`SteeringTables`), so the same hook code runs in
the eager loop, on the static-cache decoder and inside its compiled step (saetui.steering.decode):

    masks   (S, L)      scope s covers absolute position p          (saetui.steering.scopes)
    add     (B, S, d)   per hook: sum of c * direction of row b's add specs in scope s
    feats   (m,)        per hook: the clamped features
    target  (B, S, m)   per hook: v where row b clamps feats[j] in scope s, else 0
    active  (B, S, m)   per hook: 1 where row b clamps feats[j] in scope s, else 0

    delta(x) = M @ add + (M @ target - (M @ active) * a(x)) @ W_dec[feats],   M = masks[:, pos] as (B, T, S)

computed in the SAE's dtype and cast to the activation's dtype and device. S and m may be padded
(zero rows and inactive columns add exactly 0), so a decoder keeps its shapes when the specs change.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Sequence

from saetui.errors import InputError
from saetui.models.hooks import HookSet
from saetui.steering.scopes import scope_masks

if TYPE_CHECKING:
    import torch

    from saetui.models.model import ModelWithHooks
    from saetui.sae.manager import LoadedSAE
    from saetui.steering.spec import ResolvedSpec


@dataclass
class HookTables:
    """What one hook point adds (see the module docstring for the shapes)."""

    hook_name: str
    loaded: LoadedSAE | None  # the SAE whose features are clamped here (None: added directions only)
    add: torch.Tensor  # (B, S, d)
    feats: torch.Tensor | None = None  # (m,) long
    target: torch.Tensor | None = None  # (B, S, m)
    active: torch.Tensor | None = None  # (B, S, m)

    def delta(self, x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        """x (B, T, d) and the scope mask at its positions m (B or 1, T, S) -> what to add, (B, T, d) in the tables' dtype."""
        delta = m @ self.add
        if self.feats is not None:
            sae = self.loaded.sae
            a = self.loaded.kind.encode_columns(sae, x, self.feats)  # (B, T, m)
            gap = m @ self.target - (m @ self.active) * a
            delta = delta + gap @ sae.W_dec.detach()[self.feats]
        return delta


@dataclass
class SteeringTables:
    """The steering of one batch of rows as tensors: scope masks and, per hook point, what it adds.

    `pos` holds the absolute positions (B or 1, T) of the tokens in the forward being run; whoever runs
    the forward sets it (SteeringHooks from the attention mask, the static decoder from its inputs)."""

    rows: int
    scopes: list[str]
    slots: int  # scope slots (S): len(scopes), or more where a decoder's layout pads them
    prompt_len: int | None
    template: list[bool] | None
    hooks: dict[str, HookTables]
    dtype: Any = None
    device: Any = None
    masks: torch.Tensor | None = None  # (S, L)
    pos: torch.Tensor | None = None
    _length: int = field(default=0)

    def ensure_length(self, length: int) -> None:
        """Masks covering positions 0..length-1 (rebuilt only when a longer forward comes)."""
        if self.masks is None or self._length < length:
            self.masks = scope_masks(self.scopes, length, self.prompt_len, self.template,
                                     rows=self.slots,
                                     dtype=self.dtype, device=self.device)
            self._length = length

    def apply(self, hook_name: str, hidden: torch.Tensor) -> torch.Tensor:
        """The hooked activation (B, T, d), or OPT's (B*T, d), with this hook's steering added."""
        tables = self.hooks[hook_name]
        pos = self.pos
        b, t = pos.shape
        x = hidden.reshape(-1, t, hidden.shape[-1]) if hidden.dim() == 2 else hidden  # OPT's fc2 works on (B*T, d)
        if tables.add.shape[0] not in (1, x.shape[0]):
            raise InputError(f"steering was set up for {tables.add.shape[0]} rows but the batch has {x.shape[0]}")
        m = self.masks.to(tables.add.device)[:, pos.to(tables.add.device)].permute(1, 2, 0)  # (B or 1, T, S)
        delta = tables.delta(x, m)
        return (x + delta.to(device=x.device, dtype=x.dtype)).reshape(hidden.shape)


def build_tables(rows: Sequence[Sequence[ResolvedSpec]], *, prompt_len: int | None = None,
                 template: Sequence[bool] | None = None, layout: Layout | None = None) -> SteeringTables:
    """The tables for `rows` (one list of resolved specs per batch row; ResolvedSpec or ResolvedVector).

    layout: the shapes to fill (a static decoder's: its hook points, scope slots and clamp columns, see
    `Layout`); None: exactly what the rows need."""
    import torch

    n = len(rows)
    by_hook: dict[str, list[tuple[int, Any]]] = {}
    owners: dict[str, Any] = {}
    scopes: list[str] = []
    for r, row in enumerate(rows):
        for rs in row:
            if not rs.spec.enabled:
                continue
            owner = rs.owner  # feature specs carry their SAE; saved vectors only a hook point
            hook = rs.hook_name
            by_hook.setdefault(hook, []).append((r, rs))
            if owner is not None:
                owners[hook] = owner
            if rs.spec.scope not in scopes:
                scopes.append(rs.spec.scope)
    if layout is not None:
        if len(scopes) > layout.scopes or any(h not in layout.hooks for h in by_hook):
            raise ValueError("the specs do not fit this layout")  # callers pick the layout from the specs
    hook_names = list(layout.hooks) if layout is not None else list(by_hook)
    dtype, device = _home(rows, owners, layout)
    width = _width(rows, owners, layout)
    s_slots = layout.scopes if layout is not None else len(scopes)
    tables: dict[str, HookTables] = {}
    for hook in hook_names:
        items = by_hook.get(hook, [])
        owner = owners.get(hook) if layout is None else layout.saes.get(hook)
        add = torch.zeros(n, s_slots, width, dtype=dtype, device=device)
        clamps = [(r, rs) for r, rs in items if rs.mode == "clamp"]
        for r, rs in items:
            if rs.mode != "add":
                continue
            direction = rs.direction()  # a feature's decoder row, or a saved vector
            add[r, scopes.index(rs.spec.scope)] += rs.value * direction.to(device=device, dtype=dtype)
        hook_tables = HookTables(hook, owner, add)
        m_slots = layout.clamps.get(hook, 0) if layout is not None else (len({rs.spec.feature for _, rs in clamps}) if clamps else 0)
        if clamps or m_slots:
            feats = sorted({rs.spec.feature for _, rs in clamps})
            if len(feats) > m_slots:
                raise ValueError("the specs do not fit this layout")
            col = {f: i for i, f in enumerate(feats)}
            hook_tables.feats = torch.tensor(feats + [0] * (m_slots - len(feats)), dtype=torch.long, device=device)
            hook_tables.target = torch.zeros(n, s_slots, m_slots, dtype=dtype, device=device)
            hook_tables.active = torch.zeros_like(hook_tables.target)
            for r, rs in clamps:
                s, j = scopes.index(rs.spec.scope), col[rs.spec.feature]
                hook_tables.target[r, s, j] += rs.value
                hook_tables.active[r, s, j] += 1.0
        tables[hook] = hook_tables
    return SteeringTables(n, scopes, s_slots, prompt_len, list(template) if template is not None else None, tables, dtype, device)


@dataclass(frozen=True)
class Layout:
    """The shapes of a static decoder's steering tensors: the hook points it steers (with the SAE at each,
    for clamping), how many scope slots, and how many clamp columns per hook. Specs that fit run on the
    decoder by copying new values into its tensors; the compiled step never changes."""

    hooks: tuple[str, ...]
    saes: dict[str, Any]  # hook -> LoadedSAE (or None where only vectors are added)
    scopes: int
    clamps: dict[str, int]  # hook -> clamp columns

    @property
    def key(self) -> tuple:
        return (self.hooks, tuple(id(self.saes.get(h)) for h in self.hooks), self.scopes, tuple(sorted(self.clamps.items())))

    def fits(self, other: Layout) -> bool:
        """Whether specs needing `other` can run on a decoder of this layout."""
        return (all(h in self.hooks and self.saes.get(h) is other.saes.get(h) for h in other.hooks)
                and other.scopes <= self.scopes and all(m <= self.clamps.get(h, 0) for h, m in other.clamps.items()))


def _bucket(n: int, least: int) -> int:
    """n rounded up to a power of two, at least `least` (few distinct shapes, so few compiled graphs)."""
    out = least
    while out < n:
        out *= 2
    return out


def layout_for(rows: Sequence[Sequence[ResolvedSpec]], loaded_saes: Sequence[LoadedSAE] = ()) -> Layout:
    """A layout that fits `rows` and would also fit specs on any of `loaded_saes` (every loaded SAE's hook
    point is included, with room for 4 scopes and 4 clamped features per clampable SAE), so moving
    between the loaded SAEs, scopes and features needs no new compiled step."""
    saes: dict[str, Any] = {}
    clamps: dict[str, set[int]] = {}
    scopes: set[str] = set()
    for loaded in loaded_saes:
        saes.setdefault(loaded.hook_name, loaded)
    for row in rows:
        for rs in row:
            if not rs.spec.enabled:
                continue
            owner = rs.owner
            hook = rs.hook_name
            if owner is not None:
                saes[hook] = owner
            else:
                saes.setdefault(hook, None)
            scopes.add(rs.spec.scope)
            if rs.mode == "clamp":
                clamps.setdefault(hook, set()).add(rs.spec.feature)
    hooks = tuple(sorted(saes))
    columns = {h: _bucket(len(clamps.get(h, ())), 4) for h in hooks if saes[h] is not None and saes[h].kind.clamp}
    return Layout(hooks, saes, _bucket(len(scopes), 4), columns)


def _home(rows: Sequence[Sequence[Any]], owners: dict[str, Any], layout: Layout | None) -> tuple[Any, Any]:
    """The dtype and device the tables live in: the first SAE's (else the first vector's)."""
    for loaded in [*owners.values(), *((layout.saes.values()) if layout is not None else ())]:
        if loaded is not None:
            return loaded.sae.W_dec.dtype, loaded.sae.W_dec.device
    for row in rows:
        for rs in row:
            if rs.kind == "vector":
                return rs.vector.dtype, rs.vector.device
    import torch

    return torch.float32, "cpu"


def _width(rows: Sequence[Sequence[Any]], owners: dict[str, Any], layout: Layout | None) -> int:
    for loaded in [*owners.values(), *((layout.saes.values()) if layout is not None else ())]:
        if loaded is not None:
            return int(loaded.sae.W_dec.shape[1])
    for row in rows:
        for rs in row:
            if rs.kind == "vector":
                return int(rs.vector.shape[-1])
    return 0


class SteeringHooks:
    """Context manager: steering hooks for `rows` (one list of resolved specs per batch row) on the model
    itself, for plain forwards and the eager decoding loop. Positions come from each forward's attention
    mask (left or right padding) or, without one, from the cache length.

    >>> with SteeringHooks(model, [[], specs]):     # row 0 baseline, row 1 steered
    ...     model.model(input_ids=ids.expand(2, -1), attention_mask=mask)
    """

    def __init__(self, model: ModelWithHooks, rows: Sequence[Sequence[ResolvedSpec]], *, prompt_len: int | None = None,
                 template: Sequence[bool] | None = None) -> None:
        self.model = model
        self.tables = build_tables(rows, prompt_len=prompt_len, template=template)
        self._hooks = HookSet()

    def __enter__(self) -> SteeringHooks:
        try:
            if self.tables.hooks:
                self._hooks.on_call(self.model.model, self._observe)
            for hook_name in self.tables.hooks:
                self._hooks.at(self.model, hook_name, self._make_hook(hook_name))
        except BaseException:
            self._hooks.remove()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._hooks.remove()

    def _observe(self, args: tuple, kwargs: dict) -> None:
        import torch

        ids = kwargs.get("input_ids", args[0] if args else None)
        if ids is None:
            ids = kwargs["inputs_embeds"]
        b, t = ids.shape[:2]
        mask = kwargs.get("attention_mask")
        if isinstance(mask, torch.Tensor) and mask.dim() == 2 and mask.shape[1] >= t:
            # Left padding and cached steps alike: a token's position is the count of real tokens before it.
            self.tables.pos = (mask.long().cumsum(-1) - 1)[:, -t:].clamp(min=0)
            length = mask.shape[1]
        else:
            from saetui.models.hf_compat import cache_length

            start = cache_length(kwargs)
            self.tables.pos = torch.arange(start, start + t, device=ids.device).expand(b, t)
            length = start + t
        self.tables.ensure_length(length)

    def _make_hook(self, hook_name: str):
        def steer(hidden: torch.Tensor) -> torch.Tensor:
            return self.tables.apply(hook_name, hidden)

        return steer
