"""The static decoder: a twin of the model on a static KV cache, its step plain, compiled, or a CUDA graph.

A `Decoder` holds a private twin of the model (the same parameter tensors, its own module objects, so its
hooks never touch the model the rest of saetui uses), a static KV cache for (rows, length), and the steering
as fixed-address tensors (saetui.steering.hooks.SteeringTables) that each generation fills in place. Its step
is plain, `torch.compile`d (one graph per batch shape: the cache's fill level, the positions and every
steering choice are tensors), and on CUDA captured in a CUDA graph and replayed.

First steer without a long wait (CUDA): the first generation for a batch shape runs on an uncompiled decoder
(streaming at once), and the compiled step for that shape is built in a background thread on a decoder of
its own, started when that generation ends: tracing holds the GIL, and a forward gives it away in every
torch op, so tokens streamed during a compile wait for it (it runs with a short switch interval,
`_switch_often`, for generations that do overlap it). Later generations use the compiled step once it is
ready (`compile_status` says which). Every compile, in the background or asked for, runs in one thread that
lives as long as the process (`_Compiler`). Decoders are kept per model, batch shape and layout (the hook points and table sizes,
saetui.steering.hooks.Layout): a new spec, coefficient, scope or feature of a loaded SAE is copied into
their tensors and needs no new compile.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import queue
import threading
import types
import warnings
import weakref
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

from saetui.models.hooks import HookSet
from saetui.steering.hooks import Layout, SteeringTables, build_tables, layout_for

if TYPE_CHECKING:
    import torch

    from saetui.models.model import ModelWithHooks

#: torch.compile backend (None: inductor). Tests and benchmark dry runs use "aot_eager": the same tracing,
#: guards and hooks, no code generation (minutes on a small CPU).
BACKEND: str | None = os.environ.get("SAETUI_COMPILE_BACKEND") or None
#: CUDA graphs of a compiled step: "manual" (our own capture of a default-mode compiled step: 1,047 tokens/s
#: on the `small` preset on an H200), "inductor" (torch.compile's mode="reduce-overhead": 706 there) or "off";
#: the uncompiled step is captured by us too unless "off".
GRAPHS: str = os.environ.get("SAETUI_CUDA_GRAPHS", "manual")
# Static cache lengths: 256, 512, 1024, ... (each a compile of its own, ~40 s for gemma-2-2b on an H200). Doubling,
# not multiples of 256: a chat growing to 2,000 tokens meets 4 lengths, not 8. The price: the step attends over
# up to twice the positions in use, at gemma-2-2b size ~106 kB of keys and values a position (2,048: ~4% of
# the 5.2 GB of weights read a token).
_BUCKET = 256
_notices_given: set[str] = set()


def _notice_once(key: str, text: str) -> None:
    if key not in _notices_given:
        from saetui.files import notice

        _notices_given.add(key)
        notice(text)


def twin_of(hf_model: Any) -> Any:
    """A copy of the model's module tree that shares every parameter and buffer tensor (no weight is
    copied): its own module objects and hook dicts, so hooks on it never reach the original."""
    memo = {id(t): t for t in (*hf_model.parameters(), *hf_model.buffers())}
    return copy.deepcopy(hf_model, memo)


def _fresh_function(fn: Any, name: str) -> Any:
    """`fn` with a code object of its own: torch.compile keeps its cache of graphs per code object, so
    each decoder's graphs are its own (and go with it)."""
    code = fn.__code__.replace(co_name=name)
    return types.FunctionType(code, fn.__globals__, name, fn.__defaults__, fn.__closure__)


def _step_impl(decoder: Decoder, input_ids: torch.Tensor, position_ids: torch.Tensor) -> torch.Tensor:
    """One forward of the twin on the static cache (the body that is compiled and captured)."""
    decoder.tables.pos = position_ids
    kwargs: dict[str, Any] = {decoder.cache_kw: decoder.cache, "use_cache": True}
    if decoder.keep:
        kwargs["logits_to_keep"] = 1
    out = decoder.twin(input_ids=input_ids, position_ids=position_ids, **kwargs)
    return out.logits[:, -1, :]


