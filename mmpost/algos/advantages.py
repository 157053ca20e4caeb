"""Outcome-reward advantage estimators: rewards [N] + group ids [N] -> advantages [N].

A group is the set of rollouts that share a prompt (or initial state). Groups need not be contiguous
and ids may be any integers; every estimator works through `torch.unique(..., return_inverse=True)`
and `index_add_`, so there is no Python loop over rows.

A group with a single member has no baseline to compare against. Every estimator here gives it
advantage 0 (it carries no relative signal). verl differs: it uses mean 0 / std 1 for a singleton, so
its GRPO and REINFORCE++-baseline advantages equal the raw reward there, and its loop RLOO keeps the
raw reward while its vectorised RLOO gives 0.

Batch-level statistics (`grpo` with scale "batch", `flow_grpo`'s global std, `reinforce_pp`'s
whitening) are taken over the rows passed in. The trainer (`mmpost.trainer.compute_advantages`) passes
the rows of ALL processes (gathered; groups never span processes) and keeps its own slice, so these
statistics are over the global batch as in TRL, verl and flow_grpo (tested: 2 processes = 1 process).
Rows whose every reward is None are not passed at all: they get advantage 0 and stay out of every
mean and std, as TRL does.
"""
from __future__ import annotations

from typing import NamedTuple

import torch

from mmpost.registry import ADVANTAGES

_WHERE = __name__
_SCALES = ("group", "batch", "none")


class GroupStats(NamedTuple):
    """Per-row statistics of each row's group (all tensors [N], broadcast back to rows)."""

    mean: torch.Tensor
    std: torch.Tensor  # unbiased (n-1); 0 for singleton groups
    count: torch.Tensor
    spread: torch.Tensor  # max - min of the group


def _check(rewards: torch.Tensor, group_ids: torch.Tensor) -> torch.Tensor:
    if not isinstance(rewards, torch.Tensor) or rewards.dim() != 1:
        shape = tuple(rewards.shape) if isinstance(rewards, torch.Tensor) else type(rewards).__name__
        raise ValueError(f"{_WHERE}: rewards must be a 1-D tensor [N], got {shape}")
    if not isinstance(group_ids, torch.Tensor) or group_ids.shape != rewards.shape:
        shape = tuple(group_ids.shape) if isinstance(group_ids, torch.Tensor) else type(group_ids).__name__
        raise ValueError(
            f"{_WHERE}: group_ids must be a tensor shaped like rewards {tuple(rewards.shape)}, got {shape}"
        )
    if group_ids.is_floating_point() or group_ids.is_complex():
        raise ValueError(f"{_WHERE}: group_ids must hold integers, got dtype {group_ids.dtype}")
    return rewards if rewards.is_floating_point() else rewards.float()


def group_stats(rewards: torch.Tensor, group_ids: torch.Tensor) -> GroupStats:
    """Mean, unbiased std, size and max-min of each row's group, gathered back to [N]."""
    rewards = _check(rewards, group_ids)
    unique_ids, inverse = torch.unique(group_ids, return_inverse=True)
    counts = torch.zeros(unique_ids.numel(), dtype=rewards.dtype, device=rewards.device).index_add_(
        0, inverse, torch.ones_like(rewards)
    )
    sums = torch.zeros_like(counts).index_add_(0, inverse, rewards)
    means = sums / counts
    squared = torch.zeros_like(counts).index_add_(0, inverse, (rewards - means[inverse]) ** 2)
    stds = torch.where(counts > 1, squared / (counts - 1).clamp(min=1), torch.zeros_like(counts)).sqrt()
    highs = torch.full_like(counts, -float("inf")).scatter_reduce(0, inverse, rewards, reduce="amax")
    lows = torch.full_like(counts, float("inf")).scatter_reduce(0, inverse, rewards, reduce="amin")
    return GroupStats(means[inverse], stds[inverse], counts[inverse], (highs - lows)[inverse])


