"""tests/tolerance.py: its bounds hold for another summation order and still fail on a real difference
(a comparison that always passes would test nothing)."""

from __future__ import annotations

import pytest
import torch

from tests.tolerance import assert_close_reduction, assert_ranked_up_to_rounding, near, reduction_bound


def test_a_few_columns_match_the_full_product_and_a_real_difference_fails():
    gen = torch.Generator().manual_seed(0)
    x, w = torch.randn(16, 256, generator=gen), torch.randn(256, 64, generator=gen)
    full = x @ w
    cols = x @ w[:, [3, 40, 7]]  # another shape: maybe another kernel and summation order
    scale = x.abs() @ w[:, [3, 40, 7]].abs()
    assert_close_reduction(cols, full[:, [3, 40, 7]], n=256, scale=scale)
    wrong = cols.clone()
    wrong[5, 1] += 0.05  # far below any value's size, far above the rounding of a 256-term sum
    with pytest.raises(AssertionError, match="1 of 48 values differ"):
        assert_close_reduction(wrong, full[:, [3, 40, 7]], n=256, scale=scale)
    assert reduction_bound(1.0, 64, torch.float32) < reduction_bound(1.0, 64, torch.bfloat16)
    assert reduction_bound(1.0, 64, torch.float32) < reduction_bound(1.0, 256, torch.float32)
    with pytest.raises(ValueError, match="no rounding bound"):  # bf16 sums of 256 terms: n*u = 1, nothing to promise
        reduction_bound(1.0, 256, torch.bfloat16)


def test_a_ranking_may_swap_only_values_within_rounding():
    v = torch.tensor([3.0, 2.0, 2.0 + 1e-7, 1.0, -1.0])
    for order in ([0, 1, 2], [0, 2, 1]):  # 1 and 2 tie up to rounding: either order, either one left out
        assert_ranked_up_to_rounding(order, v, 1e-6, k=3)
    assert_ranked_up_to_rounding([0, 2], v, 1e-6, k=2)
    with pytest.raises(AssertionError, match="ranked after"):
        assert_ranked_up_to_rounding([1, 0, 2], v, 1e-6, k=3)
    with pytest.raises(AssertionError, match="left out"):
        assert_ranked_up_to_rounding([0, 1, 3], v, 1e-6, k=3)
    # fewer than k listed: only values at or below the floor may be missing, and none at it may be listed
    assert_ranked_up_to_rounding([0, 1, 2, 3], v, 1e-6, k=5, floor=0.0)
    with pytest.raises(AssertionError, match="left out"):
        assert_ranked_up_to_rounding([0, 1, 2], v, 1e-6, k=5, floor=0.0)
    with pytest.raises(AssertionError, match="not above"):
        assert_ranked_up_to_rounding([0, 1, 2, 3, 4], v, 1e-6, k=5, floor=0.0)


def test_near_finds_the_values_rounding_could_move_across_an_edge():
    v = torch.tensor([[0.5, 0.999999], [1.5, 2.0000001]])
    assert near(v, torch.tensor([1.0, 2.0]), 1e-5).tolist() == [[False, True], [False, True]]