class Decoder:
    """A static KV cache for (n rows, max_len positions), steering tensors of one layout, and the decode
    step over them: plain, or compiled (`compile=True`), captured in a CUDA graph on CUDA."""

    def __init__(self, model: ModelWithHooks, n: int, max_len: int, layout: Layout, *, compile: bool) -> None:
        import torch

        from saetui.models.hf_compat import cache_kwarg, keeps_last_logits, static_cache

        self.device = model.device  # (the model itself is not kept: a decoder must not keep a replaced model alive)
        self.n, self.max_len, self.layout = n, max_len, layout
        self.twin = twin_of(model.model)
        self.cache = static_cache(self.twin, max_len)
        self.cache_kw = cache_kwarg(self.twin)
        self.keep = keeps_last_logits(self.twin)
        self.tables: SteeringTables = build_tables([[] for _ in range(n)], layout=layout)
        self.tables.ensure_length(max_len)
        self._hooks = HookSet()
        for hook_name in layout.hooks:
            self._hooks.at(model, hook_name, self._make_hook(hook_name), twin=self.twin)
        self._ids = torch.zeros(n, 1, dtype=torch.long, device=self.device)  # the step's inputs, at fixed addresses
        self._pos = torch.zeros(n, 1, dtype=torch.long, device=self.device)
        self.compiled = compile
        self._fn = _fresh_function(_step_impl, f"saetui_step_{id(self):x}")  # torch.compile'd by `warm`
        # inductor records and replays the CUDA graph itself (mode="reduce-overhead"), else our own capture:
        # of the uncompiled step, or of a compiled one
        self._inductor_graphs = compile and self.device.type == "cuda" and GRAPHS == "inductor" and not BACKEND
        self.graphs = self.device.type == "cuda" and GRAPHS != "off" and not self._inductor_graphs
        self.graph_error: str | None = None
        self._graph: Any = None
        self._out: torch.Tensor | None = None
        self.ready = not compile  # a compiled decoder is ready once warmed (compiled and run once)
        self.failed: str | None = None
        self.busy = False

    def _make_hook(self, hook_name: str):
        def steer(hidden: torch.Tensor) -> torch.Tensor:
            return self.tables.apply(hook_name, hidden)

        return steer

    def load(self, rows: Sequence[Sequence[Any]], prompt_len: int, template: Sequence[bool] | None) -> None:
        """Copy the steering of `rows` into the decoder's tensors (their addresses stay: graphs read them)."""
        fresh = build_tables(rows, prompt_len=prompt_len, template=template, layout=self.layout)
        fresh.ensure_length(self.max_len)
        self.tables.masks.copy_(fresh.masks)
        for hook, mine in self.tables.hooks.items():
            new = fresh.hooks[hook]
            for name in ("add", "feats", "target", "active"):
                if getattr(mine, name) is not None:
                    getattr(mine, name).copy_(getattr(new, name))

    def prefill(self, ids: torch.Tensor) -> torch.Tensor:
        import torch

        from saetui.models.hf_compat import set_cache_length

        set_cache_length(self.cache, 0)
        t = ids.shape[1]
        pos = torch.arange(t, device=ids.device)[None, :].expand(ids.shape[0], t)
        return _step_impl(self, ids, pos)  # the prompt runs once, uncompiled

    def step(self, tokens: torch.Tensor, pos: int) -> torch.Tensor:
        """Logits (n, vocab) after feeding `tokens` (n,) at absolute position `pos` (the cache holds 0..pos-1)."""
        from saetui.models.hf_compat import set_cache_length

        self._ids.copy_(tokens[:, None])
        self._pos.fill_(pos)
        if self._graph is not None:
            self._graph.replay()
            return self._out.clone()
        if self.graphs and self.failed is None:
            self._capture(pos)
            if self._graph is not None:
                self._graph.replay()
                return self._out.clone()
        if self.compiled and self.failed is None:
            try:
                return self._fn(self, self._ids, self._pos).clone()
            except Exception as exc:  # noqa: BLE001 - any compiler failure: this decoder steps eagerly from here on
                self._fail(exc)
                set_cache_length(self.cache, pos)
        return _step_impl(self, self._ids, self._pos).clone()

    def _capture(self, pos: int) -> None:
        """Record one step in a CUDA graph (after two warm-up steps on a side stream); on failure, step without one."""
        import torch

        from saetui.models.hf_compat import set_cache_length

        fn = self._fn if self.compiled else (lambda d, i, p: _step_impl(d, i, p))
        try:
            stream = torch.cuda.Stream(self.device)
            stream.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(stream):
                for _ in range(2):  # they write positions pos and pos+1, which the real steps overwrite before reading
                    fn(self, self._ids, self._pos)
                    set_cache_length(self.cache, pos)
            torch.cuda.current_stream(self.device).wait_stream(stream)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                self._out = fn(self, self._ids, self._pos)
            set_cache_length(self.cache, pos)
            self._graph = graph
        except Exception as exc:  # noqa: BLE001 - a step that cannot be captured still runs, without the graph
            # (the model's own code may copy a constant to the GPU inside its step, as transformers' eager
            # attention mask does: a compiled step has none, the uncompiled one runs as it is until compiled)
            self._graph = None
            self.graphs = False
            self.graph_error = f"{type(exc).__name__}: {_first(exc)}"
            set_cache_length(self.cache, pos)
            if self.compiled:  # unexpected: a compiled step has no host copies; say so once
                _notice_once("graph", f"CUDA graph capture of the compiled step failed ({self.graph_error}); decoding without it")

    def _static_addresses(self) -> None:
        """Tell the compiler which tensors keep their address for the decoder's life (the steering tables, the
        SAEs' weights, the step's inputs), so inductor's CUDA graphs read them in place instead of copying them."""
        import torch

        tensors = [self.tables.masks, self._ids, self._pos]
        for tables in self.tables.hooks.values():
            tensors += [t for t in (tables.add, tables.feats, tables.target, tables.active) if t is not None]
            if tables.loaded is not None:
                tensors += list(tables.loaded.sae.parameters())
        for t in tensors:
            torch._dynamo.mark_static_address(t)

    def _fail(self, exc: BaseException) -> None:
        self.failed = f"{type(exc).__name__}: {_first(exc)}"
        self.ready = True
        _notice_once("compile", f"compiled decoding failed ({self.failed}); generating with the uncompiled step "
                                "(pass --no-compile to skip the attempt)")

    def _compile(self) -> None:
        """Wrap the step in torch.compile. Here and not in __init__: the first call of torch.compile imports
        dynamo and the backend (0.4-1.3 s on a CPU), which a background build must not add to the first token."""
        import torch

        from saetui.models.hf_compat import thread_safe_compile_state

        thread_safe_compile_state()  # other threads may run forwards while this step compiles
        kw: dict[str, Any] = {"backend": BACKEND} if BACKEND else {}
        if self._inductor_graphs:
            kw["mode"] = "reduce-overhead"
            self._static_addresses()
        self._fn = torch.compile(self._fn, fullgraph=False, dynamic=False, **kw)

    def warm(self) -> None:
        """Compile the step now (prefill a dummy prompt, then run the compiled step once), quietly. Run it in
        the compile thread (`_compiler().submit(decoder.warm)`)."""
        import torch

        try:
            with _quiet_compiler(), torch.inference_mode():
                self._compile()
                ids = torch.zeros(self.n, 1, dtype=torch.long, device=self.device)
                self.prefill(ids)
                self._ids.zero_()
                self._pos.fill_(1)
                self._fn(self, self._ids, self._pos)
        except Exception as exc:  # noqa: BLE001
            self._fail(exc)
        self.ready = True

    def close(self) -> None:
        """Remove the hooks from the twin and drop the graph (the decoder is no longer used)."""
        self._hooks.remove()
        self._graph = None


