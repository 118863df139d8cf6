"""Compiled steered decoding: a static KV cache, steering as tensors, and one `torch.compile`d decode step.

The eager loop (`SteeringEngine.stream`) is bound by Python and kernel launches on a GPU at batch 1.
Here the KV cache is a transformers `StaticCache` (fixed shapes, fixed addresses), every steering
choice is a tensor (per scope: the added (B, d) sum, the clamped features' targets, and the scope's
window [lo, hi) of absolute positions), and the hooks compute

    x + sum over scopes of  delta_scope(x) * (lo <= pos < hi)

with no Python branch that depends on the step, so the decode step can be compiled once
(`mode="reduce-overhead"`, i.e. CUDA graphs, on CUDA; the default mode elsewhere) and replayed.
The prompt (prefill) runs eagerly through the same hooks; each step is `torch.compile`d.

What it yields is what the eager loop yields (same Piece objects, greedy tokens identical: see
tests/core/test_compiled.py). A compilation that fails falls back to the same step run eagerly,
with one notice (`saetui.files.notice`) per process.

Hooks: registered when a generation starts and removed in `finally` when it ends; they act only while
a step of this generation runs (`active`), so an analysis run between two tokens is not steered.
A decoder (compiled step + static cache) is kept per model and batch shape and reused by later
generations: the steering tensors are copied into it, never baked into the graph.
"""

from __future__ import annotations

import contextlib
import os
import threading
import weakref
from typing import TYPE_CHECKING, Any, Iterator, Sequence

from saetui.errors import InputError
from saetui.models.hooks import HookSet
from saetui.steering.hooks import _delta, build_plans

if TYPE_CHECKING:
    import torch

    from saetui.steering.generate import GenerationSettings, Piece, SteeringEngine

_BIG = 2**62  # "no end" for a scope window
_BUCKET = 256  # static cache lengths are rounded up to a multiple of this (fewer recompiles)
_NOTICE_GIVEN = False
_DECODERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # hf model -> {key: _Decoder}
_LOCK = threading.Lock()
#: torch.compile backend (None: inductor). Tests and benchmark dry runs use "aot_eager": the same tracing,
#: guards and hooks, no code generation (minutes on a small CPU).
BACKEND: str | None = os.environ.get("SAETUI_COMPILE_BACKEND") or None


def default_compile(device: Any) -> bool:
    """Compiled decoding is the default on CUDA only (on CPU compiling costs more than it saves)."""
    return getattr(device, "type", str(device)).startswith("cuda")


def supports_static_decoding(hf_model: Any) -> bool:
    """Whether the model can decode with a StaticCache and a compiled step (transformers' own flag)."""
    return bool(getattr(hf_model, "_can_compile_fullgraph", False))


def scope_window(scope: str, prompt_len: int) -> tuple[int, int]:
    """A spec's position scope as the absolute window [lo, hi) it covers (see SteeringSpec.scope)."""
    if scope == "all":
        return 0, _BIG
    if scope == "prompt":
        return 0, prompt_len
    if scope == "generated":
        return prompt_len, _BIG
    start, _, end = scope.partition(":")
    return int(start or 0), int(end) if end else _BIG


class _TensorSteering:
    """The steering of one generation as tensors, and the hooks that apply it to every forward of it."""

    def __init__(self, model: Any, rows: list[list[Any]], prompt_len: int) -> None:
        import torch

        self.model = model
        self.n = len(rows)
        self.active = False
        self.pos: torch.Tensor | None = None  # (T,) absolute positions of the tokens in the running forward
        self.plans: list[tuple[str, Any, list[tuple[Any, torch.Tensor, torch.Tensor]]]] = []
        for hook_name, (loaded, scopes) in build_plans(rows).items():
            entries = []
            for scope, plan in scopes.items():
                lo, hi = scope_window(scope, prompt_len)
                dev = (plan.add if plan.add is not None else plan.w_dec).device
                entries.append((plan, torch.tensor(lo, device=dev), torch.tensor(hi, device=dev)))
            self.plans.append((hook_name, loaded, entries))

    def hooks(self) -> HookSet:
        hooks = HookSet()
        try:
            for hook_name, loaded, entries in self.plans:
                module, side = self.model.hook_module(self.model.hook_point(hook_name))
                add = hooks.on_input if side == "input" else hooks.on_output
                add(module, self._make_hook(loaded, entries), where=hook_name)
        except BaseException:
            hooks.remove()
            raise
        return hooks

    def _make_hook(self, loaded: Any, entries: list):
        n_rows = self.n

        def steer(hidden: torch.Tensor) -> torch.Tensor | None:
            if not self.active:
                return None
            x = hidden.reshape(n_rows, -1, hidden.shape[-1]) if hidden.dim() == 2 else hidden  # OPT's fc2: (B*T, d)
            if x.shape[0] != n_rows:
                raise InputError(f"steering was set up for {n_rows} rows but the batch has {x.shape[0]}")
            out = x
            for plan, lo, hi in entries:
                delta = _delta(loaded, plan, x).to(device=x.device, dtype=x.dtype)
                pos = self.pos.to(lo.device)
                inside = ((pos >= lo) & (pos < hi)).to(device=x.device)[None, :, None]  # (1, T, 1)
                out = out + delta * inside
            return out.reshape(hidden.shape)

        return steer


