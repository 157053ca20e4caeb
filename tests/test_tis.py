"""Truncated importance-sampling weights and the rollout/trainer mismatch diagnostic, against hand numbers."""
import math

import pytest
import torch

from mmpost.algos.tis import logprob_mismatch, truncated_is_weights


def test_weights_are_exp_of_log_ratio_capped_and_zero_outside_mask():
    # Row 0: old - sampling = ln 0.5, 0, ln 3 (capped at 2); row 1: ln 1.5, then padding with NaN/-inf.
    old = torch.tensor([[math.log(0.25), -1.0, math.log(0.9)], [math.log(0.6), 0.0, 0.0]])
    sampling = torch.tensor([[math.log(0.5), -1.0, math.log(0.3)], [math.log(0.4), float("nan"), float("-inf")]])
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]])
    weights = truncated_is_weights(old, sampling, mask, cap=2.0)
    expected = torch.tensor([[0.5, 1.0, 2.0], [1.5, 0.0, 0.0]])
    torch.testing.assert_close(weights, expected, rtol=1e-6, atol=1e-6)


def test_huge_log_ratio_is_capped_not_inf_and_carries_no_gradient():
    old = torch.tensor([[0.0, -50.0]], requires_grad=True)
    sampling = torch.tensor([[-200.0, 0.0]])
    weights = truncated_is_weights(old, sampling, torch.ones(1, 2), cap=3.0)
    # exp(200) overflows float32; the weight is the cap. exp(-50) ~ 1.9e-22 stays (no lower truncation).
    assert weights[0, 0].item() == pytest.approx(3.0)
    assert weights[0, 1].item() == pytest.approx(math.exp(-50.0), rel=1e-4)
    assert not weights.requires_grad


def test_weights_reject_bad_shapes_and_cap():
    with pytest.raises(ValueError, match="mmpost.algos.tis.*same \\[N, T\\] shape"):
        truncated_is_weights(torch.zeros(2, 3), torch.zeros(2, 4), torch.ones(2, 3), cap=2.0)
    with pytest.raises(ValueError, match="tis_cap"):
        truncated_is_weights(torch.zeros(1, 1), torch.zeros(1, 1), torch.ones(1, 1), cap=0.0)


def test_mismatch_statistics_by_hand():
    trainer = torch.tensor([[-1.0, -2.0, -3.0], [-0.5, 7.0, 7.0]])
    engine = torch.tensor([[-1.1, -2.0, -2.7], [-0.5, float("nan"), 0.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]])
    stats = logprob_mismatch(trainer, engine, mask)
    # Diffs on masked tokens: 0.1, 0, -0.3, 0.
    assert stats["mean_abs_diff"] == pytest.approx(0.4 / 4)
    assert stats["max_abs_diff"] == pytest.approx(0.3)
    assert stats["mean_ratio"] == pytest.approx((math.exp(0.1) + 1 + math.exp(-0.3) + 1) / 4)


def test_mismatch_of_empty_mask_is_neutral():
    stats = logprob_mismatch(torch.zeros(1, 2), torch.full((1, 2), float("nan")), torch.zeros(1, 2))
    assert stats == {"mean_abs_diff": 0.0, "max_abs_diff": 0.0, "mean_ratio": 1.0}
