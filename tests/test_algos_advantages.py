"""Advantage estimators against numbers worked out by hand.

The shared example has three NON-contiguous groups with arbitrary ids:
    rows      0    1    2    3    4    5
    group     7    7   -3    7   -3  100
    reward    1    0    3    5    2    2
Group 7: mean 2, deviations (-1, -2, 3), unbiased var (1+4+9)/2 = 7.
Group -3: mean 2.5, deviations (0.5, -0.5), unbiased var 0.5/1 = 0.5.
Group 100: a singleton -> advantage 0 everywhere.
So the centred rewards are x = (-1, -2, 0.5, 3, -0.5, 0).
"""
import math

import pytest
import torch

from mmpost.algos import advantages as adv
from mmpost.registry import ADVANTAGES

REWARDS = torch.tensor([1.0, 0.0, 3.0, 5.0, 2.0, 2.0], dtype=torch.float64)
GROUPS = torch.tensor([7, 7, -3, 7, -3, 100])
CENTRED = torch.tensor([-1.0, -2.0, 0.5, 3.0, -0.5, 0.0], dtype=torch.float64)


def close(actual, expected, tol=1e-6):
    expected = torch.as_tensor(expected, dtype=actual.dtype)
    assert torch.allclose(actual, expected, atol=tol, rtol=0), f"{actual} != {expected}"


def test_grpo_group_scale_by_hand():
    s7, s3 = math.sqrt(7.0), math.sqrt(0.5)
    expected = [-1 / s7, -2 / s7, 0.5 / s3, 3 / s7, -0.5 / s3, 0.0]
    close(adv.grpo(REWARDS, GROUPS, eps=0.0), expected, 1e-12)
    # eps enters the denominator: row 3 is 3 / (sqrt 7 + 0.5).
    assert adv.grpo(REWARDS, GROUPS, eps=0.5)[3].item() == pytest.approx(3 / (s7 + 0.5))


def test_grpo_batch_and_none_scale_by_hand():
    # All six rewards: mean 13/6, sum of squared deviations 89/6, unbiased var 89/30.
    batch_std = math.sqrt(89 / 30)
    close(adv.grpo(REWARDS, GROUPS, eps=0.0, scale="batch"), CENTRED / batch_std, 1e-12)
    close(adv.grpo(REWARDS, GROUPS, eps=123.0, scale="none"), CENTRED, 1e-12)


def test_grpo_matches_trl_formula_on_contiguous_groups():
    # TRL GRPOTrainer._generate_and_score_completions, scale_rewards="group": view(-1, G), std(dim=1), eps 1e-4.
    rewards = torch.tensor([0.0, 1.0, 1.0, 0.5, 2.0, -1.0, 0.0, 3.0])
    grouped = rewards.view(-1, 4)
    trl = (rewards - grouped.mean(1).repeat_interleave(4)) / (grouped.std(1).repeat_interleave(4) + 1e-4)
    ids = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
    close(adv.grpo(rewards, ids, eps=1e-4), trl)


def test_dr_grpo_is_centred_reward():
    close(adv.dr_grpo(REWARDS, GROUPS, eps=1e-6), CENTRED, 1e-12)


def test_rloo_by_hand():
    # Group 7: 1 - (0+5)/2, 0 - (1+5)/2, 5 - (1+0)/2; group -3: 3 - 2, 2 - 3; singleton 0.
    close(adv.rloo(REWARDS, GROUPS), [-1.5, -3.0, 1.0, 4.5, -1.0, 0.0], 1e-12)


def test_reinforce_pp_by_hand():
    # x sums to 0 (each group's deviations do); unbiased var (1+4+0.25+9+0.25+0)/5 = 2.9.
    close(adv.reinforce_pp(REWARDS, GROUPS, eps=0.0), CENTRED / math.sqrt(2.9), 1e-12)
    shifted = adv.reinforce_pp(REWARDS, GROUPS, eps=1.0)
    close(shifted, CENTRED / math.sqrt(3.9), 1e-12)


