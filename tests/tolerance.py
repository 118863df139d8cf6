"""Float comparisons that hold on any CPU: bit-for-bit only where both sides run the same kernels on the same shapes.

A matmul of another shape (a few encoder columns instead of all of them, 2 documents per forward instead
of 8, another thread count) may take another BLAS kernel and sum in another order, so its result can
differ in the last bits: an AMD EPYC with MKL gives 7e-7 to 1e-6 where an Intel CPU gives identical bits.
Such comparisons use `assert_close_reduction`, whose bound comes from the dtype and the length of the sum:

    |a - b| <= n * eps * scale

Each of two summation orders of n terms lies within gamma_n * sum|terms| of the exact sum
(gamma_n = n*u/(1 - n*u), u = eps/2: Higham, Accuracy and Stability of Numerical Algorithms, 3.1), so two
orders differ by at most ~n * eps * sum|terms|. `scale` is that sum of magnitudes (|x| @ |W| for x @ W);
for values computed through several reductions (a whole forward), pass the total length n of the sums on
the way and the magnitude of the result. Comparisons of the same kernels on the same shapes stay
`torch.equal`, with a comment saying so.
"""

from __future__ import annotations

import torch


def reduction_bound(scale: torch.Tensor | float, n: int, dtype: torch.dtype) -> torch.Tensor | float:
    """How far two summation orders of `n` terms whose magnitudes sum to `scale` can land apart in `dtype`."""
    eps = torch.finfo(dtype).eps
    if n * eps / 2 >= 1:  # gamma_n needs n*u < 1: beyond it the rounding may be as large as the terms
        raise ValueError(f"no rounding bound for sums of {n} terms in {dtype}: compare in a wider dtype")
    return n * eps / (1 - n * eps / 2) * scale


def assert_close_reduction(actual: torch.Tensor, expected: torch.Tensor, *, n: int = 0, scale: torch.Tensor | float | None = None,
                           dtype: torch.dtype | None = None, bound: torch.Tensor | float | None = None, what: str = "") -> None:
    """actual == expected up to the rounding of sums of `n` terms in another order (see the module docstring).

    scale: the sum of the terms' magnitudes, elementwise or one number (default: the largest |expected|,
    right when the terms do not cancel). bound: a bound already carried through later arithmetic (built
    from `reduction_bound`), instead of n and scale."""
    dtype = dtype or expected.dtype
    assert actual.shape == expected.shape, f"{what}: shape {tuple(actual.shape)} != {tuple(expected.shape)}"
    if bound is None:
        if scale is None:
            scale = float(expected.abs().max()) if expected.numel() else 0.0
        bound = reduction_bound(scale, n, dtype)
    diff = (actual.to(torch.float64) - expected.to(torch.float64)).abs()
    bound_t = torch.as_tensor(bound, dtype=torch.float64)
    bad = diff > bound_t
    assert not bool(bad.any()), (f"{what}: {int(bad.sum())} of {diff.numel()} values differ by more than the {dtype} "
                                 f"rounding bound (max diff {float(diff.max()):.3g}, "
                                 f"bound there {float(torch.broadcast_to(bound_t, diff.shape)[bad].max()):.3g})")


def differs_beyond_rounding(a: torch.Tensor, b: torch.Tensor, *, n: int, scale: torch.Tensor | float | None = None,
                            dtype: torch.dtype | None = None) -> bool:
    """Whether a and b differ somewhere by more than rounding could explain (for tests that a change did something)."""
    try:
        assert_close_reduction(a, b, n=n, scale=scale, dtype=dtype)
    except AssertionError:
        return True
    return False


def path_length(model, hook_name: str, d_in: int = 0) -> int:
    """The total length of the sums between a token and the activations at `hook_name` (blocks.L....), plus an
    SAE encoder over `d_in`: each block up to L sums over the width in attention and the MLP (x2 for the MLP's
    hidden width), ~4 * d_model. The `n` for values computed through a forward of another batch shape."""
    layer = int(hook_name.split(".")[1])
    return (layer + 1) * 4 * int(model.d_model) + int(d_in)


def assert_ranked_up_to_rounding(got, values: torch.Tensor, bound: torch.Tensor | float, *, k: int | None = None,
                                 floor: float | None = None, what: str = "") -> None:
    """`got` (indices into the 1-D `values`, best first) is the top of `values` up to rounding.

    `values` is the reference computed another way (another shape or op), each within `bound` of what the
    code under test saw, so two values closer than their two bounds may come in either order, and either may
    be the one left out. With `floor` (only values above it are listed) and `k` (at most k are listed), a
    list shorter than k must have left out only values at or below the floor."""
    v = values.detach().to(torch.float64).flatten()
    b = torch.broadcast_to(torch.as_tensor(bound, dtype=torch.float64), v.shape)
    idx = [int(i) for i in got]
    assert len(set(idx)) == len(idx), f"{what}: {idx} lists an index twice"
    for earlier, later in zip(idx, idx[1:]):
        assert v[later] <= v[earlier] + b[later] + b[earlier], (
            f"{what}: {later} ({float(v[later]):.6g}) ranked after {earlier} ({float(v[earlier]):.6g}) beyond rounding")
    if floor is not None:
        low = [i for i in idx if v[i] + b[i] <= floor]
        assert not low, f"{what}: {low} listed though not above {floor} even up to rounding"
    rest = torch.ones_like(v, dtype=torch.bool)
    rest[idx] = False
    limits = []
    if idx and (k is None or len(idx) >= k):
        limits.append(float(min(v[i] + b[i] for i in idx)))  # the weakest listed, as high as rounding allows
    if floor is not None and (k is None or len(idx) < k):
        limits.append(floor)
    if limits:
        over = rest & (v - b > min(limits))
        assert not bool(over.any()), (f"{what}: {over.nonzero().flatten().tolist()[:10]} left out though above "
                                      f"the weakest listed by more than rounding")


def near(values: torch.Tensor, edges: torch.Tensor | float, bound: torch.Tensor | float) -> torch.Tensor:
    """Which values lie within `bound` of an edge (a threshold, a histogram bin's edge): computed in another
    summation order they may fall on its other side, so a count of what is above the edge may differ by them."""
    e = torch.as_tensor(edges, dtype=torch.float64).flatten()
    v = values.detach().to(torch.float64)
    dist = (v.unsqueeze(-1) - e).abs().amin(-1)
    return dist <= torch.as_tensor(bound, dtype=torch.float64)
