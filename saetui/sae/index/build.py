"""The index build loop: stream a corpus through the model (the forward stops at the SAE's layer), encode the
real, non-special tokens (on CPU in cache-sized pieces) and feed them to an `IndexBuilder`; documents per forward
sized to the device (halved for good when it runs out of memory, nothing lost); checkpoints to resume from;
torchrun ranks each take a contiguous run of the batches and merge at the end."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Sequence

from saetui.activations.cache import read_dataset
from saetui.errors import InputError
from saetui.files import check_creatable, fingerprint
from saetui.inputs import documents_within
from saetui.sae.index.stats import IndexBuilder, top_k_first_kept
from saetui.sae.index.store import INDEX_FILE, MANIFEST_FILE, VERSION, FeatureIndex, index_identity, restore, save
from saetui.settings import IndexSettings

if TYPE_CHECKING:
    import torch

    from saetui.models.model import ModelWithHooks
    from saetui.sae.manager import LoadedSAE


def build_index(
    model: ModelWithHooks,
    loaded: LoadedSAE,
    corpus: str | Path | Sequence[str],
    out: str | Path,
    *,
    field: str = "text",
    settings: IndexSettings | None = None,
    resume: bool = False,
    progress: bool = True,
    checkpoint_every: int = 50,
) -> FeatureIndex:
    """Build (or with `resume`, continue) the index of `loaded` over `corpus` into `out`."""
    import torch
    from tqdm.auto import tqdm

    from saetui.activations.collector import ActivationCollector

    settings = settings or IndexSettings()
    if settings.top_k < 1 or (settings.batch_size is not None and settings.batch_size < 1):
        raise InputError("top-k and batch size must be at least 1")
    texts = read_dataset(corpus, field)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} is a file, not a folder")
    world, rank = _distributed(model)
    if world > 1:
        if resume or settings.max_tokens is not None:
            raise InputError("--resume and --max-tokens are not supported under torchrun; run them in one process")
        progress = progress and rank == 0
    identity = index_identity(model, loaded)
    plan = dict(identity, version=VERSION, corpus_sha256=fingerprint(texts), settings=settings.__dict__)
    builder = IndexBuilder(loaded.d_sae, settings, loaded.sae.W_dec.device)
    tokens: list[torch.Tensor] = []
    doc_start: list[int] = []
    done = 0
    if rank == 0:
        check_creatable(out, "index folder")  # before any work, not after it; made by the first save
    if resume and ((out / MANIFEST_FILE).exists() or (out / INDEX_FILE).exists()):
        done, tokens, doc_start = restore(out, plan, builder)
    elif (out / MANIFEST_FILE).is_file() and not resume:
        raise InputError(f"{out} already holds an index: use --resume to continue it or another --out")
    collector = ActivationCollector(model)
    n_seen = sum(len(t) for t in tokens)
    bs = docs_per_batch(model, loaded, texts, settings, world)
    starts = list(range(done, len(texts), bs))
    if world > 1:
        # Each rank takes a contiguous run of the same batches a single process would run, so every latent
        # comes from the same shapes (bit-identical where its thread count gets the same BLAS kernels, else
        # rounding apart); global positions come from the token counts of the runs before it.
        per = -(-len(starts) // world)  # ceil
        share = [starts[r * per : (r + 1) * per] for r in range(world)]
        first = share[rank][0] if share[rank] else len(texts)
        n_seen = sum(sum(model.tokenize(texts[b : b + bs]).lengths) for b in starts if b < first)
        starts = share[rank]
    bar = tqdm(total=len(texts), initial=done, unit="doc", desc="indexing", disable=not progress)
    piece = bs  # documents per forward; halved for good when the device runs out of memory
    batches = 0
    try:
        for b in starts:
            if settings.max_tokens is not None and n_seen >= settings.max_tokens:
                break
            docs = texts[b : b + bs]
            if settings.max_tokens is not None:  # the documents that reach it, not the whole batch
                docs = docs[:documents_within(model.tokenize(docs).lengths, settings.max_tokens - n_seen)]
            i = 0
            while i < len(docs):
                try:
                    firsts, ids = _index_docs(model, collector, loaded, builder, docs[i : i + piece], n_seen)
                except _out_of_memory() as exc:
                    piece = _fewer_documents(model, piece, exc)
                    continue
                doc_start.extend(firsts)
                tokens.append(ids)
                n_seen += len(ids)
                i += piece
            done = min(len(texts), b + len(docs))
            bar.update(len(docs))
            bar.set_postfix(tokens=builder.n_tokens)  # as the summary counts them: special tokens left out
            batches += 1
            if world == 1 and batches % checkpoint_every == 0:
                save(out, plan, builder, tokens, doc_start, done, complete=False)
    finally:
        bar.close()
    if world > 1:
        tokens, doc_start = _merge_ranks(builder, tokens, doc_start)
        done = len(texts)
    # A Ctrl+C above leaves the last checkpoint; this line runs only when the corpus is done.
    if rank == 0:
        save(out, plan, builder, tokens, doc_start, done, complete=True)
    if world > 1:
        import torch.distributed as dist

        dist.barrier()
    return FeatureIndex.load(out, model, loaded)


def _index_docs(model: ModelWithHooks, collector: Any, loaded: LoadedSAE, builder: IndexBuilder, docs: Sequence[str],
                n_seen: int) -> tuple[list[int], torch.Tensor]:
    """Run `docs` (whose first token is corpus position `n_seen`) into `builder`: (their documents' first
    positions, their token ids (int32, still on the device: no copy back per batch)). The builder changes
    last, so a batch that runs out of memory leaves everything as it was."""
    import torch

    batch = model.tokenize(docs)
    captured, _ = collector.run(batch, [loaded.hook_name])
    # Corpus positions: row i's tokens follow the real tokens of the rows before it (right padding).
    first = torch.tensor([0, *batch.lengths[:-1]]).cumsum(0) + n_seen  # (B,)
    dev = batch.input_ids.device
    grid = first.to(dev)[:, None] + torch.arange(batch.input_ids.shape[1], device=dev)  # (B, T)
    counted = (~batch.special_mask).nonzero(as_tuple=True)  # the one lookup both gathers share
    ids = torch.cat([row[:n] for row, n in zip(batch.input_ids, batch.lengths)]).to(torch.int32)
    builder.update_pieces(_encoded(loaded, captured[loaded.hook_name][counted], grid[counted]))
    return first.tolist(), ids


def _out_of_memory() -> type[BaseException]:
    import torch

    return torch.OutOfMemoryError


def _fewer_documents(model: ModelWithHooks, piece: int, exc: BaseException) -> int:
    """After running out of memory with `piece` documents per forward: half as many from now on (one
    warning), or a one-line error when a single document does not fit."""
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    if piece == 1:
        raise InputError(f"out of {model.device.type.upper()} memory indexing a single document with {model.name}: "
                         "use shorter documents, a smaller --dtype or another device") from exc
    warnings.warn(f"out of {model.device.type.upper()} memory with {piece} documents per forward: "
                  f"going on with {piece // 2}", stacklevel=2)
    return piece // 2


def docs_per_batch(model: ModelWithHooks, loaded: LoadedSAE, texts: Sequence[str], settings: IndexSettings,
                   world: int = 1) -> int:
    """Documents per forward: `settings.batch_size`, or when that is None, IndexSettings.CPU_BATCH_SIZE on CPU and on a GPU the power
    of two whose activations (estimated per token from the model's and SAE's widths, for the longest of the
    first 64 documents) fill about 40% of the free memory, at most 512. Under torchrun every rank takes the
    smallest rank's number, so they agree on the batches. Too big an estimate costs one halving (see
    `_fewer_documents`)."""
    import torch

    if settings.batch_size is not None:
        return settings.batch_size
    if model.device.type != "cuda":
        return IndexSettings.CPU_BATCH_SIZE
    free, _ = torch.cuda.mem_get_info(model.device)
    tokens = max(len(r) for r in model.tokenizer(list(texts[:64]))["input_ids"]) if texts else 1
    docs = torch.tensor([estimate_docs(model, loaded.d_sae, tokens, free)], device=model.device)
    if world > 1:
        import torch.distributed as dist

        dist.all_reduce(docs, op=dist.ReduceOp.MIN)
    return int(docs)


def estimate_docs(model: ModelWithHooks, d_sae: int, tokens: int, free_bytes: int) -> int:
    """The power of two (1..512) of `tokens`-token documents whose forward to the SAE's layer plus encode
    fit in 40% of `free_bytes`: per token, about 12 residual-width and 3 MLP-width activations and 4 SAE-width
    ones in the model's dtype, plus the attention scores (fp32, per head, over the document)."""
    cfg = model.config
    d = model.d_model
    mlp = getattr(cfg, "intermediate_size", None) or getattr(cfg, "n_inner", None) or getattr(cfg, "ffn_dim", None) or 4 * d
    heads = getattr(cfg, "num_attention_heads", None) or getattr(cfg, "n_head", None) or 1
    per_token = model.dtype.itemsize * (12 * d + 3 * mlp + 4 * d_sae) + 4 * heads * tokens
    docs = int(0.4 * free_bytes // (per_token * max(1, tokens)))
    return 1 << min(9, max(0, docs.bit_length() - 1))


def piece_rows(d_sae: int, device: Any, n: int) -> int:
    """How many of a batch's `n` tokens to encode at a time: on CPU, pieces of about 2**20 latents (4 MiB
    in fp32) that stay in cache while the index scans them (1.5x faster than one batch-wide encode of a
    4,096-wide SAE on 2 cores); on a GPU the whole batch at once."""
    import torch

    return max(1, n) if torch.device(device).type == "cuda" else max(1, 2**20 // d_sae)


def _encoded(loaded: LoadedSAE, acts: torch.Tensor, pos: torch.Tensor) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(latents, positions) of `acts` (N, d_in) in pieces of `piece_rows` tokens, each encoded when asked for."""
    import torch

    rows = piece_rows(loaded.d_sae, acts.device, len(acts))
    for i in range(0, len(acts), rows):
        with torch.inference_mode():
            lat = loaded.sae.encode(acts[i : i + rows])
        yield lat, pos[i : i + rows].to(lat.device)


def _distributed(model: ModelWithHooks) -> tuple[int, int]:
    """(world size, rank) under torchrun (gloo on CPU, nccl on GPUs), else (1, 0)."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return 1, 0
    import torch
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("nccl" if model.device.type == "cuda" and torch.cuda.is_available() else "gloo")
    return dist.get_world_size(), dist.get_rank()


def _merge_ranks(builder: IndexBuilder, tokens: list, doc_start: list[int]) -> tuple[list, list[int]]:
    """Combine every rank's statistics into `builder` (all ranks end with the same result): counts and
    histograms add up, top-K lists are merged, tokens and document starts are concatenated in rank order."""
    import torch
    import torch.distributed as dist

    dist.all_reduce(builder.hist)  # its "did not fire" column is recomputed from n_tokens when saved
    n = torch.tensor([builder.n_tokens], device=builder.hist.device)
    dist.all_reduce(n)
    builder.n_tokens = int(n)
    world = dist.get_world_size()
    vals = [torch.empty_like(builder.top_vals) for _ in range(world)]
    pos = [torch.empty_like(builder.top_pos) for _ in range(world)]
    dist.all_gather(vals, builder.top_vals)
    dist.all_gather(pos, builder.top_pos)
    best, order = top_k_first_kept(torch.cat(vals, dim=1), builder.s.top_k)  # ties: rank 0 (the earlier) first
    builder.top_vals, builder.top_pos = best, torch.cat(pos, dim=1).gather(1, order)
    gathered: list = [None] * world
    dist.all_gather_object(gathered, (torch.cat([t.cpu() for t in tokens]) if tokens else torch.zeros(0, dtype=torch.int32), doc_start))
    return [g[0] for g in gathered], [d for g in gathered for d in g[1]]
