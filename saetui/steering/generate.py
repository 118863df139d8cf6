"""Streamed, batched generation with steering: baseline, steered and sweep variants in one batch.

`SteeringEngine.stream` runs its own decoding loop (KV cache on) in the calling thread and yields
each new token of each row as soon as it is chosen. Every row is the same prompt with its own
specs and its own seeded sampler, so one batched forward per token serves a side-by-side
comparison or a coefficient sweep, and with greedy decoding each row equals running it alone.
The loop checks `stop_event` before every token and hooks are removed however it ends; an
exception (in a hook, say) propagates to the consumer. The TUI runs it in a thread worker.
"""

from __future__ import annotations

import inspect
import math
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterator, Sequence

from saetui.errors import InputError
from saetui.steering.hooks import SteeringHooks
from saetui.steering.spec import SteeringSpec
from saetui.steering.vectors import resolve_any

if TYPE_CHECKING:
    import torch

    from saetui.models.chat import ChatTokens
    from saetui.models.model import ModelWithHooks
    from saetui.sae.manager import SAEManager


@dataclass
class Piece:
    """One generated token of one row, and the text it adds (may be "" until a character completes)."""

    row: int
    token_id: int
    text: str
    logprob: float | None = None  # log p(token) under the row's own (steered) model at temperature 1


@dataclass
class RowOutput:
    """One row's generation; `logprobs[i]` is token i's log-probability under the row's own model,
    `kl[i]` (steered rows, after `SteeringEngine.kl`) KL(steered || unsteered) before token i."""

    text: str = ""
    token_ids: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    kl: list[float] | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"text": self.text, "token_ids": self.token_ids, "logprobs": self.logprobs}
        if self.kl is not None:
            out["kl"] = self.kl
        return out


MIN_TEMPERATURE = 1e-3