def _batch_std(values: torch.Tensor, *, unbiased: bool = True) -> torch.Tensor:
    if values.numel() < 2:
        return values.new_zeros(())
    return values.std(unbiased=unbiased)


@ADVANTAGES.register("grpo")
def grpo(
    rewards: torch.Tensor, group_ids: torch.Tensor, *, eps: float = 1e-6, scale: str = "group"
) -> torch.Tensor:
    """GRPO advantage (DeepSeekMath, Shao et al. 2024, eq. in sec. 4.1.2): A_i = (r_i - mean_g) / (s + eps).

    `scale` follows TRL's `scale_rewards`: "group" divides by the unbiased std of the row's group
    (verl `compute_grpo_outcome_advantage`, TRL default), "batch" by the unbiased std of all N rewards
    (the mean stays per group, as in TRL), "none" does not divide (Dr.GRPO; eps then plays no part).
    The default eps 1e-6 is verl's (`compute_grpo_outcome_advantage(epsilon=1e-6)`, also EasyR1); TRL
    hard-codes 1e-4 (`advantages / (std_rewards + 1e-4)`), as do R1-AQA and TRL-based recipes:
    `algorithm.advantage_args: {eps: 1e-4}` gives TRL's value (tests/test_parity_trl.py runs with it).

    Shapes: rewards [N] float, group_ids [N] int -> [N]. Singleton groups get 0.
    """
    if scale not in _SCALES:
        raise ValueError(f"{_WHERE}: grpo scale must be one of {_SCALES}, got {scale!r}")
    rewards = _check(rewards, group_ids)
    stats = group_stats(rewards, group_ids)
    centred = torch.where(stats.count > 1, rewards - stats.mean, torch.zeros_like(rewards))
    if scale == "none":
        return centred
    std = stats.std if scale == "group" else _batch_std(rewards).expand_as(rewards)
    # A zero deviation stays 0 even when eps = 0 meets a zero std (singletons, all-equal groups).
    return torch.where(centred == 0, torch.zeros_like(centred), centred / (std + eps))


@ADVANTAGES.register("dr_grpo")
def dr_grpo(rewards: torch.Tensor, group_ids: torch.Tensor, **kw: object) -> torch.Tensor:
    """Dr.GRPO advantage (Liu et al. 2025, "Understanding R1-Zero-like training"): A_i = r_i - mean_g.

    No std division, which the paper shows biases towards too-easy/too-hard questions. Equals
    `grpo(..., scale="none")`, verl `norm_adv_by_std_in_grpo=False`, TRL `scale_rewards="none"`.
    It has no options: a config giving it `advantage_args` fails `mmpost validate` (the `**kw` only lets direct
    callers share keywords with `grpo`).
    Shapes: [N], [N] -> [N]. Singleton groups get 0.
    """
    return grpo(rewards, group_ids, scale="none")


@ADVANTAGES.register("rloo")
def rloo(rewards: torch.Tensor, group_ids: torch.Tensor, **kw: object) -> torch.Tensor:
    """RLOO advantage (Ahmadian et al. 2024; Kool et al. 2019): r_i minus the mean of the OTHER members.

    A_i = r_i - (S_g - r_i)/(n_g - 1) = n_g/(n_g - 1) · (r_i - mean_g), as in verl
    `compute_rloo_vectorized_outcome_advantage`. Shapes: [N], [N] -> [N]. Singleton groups get 0.
    """
    rewards = _check(rewards, group_ids)
    stats = group_stats(rewards, group_ids)
    scale = stats.count / (stats.count - 1).clamp(min=1)
    return torch.where(stats.count > 1, scale * (rewards - stats.mean), torch.zeros_like(rewards))


