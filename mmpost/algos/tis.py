"""Rollout/trainer log-prob mismatch: a diagnostic and the truncated importance-sampling (TIS) correction.

A fast rollout engine (vLLM) samples from π_sampler, which differs numerically from the trainer's π_old
(other kernels, other precision, a weight sync that lags). The policy-gradient estimate then needs the
importance weight π_old / π_sampler per token; truncating it from above keeps its variance bounded
(Yao et al., "Your Efficient RL Framework Secretly Brings You Off-Policy RL Training", 2025, the
"truncated importance sampling" fix).

Definitions followed (both read in the projects' trainers):
- TRL `GRPOTrainer`, `vllm_importance_sampling_correction` with mode "token_truncate":
  ratio = exp(old_per_token_logps - sampling_per_token_logps), clamped to max=`vllm_importance_sampling_cap`
  (no lower clamp), computed without gradient, and multiplied into the per-token policy loss.
- verl's `tis_imp_ratio_cap` (actor config; later generalised as `rollout_is`): the same
  clamp(exp(old_log_prob - rollout_log_probs), max=cap), multiplied into the token policy loss.
"""
from __future__ import annotations

import math

import torch

_WHERE = __name__


def _check_shapes(first: torch.Tensor, second: torch.Tensor, mask: torch.Tensor, names: tuple[str, str]) -> None:
    if first.shape != second.shape or first.shape != mask.shape:
        raise ValueError(
            f"{_WHERE}: {names[0]} {tuple(first.shape)}, {names[1]} {tuple(second.shape)} and mask "
            f"{tuple(mask.shape)} must have the same [N, T] shape"
        )


def truncated_is_weights(old_logprobs: torch.Tensor, sampling_logprobs: torch.Tensor, mask: torch.Tensor,
                         cap: float) -> torch.Tensor:
    """Per-token truncated importance weights w = min(exp(old - sampling), cap) where mask is 1, else 0.

    old_logprobs: [N, T] log π_old(y_t) re-scored by the trainer (temperature-scaled, as sampled).
    sampling_logprobs: [N, T] log π_sampler(y_t) reported by the rollout engine.
    mask: [N, T] 1 for completion tokens. Returns [N, T], detached: the weight scales the per-token loss
    and carries no gradient (TRL and verl both compute it under no_grad).

    Positions outside the mask return 0 whatever their inputs (the engine reports nothing there, so
    they may hold NaN or -inf).
    """
    _check_shapes(old_logprobs, sampling_logprobs, mask, ("old_logprobs", "sampling_logprobs"))
    if not cap > 0:
        raise ValueError(f"{_WHERE}: the TIS cap must be positive (algorithm.tis_cap), got {cap}")
    keep = mask.bool()
    log_ratio = torch.where(keep, old_logprobs.detach() - sampling_logprobs.detach(), torch.zeros_like(old_logprobs))
    # exp of a large log ratio overflows to inf; clamping the log ratio at log(cap) first gives the same min().
    weights = torch.exp(torch.clamp(log_ratio, max=math.log(cap)))
    return torch.where(keep, weights, torch.zeros_like(weights))


def logprob_mismatch(trainer_logprobs: torch.Tensor, engine_logprobs: torch.Tensor,
                     mask: torch.Tensor) -> dict[str, float]:
    """How far the engine's sampling log-probs are from the trainer's, over masked tokens.

    Inputs [N, T]; returns {"mean_abs_diff": mean |Δ|, "max_abs_diff": max |Δ|,
    "mean_ratio": mean exp(trainer - engine)} with Δ = trainer - engine (all 0.0 / 1.0 when the mask is empty).
    The mean ratio is the average importance weight before truncation: 1 for a perfectly matched engine.
    """
    _check_shapes(trainer_logprobs, engine_logprobs, mask, ("trainer_logprobs", "engine_logprobs"))
    keep = mask.bool()
    if not keep.any():
        return {"mean_abs_diff": 0.0, "max_abs_diff": 0.0, "mean_ratio": 1.0}
    diff = (trainer_logprobs.detach().double() - engine_logprobs.detach().double())[keep]
    return {
        "mean_abs_diff": float(diff.abs().mean()),
        "max_abs_diff": float(diff.abs().max()),
        "mean_ratio": float(torch.exp(diff).mean()),
    }
