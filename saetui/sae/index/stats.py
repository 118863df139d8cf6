"""Running per-feature statistics of an index build: the top-K activations and their positions, and the
histograms (counts are their sum), merged one batch of latents at a time. Associative: a build can stop after
any batch and go on from its checkpoint to the same result."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable

from saetui.settings import IndexSettings

if TYPE_CHECKING:
    import torch


def top_k_first_kept(vals: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The k largest of each row of float32 `vals` (rows, n < 65,536) and their columns, like topk, but among equal
    values the leftmost column first: topk leaves ties to its kernel. One topk of an int64 key, the value's bits
    (in float order) then the column reversed: every key differs (a stable sort costs ~3x as much per batch)."""
    import torch

    bits = vals.contiguous().view(torch.int32)
    ordered = torch.where(bits < 0, bits ^ 0x7FFFFFFF, bits).long()  # negative floats' bits run backwards
    cols = torch.arange(vals.shape[1], device=vals.device)
    _, idx = (ordered * 65536 + (65535 - cols)).topk(k, dim=1)
    return vals.gather(1, idx), idx


class IndexBuilder:
    """Running per-feature statistics; `update` takes one batch of latents at a time.

    Only the batch's non-zero latents are touched (a trained SAE fires on ~1% of its features, so they are
    ~100x fewer than the dense (N, d_sae) block): one `nonzero`, then the histogram and the top-K merge work
    on those entries. Nothing in `update` waits for the device beyond that `nonzero` (its size), so on a
    GPU the batches stay queued. `counts` and the "did not fire" bin are derived from the histogram.
    """

    def __init__(self, d_sae: int, settings: IndexSettings, device: Any) -> None:
        import torch

        self.s = settings
        k = settings.top_k
        self.top_vals = torch.full((d_sae, k), float("-inf"), device=device)
        self.top_pos = torch.full((d_sae, k), -1, dtype=torch.long, device=device)
        self.hist = torch.zeros(d_sae, settings.n_bins + 1, dtype=torch.long, device=device)
        self.edges = torch.logspace(torch.log10(torch.tensor(settings.lo)), torch.log10(torch.tensor(settings.hi)),
                                    settings.n_bins - 1, device=device)
        self.n_tokens = 0

    @property
    def counts(self) -> torch.Tensor:
        """(d_sae,) tokens each feature fired on: the sum of its histogram's firing bins."""
        return self.hist[:, 1:].sum(1)

    def update(self, lat: torch.Tensor, pos: torch.Tensor) -> None:
        """lat: (N, d_sae) activations of N counted tokens; pos: (N,) their corpus positions, ascending (and after
        the last batch's: among equal activations the example seen first is kept first)."""
        self.update_pieces([(lat, pos)])

    def update_pieces(self, pieces: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> None:
        """One batch given as pieces (lat (n_i, d_sae), pos (n_i,), positions ascending through the pieces), taken
        one at a time: a generator can encode each piece just before, so its latents are still in the CPU's cache
        when they are scanned."""
        import torch

        hist_at, fired_at, cand_feats, cand_vals, cand_pos = [], [], [], [], []
        n_total, d = 0, self.hist.shape[0]
        for lat, pos in pieces:
            flat = lat.reshape(-1).nonzero().squeeze(1)  # (nnz,) row-major indices of the non-zero latents
            vals = lat.reshape(-1)[flat].float()
            feats = flat % d
            fired = vals > 0  # an SAE without a ReLU may have negative latents: those did not fire
            # Histogram: bins 1..B by log-spaced edges (bin 0, "did not fire", is filled in by `tensors`).
            hist_at.append(feats * self.hist.shape[1] + torch.bucketize(vals, self.edges) + 1)
            fired_at.append(fired.long())
            # Only entries above their feature's K-th best so far can enter its top-K (after the first
            # batches, few of them).
            new = (fired & (vals > self.top_vals[feats, -1])).nonzero().squeeze(1)  # one lookup for the three
            cand_feats.append(feats[new])
            cand_vals.append(vals[new])
            cand_pos.append(pos[flat[new] // d])
            n_total += lat.shape[0]
        if n_total == 0:
            return
        # Running top-K: sort the candidates by feature, then by value descending, in one sort of an
        # int64 key (a positive float's bits order like the float), rank each within its feature, lay
        # the K best per feature out as a (d_sae, K) block and merge that with what we had.
        # Equal values keep the earlier corpus position first (a shared prefix fires alike in many documents): the
        # candidates come in position order (positions ascend through a batch's rows and pieces), and the sort
        # is stable, so the kept examples do not depend on how the corpus was cut into batches or ranks.
        feats, vals, pos = torch.cat(cand_feats), torch.cat(cand_vals), torch.cat(cand_pos)
        order = (feats * 2**31 + (2**31 - 1 - vals.view(torch.int32).long())).argsort(stable=True)
        f_sorted = feats[order]
        rank = torch.arange(len(order), device=feats.device) - torch.searchsorted(f_sorted, f_sorted)
        k = self.s.top_k
        col = rank.clamp(max=k)  # column k collects everything past the K-th and is dropped
        new_vals = torch.full((d, k + 1), float("-inf"), device=feats.device)
        new_pos = torch.full((d, k + 1), -1, dtype=torch.long, device=feats.device)
        new_vals[f_sorted, col] = vals[order]
        new_pos[f_sorted, col] = pos[order]
        merged_vals = torch.cat([self.top_vals, new_vals[:, :k]], dim=1)
        merged_pos = torch.cat([self.top_pos, new_pos[:, :k]], dim=1)
        best, idx = top_k_first_kept(merged_vals, k)  # the earlier batches' positions first among equals
        # The state changes only now, after every allocation: a batch that runs out of memory
        # part-way leaves the index as it was, so it can be retried in smaller pieces.
        self.hist.view(-1).index_add_(0, torch.cat(hist_at), torch.cat(fired_at))
        self.top_vals, self.top_pos = best, merged_pos.gather(1, idx)
        self.n_tokens += n_total

    def tensors(self) -> dict[str, torch.Tensor]:
        counts = self.counts
        self.hist[:, 0] = self.n_tokens - counts
        return {"top_vals": self.top_vals, "top_pos": self.top_pos, "counts": counts, "hist": self.hist,
                "edges": self.edges}