@ADVANTAGES.register("reinforce_pp")
def reinforce_pp(rewards: torch.Tensor, group_ids: torch.Tensor, *, eps: float = 1e-8,
                 lengths: torch.Tensor | None = None, token_weighted: bool = True) -> torch.Tensor:
    """REINFORCE++-baseline (Hu 2025, arXiv 2501.03262): group-mean baseline, then batch whitening.

    x_i = r_i - mean_g;  A_i = (x_i - μ) / sqrt(σ² + eps).

    Follows verl `compute_reinforce_plus_plus_baseline_outcome_advantage` + `verl.utils.torch_functional
    .masked_whiten` (whose 1e-8 is the eps here; verl's own `epsilon` argument is unused there). verl
    broadcasts x_i to every response token and whitens over all valid TOKENS, so with `lengths` (the
    token count L_i of each row; the trainer passes the completion lengths) μ and σ² are token-weighted
    exactly as verl's: μ = Σ L_i x_i / M, σ² = Σ L_i (x_i - μ)² / M · M/(M-1), M = Σ L_i (masked_var's
    Bessel factor over tokens). `token_weighted=False`, or no `lengths`, weighs sequences equally
    (μ, σ² over the N values, Bessel N/(N-1)); the two agree when every response has one unit.
    Remaining differences from verl: its masked_mean adds 1e-8 to the token count (a relative 1e-8/M);
    a singleton group gets x = 0 here (verl: x = r, its mean 0 for a lone sample). Numbers from verl's
    own function: tests/test_parity_verl.py. Shapes: [N], [N] (, lengths [N]) -> [N]. With fewer than
    two units the variance is taken as 0.
    """
    rewards = _check(rewards, group_ids)
    stats = group_stats(rewards, group_ids)
    centred = torch.where(stats.count > 1, rewards - stats.mean, torch.zeros_like(rewards))
    if token_weighted and lengths is not None:
        weights = torch.as_tensor(lengths, dtype=rewards.dtype, device=rewards.device)
        if weights.shape != rewards.shape or bool((weights < 0).any()):
            raise ValueError(f"{_WHERE}: reinforce_pp lengths must be non-negative and shaped like rewards "
                             f"{tuple(rewards.shape)}, got {tuple(weights.shape)}")
        units = weights.sum()
        mean = (weights * centred).sum() / units.clamp(min=1.0)
        var = (weights * (centred - mean) ** 2).sum() / (units - 1.0).clamp(min=1.0) if units > 1 else units.new_zeros(())
    else:
        mean = centred.mean() if centred.numel() else centred.new_zeros(())
        var = _batch_std(centred) ** 2
    shifted = centred - mean
    return torch.where(shifted == 0, torch.zeros_like(shifted), shifted * torch.rsqrt(var + eps))


@ADVANTAGES.register("flow_grpo")
def flow_grpo(rewards: torch.Tensor, group_ids: torch.Tensor, *, eps: float = 1e-4,
              clip_max: float | None = None) -> torch.Tensor:
    """Flow-GRPO advantage (Liu et al. 2025, arXiv 2505.05470) with `global_std=True`.

    A_i = (r_i - mean_g) / (std_all + eps), where std_all is the POPULATION std (ddof 0) of all N
    rewards: the official `flow_grpo/stat_tracking.py::PerPromptStatTracker.update` uses `np.std`.
    A singleton group gets 0 there too (its mean is its own reward). `clip_max` clamps the advantages to
    [-clip_max, clip_max] as `train_sd3.py` does before the loss (`adv_clip_max`, 5 in the official configs).
    Shapes: [N], [N] -> [N].
    """
    rewards = _check(rewards, group_ids)
    stats = group_stats(rewards, group_ids)
    centred = rewards - stats.mean
    advantages = torch.where(centred == 0, torch.zeros_like(centred), centred / (_batch_std(rewards, unbiased=False) + eps))
    return advantages if clip_max is None else advantages.clamp(-clip_max, clip_max)


def zero_variance_groups(rewards: torch.Tensor, group_ids: torch.Tensor, *, tol: float = 0.0) -> torch.Tensor:
    """True for rows whose whole group has (nearly) equal rewards: max - min <= tol. [N] -> bool [N].

    Such groups give zero GRPO advantage and so no gradient; DAPO's dynamic sampling and Flow-GRPO
    drop them. A singleton group counts as zero-variance.
    """
    return group_stats(rewards, group_ids).spread <= tol
