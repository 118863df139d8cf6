"""Streamed, batched generation with steering: baseline, steered and sweep variants in one batch.

`SteeringEngine.stream` runs the decoding core (saetui.steering.decode) in the calling thread and yields
each new token of each row as soon as it is chosen. Every row is the same prompt with its own
specs and its own seeded sampler, so one batched forward per token serves a side-by-side
comparison or a coefficient sweep, and with greedy decoding each row equals running it alone.
The loop checks `stop_event` before every token and hooks are removed however it ends; an
exception (in a hook, say) propagates to the consumer. The TUI runs it in a thread worker.
"""

from __future__ import annotations

import threading
import warnings
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Iterator, Sequence

from saetui.errors import InputError
from saetui.inputs import check_int
from saetui.models.hf_compat import keeps_last_logits
from saetui.steering.decode import GenerationSettings, Piece, stop_ids  # noqa: F401 - part of this module's API
from saetui.steering.hooks import SteeringHooks
from saetui.steering.spec import SteeringSpec, as_rows, as_specs
from saetui.steering.vectors import resolve_any

if TYPE_CHECKING:

    from saetui.models.chat import ChatTokens
    from saetui.models.model import ModelWithHooks
    from saetui.sae.manager import SAEManager


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


class SteeringEngine:
    """Generation with SAE-feature steering for one model and its loaded SAEs."""

    def __init__(self, model: ModelWithHooks, saes: SAEManager, *, compile: bool | None = None) -> None:
        """compile: True = decode on a static KV cache with a compiled step (saetui.steering.static), compiled
        before the first token; None = on CUDA, a static cache whose step is compiled in the background
        (uncompiled until then), elsewhere the eager loop; False = the eager loop everywhere."""
        self.model = model
        self.saes = saes
        self.compile = compile
        self._keep_logits = keeps_last_logits(model.model)

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
        """Yield the text of one steered generation piece by piece, as tokens are produced. Specs may be objects or
        the CLI's text (`"demo/416:6"`), here and in every method of the engine."""
        for piece in self.stream(prompt, [as_specs(specs)], stop_event=stop_event, **settings):
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
        baseline, steered = self.run(prompt, [[], as_specs(specs)], **kwargs)
        return baseline, steered

    def sweep(self, prompt: str | ChatTokens, specs: Sequence[SteeringSpec], coefficients: Sequence[float], **kwargs: Any) -> list[RowOutput]:
        """One row per coefficient, every spec's coefficient set to it, in one batch."""
        rows = [[s.with_coefficient(c) for s in as_specs(specs)] for c in coefficients]
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
        The loop is saetui.steering.decode's, on the model itself or on a static decoder (saetui.steering.static).
        """
        import contextlib

        from saetui.steering import decode, static

        cfg = GenerationSettings(**settings)
        if not rows:
            raise InputError("nothing to generate: no rows")
        room = decode.room_to_generate(self.model, prompt, cfg.max_new_tokens)  # a prompt filling the context: refused
        if room.capped:
            warnings.warn(room.note(), stacklevel=3)
            cfg = replace(cfg, max_new_tokens=room.tokens)
        vectors: dict = {}  # each saved vector read once
        rows = as_rows(rows)
        resolved = [[resolve_any(s, self.saes, self.model, vectors) for s in row if s.enabled] for row in rows]
        if seeds is None:
            seeds = [cfg.seed] * len(rows)
        seeds = [check_int(seed, "seed", 0, 2**64 - 1) for seed in seeds]
        if len(seeds) != len(rows):
            raise InputError(f"{len(seeds)} seeds for {len(rows)} rows")
        ids, template = self._prompt(prompt)
        if self.static(cfg):
            guard = lock if lock is not None else contextlib.nullcontext()
            with guard:  # a decoder's twin is copied from the model while no other hook is on it
                runner = static.static_runner(self.model, resolved, list(self.saes),
                                              len(ids) + cfg.max_new_tokens, compile=self.compile,
                                              prompt_len=len(ids), template=template)
        else:
            hooks = SteeringHooks(self.model, resolved, prompt_len=len(ids), template=template)
            runner = decode.EagerRunner(self.model, hooks, use_cache=cfg.use_cache)
        yield from decode.decode(runner, ids, len(rows), cfg, seeds, decode.stop_ids(self.model), self.model.tokenizer,
                                 stop_event=stop_event, lock=lock)

    def static(self, cfg: GenerationSettings) -> bool:
        """Whether `stream` decodes on a static cache (saetui.steering.decode.Decoder): compile=True anywhere,
        compile=None on CUDA only, never with compile=False, without the KV cache, or where the model cannot."""
        from saetui.steering.static import supports_static

        if self.compile is False or not cfg.use_cache or not supports_static(self.model):
            return False
        return bool(self.compile) or self.model.device.type == "cuda"

    # ------------------------------------------------------------------ what steering changed
    def kl(self, prompt: str | ChatTokens, rows: Sequence[Sequence[SteeringSpec]], token_ids: Sequence[Sequence[int]], *,
           lock: Any = None) -> list[list[float] | None]:
        """Per generated token of each steered row: KL(steered || unsteered) of the next-token
        distributions that chose it, teacher-forced on that row's own text. None for rows with no
        enabled spec (the baseline).

        One batched forward after generation: for each steered row r with tokens g (n_r,), two batch
        rows on prompt + g[:-1], one unsteered and one with r's specs; the logits at the last n_r
        positions (vocab each) predict g. Rows are right-padded; kl[r][i] >= 0, in nats, and exactly
        0 for a row whose specs add nothing (each adds with coefficient 0): not run, as two batch rows of one
        input can differ by the rounding of the kernels' row blocks (6e-8 seen on a CPU).
        """
        import contextlib

        import torch

        rows = as_rows(rows)
        if len(token_ids) != len(rows):
            raise InputError(f"{len(token_ids)} token lists for {len(rows)} rows")
        vectors: dict = {}
        resolved = [[resolve_any(s, self.saes, self.model, vectors) for s in row if s.enabled] for row in rows]
        inert = [bool(specs) and all(rs.mode == "add" and rs.value == 0 for rs in specs) for specs in resolved]
        steered = [r for r, specs in enumerate(resolved) if specs and len(token_ids[r]) > 0 and not inert[r]]
        result: list[list[float] | None] = [None] * len(rows)
        for r, specs in enumerate(resolved):
            if specs:
                result[r] = [0.0] * len(token_ids[r]) if inert[r] else []
        if not steered:
            return result
        prompt_ids, template = self._prompt(prompt)
        vocab, context = self.model.vocab_size, self.model.context_length
        generated = {r: [check_int(t, "token id", 0, vocab - 1) for t in token_ids[r]] for r in steered}
        for r, ids in generated.items():  # what a generation gave: prompt and reply within the context
            if context is not None and len(prompt_ids) + len(ids) - 1 > context:
                raise InputError(f"row {r}: the prompt's {len(prompt_ids)} tokens and {len(ids)} generated "
                                 f"pass the model's context of {context}")
        seqs, batch_rows = [], []
        for r in steered:
            seq = prompt_ids + generated[r][:-1]
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