@dataclass(frozen=True)
class GenerationSettings:
    """max_new_tokens > 0; temperature 0 = greedy; top_p in (0, 1]; seed for every row unless `seeds` is given."""

    max_new_tokens: int = 64
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int = 0
    use_cache: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.max_new_tokens, int) or self.max_new_tokens <= 0:
            raise InputError(f"max new tokens must be a positive integer, got {self.max_new_tokens}")
        if not math.isfinite(self.temperature) or self.temperature < 0:
            raise InputError(f"temperature must be >= 0 (0 = greedy), got {self.temperature}")
        if 0 < self.temperature < MIN_TEMPERATURE:  # logits / T overflows to inf and the sampler gets NaNs
            raise InputError(f"temperature must be 0 (greedy) or at least {MIN_TEMPERATURE:g}, got {self.temperature}")
        if not (0 < self.top_p <= 1):
            raise InputError(f"top-p must be in (0, 1], got {self.top_p}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed < 2**64:
            raise InputError(f"seed must be a whole number from 0 to 2**64-1, got {self.seed}")


class SteeringEngine:
    """Generation with SAE-feature steering for one model and its loaded SAEs."""

    def __init__(self, model: ModelWithHooks, saes: SAEManager, *, compile: bool | None = None) -> None:
        """compile: decode on a static KV cache with a compiled step (saetui.steering.compiled);
        None = on CUDA only; False = the eager loop below."""
        self.model = model
        self.saes = saes
        self.compile = compile
        params = inspect.signature(model.model.forward).parameters
        # transformers 5.x calls the KV cache `cache`; 4.x called it `past_key_values`.
        self._cache_kw = "cache" if "cache" in params else "past_key_values"
        self._keep_logits = "logits_to_keep" in params

    def _prompt(self, prompt: str | ChatTokens) -> tuple[list[int], list[bool] | None]:
        """The prompt's token ids, and for a rendered conversation which of them its template wrote."""
        from saetui.models.chat import ChatTokens

        if isinstance(prompt, ChatTokens):
            return list(prompt.ids), prompt.template
        return self.model.tokenize(prompt).input_ids[0].tolist(), None

    # ------------------------------------------------------------------ one row
    def generate(
        self,
        prompt: str | ChatTokens,
        specs: Sequence[SteeringSpec] = (),
        *,
        stop_event: threading.Event | None = None,
        **settings: Any,
    ) -> Iterator[str]:
        """Yield the text of one steered generation piece by piece, as tokens are produced."""
        for piece in self.stream(prompt, [list(specs)], stop_event=stop_event, **settings):
            if piece.text:
                yield piece.text

    # ------------------------------------------------------------------ several rows, one batch
    def run(self, prompt: str | ChatTokens, rows: Sequence[Sequence[SteeringSpec]], **kwargs: Any) -> list[RowOutput]:
        """Generate every row to the end and return the texts and token ids."""
        outputs = [RowOutput() for _ in rows]
        for piece in self.stream(prompt, rows, **kwargs):
            outputs[piece.row].token_ids.append(piece.token_id)
            outputs[piece.row].text += piece.text
            if piece.logprob is not None:
                outputs[piece.row].logprobs.append(piece.logprob)
        for out in outputs:  # pieces held back for an incomplete character are flushed here
            out.text = self.model.tokenizer.decode(out.token_ids, skip_special_tokens=True)
        return outputs

    def compare(self, prompt: str | ChatTokens, specs: Sequence[SteeringSpec], **kwargs: Any) -> tuple[RowOutput, RowOutput]:
        """(baseline, steered), generated side by side in one batch."""
        baseline, steered = self.run(prompt, [[], list(specs)], **kwargs)
        return baseline, steered

    def sweep(self, prompt: str | ChatTokens, specs: Sequence[SteeringSpec], coefficients: Sequence[float], **kwargs: Any) -> list[RowOutput]:
        """One row per coefficient, every spec's coefficient set to it, in one batch."""
        rows = [[s.with_coefficient(c) for s in specs] for c in coefficients]
        return self.run(prompt, rows, **kwargs)

    def stream(
        self,
        prompt: str | ChatTokens,
        rows: Sequence[Sequence[SteeringSpec]],
        *,
        stop_event: threading.Event | None = None,
        seeds: Sequence[int] | None = None,
        lock: Any = None,
        **settings: Any,
    ) -> Iterator[Piece]:
        """Yield Piece(row, token, text) for every row as each token is produced (batched, KV cache).

        `lock` (e.g. the Session's) is held for each forward step and released before the step's
        pieces are yielded, so another forward (an analysis) runs between two tokens and a suspended
        generator holds nothing; the steering hooks exist only while a step's forward runs.
        `prompt` is a text (tokenized with the tokenizer's BOS) or a rendered conversation
        (saetui.models.chat.ChatTokens), whose template tokens the scope `template` covers.
        """
        import contextlib

        import torch

        cfg = GenerationSettings(**settings)
        if not rows:
            raise InputError("nothing to generate: no rows")
        vectors: dict = {}  # each saved vector read once
        resolved = [[resolve_any(s, self.saes, self.model, vectors) for s in row if s.enabled] for row in rows]
        seeds = list(seeds) if seeds is not None else [cfg.seed] * len(rows)
        if len(seeds) != len(rows):
            raise InputError(f"{len(seeds)} seeds for {len(rows)} rows")
        if isinstance(prompt, str) and self._static_decoding(cfg):  # chat prompts (template scopes) stay eager
            from saetui.steering.compiled import compiled_stream

            yield from compiled_stream(self, prompt, resolved, cfg, seeds, stop_event=stop_event, lock=lock)
            return
        ids_list, template = self._prompt(prompt)
        prompt_ids = torch.tensor([ids_list], dtype=torch.long, device=self.model.device)  # (1, T)
        n, t = len(rows), prompt_ids.shape[1]
        device = self.model.device
        samplers = [torch.Generator(device=device).manual_seed(int(s)) for s in seeds] if cfg.temperature > 0 else None
        stops = stop_ids(self.model)
        eos = self.model.tokenizer.eos_token_id if self.model.tokenizer.eos_token_id is not None else next(iter(stops), None)
        tokenizer = self.model.tokenizer
        generated: list[list[int]] = [[] for _ in range(n)]
        shown = [""] * n
        finished = [False] * n
        ids = prompt_ids.expand(n, t)
        mask = torch.ones(n, t, dtype=torch.long, device=device)
        step_input, cache = ids, None
        hooks = SteeringHooks(self.model, resolved, prompt_len=t, template=template)
        guard = lock if lock is not None else contextlib.nullcontext()
        for _ in range(cfg.max_new_tokens):
            if stop_event is not None and stop_event.is_set():
                return
            pieces: list[Piece] = []
            with guard, hooks, torch.inference_mode():  # one forward step; released before yielding
                kwargs: dict[str, Any] = {"attention_mask": mask, "use_cache": cfg.use_cache}
                if cache is not None:
                    kwargs[self._cache_kw] = cache
                if self._keep_logits:
                    kwargs["logits_to_keep"] = 1
                out = self.model.model(input_ids=step_input, **kwargs)
                nxt = _pick(out.logits[:, -1, :], cfg, samplers)  # (n,)
                chosen = nxt.tolist()
                logprobs = out.logits[:, -1, :].float().log_softmax(-1).gather(-1, nxt[:, None])[:, 0].tolist()
                for r, tok in enumerate(chosen):
                    if finished[r]:
                        continue
                    generated[r].append(tok)
                    finished[r] = tok in stops
                    text = tokenizer.decode(generated[r], skip_special_tokens=True)
                    piece = "" if text.endswith("\ufffd") else text[len(shown[r]):]  # wait for a whole character
                    if piece:
                        shown[r] = text
                    pieces.append(Piece(r, tok, piece, logprobs[r]))
                if not all(finished):
                    if eos is not None:  # finished rows keep decoding EOS; their tokens are not reported
                        nxt = torch.where(torch.tensor(finished, device=nxt.device), torch.full_like(nxt, eos), nxt)
                    mask = torch.cat([mask, mask.new_ones(n, 1)], dim=1)
                    if cfg.use_cache:
                        cache = getattr(out, "cache", None) or getattr(out, "past_key_values", None)
                        step_input = nxt[:, None]
                    else:
                        ids = torch.cat([ids, nxt[:, None]], dim=1)
                        step_input = ids
                del out
            yield from pieces
            if all(finished):
                return

    def _static_decoding(self, cfg: GenerationSettings) -> bool:
        """Whether `stream` takes the compiled path (see saetui.steering.compiled)."""
        from saetui.steering.compiled import default_compile, supports_static_decoding

        wanted = default_compile(self.model.device) if self.compile is None else self.compile
        return bool(wanted) and cfg.use_cache and supports_static_decoding(self.model.model)

    # ------------------------------------------------------------------ what steering changed
    def kl(self, prompt: str | ChatTokens, rows: Sequence[Sequence[SteeringSpec]], token_ids: Sequence[Sequence[int]], *,
           lock: Any = None) -> list[list[float] | None]:
        """Per generated token of each steered row: KL(steered || unsteered) of the next-token
        distributions that chose it, teacher-forced on that row's own text. None for rows with no
        enabled spec (the baseline).

        One batched forward after generation: for each steered row r with tokens g (n_r,), two batch
        rows on prompt + g[:-1], one unsteered and one with r's specs; the logits at the last n_r
        positions (vocab each) predict g. Rows are right-padded; kl[r][i] >= 0, in nats, and exactly
        0 where the steering adds nothing (coefficient 0: the two rows are computed identically).
        """
        import contextlib

        import torch

        if len(token_ids) != len(rows):
            raise InputError(f"{len(token_ids)} token lists for {len(rows)} rows")
        vectors: dict = {}
        resolved = [[resolve_any(s, self.saes, self.model, vectors) for s in row if s.enabled] for row in rows]
        steered = [r for r, specs in enumerate(resolved) if specs and len(token_ids[r]) > 0]
        result: list[list[float] | None] = [None] * len(rows)
        for r, specs in enumerate(resolved):
            if specs:
                result[r] = []
        if not steered:
            return result
        prompt_ids, template = self._prompt(prompt)
        seqs, batch_rows = [], []
        for r in steered:
            seq = prompt_ids + [int(t) for t in token_ids[r][:-1]]
            seqs += [seq, seq]
            batch_rows += [[], resolved[r]]
        width = max(len(s) for s in seqs)
        n_max = max(len(token_ids[r]) for r in steered)
        pad = int(self.model.tokenizer.pad_token_id)
        device = self.model.device
        ids = torch.full((len(seqs), width), pad, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for i, seq in enumerate(seqs):
            ids[i, : len(seq)] = torch.tensor(seq)
            mask[i, : len(seq)] = 1
        guard = lock if lock is not None else contextlib.nullcontext()
        kwargs: dict[str, Any] = {"logits_to_keep": width - len(prompt_ids) + 1} if self._keep_logits else {}
        with guard, SteeringHooks(self.model, batch_rows, prompt_len=len(prompt_ids), template=template), torch.inference_mode():
            out = self.model.model(input_ids=ids.to(device), attention_mask=mask.to(device), use_cache=False, **kwargs)
            # the positions predicting generated tokens 0..n_max-1: prompt_len-1 onward (right padding)
            logp = out.logits[:, -(width - len(prompt_ids) + 1):][:, :n_max].float().log_softmax(-1)  # (2S, n_max, vocab)
            del out
            base, steer = logp[0::2], logp[1::2]  # (S, n_max, vocab)
            kl = (steer.exp() * (steer - base)).sum(-1).clamp(min=0.0)  # (S, n_max)
            values = kl.tolist()
        for i, r in enumerate(steered):
            result[r] = values[i][: len(token_ids[r])]
        return result

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