def _first(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else ""


@contextlib.contextmanager
def _quiet_compiler() -> Iterator[None]:
    """No dynamo/inductor warnings on the user's terminal while a step compiles (they would garble the app)."""
    loggers = [logging.getLogger(n) for n in ("torch._dynamo", "torch._inductor", "torch.fx", "torch._functorch")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


class StaticRunner:
    """A Decoder used by one generation (held busy until it ends). `after_end` runs when the generation ends
    (holding the caller's lock): a background compile started then does not stall this generation's tokens."""

    def __init__(self, decoder: Decoder, pool: _Pool, after_end: Any = None) -> None:
        self.decoder = decoder
        self.device = decoder.device
        self._pool = pool
        self._after_end = after_end

    def prefill(self, ids: torch.Tensor) -> torch.Tensor:
        return self.decoder.prefill(ids)

    def step(self, tokens: torch.Tensor, pos: int) -> torch.Tensor:
        logits = self.decoder.step(tokens, pos)
        if self.decoder.graph_error is not None and not self.decoder.compiled:
            self._pool.plain_graphs = False
        return logits

    def close(self) -> None:
        self.decoder.busy = False
        if self._after_end is not None:
            start, self._after_end = self._after_end, None
            start()


# ---------------------------------------------------------------------- which decoder a generation gets
class _Pool:
    """The decoders of one model, most recently used last: for each batch shape at most one uncompiled
    and one compiled decoder (an app alternates compare, sweep and steer: each keeps its compiled step)."""

    SIZE = 6  # decoders kept per model (each holds a KV cache for its rows and length)

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.decoders: list[Decoder] = []
        self.building: set[tuple] = set()  # (n, max_len) of compiled decoders being built in the background
        self.plain_graphs = True  # False once the model's uncompiled step failed CUDA graph capture (not retried)

    def find(self, n: int, max_len: int, want: Layout, compiled: bool) -> Decoder | None:
        for decoder in reversed(self.decoders):
            if (decoder.n, decoder.max_len, decoder.compiled) == (n, max_len, compiled) and decoder.layout.fits(want):
                return decoder
        return None

    def add(self, decoder: Decoder) -> None:
        old = self.find(decoder.n, decoder.max_len, decoder.layout, decoder.compiled)
        if old is not None and not old.busy:  # superseded by one whose layout covers more
            self.decoders.remove(old)
            old.close()
        self.decoders.append(decoder)
        for extra in [d for d in self.decoders[:-1] if not d.busy][: max(0, len(self.decoders) - self.SIZE)]:
            self.decoders.remove(extra)
            extra.close()

    def touch(self, decoder: Decoder) -> None:
        self.decoders.remove(decoder)
        self.decoders.append(decoder)


_POOLS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # hf model -> _Pool
_POOL_LOCK = threading.Lock()


def _pool(model: ModelWithHooks) -> _Pool:
    with _POOL_LOCK:
        return _POOLS.setdefault(model.model, _Pool())


def cache_length_for(model: ModelWithHooks, needed: int) -> int:
    """Static cache length for `needed` positions: the smallest of 256, 512, 1024, ... that holds them, within
    the model's context."""
    max_len = _BUCKET
    while max_len < needed:
        max_len *= 2
    context = model.context_length
    if context is not None:
        max_len = max(needed, min(max_len, context))
    return max_len


def supports_static(model: ModelWithHooks) -> bool:
    """Whether the model can decode on a static cache: transformers' own flag, and the whole model on one device."""
    from saetui.models.hf_compat import can_compile_fullgraph

    devices = set(getattr(model.model, "hf_device_map", {}).values() or [])
    return can_compile_fullgraph(model.model) and len(devices) <= 1


def static_runner(model: ModelWithHooks, rows: Sequence[Sequence[Any]], loaded_saes: Sequence[Any], needed: int,
                  *, compile: bool | None, prompt_len: int, template: Sequence[bool] | None) -> StaticRunner:
    """The decoder a generation of `rows` runs on, loaded with their steering. Call it holding the lock that
    guards the model's forwards (a new decoder copies the model's module tree).

    compile=True: the compiled decoder, compiled now if it is not yet (blocking). compile=False: the
    uncompiled one. compile=None: the compiled decoder if it is ready; else the uncompiled one now, and the
    compiled one built in the background."""
    n = len(rows)
    max_len = cache_length_for(model, needed)
    want = layout_for(rows, loaded_saes)
    pool = _pool(model)
    after_end = None
    with pool.lock:
        decoder = pool.find(n, max_len, want, True) if compile is not False else None
        usable = decoder is not None and decoder.ready and not decoder.busy and decoder.failed is None
        if compile is True and not usable:
            decoder = Decoder(model, n, max_len, want, compile=True)
            pool.add(decoder)
        elif not usable:
            if compile is None and decoder is None and (n, max_len) not in pool.building:
                # made and compiled once this generation ends (tracing holds the GIL most of the time: tokens
                # streamed meanwhile would wait for it)
                after_end = _build_in_background(pool, (n, max_len), lambda: Decoder(model, n, max_len, want, compile=True))
            decoder = pool.find(n, max_len, want, False)
            if decoder is None or decoder.busy:
                decoder = Decoder(model, n, max_len, want, compile=False)
                decoder.graphs = decoder.graphs and pool.plain_graphs
                pool.add(decoder)
        pool.touch(decoder)
        decoder.busy = True
    try:
        if decoder.compiled and not decoder.ready:
            _compiler().submit(decoder.warm).result()
        decoder.load(rows, prompt_len, template)
    except BaseException:
        decoder.busy = False
        if after_end is not None:
            after_end()
        raise
    return StaticRunner(decoder, pool, after_end)


def _build_in_background(pool: _Pool, key: tuple[int, int], make: Any) -> Any:
    """A function that makes a compiled decoder (`make()`, under the caller's lock: it copies the model's
    module tree) and compiles its step in the compile thread (_Compiler); the decoder serves the next generations of its shape
    (`key`: rows, cache length) once ready. The shape counts as building from now on (no second build)."""
    pool.building.add(key)

    def build(decoder: Decoder) -> None:
        try:
            with _switch_often():
                decoder.warm()
            with pool.lock:
                pool.add(decoder)
        finally:
            with pool.lock:
                pool.building.discard(key)

    def start() -> None:
        try:
            decoder = make()
        except Exception as exc:  # noqa: BLE001 - e.g. no memory for a second static cache: stay uncompiled
            with pool.lock:
                pool.building.discard(key)
            _notice_once("compile", f"no compiled decoding ({type(exc).__name__}: {_first(exc)}); generating with the uncompiled step")
            return
        _compiler().submit(lambda: build(decoder))

    return start


class _Compiler:
    """The one thread every step is compiled in, alive for the whole process (a daemon: quitting never waits
    for a compile). On torch 2.11 without a GPU, the first thread to enter dynamo's fake-tensor mode sets a
    CUDA device guard that another thread's entry crashes on once the first thread has ended (a segfault in
    FakeTensorMode.__enter__, `torch._C._ensureCUDADeviceGuardSet`; torch 2.13 does not): so no compile runs in
    a short-lived thread, a generation's worker or a build's own. Compiles run one at a time, in order."""

    def __init__(self) -> None:
        self._jobs: queue.Queue[tuple[Callable[[], Any], Future]] = queue.Queue()
        self.thread = threading.Thread(target=self._run, name="saetui-compile", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            job, done = self._jobs.get()
            try:
                done.set_result(job())
            except BaseException as exc:  # noqa: BLE001 - handed to whoever waits on it
                done.set_exception(exc)

    def submit(self, job: Callable[[], Any]) -> Future:
        done: Future = Future()
        self._jobs.put((job, done))
        return done


_COMPILER: _Compiler | None = None


def _compiler() -> _Compiler:
    global _COMPILER
    with _POOL_LOCK:
        if _COMPILER is None:
            _COMPILER = _Compiler()
        return _COMPILER


#: while a step compiles in the background, the GIL changes hands after this many seconds (Python's default:
#: 5 ms). A thread running a forward releases the GIL in every torch op and then waits for the compiling
#: thread to give it back: at 5 ms a wait, a 26-layer uncompiled step (~2,000 ops) took >1 s a token.
_COMPILE_SWITCH_INTERVAL = 1e-5


@contextlib.contextmanager
def _switch_often() -> Iterator[None]:
    """sys.setswitchinterval(_COMPILE_SWITCH_INTERVAL) while a background compile runs, restored after (builds
    run one at a time, in the compile thread)."""
    import sys

    saved = sys.getswitchinterval()
    sys.setswitchinterval(min(saved, _COMPILE_SWITCH_INTERVAL))
    try:
        yield
    finally:
        sys.setswitchinterval(saved)


def compile_status(model: ModelWithHooks) -> str:
    """How `model` decodes now: "eager" (no static decoder yet), "compiling" (a step compiles in the
    background), "compiled" (a compiled step is ready) or "uncompiled" (static decoders, none compiled)."""
    pool = _POOLS.get(model.model)
    if pool is None or not (pool.decoders or pool.building):
        return "eager"
    if pool.building:
        return "compiling"
    if any(d.compiled and d.ready and d.failed is None for d in pool.decoders):
        return "compiled"
    return "uncompiled"


def describe(model: ModelWithHooks) -> list[dict[str, Any]]:
    """The decoders kept for `model`: rows, cache length, compiled, and the CUDA graph's state (for benchmarks)."""
    pool = _POOLS.get(model.model)
    return [{"rows": d.n, "length": d.max_len, "compiled": d.compiled, "failed": d.failed,
             "cuda_graph": "captured" if d._graph is not None else (d.graph_error or ("pending" if d.graphs else "off"))}
            for d in (pool.decoders if pool is not None else [])]


def wait_compiled(model: ModelWithHooks, timeout: float | None = None) -> bool:
    """Block until no background compile of `model` runs (benchmarks and tests); False on timeout."""
    import time

    pool = _POOLS.get(model.model)
    deadline = None if timeout is None else time.monotonic() + timeout
    while pool is not None and pool.building:
        if deadline is not None and time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def forget(model: ModelWithHooks) -> None:
    """Drop every decoder of `model` (a model being replaced; tests). A compile still running in the
    background finishes into the dropped pool and is freed with it."""
    pool = _POOLS.pop(model.model, None)
    if pool is not None:
        for decoder in pool.decoders:
            decoder.close()