class _Decoder:
    """A static KV cache for (rows, length) and the decode step over it, compiled on first use."""

    def __init__(self, engine: SteeringEngine, n: int, max_len: int, compile: bool) -> None:
        import torch
        from transformers import StaticCache

        self.hf = engine.model.model
        self.cache_kw = engine._cache_kw
        self.keep = engine._keep_logits
        self.cache = StaticCache(config=self.hf.config, max_cache_len=max_len)
        self.n, self.max_len = n, max_len
        self.compiled = None
        if compile:
            kw: dict[str, Any] = {"backend": BACKEND} if BACKEND else {}
            if not BACKEND and default_compile(engine.model.device):
                kw["mode"] = "reduce-overhead"  # CUDA graphs
            self.compiled = torch.compile(self._step, fullgraph=False, dynamic=False, **kw)

    def _step(self, input_ids: torch.Tensor, position_ids: torch.Tensor) -> torch.Tensor:
        kwargs: dict[str, Any] = {self.cache_kw: self.cache, "use_cache": True}
        if self.keep:
            kwargs["logits_to_keep"] = 1
        out = self.hf(input_ids=input_ids, position_ids=position_ids, **kwargs)
        return out.logits[:, -1, :]

    def prefill(self, ids: torch.Tensor) -> torch.Tensor:
        self.cache.reset()
        return self._step(ids, _positions(0, ids.shape[1], ids))

    def step(self, tokens: torch.Tensor, pos: int) -> torch.Tensor:
        """Logits (n, vocab) after feeding `tokens` (n,) at absolute position `pos`."""
        global _NOTICE_GIVEN
        input_ids, position_ids = tokens[:, None], _positions(pos, 1, tokens)
        if self.compiled is not None:
            try:
                logits = self.compiled(input_ids, position_ids)
                return logits.clone()  # CUDA graphs overwrite their outputs on the next replay
            except Exception as exc:  # noqa: BLE001 - any compiler failure: decode eagerly from here on
                self.compiled = None
                if not _NOTICE_GIVEN:
                    from saetui.files import notice

                    _NOTICE_GIVEN = True
                    notice(f"compiled decoding failed ({type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}); "
                           "generating eagerly (pass --no-compile to skip the attempt)")
        # the static cache write at `pos` is idempotent, so a failed compiled step is simply run again
        return self._step(input_ids, position_ids)


def _positions(start: int, t: int, like: torch.Tensor) -> torch.Tensor:
    import torch

    return torch.arange(start, start + t, device=like.device)[None, :].expand(like.shape[0], t)


def _decoder(engine: SteeringEngine, n: int, needed: int, compile: bool) -> _Decoder:
    context = engine.model.context_length
    max_len = -(-needed // _BUCKET) * _BUCKET
    if context is not None:
        max_len = max(needed, min(max_len, context))
    with _LOCK:
        per_model = _DECODERS.setdefault(engine.model.model, {})
        key = (n, max_len, compile)
        if key not in per_model:
            per_model.clear()  # one static cache per model at a time: they are large on real models
            per_model[key] = _Decoder(engine, n, max_len, compile)
        return per_model[key]


def compiled_stream(
    engine: SteeringEngine,
    prompt: str,
    resolved: Sequence[Sequence[Any]],
    cfg: GenerationSettings,
    seeds: Sequence[int],
    *,
    stop_event: threading.Event | None = None,
    lock: Any = None,
    compile: bool = True,
) -> Iterator[Piece]:
    """`SteeringEngine.stream` on a static cache with a compiled step (compile=False: the same, uncompiled).

    `resolved`: one list of resolved specs per row. Yields the Pieces the eager loop would."""
    import torch

    from saetui.steering.generate import Piece, _pick

    model = engine.model
    prompt_ids = model.tokenize(prompt).input_ids  # (1, T)
    n, t = len(resolved), prompt_ids.shape[1]
    device = model.device
    samplers = [torch.Generator(device=device).manual_seed(int(s)) for s in seeds] if cfg.temperature > 0 else None
    eos = model.tokenizer.eos_token_id
    tokenizer = model.tokenizer
    generated: list[list[int]] = [[] for _ in range(n)]
    shown = [""] * n
    finished = [False] * n
    guard = lock if lock is not None else contextlib.nullcontext()
    with guard:
        decoder = _decoder(engine, n, t + cfg.max_new_tokens, compile)
        steering = _TensorSteering(model, [list(r) for r in resolved], t)
        hooks = steering.hooks()
    try:
        nxt: torch.Tensor | None = None
        for i in range(cfg.max_new_tokens):
            if stop_event is not None and stop_event.is_set():
                return
            pieces: list[Piece] = []
            with guard, torch.inference_mode():  # one forward step; the lock is released before yielding
                steering.active = True
                try:
                    if nxt is None:
                        steering.pos = torch.arange(t, device=device)
                        logits = decoder.prefill(prompt_ids.expand(n, t))
                    else:
                        steering.pos = torch.full((1,), t + i - 1, device=device, dtype=torch.long)
                        logits = decoder.step(nxt, t + i - 1)
                finally:
                    steering.active = False
                nxt = _pick(logits, cfg, samplers)
                chosen = nxt.tolist()
                logprobs = logits.float().log_softmax(-1).gather(-1, nxt[:, None])[:, 0].tolist()
                for r, tok in enumerate(chosen):
                    if finished[r]:
                        continue
                    generated[r].append(tok)
                    finished[r] = tok == eos
                    text = tokenizer.decode(generated[r], skip_special_tokens=True)
                    piece = "" if text.endswith("\ufffd") else text[len(shown[r]):]
                    if piece:
                        shown[r] = text
                    pieces.append(Piece(r, tok, piece, logprobs[r]))
                if eos is not None and any(finished):
                    nxt = torch.where(torch.tensor(finished, device=nxt.device), torch.full_like(nxt, eos), nxt)
            yield from pieces
            if all(finished):
                return
    finally:
        with guard:
            hooks.remove()