def test_reinforce_pp_token_weighting_by_hand():
    # x = (0.5, -0.5 | 0.25, -0.75, 0.25, 0.25) with lengths (1, 3 | 2, 2, 1, 1): M = 10 tokens.
    rewards = torch.tensor([1.0, 0.0, 1.0, 0.0, 1.0, 1.0], dtype=torch.float64)
    ids = torch.tensor([0, 0, 1, 1, 1, 1])
    lengths = torch.tensor([1.0, 3.0, 2.0, 2.0, 1.0, 1.0], dtype=torch.float64)
    x = torch.tensor([0.5, -0.5, 0.25, -0.75, 0.25, 0.25], dtype=torch.float64)
    mean = float((lengths * x).sum() / 10)  # (0.5 - 1.5 + 0.5 - 1.5 + 0.25 + 0.25) / 10 = -0.15
    var = float((lengths * (x - mean) ** 2).sum() / 9)  # token variance with Bessel M/(M-1)
    close(adv.reinforce_pp(rewards, ids, lengths=lengths, eps=0.0), (x - mean) / math.sqrt(var), 1e-12)
    # Without lengths (or token_weighted=False) every sequence weighs the same.
    close(adv.reinforce_pp(rewards, ids, lengths=lengths, token_weighted=False),
          adv.reinforce_pp(rewards, ids), 1e-12)
    # One unit per response: token and sequence weighting agree (verl's own numbers: tests/test_parity_verl.py).
    close(adv.reinforce_pp(rewards, ids, lengths=torch.ones(6, dtype=torch.float64)), adv.reinforce_pp(rewards, ids), 1e-12)


def test_flow_grpo_uses_population_global_std():
    # np.std of all six rewards: sqrt((89/6)/6) = sqrt(89/36).
    close(adv.flow_grpo(REWARDS, GROUPS), CENTRED / (math.sqrt(89 / 36) + 1e-4), 1e-12)


def test_zero_variance_groups():
    rewards = torch.tensor([1.0, 2.0, 1.0, 3.0, 0.5])
    ids = torch.tensor([4, 2, 4, 2, 9])
    assert adv.zero_variance_groups(rewards, ids).tolist() == [True, False, True, False, True]
    near = torch.tensor([1.0, 1.05])
    same = torch.tensor([0, 0])
    assert adv.zero_variance_groups(near, same).tolist() == [False, False]
    assert adv.zero_variance_groups(near, same, tol=0.1).tolist() == [True, True]


@pytest.mark.parametrize("name", ["grpo", "dr_grpo", "rloo", "reinforce_pp", "flow_grpo"])
def test_permutation_and_relabelling_invariance(name):
    fn = ADVANTAGES.get(name)
    base = fn(REWARDS, GROUPS)
    perm = torch.tensor([3, 5, 0, 4, 1, 2])
    close(fn(REWARDS[perm], GROUPS[perm]), base[perm], 1e-12)
    relabelled = GROUPS * 1000 + 5
    close(fn(REWARDS, relabelled), base, 1e-12)


@pytest.mark.parametrize("name", ["grpo", "reinforce_pp", "flow_grpo"])
def test_zero_spread_gives_zero_not_nan_even_with_eps_zero(name):
    rewards = torch.tensor([1.0, 1.0, 1.0, 0.0, 0.0])
    ids = torch.tensor([0, 0, 0, 1, 1])
    out = ADVANTAGES.get(name)(rewards, ids, eps=0.0)
    assert out.tolist() == [0.0] * 5


def test_integer_rewards_become_float():
    out = adv.dr_grpo(torch.tensor([1, 0, 1, 1]), torch.tensor([0, 0, 1, 1]))
    assert out.is_floating_point()
    close(out, [0.5, -0.5, 0.0, 0.0])


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="mmpost.algos.advantages.*1-D"):
        adv.grpo(REWARDS[None], GROUPS[None])
    with pytest.raises(ValueError, match="group_ids must be a tensor shaped like rewards"):
        adv.grpo(REWARDS, GROUPS[:3])
    with pytest.raises(ValueError, match="integers"):
        adv.grpo(REWARDS, GROUPS.float())
    with pytest.raises(ValueError, match="scale"):
        adv.grpo(REWARDS, GROUPS, scale="std")


def test_registered_names():
    for name in ["grpo", "dr_grpo", "rloo", "reinforce_pp", "flow_grpo"]:
        assert ADVANTAGES.get(name) is getattr(adv, name)
    assert "zero_variance_groups" not in ADVANTAGES.names()


def test_flow_grpo_advantage_clip_max_clamps_both_sides():
    from mmpost.algos.advantages import flow_grpo

    rewards = torch.tensor([0.0, 10.0, 0.0, 0.0])
    group_ids = torch.tensor([0, 0, 1, 1])
    # population std of [0, 10, 0, 0] = sqrt(18.75) = 4.3301; group 0 mean 5 -> +-5/4.3301 = +-1.1547
    free = flow_grpo(rewards, group_ids, eps=0.0)
    assert torch.allclose(free, torch.tensor([-1.1547, 1.1547, 0.0, 0.0]), atol=1e-4)
    clipped = flow_grpo(rewards, group_ids, eps=0.0, clip_max=1.0)
    assert clipped.tolist() == [-1.0, 1.0, 0.0, 0.0]
