"""One decoding loop: prefill, step, sampling, stop ids, streamed pieces and the stop event, written once.

`decode` is the loop every generation runs. What runs a forward is a runner, two kinds:

    EagerRunner    (here) the model itself with its own (dynamic) KV cache and attention mask; the steering
                   hooks (saetui.steering.hooks.SteeringHooks) are entered for each forward. The CPU default.
    StaticRunner   (saetui.steering.static) a private twin of the model on a static KV cache, its step plain,
                   compiled, or replayed as a CUDA graph. The CUDA default.

Before the loop, `room_to_generate` says how many new tokens fit in the model's context after the prompt
(never cut to fit: a prompt that fills the context is refused).

Both apply the same steering tables through the same hook code, with the same scope rules
(saetui.steering.scopes), so static and compiled decoding give the eager loop's tokens
(tests/core/test_decode.py).
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterator, Sequence

from saetui.errors import InputError
from saetui.settings import MIN_TEMPERATURE, GenerationSettings  # noqa: F401 - defaults live in saetui.settings

if TYPE_CHECKING:
    import torch

    from saetui.models.chat import ChatTokens
    from saetui.models.model import ModelWithHooks
    from saetui.steering.hooks import SteeringHooks


# ---------------------------------------------------------------------- the loop
@dataclass
class Piece:
    """One generated token of one row, and the text it adds (may be "" until a character completes)."""

    row: int
    token_id: int
    text: str
    logprob: float | None = None  # log p(token) under the row's own (steered) model at temperature 1


def decode(
    runner: Any,
    prompt_ids: Sequence[int],
    n: int,
    cfg: GenerationSettings,
    seeds: Sequence[int],
    stops: set[int],
    tokenizer: Any,
    *,
    stop_event: threading.Event | None = None,
    lock: Any = None,
) -> Iterator[Piece]:
    """Yield Piece(row, token, text, logprob) for each of `n` rows as each token is chosen.

    The runner's `prefill(ids)` and `step(tokens, pos)` each run one forward and return the last
    position's logits (n, vocab). `lock` is held for each forward and released before the pieces are
    yielded. `stop_event` is checked before every token. A row ends at any of `stops`; finished rows
    keep decoding that token, unreported. The runner is closed however the loop ends."""
    import torch

    device = runner.device
    samplers = [torch.Generator(device=device).manual_seed(int(s)) for s in seeds] if cfg.temperature > 0 else None
    fill = next(iter(sorted(stops)), None) if tokenizer.eos_token_id not in stops else tokenizer.eos_token_id
    guard = lock if lock is not None else contextlib.nullcontext()
    t = len(prompt_ids)
    generated: list[list[int]] = [[] for _ in range(n)]
    tails = [_TextTail(tokenizer) for _ in range(n)]
    finished = [False] * n
    nxt: torch.Tensor | None = None
    try:
        for i in range(cfg.max_new_tokens):
            if stop_event is not None and stop_event.is_set():
                return
            pieces: list[Piece] = []
            with guard, torch.inference_mode():  # one forward; the lock is released before yielding
                if nxt is None:
                    ids = torch.tensor([list(prompt_ids)], dtype=torch.long, device=device).expand(n, t)
                    logits = runner.prefill(ids)
                else:
                    logits = runner.step(nxt, t + i - 1)
                nxt = _pick(logits, cfg, samplers)  # (n,)
                chosen = nxt.tolist()
                logprobs = logits.float().log_softmax(-1).gather(-1, nxt[:, None])[:, 0].tolist()
            for r, tok in enumerate(chosen):
                if finished[r]:
                    continue
                generated[r].append(tok)
                finished[r] = tok in stops
                pieces.append(Piece(r, tok, tails[r].add(tok), logprobs[r]))
            if any(finished) and fill is not None:
                nxt = torch.where(torch.tensor(finished, device=nxt.device), torch.full_like(nxt, fill), nxt)
            yield from pieces
            if all(finished):
                return
    finally:
        with guard:
            runner.close()


class _TextTail:
    """The text each new token adds, from a window of the last few tokens (the incremental detokenization of
    text-generation-inference and vLLM): decoding the whole reply at every token costs time that grows with
    its length (160 µs a token on average over 2,000 tokens on a CPU, against 20 over 100).

    The window starts at the tokens already shown before the last piece, so a token whose text depends on
    the one before it (a SentencePiece word's leading space, a space cleaned up before punctuation) decodes
    as it does in the whole; a token that ends inside a character adds "" until the character is whole."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self.ids: list[int] = []
        self.prefix = 0  # window start: the tokens before the last piece's
        self.read = 0  # the tokens shown so far

    def add(self, token: int) -> str:
        self.ids.append(token)
        decode = self.tokenizer.decode
        before = decode(self.ids[self.prefix:self.read], skip_special_tokens=True)
        text = decode(self.ids[self.prefix:], skip_special_tokens=True)
        if len(text) <= len(before) or text.endswith("\ufffd"):  # nothing whole yet (or a special token)
            return ""
        self.prefix, self.read = self.read, len(self.ids)
        return text[len(before):]


def _pick(logits: torch.Tensor, cfg: GenerationSettings, samplers: list[torch.Generator] | None) -> torch.Tensor:
    """Next token per row: argmax when greedy, else temperature + top-p sampling with each row's generator."""
    import torch

    if cfg.temperature == 0 or samplers is None:
        return logits.argmax(-1)
    probs = torch.softmax(logits.float() / cfg.temperature, dim=-1)
    if cfg.top_p < 1.0:
        sorted_p, order = probs.sort(dim=-1, descending=True)
        drop = sorted_p.cumsum(-1) - sorted_p > cfg.top_p  # keep the smallest prefix reaching top_p
        sorted_p = sorted_p.masked_fill(drop, 0.0)
        probs = torch.zeros_like(probs).scatter(-1, order, sorted_p)
    return torch.stack([torch.multinomial(probs[r], 1, generator=g)[0] for r, g in enumerate(samplers)])


def stop_ids(model: ModelWithHooks) -> set[int]:
    """Tokens that end a reply: the tokenizer's EOS and the model's generation_config eos ids (an instruct
    model's end-of-turn token: Gemma's <end_of_turn>, Llama 3's <|eot_id|>, ChatML's <|im_end|>)."""
    ids = set()
    if model.tokenizer.eos_token_id is not None:
        ids.add(int(model.tokenizer.eos_token_id))
    extra = getattr(getattr(model.model, "generation_config", None), "eos_token_id", None)
    for i in extra if isinstance(extra, (list, tuple)) else [extra]:
        if isinstance(i, int):
            ids.add(i)
    return ids


# ---------------------------------------------------------------------- runner 1: the model itself
class EagerRunner:
    """Forwards of the model itself: its dynamic KV cache (or none), an attention mask that grows by one
    column per token, and the steering hooks entered for each forward only."""

    def __init__(self, model: ModelWithHooks, tables_hooks: SteeringHooks, *, use_cache: bool = True) -> None:
        from saetui.models.hf_compat import cache_kwarg, keeps_last_logits

        self.model = model
        self.hooks = tables_hooks
        self.device = model.device
        self.use_cache = use_cache
        self._cache_kw = cache_kwarg(model.model)
        self._keep = keeps_last_logits(model.model)
        self._cache = None
        self._ids: torch.Tensor | None = None
        self._mask: torch.Tensor | None = None

    def _forward(self, ids: torch.Tensor) -> torch.Tensor:
        from saetui.models.hf_compat import output_cache

        kwargs: dict[str, Any] = {"attention_mask": self._mask, "use_cache": self.use_cache}
        if self._cache is not None:
            kwargs[self._cache_kw] = self._cache
        if self._keep:
            kwargs["logits_to_keep"] = 1
        with self.hooks:
            out = self.model.model(input_ids=ids, **kwargs)
        if self.use_cache:
            self._cache = output_cache(out)
        return out.logits[:, -1, :]

    def prefill(self, ids: torch.Tensor) -> torch.Tensor:
        import torch

        self._ids = ids
        self._mask = torch.ones(ids.shape, dtype=torch.long, device=ids.device)
        return self._forward(ids)

    def step(self, tokens: torch.Tensor, pos: int) -> torch.Tensor:
        import torch

        self._mask = torch.cat([self._mask, self._mask.new_ones(tokens.shape[0], 1)], dim=1)
        self._ids = torch.cat([self._ids, tokens[:, None]], dim=1)
        return self._forward(tokens[:, None] if self.use_cache else self._ids)

    def close(self) -> None:
        self._cache = None


@dataclass(frozen=True)
class Room:
    """How many new tokens a generation gets: `tokens`, at most the `wanted` ones; fewer when the prompt (`used`
    tokens, a conversation: `chat`) and the reply must fit in the model's `context` (None: no known limit)."""

    tokens: int
    wanted: int
    used: int = 0
    context: int | None = None
    chat: bool = False

    @property
    def capped(self) -> bool:
        return self.tokens < self.wanted

    def note(self, option: str = "max new tokens") -> str | None:
        """One line saying why fewer tokens than wanted (None if not capped); `option`: how the caller names it."""
        if not self.capped:
            return None
        return (f"{option} {self.wanted} capped at {self.tokens}: the {'conversation' if self.chat else 'prompt'} "
                f"uses {self.used} of the model's {self.context}-token context")

    def to_dict(self) -> dict[str, Any]:
        return {"max_new_tokens": self.tokens, "asked": self.wanted, "prompt_tokens": self.used, "context": self.context}


def room_to_generate(model: ModelWithHooks, text: str | ChatTokens, wanted: int) -> Room:
    """At most `wanted` new tokens, and no more than fit in the model's context after the prompt (a text is
    tokenized with BOS); the prompt itself is never cut to fit (the text would no longer be the one asked
    about): one that fills the context is refused in one InputError line naming both lengths."""
    chat = not isinstance(text, str)
    context = model.context_length
    n = len(text) if chat else len(model.tokenizer(text, add_special_tokens=True)["input_ids"])
    if context is None:
        return Room(wanted, wanted, n, None, chat)
    what = "the conversation" if chat else "the prompt"
    if n >= context:
        raise InputError(f"{what} has {n} tokens and the model's context is {context}: no room to generate "
                         f"(shorten it{', or start a new conversation' if chat else ''})")
    return Room(min(wanted, context - n), wanted, n, context, chat)
