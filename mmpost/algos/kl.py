"""Per-token KL estimators between the policy and a reference: (logprobs, ref_logprobs) [N, T] -> [N, T].

The inputs are log-probabilities of the SAMPLED units under each model, so these are single-sample
Monte-Carlo estimates of KL(π_θ ‖ π_ref) (Schulman, "Approximating KL divergence", 2020,
http://joschu.net/blog/kl-approx.html). Names follow verl's `kl_penalty`: "kl"/"k1", "mse"/"k2",
"low_var_kl"/"k3". Masking is left to the aggregation.
"""
from __future__ import annotations

import torch

from mmpost.registry import KL_ESTIMATORS

_WHERE = __name__


def _check(logprobs: torch.Tensor, ref_logprobs: torch.Tensor) -> torch.Tensor:
    if logprobs.shape != ref_logprobs.shape:
        raise ValueError(
            f"{_WHERE}: ref_logprobs {tuple(ref_logprobs.shape)} must match logprobs {tuple(logprobs.shape)}"
        )
    return ref_logprobs.detach()


@KL_ESTIMATORS.register("k1")
def k1(logprobs: torch.Tensor, ref_logprobs: torch.Tensor) -> torch.Tensor:
    """k1 = log π_θ - log π_ref: unbiased for the KL value, high variance, can be negative. [N, T]."""
    return logprobs - _check(logprobs, ref_logprobs)


@KL_ESTIMATORS.register("k2")
def k2(logprobs: torch.Tensor, ref_logprobs: torch.Tensor) -> torch.Tensor:
    """k2 = ½(log π_θ - log π_ref)²: biased value, but its gradient is the true KL gradient. [N, T]."""
    return 0.5 * (logprobs - _check(logprobs, ref_logprobs)).square()


@KL_ESTIMATORS.register("k3")
def k3(logprobs: torch.Tensor, ref_logprobs: torch.Tensor) -> torch.Tensor:
    """k3 = π_ref/π_θ - log(π_ref/π_θ) - 1 (GRPO's KL term, DeepSeekMath eq. 4): unbiased, >= 0, low variance.

    As verl `kl_penalty_forward("low_var_kl")`: log(π_ref/π_θ) is clamped to [-20, 20] before exp and
    the result to [-10, 10], so one very unlikely token cannot blow up the loss. [N, T].
    """
    log_ratio = torch.clamp(_check(logprobs, ref_logprobs) - logprobs, -20.0, 20.0)
    return torch.clamp(torch.exp(log_ratio) - log_ratio - 1.0, -10.0, 10.0)


KL_ESTIMATORS.add("kl", k1)
KL_ESTIMATORS.add("mse", k2)
KL_ESTIMATORS.add("low_var_kl", k3)
